"""Across hand models, views and forearms: the shipped model on held-out sets it was not trained on.

Eight test sets, {open, Anny} x {broad, natural} x {no forearm, forearm}, each generated once
into --data (`mask2hand synth`, test split only, fixed seeds). The forearm sets use the same seed
as their no-forearm twins, and the forearm has its own random stream, so both hold the same
hands in the same views, with and without an arm. Each set is run through `Mask2Hand.predict`
as a user would give it (full-resolution mask, its K), network alone and with test-time fitting
(mask2hand.evaluation.fitting): MPJPE, root-relative MPJPE, PA-MPJPE (cm), 2-D joint error (px),
palm/back flip rate (with the number of masks judged), mIoU against the hand-only mask.

The joints of another hand model are compared as FreiHAND's are with MANO's: where the two
models place a joint centre differently (docs/ANNY.md), that difference is part of the error.

Usage: python benchmarks/cross_hand.py [--n 400] [--checkpoint PATH] [--data data/cross-hand]
                                      [--no-fit] [--steps 80]
Writes benchmarks/results/cross_hand.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import load_model, setup_threads, write_json
from mask2hand import cli
from mask2hand.data.dataset import MaskDataset
from mask2hand.data.storage import CARD_NAME
from mask2hand.evaluation.fitting import FitEvalSettings, evaluate_fitting
from mask2hand.fit import FitConfig

SETS = [(hand, views, forearm) for hand in ("open", "anny") for views in ("broad", "natural")
        for forearm in (False, True)]
SEEDS = {"broad": 101, "natural": 102}
COLUMNS = [("MPJPE", "mpjpe_cm"), ("RR-MPJPE", "rr_mpjpe_cm"), ("PA-MPJPE", "pa_mpjpe_cm"), ("2-D px", "joints_2d_px"),
           ("flips", "flip_rate"), ("judged", "flips_judged"), ("mIoU", "miou")]


def set_name(hand: str, views: str, forearm: bool) -> str:
    return f"{hand}-{views}-{'forearm' if forearm else 'hand'}"


def make_set(root: Path, hand: str, views: str, forearm: bool, n: int) -> Path:
    """The test set's folder, generated unless it is there with n samples."""
    folder = root / f"{set_name(hand, views, forearm)}-{n}"
    if not (folder / CARD_NAME).is_file():
        code = cli.main(["synth", views, "--hand", hand, "--out", str(folder), "--count", "0", "--val-count", "0",
                         "--test-count", str(n), "--seed", str(SEEDS[views]), "--forearm", "1" if forearm else "0",
                         "--overwrite"])
        if code != 0:
            raise SystemExit(f"could not generate {folder}")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="masks per set (default 400)")
    parser.add_argument("--checkpoint", help="weights (default: shipped)")
    parser.add_argument("--data", default="data/cross-hand", help="where the test sets are made (default %(default)s)")
    parser.add_argument("--no-fit", action="store_true", help="network alone (skip the fitting rows)")
    parser.add_argument("--steps", type=int, default=FitConfig.steps, help="fit steps (default %(default)s)")
    parser.add_argument("--out", default="cross_hand", help="JSON name under benchmarks/results (default %(default)s)")
    args = parser.parse_args(argv)
    setup_threads(2)
    modes = ("network",) if args.no_fit else ("network", "network + fit")
    settings = FitEvalSettings(fit=replace(FitConfig(), steps=args.steps), num_samples=args.n, batch_size=16,
                               modes=modes)
    results, started = {}, time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model, weights = load_model(args.checkpoint, Path(tmp))
        for hand, views, forearm in SETS:
            folder = make_set(Path(args.data), hand, views, forearm, args.n)
            report = evaluate_fitting(model, MaskDataset(folder, split="test", distance_field=False), settings)
            results[set_name(hand, views, forearm)] = {"folder": str(folder), "num_samples": report.num_samples,
                                                       "refused": len(report.refused), "rows": report.rows}
            print(f"{set_name(hand, views, forearm)}: {report.num_samples} masks, "
                  f"{time.perf_counter() - started:.0f} s so far", flush=True)
    header = ["set", "mode"] + [title for title, _ in COLUMNS]
    lines = [[name, mode] + [_cell(row.get(key)) for _, key in COLUMNS]
             for name, result in results.items() for mode, row in result["rows"].items()]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    print(f"weights: {weights}; {args.n} masks per set; errors in cm, 2-D in pixels of the 224 x 224 masks")
    for line in [header, ["-" * w for w in widths], *lines]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))
    write_json(args.out, {"weights": weights, "n": args.n, "fit_steps": None if args.no_fit else args.steps,
                          "sets": results, "seconds": round(time.perf_counter() - started, 1)})
    return 0


def _cell(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
