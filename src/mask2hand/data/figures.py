"""Figures of the data: sample grids of generated datasets and the noise models."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mask2hand.data.noise import NOISE_KINDS, SEVERITIES, apply_noise
from mask2hand.data.storage import StoredDataset, open_dataset


def _draw_joints(ax, uv: np.ndarray) -> None:
    chains = [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16], [0, 17, 18, 19, 20]]
    colors = ["tab:red", "tab:orange", "tab:green", "tab:blue", "tab:purple"]
    for chain, color in zip(chains, colors):
        ax.plot(uv[chain, 0] - 0.5, uv[chain, 1] - 0.5, "-", color=color, linewidth=0.8)


def draw_dataset_samples(datasets: dict[str, str | os.PathLike | StoredDataset], path: str | os.PathLike,
                         count: int = 16, seed: int = 0, joints: bool = True) -> Path:
    """A PNG with `count` random masks of each dataset (one block of rows per dataset),
    with the projected 21-joint skeleton drawn over each mask."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 8
    rows_per = int(np.ceil(count / cols))
    fig, axes = plt.subplots(rows_per * len(datasets), cols, figsize=(cols * 1.6, rows_per * len(datasets) * 1.75))
    axes = np.atleast_2d(axes)
    for block, (title, ds) in enumerate(datasets.items()):
        ds = ds if isinstance(ds, StoredDataset) else open_dataset(ds)
        picks = np.sort(np.random.default_rng(seed).choice(len(ds), size=min(count, len(ds)), replace=False))
        for k in range(rows_per * cols):
            ax = axes[block * rows_per + k // cols, k % cols]
            ax.axis("off")
            if k >= len(picks):
                continue
            i = int(picks[k])
            ax.imshow(ds.masks(i), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            if joints:
                K = np.asarray(ds.arrays["K"][i], np.float64)
                xyz = np.asarray(ds.arrays["joints"][i], np.float64)
                uvw = xyz @ K.T
                _draw_joints(ax, uvw[:, :2] / uvw[:, 2:3])
            ax.set_title(f"{title} #{i}  f={ds.arrays['K'][i][0, 0]:.0f}", fontsize=6)
    return _save(fig, path, pad=0.3, dpi=110)


def _save(fig, path: str | os.PathLike, pad: float, dpi: int) -> Path:
    """Lay out a pyplot figure, write it as PNG (making its folder) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout(pad=pad)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def draw_noise_examples(masks: list[np.ndarray], path: str | os.PathLike, seed: int = 0) -> Path:
    """A PNG: for each mask (rows), the clean mask then every noise kind at severities 1-3."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + len(NOISE_KINDS) * len(SEVERITIES)
    fig, axes = plt.subplots(len(masks), cols, figsize=(cols * 1.05, len(masks) * 1.15))
    axes = np.atleast_2d(axes)
    for r, mask in enumerate(masks):
        panels = [("clean", mask)]
        for kind in NOISE_KINDS:
            for severity in SEVERITIES:
                panels.append((f"{kind} {severity}", apply_noise(mask, kind, severity, seed=seed + r)))
        for c, (title, image) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.axis("off")
            if r == 0:
                ax.set_title(title, fontsize=6)
    return _save(fig, path, pad=0.2, dpi=130)


def main(argv: list[str] | None = None) -> int:
    """Regenerate docs/synth_samples.png and docs/noise_examples.png:
    python -m mask2hand.data.figures [--out docs] [--hand open]"""
    import argparse
    import tempfile

    from mask2hand.data.synthetic import BroadCorpus, PaperProtocol, generate_broad, generate_paper

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", default="docs")
    parser.add_argument("--hand", default="open")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        paper = generate_paper(Path(tmp) / "paper", hand=args.hand, seed=args.seed,
                               protocol=PaperProtocol(train_poses=40, test_poses=0))
        broad = generate_broad(Path(tmp) / "broad", hand=args.hand, seed=args.seed,
                               corpus=BroadCorpus(train=200, val=0, test=0))
        samples = draw_dataset_samples({"paper": paper, "broad": broad}, out / "synth_samples.png", seed=args.seed)
        print(f"wrote {samples}")
        ds = open_dataset(paper)
        # three well-spread hands: the largest masks among the first views
        areas = ds.masks(slice(0, 200, 5)).reshape(40, -1).sum(1)
        picks = [int(i) * 5 for i in np.argsort(-areas)[[0, 5, 10]]]
        print(f"wrote {draw_noise_examples([ds.masks(i) for i in picks], out / 'noise_examples.png', seed=args.seed)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
