"""A figure of two models side by side on held-out masks they find hard: forearms and the Anny hand.

Each row is one mask of a cross-hand test set (benchmarks/cross_hand.py makes them): the input
with the hand-only region shaded, then for each model its answer's silhouette contour and 2-D
skeleton over the input, titled with the PA-MPJPE (cm) and the IoU against the hand-only mask.

Run: python tools/make_compare_figure.py OLD NEW [--labels v4 v5] [--data data/cross-hand]
         [--sets open-natural-forearm anny-natural-hand anny-natural-forearm] [--rows 2]
         [--out docs/images/v4_vs_v5.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mask2hand import Mask2Hand  # noqa: E402
from mask2hand.data.dataset import MaskDataset  # noqa: E402
from mask2hand.export.figures import draw_skeleton_2d  # noqa: E402
from mask2hand.export.files import write_figure  # noqa: E402
from mask2hand.losses.procrustes import procrustes_align  # noqa: E402
from mask2hand.render.exact import mask_iou  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pa_mpjpe_cm(joints: np.ndarray, truth: np.ndarray) -> float:
    """PA-MPJPE (cm) of joints (21,3) against the truth (21,3), meters."""
    import torch

    aligned = procrustes_align(torch.as_tensor(joints[None], dtype=torch.float64),
                               torch.as_tensor(truth[None], dtype=torch.float64), allow_reflection=False).aligned[0].numpy()
    return float(np.linalg.norm(aligned - truth, axis=-1).mean() * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs=2, help="the two models (weights files or shipped names)")
    parser.add_argument("--labels", nargs=2, default=["v4", "v5"])
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "cross-hand")
    parser.add_argument("--sets", nargs="+", default=["open-natural-forearm", "anny-natural-hand",
                                                      "anny-natural-forearm"])
    parser.add_argument("--n", type=int, default=400, help="masks per set (the folder's suffix)")
    parser.add_argument("--rows", type=int, default=2, help="masks per set")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "v4_vs_v5.png")
    args = parser.parse_args()

    models = [Mask2Hand.from_pretrained(w, device="cpu") for w in args.weights]
    samples = []
    for name in args.sets:
        dataset = MaskDataset(args.data / f"{name}-{args.n}", split="test", distance_field=False)
        picks = np.random.default_rng(len(samples)).choice(len(dataset), size=args.rows, replace=False)
        samples += [(name, dataset[int(i)]) for i in picks]
    fig, axes = plt.subplots(len(samples), 1 + len(models), figsize=(2.6 * (1 + len(models)), 2.6 * len(samples)),
                             squeeze=False)
    for row, (name, sample) in enumerate(samples):
        mask = sample.mask.numpy() > 0.5
        hand = sample.hand_mask.numpy() > 0.5 if sample.hand_mask is not None else mask
        K, truth = sample.K.numpy().astype(np.float64), sample.joints.numpy()
        shaded = mask * 0.55 + hand * 0.45
        axes[row, 0].imshow(shaded, cmap="gray", vmin=0, vmax=1.3)
        axes[row, 0].set_title(f"{name}\n(hand shaded)", fontsize=8)
        for col, (model, label) in enumerate(zip(models, args.labels), start=1):
            answer = model.predict(mask, K=K)
            iou = float(mask_iou(answer.rendered_mask[None], hand[None])[0])
            ax = axes[row, col]
            ax.imshow(shaded, cmap="gray", vmin=0, vmax=1.3)
            ax.contour(answer.rendered_mask.astype(float), levels=[0.5], colors="orange", linewidths=1.2)
            draw_skeleton_2d(ax, answer.joints_2d, linewidth=1.2, markersize=4)
            ax.set_title(f"{label}: PA {pa_mpjpe_cm(answer.joints, truth):.2f} cm, IoU {iou:.2f}", fontsize=8)
        for ax in axes[row]:
            ax.set_xlim(0, mask.shape[1])
            ax.set_ylim(mask.shape[0], 0)
            ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_figure(args.out, fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
