"""`mask2hand adapt INPUT... --out RUN`: fine-tune a network on a sensor's unlabelled masks.

The inputs are read as `predict` reads them (files, folders, globs, .npy; one K, a K file with
one matrix per input in file order, or a focal length); a bad input is reported in one line and
left out. The masks are prepared as the network's inputs into RUN/masks (a training share and a
held-out share), labelled synthetic masks are generated into RUN/synthetic, and the run trains
(mask2hand.train.adapt) until --epochs or --minutes. With --pseudo-labels N, up to N of the
training masks are first fitted by test-time fitting and the confident fits (IoU >=
--pseudo-min-iou) join the mix as labels, in RUN/pseudo-labels. RUN/adapted.pt is the adapted weights
file (for `predict --checkpoint`, `eval`, `Mask2Hand.from_pretrained`); RUN/held_out.json the
held-out masks' IoU before and after.

A run folder is held by one run at a time (mask2hand.train.run_folder). `--resume` continues the
run for another sitting of --minutes (default: the run's budget); --epochs sets the run's length
(a larger number extends it). A preparation that was stopped (Ctrl-C, SIGTERM, SIGKILL) before
training began is started over by the next run without --resume.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mask2hand.image.masks import DEFAULT_THRESHOLD

PROG = "mask2hand adapt"
HELD_OUT_NAME = "held_out.json"
PSEUDO_LABELS_NAME = "pseudo_labels.json"
DEFAULT_MINUTES = 20.0
DEFAULT_EPOCHS = 10
PREPARED = ("masks", "synthetic", "pseudo-labels", PSEUDO_LABELS_NAME, HELD_OUT_NAME)
"""What a run's preparation writes into RUN before the trainer writes RUN/config.yaml: a folder
holding some of them and no config.yaml is a preparation that was stopped."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="mask files, folders, glob patterns or .npy arrays, as `predict` takes them "
                             "(not needed with --resume)")
    parser.add_argument("--out", required=True, metavar="RUN", help="run folder (masks, checkpoints, logs, adapted.pt)")
    parser.add_argument("--checkpoint", default="default", metavar="W",
                        help="weights to start from: a file or a shipped model's name (default: default)")
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, metavar="F", help="focal length in pixels of the sensor's images")
    camera.add_argument("--K", dest="k_file", metavar="FILE",
                        help="JSON intrinsics: one 3x3 matrix, or a list with one per input in file order")
    parser.add_argument("--keypoints", metavar="FILE",
                        help="JSON {file name or stem: 21 [u, v(, confidence)] points in FreiHAND order, pixels of "
                             "the mask}: 2-D weak labels trained on with the silhouette "
                             "(mask2hand.inference.keypoints)")
    parser.add_argument("--world-weight", type=float, default=0.0,
                        help="weight of the 3-D points of a keypoints file ('world'), aligned to the answer "
                             "(default 0: not used)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"grey level above which a pixel is hand, as in predict (default: {DEFAULT_THRESHOLD})")
    parser.add_argument("--side", choices=("right", "left"), default="right", help="hand side of the masks")
    parser.add_argument("--minutes", type=float,
                        help=f"time budget of this sitting (default {DEFAULT_MINUTES:g}; with --resume: the run's)")
    parser.add_argument("--epochs", type=int,
                        help=f"passes over the masks at most, in all sittings (default {DEFAULT_EPOCHS}; with "
                             "--resume: the run's, and a larger number extends it)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    parser.add_argument("--held-out", type=float, default=0.1, help="share of the masks held out (default 0.1)")
    parser.add_argument("--synthetic", type=int, default=4000,
                        help="labelled synthetic masks mixed in (natural views, forearms; default 4000, 0: none)")
    parser.add_argument("--synthetic-share", type=float, default=0.25,
                        help="share of the batches that are synthetic (default 0.25)")
    parser.add_argument("--pseudo-labels", type=int, default=0, metavar="N",
                        help="fit up to N training masks first and train on the confident fits as labels "
                             "(about 1 s per mask on a CPU; default 0: none)")
    parser.add_argument("--pseudo-min-iou", type=float, default=0.85,
                        help="IoU with its mask a fit needs to become a pseudo-label (default 0.85)")
    parser.add_argument("--pseudo-share", type=float, default=0.25,
                        help="share of the batches that are pseudo-labelled (default 0.25)")
    parser.add_argument("--teacher", choices=("ema", "start", "none"), default="ema",
                        help="teacher for what the silhouette leaves open: a moving average of the student "
                             "(default), the starting network, or none")
    parser.add_argument("--lr", type=float, default=1e-4, help="learning rate (default 1e-4)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and the draws (default 0)")
    parser.add_argument("--device", default="auto", help="torch device: auto (default), cpu, cuda, cuda:N")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    output.add_argument("--verbose", action="store_true", help="also a line every 100 steps when not on a terminal")


def prepare_inputs(model, args: argparse.Namespace) -> tuple[list, list[str], int]:
    """The inputs as the network's prepared inputs: (PreparedInputs, their names, failures), one
    line on stderr per input that could not be read (the library's reader, as `predict` reads)."""
    from mask2hand.commands.predict import expand_inputs
    from mask2hand.errors import Mask2HandError
    from mask2hand.image.camera import check_focal
    from mask2hand.inference.cameras import KFile
    from mask2hand.inference.pipeline import MaskInput, read_input

    files, errors = expand_inputs(args.inputs)
    k_file = KFile(args.k_file) if args.k_file else None
    focal = check_focal(args.focal) if args.focal is not None else None
    prepared, names = [], []
    for path in files:
        try:
            prepared.append(read_input(model, MaskInput(path, K=k_file, focal=focal), threshold=args.threshold,
                                       side=args.side))
            names.append(str(path))
        except Mask2HandError as exc:
            errors.append((str(path), str(exc)))
    for where, message in errors:
        print(f"{PROG}: error: {where}: {message}", file=sys.stderr)
    return prepared, names, len(errors)


def user_keypoints(path: str, prepared: list, names: list[str], quiet: bool):
    """(keypoints (N,21,3) of the prepared inputs in their network inputs' pixels, zeros where the
    file has none; their 3-D points (N,21,3) meters, zeros where the file has none, or None when it
    has none at all), with a line saying how many inputs have them. A left hand's 3-D points are
    mirrored (x negated) as its mask is."""
    import numpy as np

    from mask2hand.errors import Mask2HandError
    from mask2hand.inference.keypoints import KeypointFile, prepared_keypoints

    file = KeypointFile(path)
    points, world = np.zeros((len(prepared), 21, 3)), np.zeros((len(prepared), 21, 3))
    found = 0
    for i, (item, name) in enumerate(zip(prepared, names)):
        given = file.for_input(name)
        if given is not None:
            points[i] = prepared_keypoints(given, item)
            found += 1
        given_world = file.world_for_input(name)
        if given_world is not None:
            world[i] = given_world * ([-1.0, 1.0, 1.0] if item.side == "left" else 1.0)
    if found == 0:
        raise Mask2HandError(f"keypoints file {path} names none of the {len(names)} inputs (keys are file names "
                             "or stems)")
    if not quiet:
        print(f"keypoints: {found} of {len(names)} masks have them", flush=True)
    return points, (world if file.world else None)


def check_batch_size(count: int, args: argparse.Namespace) -> None:
    """Refuse a --batch-size that the `count` readable masks (after holding out --held-out) or the
    --synthetic masks cannot fill, before anything is written or generated."""
    from mask2hand.errors import Mask2HandError
    from mask2hand.train.adapt_data import held_out_count

    if args.batch_size < 1:
        raise Mask2HandError(f"--batch-size must be at least 1, got {args.batch_size}")
    training = count - held_out_count(count, args.held_out)
    if training < args.batch_size:
        raise Mask2HandError(f"{training} of the {count} masks are left to train on after holding out "
                             f"{count - training} (--held-out {args.held_out:g}): fewer than one batch; "
                             f"pass --batch-size {training} or less, or give more masks")
    if 0 < args.synthetic < args.batch_size:
        raise Mask2HandError(f"--synthetic {args.synthetic} is fewer than one batch of {args.batch_size}; "
                             "raise --synthetic, lower --batch-size, or pass --synthetic 0")


def adapt_recipe(run: Path, network: dict, args: argparse.Namespace, weights: str,
                 pseudo_labels: Path | None = None) -> dict:
    """The adaptation run's recipe (written to RUN/config.yaml by the trainer); pseudo_labels:
    the folder of pseudo-labels to mix in, if any."""
    from mask2hand.errors import Mask2HandError

    masks = run / "masks"
    shares = {}
    generate = {}
    if args.synthetic > 0:
        synthetic = run / "synthetic"
        shares[f"{synthetic}:train"] = args.synthetic_share
        generate = {str(synthetic): {"corpus": "natural", "seed": args.seed + 1, "train": args.synthetic, "val": 0,
                                     "test": 0}}
    if pseudo_labels is not None:
        shares[f"{pseudo_labels}:train"] = args.pseudo_share
    if any(not 0.0 < share < 1.0 for share in shares.values()) or sum(shares.values()) >= 1.0:
        raise Mask2HandError("--synthetic-share and --pseudo-share must each be between 0 and 1 and leave a "
                             f"share for the user's masks; got {', '.join(f'{v:g}' for v in shares.values())}")
    train = {f"{masks}:train": 1.0 - sum(shares.values()), **shares}
    return {
        "name": "adapt", "seed": args.seed, "network": network,
        "data": {"train": train, "val": f"{masks}:held_out", "generate": generate, "workers": 0,
                 "crop_jitter_shift": 0.05, "crop_jitter_scale": [0.9, 1.1], "noise": {"probability": 0.5}},
        "loss": {"preset": "cpu"},
        "train": {"init_from": weights, "epochs": DEFAULT_EPOCHS if args.epochs is None else args.epochs,
                  "batch_size": args.batch_size, "lr": args.lr,
                  "scheduler": "none", "warmup_steps": 50, "grad_clip": 5.0,
                  "max_minutes": DEFAULT_MINUTES if args.minutes is None else args.minutes,
                  "device": args.device},
        "adapt": {"teacher": args.teacher, "weights": {"world": args.world_weight}},
    }


def make_pseudo_labels(run: Path, network, args: argparse.Namespace) -> Path | None:
    """RUN/pseudo-labels from the user's training masks (mask2hand.train.adapt_data.write_pseudo_labels),
    with a line saying how many were kept; None when none was."""
    from mask2hand.export.files import write_json
    from mask2hand.train.adapt_data import write_pseudo_labels

    folder, report = write_pseudo_labels(run / "pseudo-labels", run / "masks", network, args.pseudo_labels,
                                         args.pseudo_min_iou, seed=args.seed)
    write_json(run / PSEUDO_LABELS_NAME, report.as_dict())
    too_few = folder is not None and report.kept < args.batch_size
    if not args.quiet:
        print(f"pseudo-labels: {report.kept} of {report.fitted} fits reached IoU {report.min_iou:g} "
              f"(network {report.network_iou:.3f}, kept fits {report.kept_iou:.3f}; {report.seconds:.0f} s)"
              + ("" if folder is not None else "; training without them")
              + (f"; fewer than one batch of {args.batch_size}: training without them" if too_few else ""),
              flush=True)
    return None if too_few else folder


def start_over_stopped_preparation(out: Path, quiet: bool) -> None:
    """Remove what a stopped preparation left in `out` (see PREPARED), with a line saying so."""
    import shutil

    left = [out / name for name in PREPARED if (out / name).exists()]
    if not left:
        return
    if not quiet:
        print(f"{PROG}: note: {out} holds a preparation that was stopped before training began; starting it over",
              file=sys.stderr)
    for path in left:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def resumed_config(out: Path, args: argparse.Namespace):
    """The run's saved recipe with this sitting's --minutes and --epochs."""
    from dataclasses import replace

    from mask2hand.errors import Mask2HandError
    from mask2hand.train.config import check_values, dump_config, load_config
    from mask2hand.utils.files import write_text_atomic

    if not (out / "config.yaml").is_file():
        if any((out / name).exists() for name in PREPARED):
            raise Mask2HandError(f"{out} holds a preparation that was stopped before training began; run adapt "
                                 "again without --resume to start it over")
        raise Mask2HandError(f"{out} holds no adaptation run to resume (no config.yaml)")
    config = load_config(out / "config.yaml")
    if config.adapt is None:
        raise Mask2HandError(f"{out} is a training run, not an adaptation run; resume it with mask2hand train")
    if args.epochs is not None:  # the run's length: kept in its recipe for later sittings
        config = replace(config, train=replace(config.train, epochs=args.epochs))
        check_values(config)
        write_text_atomic(out / "config.yaml", dump_config(config))
    if args.minutes is not None:  # this sitting's budget only
        config = replace(config, train=replace(config.train, max_minutes=args.minutes))
    return config


def run(args: argparse.Namespace) -> int:
    from mask2hand.train.run_folder import hold_run_folder

    with hold_run_folder(args.out):
        return run_holding_folder(args)


def run_holding_folder(args: argparse.Namespace) -> int:
    import numpy as np

    from mask2hand.errors import Mask2HandError
    from mask2hand.export.files import write_json
    from mask2hand.nn.checkpoint import export_weights, network_config_of, read_file
    from mask2hand.nn.pretrained import resolve_weights
    from mask2hand.train.adapt import AdaptTrainer, teacher_network
    from mask2hand.train.adapt_data import write_user_masks
    from mask2hand.train.config import load_config

    out = Path(args.out)
    failures = 0
    if args.resume:
        config = resumed_config(out, args)
    else:
        if (out / "last.pt").exists() or (out / "config.yaml").exists():
            raise Mask2HandError(f"{out} already holds an adaptation run; pass --resume to continue it "
                                 "or choose another --out")
        if not args.inputs:
            raise Mask2HandError("give the masks to adapt to (files, folders or patterns)")
        from mask2hand.inference.api import Mask2Hand

        weights = str(resolve_weights(args.checkpoint))
        model = Mask2Hand.from_pretrained(weights, device="cpu", runtime="torch")
        prepared, names, failures = prepare_inputs(model, args)
        if len(prepared) < 2:
            raise Mask2HandError(f"{len(prepared)} readable mask(s): adapting needs at least 2")
        check_batch_size(len(prepared), args)
        start_over_stopped_preparation(out, args.quiet)
        masks = np.stack([p.mask.model_input for p in prepared])
        Ks = np.stack([p.model_camera.K for p in prepared])
        keypoints, world = user_keypoints(args.keypoints, prepared, names, args.quiet) if args.keypoints else (None,
                                                                                                              None)
        write_user_masks(out / "masks", masks, Ks, names, held_out=args.held_out, seed=args.seed,
                         crop_margin=model.runner.input_crop, keypoints=keypoints, world_keypoints=world)
        pseudo_labels = None
        if args.pseudo_labels > 0:
            pseudo_labels = make_pseudo_labels(out, model.runner.network, args)
        config = load_config(adapt_recipe(out, network_config_of(read_file(weights)), args, weights, pseudo_labels))
    trainer = AdaptTrainer(config, out, teacher_network(config, args.resume), resume=args.resume, quiet=args.quiet, verbose=args.verbose)
    report_path = out / HELD_OUT_NAME
    if not args.resume:
        write_json(report_path, {"held_out_masks": len(trainer.val_set), "before": trainer.validate()})
    result = trainer.run()
    best = out / "best.pt"
    payload = read_file(best if best.is_file() else out / "last.pt")
    trainer.net.load_state_dict(payload["model"])
    after = trainer.validate()
    export_weights(payload, out / "adapted.pt", training_summary={"adapted_from": config.train.init_from,
                                                                   "steps": result.steps_done})
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    write_json(report_path, {**report, "after": after})
    before = report.get("before", {})
    state = "finished" if result.stop_reason == "finished" else f"stopped ({result.stop_reason}; --resume continues)"
    print(f"adaptation {state}: {result.steps_done} steps; held-out IoU {before.get('miou', float('nan')):.3f} -> "
          f"{after['miou']:.3f}, objective {before.get('total', float('nan')):.3f} -> {after['total']:.3f}; "
          f"weights {out / 'adapted.pt'}")
    if result.stop_reason == "interrupted":
        return 130
    return 2 if failures else 0
