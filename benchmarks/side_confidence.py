"""Which hand and how sure: `side="auto"` and `joint_confidence` on synthetic natural views.

The open hand's natural-view test set (the one of benchmarks/cross_hand.py, no forearm) holds
right hands; each mask mirrored, with its camera mirrored, is the same view of a left hand. Both
are predicted with side="auto" and confidence=True by the shipped model (or --checkpoint):

- side: how often the chosen side is right, over all masks and over those not called
  ambiguous, and how often it says ambiguous; the baseline is always answering "right" (50%);
- confidence: how well each joint's confidence ranks its error (root-relative joint distance
  from the truth, mm): the Spearman correlation over all joints, the mean of the per-joint-type
  correlations (so that fingertips being both less sure and less accurate is not all it shows),
  and the error and the share of errors above 20 mm by confidence quintile.

Usage: python benchmarks/side_confidence.py [--n 200] [--checkpoint PATH] [--data data/cross-hand]
Writes benchmarks/results/side_confidence.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from common import load_model, print_table, setup_threads, write_json
from cross_hand import make_set
from mask2hand.data.storage import open_dataset
from mask2hand.image.camera import Camera
from mask2hand.inference.pipeline import MaskInput
from mask2hand.inference.side import AMBIGUOUS_MARGIN

LARGE_ERROR_MM = 20.0


def ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values, kind="stable"), kind="stable").astype(np.float64)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a.ravel()), ranks(b.ravel()))[0, 1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="right-hand masks (each also mirrored; default 200)")
    parser.add_argument("--checkpoint", help="weights (default: the shipped model)")
    parser.add_argument("--data", default="data/cross-hand", help="where the test set is made (default %(default)s)")
    args = parser.parse_args(argv)
    setup_threads(2)
    started = time.perf_counter()
    dataset = open_dataset(make_set(Path(args.data), "open", "natural", False, args.n))
    ids = dataset.split_indices("test")
    masks, Ks = dataset.masks(ids) > 0, np.asarray(dataset.arrays["K"])[ids]
    truth = np.asarray(dataset.arrays["joints"])[ids].astype(np.float64)
    inputs, truths, sides = [], [], []
    for mask, K, joints in zip(masks, Ks, truth):
        camera = Camera(K, mask.shape)
        inputs += [MaskInput(mask, K=K), MaskInput(np.ascontiguousarray(mask[:, ::-1]), K=camera.mirrored().K)]
        truths += [joints, joints * [-1.0, 1.0, 1.0]]
        sides += ["right", "left"]
    with tempfile.TemporaryDirectory() as tmp:
        model, weights = load_model(args.checkpoint, Path(tmp))
        outcomes = list(model.predict_each(inputs, side="auto", confidence=True, batch_size=32))
    predictions = [o.prediction for o in outcomes if o.ok]
    kept = [i for i, o in enumerate(outcomes) if o.ok]
    chosen = np.array([p.side for p in predictions])
    right_side = chosen == np.array(sides)[kept]
    ambiguous = np.array([p.side_ambiguous for p in predictions])
    side_rows = [{"masks": "all", "count": len(kept), "right side": float(right_side.mean())},
                 {"masks": "not ambiguous", "count": int((~ambiguous).sum()),
                  "right side": float(right_side[~ambiguous].mean()) if (~ambiguous).any() else None},
                 {"masks": "ambiguous", "count": int(ambiguous.sum()),
                  "right side": float(right_side[ambiguous].mean()) if ambiguous.any() else None}]
    margins = np.array([p.side_margin for p in predictions])
    sweep = [{"ambiguous below": m, "not ambiguous": float((margins >= m).mean()),
              "right side when not ambiguous": float(right_side[margins >= m].mean()) if (margins >= m).any() else None}
             for m in (0.0, 0.01, AMBIGUOUS_MARGIN, 0.02, 0.03, 0.05)]
    # the confidence of the answers whose side is right (a wrong side's errors are the side's)
    right_kept = [k for k, ok in zip(kept, right_side) if ok]
    answers = np.stack([outcomes[k].prediction.joints for k in right_kept]).astype(np.float64)
    targets = np.stack([truths[k] for k in right_kept])
    errors = np.linalg.norm((answers - answers[:, :1]) - (targets - targets[:, :1]), axis=-1)[:, 1:] * 1000
    confidence = np.stack([outcomes[k].prediction.joint_confidence for k in right_kept])[:, 1:].astype(np.float64)
    edges = np.quantile(confidence, np.linspace(0, 1, 6))
    quintiles = []
    for q, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        inside = (confidence >= low) & (confidence <= high)
        quintiles.append({"confidence quintile": f"{q + 1} ({low:.2f}-{high:.2f})", "joints": int(inside.sum()),
                          "error mm": float(errors[inside].mean()),
                          f"share > {LARGE_ERROR_MM:g} mm": float((errors[inside] > LARGE_ERROR_MM).mean())})
    correlation = {"spearman_all_joints": -spearman(confidence, errors),
                   "spearman_within_joint_type": float(np.mean([-spearman(confidence[:, j], errors[:, j])
                                                                 for j in range(errors.shape[1])]))}
    print(f"weights: {weights}; {len(kept)} masks ({args.n} right hands and their mirror images, natural views); "
          f"ambiguous below an IoU margin of {AMBIGUOUS_MARGIN}")
    print_table(side_rows, ["masks", "count", "right side"])
    print()
    print_table(sweep, list(sweep[0]))
    print()
    print_table(quintiles, list(quintiles[0]))
    print(f"\nconfidence against error (higher confidence, smaller error): Spearman {correlation['spearman_all_joints']:.3f}"
          f" over all joints, {correlation['spearman_within_joint_type']:.3f} within each joint type")
    write_json("side_confidence", {"weights": weights, "n_right": args.n, "refused": len(inputs) - len(kept),
                                   "ambiguous_margin": AMBIGUOUS_MARGIN, "side": side_rows, "margin_sweep": sweep, "confidence": quintiles,
                                   **correlation, "seconds": round(time.perf_counter() - started, 1)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
