"""The loss-curve figure written at the end of a training run."""

from __future__ import annotations

import csv
from pathlib import Path

from mask2hand.utils.files import atomic_path


def plot_loss_curves(run_dir: str | Path) -> Path | None:
    """Plot steps.csv (per-step loss) and epochs.csv (train/val loss per epoch) to loss_curve.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    steps_path, epochs_path = run_dir / "steps.csv", run_dir / "epochs.csv"
    if not steps_path.exists():
        return None
    with steps_path.open() as f:
        steps = [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]
    epochs = []
    if epochs_path.exists():
        with epochs_path.open() as f:
            epochs = list(csv.DictReader(f))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if steps:
        xs, ys = zip(*steps)
        axes[0].plot(xs, ys, lw=0.6, alpha=0.5, label="step")
        window = max(1, len(ys) // 50)
        smooth = [sum(ys[max(0, i - window + 1): i + 1]) / len(ys[max(0, i - window + 1): i + 1]) for i in range(len(ys))]
        axes[0].plot(xs, smooth, lw=1.5, label=f"mean of {window}")
        axes[0].set_yscale("log")
        axes[0].set_xlabel("step")
        axes[0].set_ylabel("training loss")
        axes[0].legend()
    if epochs:
        ep = [float(r["epoch"]) for r in epochs]
        axes[1].plot(ep, [float(r["train_total"]) for r in epochs], marker="o", label="train loss")
        axes[1].plot(ep, [float(r["val_total"]) for r in epochs], marker="o", label="val loss")
        axes[1].set_yscale("log")
        axes[1].set_xlabel("epoch")
        twin = axes[1].twinx()
        for key, style in (("val_prelim_pa_mpjpe_cm", "--"), ("val_refined_pa_mpjpe_cm", ":")):
            if key in epochs[0] and epochs[0][key] != "":
                twin.plot(ep, [float(r[key]) for r in epochs], style, color="gray", label=key[4:])
        twin.set_ylabel("PA-MPJPE (cm)")
        axes[1].legend(loc="upper right")
    fig.tight_layout()
    out = run_dir / "loss_curve.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out
