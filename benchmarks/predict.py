"""Speed of `Mask2Hand.predict`: the network alone and the whole predict path, 2 CPU threads.

Rows, each at batch 1 and batch 64, ms per mask and masks/s:
- network: the runner on prepared model inputs (BatchNorm folded; encoder + hand layer + exact silhouette +
  RefineNet), what the <= 10 ms / >= 300 masks/s goals of the model card are about;
- predict (arrays): `Mask2Hand.predict` on 224x224 uint8 arrays: cleaning (binarize,
  largest component), padding/resampling, network, exact silhouette at 224x224, IoU,
  2-D projection; no file output;
- predict (files): the same from the PNG files of examples/ (adds decoding).
Then a per-stage breakdown of the batch-64 predict path.

Weights: the shipped model if this build has one, else a randomly initialised network
of the default configuration (speed does not depend on the weights; the JSON says which).
Usage: python benchmarks/predict.py [--checkpoint PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import load_model, print_table, setup_threads, time_per_call, write_json
from mask2hand.image.masks import load_mask

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GOAL_BATCH1_MS = 10.0
GOAL_BATCH64_PER_S = 300.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="weights to time (default: shipped, else random default config)")
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timing duration per row")
    args = parser.parse_args()
    setup_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        model, weights = load_model(args.checkpoint, Path(tmp))
        files = sorted(EXAMPLES.glob("*.png"))
        arrays = [load_mask(f)[0].astype(np.uint8) * 255 for f in files]
        rows = []
        for batch in (1, 64):
            chosen = [arrays[i % len(arrays)] for i in range(batch)]
            paths = [files[i % len(files)] for i in range(batch)]
            items = [model.prepare(a) for a in chosen]
            inputs = np.stack([it.mask.model_input for it in items])
            Ks = np.stack([it.model_camera.K for it in items]).astype(np.float32)
            cases = {
                "network": lambda: model.runner(inputs, Ks),
                "predict (arrays)": lambda: model.predict(chosen, batch_size=64),
                "predict (files)": lambda: model.predict(paths, batch_size=64),
            }
            for name, fn in cases.items():
                seconds = time_per_call(fn, min_seconds=args.seconds)
                rows.append({"path": name, "batch": batch, "ms_per_mask": 1000 * seconds / batch,
                             "masks_per_s": batch / seconds})
        print(f"weights: {weights}; input size {model.input_size}; 2 threads")
        print_table(rows, ["path", "batch", "ms_per_mask", "masks_per_s"])

        # per-stage breakdown of the batch-64 predict path (one pass each, after warm-up above)
        chosen = [arrays[i % len(arrays)] for i in range(64)]
        t0 = time.perf_counter()
        items = [model.prepare(a) for a in chosen]
        t1 = time.perf_counter()
        raw = model.runner(np.stack([it.mask.model_input for it in items]),
                           np.stack([it.model_camera.K for it in items]).astype(np.float32))
        t2 = time.perf_counter()
        model.finish(items, raw)
        t3 = time.perf_counter()
        stages = {"prepare_ms_per_mask": 1000 * (t1 - t0) / 64, "network_ms_per_mask": 1000 * (t2 - t1) / 64,
                  "finish_ms_per_mask": 1000 * (t3 - t2) / 64}
        print("batch-64 stages (ms per mask): " + ", ".join(f"{k.split('_')[0]} {v:.2f}" for k, v in stages.items()))
        net_b1 = next(r for r in rows if r["path"] == "network" and r["batch"] == 1)
        net_b64 = next(r for r in rows if r["path"] == "network" and r["batch"] == 64)
        goals = {"network_batch1_ms": {"goal": GOAL_BATCH1_MS, "measured": net_b1["ms_per_mask"],
                                       "met": net_b1["ms_per_mask"] <= GOAL_BATCH1_MS},
                 "network_batch64_per_s": {"goal": GOAL_BATCH64_PER_S, "measured": net_b64["masks_per_s"],
                                           "met": net_b64["masks_per_s"] >= GOAL_BATCH64_PER_S}}
        for key, g in goals.items():
            print(f"goal {key}: {g['measured']:.1f} vs {g['goal']} -> {'met' if g['met'] else 'NOT met'}")
        write_json("predict", {"weights": weights, "input_size": model.input_size,
                               "note": "2 CPU threads on a machine shared with other jobs: pessimistic",
                               "rows": rows, "stages_batch64": stages, "goals": goals})


if __name__ == "__main__":
    main()
