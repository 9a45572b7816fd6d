"""Hand-layer throughput: hands per second for forward at batch 1, 32 and 256, 2 CPU threads.

Usage: python benchmarks/hand_layer.py [--mano PATH]   (MANO only when a file is given
or MANO_RIGHT_PATH is set). Goal: >= 20,000 hands/s at batch 256 for the open hand.
"""

from __future__ import annotations

import argparse
import os

import torch

from common import print_table, setup_threads, time_per_call, write_json
from mask2hand.hand import load_hand_model

GOAL_BATCH256 = 20_000


def measure(model, batch: int) -> float:
    gen = torch.Generator().manual_seed(0)
    go, tr = torch.randn(batch, 3, generator=gen), torch.randn(batch, 3, generator=gen)
    pcs, betas = torch.randn(batch, model.num_pose_pcs, generator=gen), torch.randn(batch, 10, generator=gen)
    with torch.inference_mode():
        seconds = time_per_call(lambda: model(go, tr, pose_pcs=pcs, betas=betas))
    return batch / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mano", default=os.environ.get("MANO_RIGHT_PATH"), help="MANO_RIGHT.pkl (optional)")
    args = parser.parse_args()
    setup_threads(2)
    models = {"open": load_hand_model("open")}
    if args.mano:
        models["mano"] = load_hand_model("mano", path=args.mano)
    rows = []
    for name, model in models.items():
        for batch in (1, 32, 256):
            rows.append({"model": name, "vertices": model.num_vertices, "batch": batch,
                         "hands_per_s": measure(model, batch)})
    print_table(rows, ["model", "vertices", "batch", "hands_per_s"])
    open256 = next(r["hands_per_s"] for r in rows if r["model"] == "open" and r["batch"] == 256)
    print(f"open hand at batch 256: {open256:,.0f} hands/s (goal >= {GOAL_BATCH256:,})")
    write_json("hand_layer", {"rows": rows, "goal_open_batch256": GOAL_BATCH256,
                              "meets_goal": open256 >= GOAL_BATCH256})


if __name__ == "__main__":
    main()
