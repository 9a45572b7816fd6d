"""docs/fit_hypotheses.png: the shipped model's answer, the fitted answer and the ranked hypotheses
for a few example masks, each drawn as its silhouette's contour over the input mask with its IoU.

Run: python tools/make_fit_figure.py [--out docs/fit_hypotheses.png] [--k 3] [NAME.png ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mask2hand import Mask2Hand  # noqa: E402
from mask2hand.export.files import write_figure  # noqa: E402
from mask2hand.render import rasterize_silhouette  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EXAMPLES = ("puppet_rabbit.png", "point.png", "puppet_duck.png")


def panel(ax, mask: np.ndarray, silhouette: np.ndarray, title: str) -> None:
    ax.imshow(mask, cmap="gray", vmin=0, vmax=1.6)
    ax.contour(silhouette.astype(float), levels=[0.5], colors="orange", linewidths=1.2)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(DEFAULT_EXAMPLES), help="example file names")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fit_hypotheses.png")
    parser.add_argument("--k", type=int, default=3, help="hypotheses shown per example")
    args = parser.parse_args()

    model = Mask2Hand.from_pretrained()
    paths = [str(ROOT / "examples" / name) for name in args.names]
    plain = model.predict(paths)
    fitted = model.predict(paths, fit=True)
    ranked = model.predict(paths, hypotheses=args.k)
    fig, axes = plt.subplots(len(paths), 2 + args.k, figsize=(2.2 * (2 + args.k), 2.3 * len(paths)), squeeze=False)
    for row, (a, b, c) in enumerate(zip(plain, fitted, ranked)):
        panel(axes[row, 0], a.mask, a.rendered_mask, f"{Path(a.source).name}\nnetwork, IoU {a.iou:.2f}")
        panel(axes[row, 1], b.mask, b.rendered_mask, f"fitted, IoU {b.iou:.2f}")
        for col, hyp in enumerate(c.hypotheses[:args.k]):
            silhouette = rasterize_silhouette(hyp.vertices[None].astype(np.float64), model.faces, c.K[None],
                                              image_size=c.image_size)[0]
            panel(axes[row, 2 + col], c.mask, silhouette,
                  f"hypothesis {col + 1} ({hyp.start})\nIoU {hyp.iou:.2f}, score {hyp.score:.2f}")
        for col in range(2 + len(c.hypotheses[:args.k]), 2 + args.k):
            axes[row, col].axis("off")
    fig.tight_layout()
    write_figure(args.out, fig)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
