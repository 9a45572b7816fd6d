"""`mask2hand eval CHECKPOINT DATA [--align both] [--noise KIND:LEVEL ...] [--sensor-size N ...] [--fit]
[--json OUT]`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint (.pt from a run) or weights file; 'default' for the shipped model")
    parser.add_argument("data", help="dataset: FOLDER:SPLIT (from `mask2hand synth`) or FREIHAND_ROOT:SPLIT")
    parser.add_argument("--align", choices=["none", "procrustes", "both"], default="both",
                        help="which table(s) to print (default both)")
    parser.add_argument("--noise", action="append", default=[], metavar="KIND:LEVEL",
                        help="also evaluate on masks with this noise (repeatable; kinds: jitter, erode, dilate, "
                             "merge, holes, lowres; levels 1-3); prints the appendix-C robustness table")
    parser.add_argument("--sensor-size", type=int, action="append", default=[], metavar="N",
                        help="also evaluate on masks first resampled to N x N, like a low-resolution sensor's "
                             "(repeatable, e.g. --sensor-size 32 --sensor-size 64)")
    parser.add_argument("--fit", action="store_true",
                        help="also the network's answer refined by test-time fitting (as `predict --fit`), on the "
                             "first --fit-samples masks: MPJPE, PA-MPJPE (cm), mIoU and seconds per mask of the "
                             "network alone and of network + fit")
    parser.add_argument("--fit-samples", type=int, default=200,
                        help="masks scored with --fit (default 200; fitting takes about a second per mask)")
    parser.add_argument("--hand", choices=["open", "mano"], default=None, help="hand model (default: the checkpoint's)")
    parser.add_argument("--mano", default=None, help="MANO_RIGHT.pkl for MANO-trained checkpoints")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument("--device", default="auto", help="auto (default: CUDA when present, else the CPU), cpu, "
                                                       "cuda, cuda:N or mps")
    parser.add_argument("--verify", action="store_true",
                        help="first check the SHA-256 of every file of the dataset folder against its card (a full "
                             "read; sizes are always checked)")


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse bad numbers, noise specs and --json before the first (possibly long) evaluation."""
    from mask2hand.errors import Mask2HandError
    from mask2hand.evaluation.network import MIN_SENSOR_SIZE, check_writable, parse_noise

    if args.batch_size < 1:
        raise Mask2HandError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.fit_samples < 1:
        raise Mask2HandError(f"--fit-samples must be at least 1, got {args.fit_samples}")
    if args.max_samples is not None and args.max_samples < 1:
        raise Mask2HandError(f"--max-samples must be at least 1, got {args.max_samples}")
    for side in args.sensor_size:
        if side < MIN_SENSOR_SIZE:
            raise Mask2HandError(f"--sensor-size must be at least {MIN_SENSOR_SIZE} pixels, got {side}")
    for spec in args.noise:
        parse_noise(spec)
    if args.json:
        check_writable(args.json, "--json")


def run(args: argparse.Namespace) -> int:
    from mask2hand.nn.checkpoint import load_network
    from mask2hand.nn.device import resolve_device
    from mask2hand.evaluation.network import evaluate, format_tables, write_results

    _check_arguments(args)
    device = resolve_device(args.device)
    path = args.checkpoint
    net, _ = load_network(path, hand_model=args.hand, mano_path=args.mano, device=device)
    results = [evaluate(net, args.data, None, args.batch_size, args.max_samples, device, verify=args.verify)]
    for spec in args.noise:
        results.append(evaluate(net, args.data, spec, args.batch_size, args.max_samples, device))
    for side in args.sensor_size:
        results.append(evaluate(net, args.data, None, args.batch_size, args.max_samples, device,
                                sensor_size=side))
    print(format_tables(results, args.align))
    extra = {"checkpoint": args.checkpoint, "data": args.data}
    if args.fit:
        fitted = _evaluate_fit(args)
        print(f"\nTest-time fitting ({fitted.num_samples} masks"
              + (f", {len(fitted.refused)} refused by predict and left out" if fitted.refused else "")
              + ")\n" + fitted.table())
        extra["fit"] = fitted.to_dict()
    if args.json:
        write_results(results, args.json, extra)
        print(f"wrote {args.json}")
    return 0


def _evaluate_fit(args: argparse.Namespace):
    """The "network" and "network + fit" rows of mask2hand.evaluation.fitting on the first
    --fit-samples masks of the dataset, with `predict`'s default fit."""
    from mask2hand.data.dataset import MaskDataset
    from mask2hand.evaluation.fitting import FitEvalSettings, evaluate_fitting
    from mask2hand.inference.api import Mask2Hand
    from mask2hand.train.data_setup import split_source

    model = Mask2Hand.from_pretrained(args.checkpoint, hand_model=args.hand, mano_path=args.mano, device=args.device,
                                      runtime="torch")
    folder, split = split_source(args.data)
    dataset = MaskDataset(folder, split=split, distance_field=False)
    settings = FitEvalSettings(num_samples=args.fit_samples, modes=("network", "network + fit"))
    return evaluate_fitting(model, dataset, settings)
