"""Test-time fitting and hypotheses on held-out masks: accuracy and seconds per mask.

Rows (mask2hand.evaluation.fitting): network alone, network + fit, prior-only fit (no
network), top-1 of K hypotheses, best of K (oracle); columns MPJPE, PA-MPJPE (cm), mIoU,
seconds per mask. Issue 8's goals are printed beside the table: mIoU >= 0.93 after
fitting, PA-MPJPE after fitting below the network's, <= 1 s per mask at the default
steps on 2 threads, best-of-5 PA-MPJPE >= 20% below the single answer's.

Usage: python benchmarks/fitting.py [--data data/broad:test] [--n 200] [--checkpoint PATH]
                                   [--sensor-size N]
--sensor-size N resamples every mask (and K) to N x N first, like a low-resolution sensor's
picture; the network, the fit and the IoU then work from that mask.
Without a checkpoint: the shipped model, else a randomly initialised network of the
default configuration (plumbing and timing only; the JSON says which).
Writes benchmarks/results/fitting.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import load_model, setup_threads, write_json
from mask2hand.data.dataset import MaskDataset
from mask2hand.errors import Mask2HandError
from mask2hand.fit import FitConfig
from mask2hand.evaluation.fitting import MODES, FitEvalSettings, evaluate_fitting
from mask2hand.data.storage import split_source

GOALS = {"miou_after_fit": 0.93, "seconds_per_mask_fit": 1.0, "oracle_pa_reduction": 0.20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/broad:test", help="dataset FOLDER[:SPLIT] (default data/broad:test)")
    parser.add_argument("--n", type=int, default=200, help="samples (the first N of the split; default 200)")
    parser.add_argument("--checkpoint", help="weights (default: shipped, else a random network)")
    parser.add_argument("--steps", type=int, default=FitConfig.steps, help="fit steps (default %(default)s)")
    parser.add_argument("--k", type=int, default=5, help="hypotheses per mask (default 5)")
    parser.add_argument("--prior-starts", type=int, default=8, help="starts of the prior-only fit (default 8)")
    parser.add_argument("--batch-size", type=int, default=16, help="masks per batch (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated rows to run")
    parser.add_argument("--sensor-size", type=int, help="resample the masks to N x N first (a low-resolution sensor)")
    parser.add_argument("--out", default="fitting", help="JSON name under benchmarks/results (default fitting)")
    args = parser.parse_args(argv)
    setup_threads(args.threads)
    folder, split = split_source(args.data)
    if not folder.exists():
        raise SystemExit(f"dataset not found: {folder} (make it with `mask2hand synth broad --out {folder}`)")
    if args.sensor_size is not None and args.sensor_size < 8:
        raise SystemExit(f"--sensor-size must be at least 8 pixels, got {args.sensor_size}")
    dataset = MaskDataset(folder, split=split, distance_field=False, resolution=args.sensor_size)
    settings = FitEvalSettings(fit=replace(FitConfig(), steps=args.steps), k=args.k, prior_starts=args.prior_starts,
                               num_samples=args.n, batch_size=args.batch_size,
                               modes=tuple(m.strip() for m in args.modes.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        model, weights = load_model(args.checkpoint, Path(tmp))
        t0 = time.perf_counter()
        try:
            report = evaluate_fitting(model, dataset, settings)
        except Mask2HandError as exc:
            raise SystemExit(f"error: {exc}")
    rows = report.rows
    sensor = f" at {args.sensor_size} x {args.sensor_size} px" if args.sensor_size else ""
    left_out = f" ({len(report.refused)} refused by predict, left out)" if report.refused else ""
    print(f"{report.num_samples} masks of {args.data}{sensor}{left_out}; weights: {weights}; {args.threads} thread(s); "
          f"fit steps {args.steps}, K {args.k}, prior starts {args.prior_starts}; {time.perf_counter() - t0:.0f} s")
    print(report.table())
    checks = {}
    if "network + fit" in rows:
        checks["mIoU after fit >= 0.93"] = rows["network + fit"]["miou"] >= GOALS["miou_after_fit"]
        if "network" in rows:
            fitted, network = rows["network + fit"]["pa_mpjpe_cm"], rows["network"]["pa_mpjpe_cm"]
            checks["PA-MPJPE after fit < network's"] = fitted < network
        seconds = rows["network + fit"]["seconds_per_mask"]
        checks["<= 1 s per mask (network + fit)"] = seconds <= GOALS["seconds_per_mask_fit"]
    if "best of K (oracle)" in rows and "network" in rows:
        reduction = 1 - rows["best of K (oracle)"]["pa_mpjpe_cm"] / rows["network"]["pa_mpjpe_cm"]
        checks[f"best-of-K PA-MPJPE >= 20% below network's (is {100 * reduction:.0f}%)"] = \
            reduction >= GOALS["oracle_pa_reduction"]
    for name, ok in checks.items():
        print(f"goal {name}: {'met' if ok else 'NOT met'}")
    write_json(args.out, {"data": args.data, "sensor_size": args.sensor_size, "weights": weights,
                          "threads": args.threads, "goals": GOALS, "checks": checks, **report.to_dict()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
