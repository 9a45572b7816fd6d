"""Per-frame cost: `Mask2Hand.predict` of one 224 x 224 mask at batch 1, on the ONNX runtime and on
PyTorch, 2 CPU threads.

Rows per runtime:
- predict: the answer (mesh, joints, 2-D joints, exact silhouette, IoU), the parameters not read
  (they are rebuilt when first read: mask2hand.inference.rebuild.BatchParams);
- predict + params: the same with `prediction.params` read, which fits them (what every answer
  cost before the parameters were rebuilt on demand: the baseline, measured in the same run);
- network: the runner alone on the prepared input.
Goal (issue 34): predict on the ONNX runtime <= 12 ms.

Usage: python benchmarks/per_frame.py [--seconds 3]
Writes benchmarks/results/per_frame.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import print_table, setup_threads, time_per_call, write_json
from mask2hand import Mask2Hand
from mask2hand.image.masks import load_mask

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "open_palm.png"
GOAL_ONNX_MS = 12.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timing duration per row")
    args = parser.parse_args()
    setup_threads(2)
    mask = load_mask(EXAMPLE)[0].astype(np.uint8) * 255
    assert mask.shape == (224, 224)
    rows = []
    for runtime in ("onnx", "torch"):
        model = Mask2Hand.from_pretrained(runtime=runtime)
        item = model.prepare(mask)
        inputs, K = item.mask.model_input[None], item.model_camera.K[None].astype(np.float32)
        cases = {"predict": lambda: model.predict(mask),
                 "predict + params": lambda: model.predict(mask).params,
                 "network": lambda: model.runner(inputs, K)}
        for name, fn in cases.items():
            rows.append({"runtime": runtime, "path": name, "ms": 1000 * time_per_call(fn, min_seconds=args.seconds)})
    print("one 224 x 224 mask (examples/open_palm.png), batch 1, 2 threads")
    print_table(rows, ["runtime", "path", "ms"])
    onnx = next(r["ms"] for r in rows if r["runtime"] == "onnx" and r["path"] == "predict")
    print(f"goal: ONNX predict <= {GOAL_ONNX_MS:g} ms -> {onnx:.1f} ms, {'met' if onnx <= GOAL_ONNX_MS else 'NOT met'}")
    write_json("per_frame", {"rows": rows, "goal_onnx_ms": GOAL_ONNX_MS, "met": onnx <= GOAL_ONNX_MS})


if __name__ == "__main__":
    main()
