"""The ablation study of the paper's Table 5: one short training run per row, then its metrics.

Each row switches the aligned losses (on, off, or "*": only on the refined outputs),
the BCE and contour silhouette losses, RefineNet and the mesh (vertex) losses. As in
the paper's ablation, the network uses 6 pose PCs and no shape regression (beta = 0).
The "*" row is the paper's "remove all losses inserted before RefineNet" (section 4.5):
no term, aligned or not, compares the preliminary output, and its contour term is off.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from mask2hand.train.config import TrainConfig


@dataclass(frozen=True)
class AblationRow:
    aligned: str  # "yes", "no" or "*" (refined outputs only)
    bce: bool
    contour: bool
    refine: bool
    mesh: bool

    def label(self) -> str:
        mark = {"yes": "x", "no": "-", "*": "*"}[self.aligned]
        flags = [mark] + ["x" if f else "-" for f in (self.bce, self.contour, self.refine, self.mesh)]
        return " ".join(flags)


TABLE5_ROWS = (
    AblationRow("yes", False, True, True, True),
    AblationRow("yes", False, True, True, False),
    AblationRow("yes", False, True, False, False),
    AblationRow("yes", False, False, True, True),
    AblationRow("no", False, True, True, True),
    AblationRow("*", False, False, True, True),
    AblationRow("yes", True, True, True, True),
    AblationRow("yes", True, True, False, False),
    AblationRow("no", True, True, True, True),
)


_METRICS = (("mpjpe_cm", "MPJPE"), ("mpvpe_cm", "MPVPE"), ("pa_mpjpe_cm", "PA-MPJPE"), ("pa_mpvpe_cm", "PA-MPVPE"),
            ("miou", "mIoU"))

# The paper's Table 5 (FreiHAND, 150 epochs on a GPU) by row label: MPJPE, MPVPE, PA-MPJPE,
# PA-MPVPE (cm) and mIoU, printed beside a run's rows so that their ranking can be compared.
PAPER_TABLE5 = {label: dict(zip((key for key, _ in _METRICS), figures)) for label, figures in (
    ("x - x x x", (3.55, 3.56, 0.78, 0.79, 0.87)),
    ("x - x x -", (3.67, 3.84, 0.86, 1.18, 0.76)),
    ("x - x - -", (3.73, 3.73, 0.94, 0.94, 0.83)),
    ("x - - x x", (3.60, 3.61, 0.80, 0.81, 0.87)),
    ("- - x x x", (3.83, 3.91, 1.36, 1.56, 0.86)),
    ("* - - x x", (3.66, 3.67, 0.79, 0.80, 0.86)),
    ("x x x x x", (3.56, 3.57, 0.78, 0.79, 0.87)),
    ("x x x - -", (3.72, 3.73, 0.90, 0.93, 0.83)),
    ("- x x x x", (3.66, 3.67, 1.04, 1.06, 0.88)),
)}


_ALIGNED_NAMES = {"x": "aligned", "-": "unaligned", "*": "aligned-final"}
_SWITCH_NAMES = ("bce", "contour", "refine", "mesh")


def row_folder(label: str) -> str:
    """The name of a row's run folder inside the ablation's output folder: the aligned terms'
    setting, then the switches that are on ("x - x x x" -> "aligned-contour-refine-mesh",
    "* - - x x" -> "aligned-final-refine-mesh")."""
    marks = label.split()
    on = [name for name, mark in zip(_SWITCH_NAMES, marks[1:]) if mark == "x"]
    return "-".join([_ALIGNED_NAMES[marks[0]], *on])


def row_config(base: TrainConfig, row: AblationRow) -> TrainConfig:
    """The recipe of one Table 5 row derived from `base`."""
    config = copy.deepcopy(base)
    config.name = f"{base.name}-ablation-{row_folder(row.label())}"
    config.network = {**config.network, "num_pose_pcs": 6, "pose_space": "pca", "predict_shape": False,
                      "refine": row.refine}
    overrides = dict(config.loss.overrides)
    overrides["bce"] = 0.5 if row.bce else 0.0
    if not row.contour:
        overrides["contour"] = 0.0
    if row.aligned == "no":
        overrides["aligned_joints"] = 0.0
        overrides["aligned_vertices"] = 0.0
    elif row.aligned == "*":
        overrides.update(preliminary_aligned=False, preliminary_joints=False, preliminary_vertices=False)
    if not row.mesh:
        overrides["vertices"] = 0.0
        overrides["aligned_vertices"] = 0.0
    config.loss.preset = "paper"
    config.loss.overrides = overrides
    return config


def run_ablation(base: TrainConfig, out_dir: str | Path, rows=TABLE5_ROWS, batch_size: int = 64,
                 max_test_samples: int | None = None) -> list[dict]:
    """Train and evaluate every row; returns one dict per row (switches, steps trained, why the
    run stopped, final-output metrics). A row stopped by Ctrl-C or SIGTERM raises
    KeyboardInterrupt after saving its last.pt; rerunning resumes it (finished rows are only
    evaluated again)."""
    from mask2hand.nn.checkpoint import load_network
    from mask2hand.evaluation.network import evaluate
    from mask2hand.train.loop import Trainer

    test = base.data.test or base.data.val
    results = []
    for row in rows:
        run_dir = Path(out_dir) / row_folder(row.label())
        config = row_config(base, row)
        trained = Trainer(config, run_dir, resume=(run_dir / "last.pt").exists()).run()
        if trained.stop_reason == "interrupted":
            # last.pt is saved: the same command resumes this row; the later rows must not start
            raise KeyboardInterrupt
        # the checkpoint keeps no MANO path: the recipe's is the one to use
        net, _ = load_network(run_dir / "best.pt", mano_path=config.network.get("hand_model_path"))
        metrics = evaluate(net, test, batch_size=batch_size, max_samples=max_test_samples)
        final = metrics.stages.get("refined", metrics.stages["preliminary"])
        results.append({"row": row.label(), "aligned": row.aligned, "bce": row.bce, "contour": row.contour,
                        "refine": row.refine, "mesh": row.mesh, "steps": trained.steps_done,
                        "stop_reason": trained.stop_reason, **final})
    return results


def rank_agreement(results: list[dict]) -> dict[str, float | None]:
    """Per metric, Spearman's rank correlation between the rows' figures and the paper's
    (1: the same order); None with fewer than 3 rows or where either side has one value only."""
    from scipy.stats import spearmanr

    agreement: dict[str, float | None] = {}
    for key, _ in _METRICS:
        ours = [r.get(key) for r in results]
        paper = [PAPER_TABLE5[r["row"]][key] for r in results]
        usable = len(results) >= 3 and None not in ours and len(set(ours)) > 1 and len(set(paper)) > 1
        agreement[key] = float(spearmanr(ours, paper).statistic) if usable else None
    return agreement


def format_ablation(results: list[dict]) -> str:
    """The rows as a table, each figure followed by the paper's in brackets, and the rank agreement."""
    width = 14
    header = "Aligned BCE Contour Refine Mesh | " + "".join(label.rjust(width) for _, label in _METRICS)
    lines = ["Table 5 ablation: the final output of each run (cm), [the paper's, on FreiHAND]", header,
             "-" * len(header)]
    for r in results:
        switches = r["row"].split()
        paper = PAPER_TABLE5[r["row"]]
        cells = "".join(f"{r.get(key, float('nan')):.3f} [{paper[key]:.2f}]".rjust(width) for key, _ in _METRICS)
        lines.append(f"{switches[0]:>7} {switches[1]:>3} {switches[2]:>7} {switches[3]:>6} {switches[4]:>4} | {cells}")
    agreement = rank_agreement(results)
    if any(value is not None for value in agreement.values()):
        lines.append("rank agreement with the paper's rows (Spearman; 1: the same order): " + ", ".join(
            f"{label} {'-' if agreement[key] is None else format(agreement[key], '+.2f')}" for key, label in _METRICS))
    return "\n".join(lines)
