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

Several weights are compared in one run with --checkpoint given once per model (the first is the
baseline); the goals of the real-inputs work are judged for each (forearm sets against their
twins, Anny natural views, palm/back flips on natural views), network alone.

Usage: python benchmarks/cross_hand.py [--n 400] [--checkpoint PATH ...] [--data data/cross-hand]
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


GOALS = {"anny_natural_pa_mpjpe_cm": 1.0, "anny_natural_miou": 0.85, "forearm_pa_ratio": 1.10,
         "forearm_2d_ratio": 1.10, "natural_flip_rate": 0.05}
"""The real-inputs goals (network alone): at most these, except the mIoU (at least)."""


def goals_of(rows_by_set: dict[str, dict]) -> dict[str, float]:
    """The goal figures of one model's network rows (set name -> row): Anny natural PA-MPJPE and
    mIoU; the worst ratio over the four forearm sets of PA-MPJPE and of the 2-D error to their
    no-forearm twins; the flip rate over all natural-view masks judged."""
    ratios_pa, ratios_2d = [], []
    for hand in ("open", "anny"):
        for views in ("broad", "natural"):
            arm, twin = rows_by_set[set_name(hand, views, True)], rows_by_set[set_name(hand, views, False)]
            ratios_pa.append(arm["pa_mpjpe_cm"] / twin["pa_mpjpe_cm"])
            ratios_2d.append(arm["joints_2d_px"] / twin["joints_2d_px"])
    natural = [rows_by_set[set_name(h, "natural", f)] for h in ("open", "anny") for f in (False, True)]
    judged = sum(r["flips_judged"] for r in natural)
    flips = sum(r["flip_rate"] * r["flips_judged"] for r in natural) / max(judged, 1)
    anny = rows_by_set[set_name("anny", "natural", False)]
    return {"anny_natural_pa_mpjpe_cm": anny["pa_mpjpe_cm"], "anny_natural_miou": anny["miou"],
            "forearm_pa_ratio": max(ratios_pa), "forearm_2d_ratio": max(ratios_2d), "natural_flip_rate": flips}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="masks per set (default 400)")
    parser.add_argument("--checkpoint", action="append",
                        help="weights (default: shipped); repeat to compare models in one run, baseline first")
    parser.add_argument("--data", default="data/cross-hand", help="where the test sets are made (default %(default)s)")
    parser.add_argument("--no-fit", action="store_true", help="network alone (skip the fitting rows)")
    parser.add_argument("--steps", type=int, default=FitConfig.steps, help="fit steps (default %(default)s)")
    parser.add_argument("--out", default="cross_hand", help="JSON name under benchmarks/results (default %(default)s)")
    args = parser.parse_args(argv)
    setup_threads(2)
    modes = ("network",) if args.no_fit else ("network", "network + fit")
    settings = FitEvalSettings(fit=replace(FitConfig(), steps=args.steps), num_samples=args.n, batch_size=16,
                               modes=modes)
    models, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folders = {set_name(*spec): make_set(Path(args.data), *spec, args.n) for spec in SETS}
        for checkpoint in args.checkpoint or [None]:
            model, weights = load_model(checkpoint, Path(tmp))
            results = {}
            for name, folder in folders.items():
                report = evaluate_fitting(model, MaskDataset(folder, split="test", distance_field=False), settings)
                results[name] = {"folder": str(folder), "num_samples": report.num_samples,
                                 "refused": len(report.refused), "rows": report.rows}
                print(f"{weights}, {name}: {report.num_samples} masks, {time.perf_counter() - started:.0f} s so far",
                      flush=True)
            goals = goals_of({name: result["rows"]["network"] for name, result in results.items()})
            models.append({"weights": weights, "sets": results, "goals": goals})
    header = ["weights", "set", "mode"] + [title for title, _ in COLUMNS]
    lines = [[Path(entry["weights"]).stem, name, mode] + [_cell(row.get(key)) for _, key in COLUMNS]
             for entry in models for name, result in entry["sets"].items() for mode, row in result["rows"].items()]
    _print_table(header, lines)
    print(f"\n{args.n} masks per set; errors in cm, 2-D in pixels of the 224 x 224 masks")
    goal_lines = [[name, ("<= " if name != "anny_natural_miou" else ">= ") + _cell(target)]
                  + [_cell(entry["goals"][name]) for entry in models] for name, target in GOALS.items()]
    print()
    _print_table(["goal (network)", "target"] + [Path(entry["weights"]).stem for entry in models], goal_lines)
    write_json(args.out, {"n": args.n, "fit_steps": None if args.no_fit else args.steps, "goals": GOALS,
                          "models": models, "seconds": round(time.perf_counter() - started, 1)})
    return 0


def _print_table(header: list[str], lines: list[list[str]]) -> None:
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    for line in [header, ["-" * w for w in widths], *lines]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def _cell(value) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


if __name__ == "__main__":
    raise SystemExit(main())
