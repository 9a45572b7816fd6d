"""Adapting to unlabelled masks of a shift the project can label: source, adapted and oracle models.

For each target (Anny hands in natural views; open hands in natural views with forearms) the
target's training masks are written as a sensor would give them (PNG files named by index and a
K file), and three models are compared on the target's labelled test set (a cross-hand set of
benchmarks/cross_hand.py, other seeds than the training masks) and on the source's own held-out
broad set, network alone:

- source: the starting weights;
- adapted: `mask2hand adapt` on the training masks, labels unused, within --minutes (with
  --pseudo-labels N, N of them first fitted and the confident fits trained on as labels);
- oracle: the same masks with their labels, `mask2hand train` from the same weights for the
  same number of steps as the adapted run took (--recipe's network and loss, preset cpu; joints
  only for another hand model's masks; best.pt chosen on a validation split of the target's
  training data).

It reports PA-MPJPE and mIoU (against the hand-only mask) per model and the share of the
source-to-oracle PA-MPJPE gap that adaptation closed. Goals (issue "Learning from a user's own
silhouettes"): at least half the gap closed, target mIoU >= 0.88, the source set within 5% of
the source model, 2,000 masks adapted in at most 20 minutes on 2 CPU cores.

Usage: python benchmarks/adapt.py [--checkpoint default] [--targets anny-natural open-natural-forearm]
                                  [--n-train 2000] [--n-test 400] [--minutes 20] [--pseudo-labels 0]
                                  [--work runs/adapt-bench]
                                  [--cross-hand data/cross-hand] [--source-test data/broad:test]
Writes benchmarks/results/adapt.json (--out NAME: NAME.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import setup_threads, write_json
from cross_hand import make_set
from mask2hand import Mask2Hand, cli
from mask2hand.data.dataset import MaskDataset
from mask2hand.evaluation.fitting import FitEvalSettings, evaluate_fitting
from mask2hand.data.storage import split_source

TARGETS = {"anny-natural": ("anny", "natural", False), "open-natural-forearm": ("open", "natural", True)}
TRAIN_SEEDS = {"anny-natural": 301, "open-natural-forearm": 302}
ORACLE_BATCH = 32  # as mask2hand adapt's default batch


def write_sensor_masks(folder: Path, target: str, count: int, work: Path) -> Path:
    """The target's training masks as PNG files named by index, with K.json (one K per file)."""
    hand, views, forearm = TARGETS[target]
    data = work / f"{target}-train-data"
    if not data.exists():
        code = cli.main(["synth", views, "--hand", hand, "--out", str(data), "--count", str(count), "--val-count",
                         str(max(32, count // 10)), "--test-count", "0", "--seed", str(TRAIN_SEEDS[target]),
                         "--forearm", "1" if forearm else "0"])
        if code:
            raise SystemExit(f"could not generate {data}")
    if not (folder / "K.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        dataset = MaskDataset(data, split="train", distance_field=False)
        Ks = []
        for i in range(len(dataset)):
            sample = dataset[i]
            Image.fromarray((sample.mask.numpy() > 0.5).astype(np.uint8) * 255).save(folder / f"{i:08d}.png")
            Ks.append(sample.K.numpy().astype(float).tolist())
        (folder / "K.json").write_text(json.dumps(Ks))
    return data


def network_row(model: Mask2Hand, folder: Path, split: str, n: int) -> dict:
    report = evaluate_fitting(model, MaskDataset(folder, split=split, distance_field=False),
                              FitEvalSettings(num_samples=n, modes=("network",)))
    return report.rows["network"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="cpu-default-v4", help="the source model (default %(default)s, the issue's)")
    parser.add_argument("--recipe", default="cpu-noise-ft", help="the oracle's recipe (its network must be the "
                                                                  "checkpoint's; default %(default)s)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--pseudo-labels", type=int, default=0, help="adapt's --pseudo-labels (default 0: none)")
    parser.add_argument("--out", default="adapt", help="JSON name under benchmarks/results (default %(default)s)")
    parser.add_argument("--work", type=Path, default=Path("runs/adapt-bench"))
    parser.add_argument("--cross-hand", type=Path, default=Path("data/cross-hand"))
    parser.add_argument("--source-test", default="data/broad:test", help="the source's held-out set (FOLDER:SPLIT)")
    args = parser.parse_args(argv)
    setup_threads(2)
    source_folder, source_split = split_source(args.source_test)
    results = {}
    for target in args.targets:
        hand, views, forearm = TARGETS[target]
        test = make_set(args.cross_hand, hand, views, forearm, args.n_test)
        masks = args.work / f"{target}-masks"
        data = write_sensor_masks(masks, target, args.n_train, args.work)
        adapted_run, oracle_run = args.work / f"{target}-adapted", args.work / f"{target}-oracle"
        started = time.perf_counter()
        if not (adapted_run / "adapted.pt").is_file():
            cli.main(["adapt", str(masks), "--out", str(adapted_run), "--checkpoint", args.checkpoint, "--K",
                      str(masks / "K.json"), "--minutes", str(args.minutes), "--pseudo-labels",
                      str(args.pseudo_labels), "--quiet"])
        adapt_seconds = time.perf_counter() - started
        steps = json.loads((adapted_run / "summary.json").read_text())["steps_done"]
        if not (oracle_run / "best.pt").is_file():
            per_epoch = max(1, args.n_train // ORACLE_BATCH)  # as many steps as the adapted run took, in epochs
            epochs = -(-steps // per_epoch)
            cli.main(["train", args.recipe, "--out", str(oracle_run), "--quiet",
                      "--set", f"train.init_from={args.checkpoint}", "--set", f"data.train={data}:train",
                      "--set", f"data.val={data}:val", "--set", "data.generate={}", "--set", f"train.epochs={epochs}",
                      "--set", f"train.max_steps_per_epoch={min(per_epoch, steps)}",
                      "--set", f"train.batch_size={ORACLE_BATCH}",
                      "--set", "train.lr=1e-4", "--set", "train.scheduler=none", "--set", "train.max_minutes=null"])
        rows = {}
        for name, weights in (("source", args.checkpoint), ("adapted", str(adapted_run / "adapted.pt")),
                              ("oracle", str(oracle_run / "best.pt"))):
            model = Mask2Hand.from_pretrained(weights, device="cpu")
            rows[name] = {"target": network_row(model, test, "test", args.n_test),
                          "source_set": network_row(model, source_folder, source_split, args.n_test)}
        gap = rows["source"]["target"]["pa_mpjpe_cm"] - rows["oracle"]["target"]["pa_mpjpe_cm"]
        closed = (rows["source"]["target"]["pa_mpjpe_cm"] - rows["adapted"]["target"]["pa_mpjpe_cm"]) / gap \
            if gap > 0 else float("nan")
        pseudo = adapted_run / "pseudo_labels.json"
        results[target] = {"rows": rows, "gap_closed": closed, "adapt_seconds": round(adapt_seconds, 1),
                           "adapt_steps": steps, "train_masks": args.n_train,
                           "pseudo_labels": json.loads(pseudo.read_text()) if pseudo.is_file() else None}
        print(f"{target}: gap closed {closed:.2f}, adapted in {adapt_seconds / 60:.1f} min ({steps} steps)")
        for name, row in rows.items():
            print(f"  {name:8s} target PA-MPJPE {row['target']['pa_mpjpe_cm']:.3f} cm, mIoU {row['target']['miou']:.3f}; "
                  f"source set PA-MPJPE {row['source_set']['pa_mpjpe_cm']:.3f} cm")
    write_json(args.out, {"checkpoint": args.checkpoint, "n_test": args.n_test, "minutes": args.minutes,
                         "pseudo_labels": args.pseudo_labels, "targets": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
