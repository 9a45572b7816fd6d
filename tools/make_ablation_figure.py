"""A figure of a Table 5 ablation (`mask2hand ablate RECIPE --out RUN`): each row's validation
PA-MPJPE over its training, and each row's final MPJPE and PA-MPJPE against the paper's Table 5
(mask2hand.train.ablation.PAPER_TABLE5), titled with the rank agreement.

Run: python tools/make_ablation_figure.py RUN [--out docs/images/ablation_table5.png]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mask2hand.train.ablation import PAPER_TABLE5, TABLE5_ROWS, rank_agreement, row_folder  # noqa: E402


def validation_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    """Epochs and the validation PA-MPJPE (cm) of the final output (refined where there is one)."""
    with open(run_dir / "epochs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    key = "val_refined_pa_mpjpe_cm" if rows[0].get("val_refined_pa_mpjpe_cm") else "val_prelim_pa_mpjpe_cm"
    return [int(r["epoch"]) for r in rows], [float(r[key]) for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the ablate --out folder (ablation.json and one folder per row)")
    parser.add_argument("--out", type=Path, default=Path("docs/images/ablation_table5.png"))
    args = parser.parse_args()

    results = json.loads((args.run / "ablation.json").read_text())["rows"]
    number = {row.label(): i + 1 for i, row in enumerate(TABLE5_ROWS)}
    agreement = rank_agreement(results)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for r in results:
        epochs, values = validation_curve(args.run / row_folder(r["row"]))
        axes[0].plot(epochs, values, marker="o", ms=3, label=f"{number[r['row']]}: {r['row']}")
    axes[0].set(xlabel="epoch", ylabel="validation PA-MPJPE (cm)", title="training (Aligned BCE Contour Refine Mesh)")
    axes[0].legend(fontsize=7)
    for ax, key, label in ((axes[1], "mpjpe_cm", "MPJPE"), (axes[2], "pa_mpjpe_cm", "PA-MPJPE")):
        paper = [PAPER_TABLE5[r["row"]][key] for r in results]
        ours = [r[key] for r in results]
        ax.scatter(paper, ours)
        for r, x, y in zip(results, paper, ours):
            ax.annotate(str(number[r["row"]]), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
        rho = agreement[key]
        ax.set(xlabel=f"paper, Table 5 (FreiHAND): {label} (cm)", ylabel=f"this run: {label} (cm)",
               title=f"{label}, test set; Spearman {'-' if rho is None else format(rho, '+.2f')}")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
