"""Evaluation metrics of the paper (section 4.1), identical to the FreiHAND benchmark's.

Protocol of lmb-freiburg/freihand (`eval.py`, `utils/eval_util.py`), reproduced here:

- error of a point = Euclidean distance between prediction and ground truth (meters);
- MPJPE / MPVPE = mean over points (joints / vertices) of each point's mean error over the
  samples, reported in cm (x100);
- PCK / PCV curve at a threshold t = fraction of errors <= t (inclusive), computed per
  point and averaged over points, at 100 thresholds `numpy.linspace(0, 0.05, 100)` meters
  (0 to 5 cm);
- AUC = trapezoidal integral of the curve over the thresholds divided by the integral of
  a constant 1 over the same thresholds (so a perfect curve gives 1);
- aligned ("PA-") versions: every sample's prediction is first aligned to its own ground
  truth with `procrustes_align(..., allow_reflection=True)` (scipy's orthogonal Procrustes
  with FreiHAND's centring and Frobenius-norm scaling, reflections allowed), joints and
  vertices each with their own alignment.

Everything is computed in float64 on the CPU, whatever the inputs, so the numbers do not
depend on the device or dtype of the network. mIoU / Dice compare the input mask with
the exact rasterization of the predicted mesh (`mask2hand.render.rasterize_silhouette`).

Beyond the paper, for hands of other models and masks with forearms:
- root-relative MPJPE: joints after subtracting each hand's own root joint (the wrist), so
  the depth guess of a silhouette does not dominate;
- palm/back flip rate: the share of answers whose palm faces the camera when the true palm
  faces away, or the reverse (`palm_facing`), among the masks whose true palm is clearly
  turned towards or away from the camera (within FLIP_JUDGED_DEGREES of the viewing ray);
- vertex metrics only where the prediction and the ground truth share a mesh topology (a
  dataset made with another hand model has other vertices; `EvaluationResult.notes` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.losses.procrustes import procrustes_align

if TYPE_CHECKING:  # annotations only: the metrics need neither the network nor the data readers at run time
    from mask2hand.data.dataset import HandBatch
    from mask2hand.nn.model import Mask2HandOutput

PCK_MAX_METERS = 0.05
PCK_STEPS = 100
CM_PER_METER = 100.0
FLIP_JUDGED_DEGREES = 75.0
"""A palm whose normal is within this angle of the viewing ray (or of its reverse) clearly faces
towards (away from) the camera; more edge-on palms are not judged for flips."""


def pck_thresholds(max_meters: float = PCK_MAX_METERS, steps: int = PCK_STEPS) -> np.ndarray:
    """(steps,) float64 thresholds in meters, equally spaced from 0 to `max_meters` inclusive."""
    return np.linspace(0.0, max_meters, steps)


def curve_auc(curve: np.ndarray, thresholds: np.ndarray) -> float:
    """Area under a PCK curve, normalised by the threshold range (1.0 for a perfect curve)."""
    return float(np.trapezoid(curve, thresholds) / np.trapezoid(np.ones_like(thresholds), thresholds))


def _as_float64(points: Any) -> torch.Tensor:
    return torch.as_tensor(points).detach().to(device="cpu", dtype=torch.float64)


def point_errors(pred: Any, target: Any, *, aligned: bool = False) -> torch.Tensor:
    """Per-point Euclidean errors in meters, (B,N) float64 on the CPU.

    pred, target: (B,N,3) in meters (torch or numpy). With aligned=True the prediction is
    first Procrustes-aligned to the target as in the FreiHAND evaluation (reflections allowed).
    """
    pred64, target64 = _as_float64(pred), _as_float64(target)
    if pred64.ndim != 3 or pred64.shape[-1] != 3 or pred64.shape != target64.shape:
        raise Mask2HandError(
            f"metrics need predicted and ground-truth points of the same (B,N,3) shape, got "
            f"{tuple(pred64.shape)} and {tuple(target64.shape)} (a hand model with another vertex "
            f"count than the ground truth has no per-vertex error)"
        )
    if aligned:
        pred64 = procrustes_align(pred64, target64, allow_reflection=True).aligned
    return torch.linalg.vector_norm(pred64 - target64, dim=-1)


def palm_facing(joints: Any) -> torch.Tensor:
    """(B,) cosine between each right hand's palm normal and the ray from the camera to its palm
    centre: > 0 when the back of the hand faces the camera, < 0 when the palm does.

    joints (B,21,3) meters, FreiHAND order. The normal is (index MCP - wrist) x (little MCP -
    wrist), which points out of the back of a right hand in the camera's right-handed frame.
    """
    joints = _as_float64(joints)
    wrist, index, middle, little = joints[:, 0], joints[:, 5], joints[:, 9], joints[:, 17]
    normal = torch.linalg.cross(index - wrist, little - wrist)
    centre = (wrist + index + middle + little) / 4
    return torch.nn.functional.cosine_similarity(normal, centre, dim=1)


def palm_flips(pred: Any, target: Any) -> tuple[int, int]:
    """(flipped, judged): how many of the judged answers (true palm within FLIP_JUDGED_DEGREES of
    facing towards or away from the camera) have their palm the other way round."""
    truth, answer = palm_facing(target), palm_facing(pred)
    judged = truth.abs() >= np.cos(np.radians(FLIP_JUDGED_DEGREES))
    flipped = judged & (torch.sign(truth) != torch.sign(answer))
    return int(flipped.sum()), int(judged.sum())


@dataclass
class PointMetrics:
    """Errors of one kind of point (joints or vertices), aligned or not, over a dataset.

    mean_cm: mean point error (MPJPE / MPVPE or their PA- versions) in cm.
    auc: area under `curve`, in [0, 1].
    curve (T,): fraction of correct points at each threshold (PCK / PCV).
    thresholds_cm (T,): the thresholds in cm.
    per_point_mean_cm (N,): mean error of each point index in cm.
    num_samples: number of samples accumulated.
    """

    mean_cm: float
    auc: float
    curve: np.ndarray
    thresholds_cm: np.ndarray
    per_point_mean_cm: np.ndarray
    num_samples: int


class PointErrorStats:
    """Streaming accumulator of per-point errors: exact counts per threshold, no error list kept."""

    def __init__(self, thresholds: np.ndarray | None = None) -> None:
        self.thresholds = pck_thresholds() if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self._thresholds_t = torch.from_numpy(self.thresholds)
        self._error_sums: torch.Tensor | None = None  # (N,) sum of errors per point
        self._below_counts: torch.Tensor | None = None  # (N,T) count of errors <= threshold
        self.num_samples = 0

    def update(self, errors: torch.Tensor) -> None:
        """errors: (B,N) point errors in meters (see `point_errors`)."""
        errors = _as_float64(errors)
        if self._error_sums is None:
            n = errors.shape[1]
            self._error_sums = torch.zeros(n, dtype=torch.float64)
            self._below_counts = torch.zeros(n, len(self.thresholds), dtype=torch.int64)
        elif errors.shape[1] != self._error_sums.shape[0]:
            raise Mask2HandError(f"point count changed from {self._error_sums.shape[0]} to {errors.shape[1]}")
        assert self._below_counts is not None
        self._error_sums += errors.sum(dim=0)
        # first threshold index k with threshold[k] >= error: the error counts as correct at k and after.
        first = torch.searchsorted(self._thresholds_t, errors.contiguous(), right=False)  # (B,N)
        steps = len(self.thresholds)
        hits = torch.zeros(errors.shape[1], steps + 1, dtype=torch.int64)
        hits.scatter_add_(1, first.mT.contiguous(), torch.ones_like(first.mT, dtype=torch.int64))
        self._below_counts += hits.cumsum(dim=1)[:, :steps]
        self.num_samples += errors.shape[0]

    def result(self) -> PointMetrics:
        if self._error_sums is None or self.num_samples == 0:
            raise Mask2HandError("no samples were accumulated: nothing to evaluate")
        assert self._below_counts is not None
        per_point_mean = (self._error_sums / self.num_samples).numpy()
        per_point_curve = self._below_counts.numpy() / self.num_samples  # (N,T)
        curve = per_point_curve.mean(axis=0)
        per_point_auc = [curve_auc(c, self.thresholds) for c in per_point_curve]
        return PointMetrics(
            mean_cm=float(per_point_mean.mean() * CM_PER_METER),
            auc=float(np.mean(per_point_auc)),
            curve=curve,
            thresholds_cm=self.thresholds * CM_PER_METER,
            per_point_mean_cm=per_point_mean * CM_PER_METER,
            num_samples=self.num_samples,
        )


def evaluate_points(pred: Any, target: Any, *, aligned: bool, thresholds: np.ndarray | None = None) -> PointMetrics:
    """One-shot `PointMetrics` of (B,N,3) predictions against ground truth, in meters."""
    stats = PointErrorStats(thresholds)
    stats.update(point_errors(pred, target, aligned=aligned))
    return stats.result()


@dataclass
class StageMetrics:
    """All metrics of one network output stage (preliminary or refined); None when not measured."""

    joints: PointMetrics | None = None
    joints_aligned: PointMetrics | None = None
    vertices: PointMetrics | None = None
    vertices_aligned: PointMetrics | None = None
    miou: float | None = None
    dice: float | None = None
    joints_root_relative: PointMetrics | None = None
    flip_rate: float | None = None
    flips_judged: int = 0

    def summary(self) -> dict[str, float]:
        """The paper's table entries under stable names (only those measured), then the
        root-relative MPJPE and the palm/back flip rate."""
        out: dict[str, float] = {}
        for prefix, unit, kind, pm in (
            ("", "mpjpe_cm", "auc_pck", self.joints),
            ("pa_", "mpjpe_cm", "auc_pck", self.joints_aligned),
            ("", "mpvpe_cm", "auc_pcv", self.vertices),
            ("pa_", "mpvpe_cm", "auc_pcv", self.vertices_aligned),
        ):
            if pm is not None:
                out[prefix + unit] = pm.mean_cm
                out[prefix + kind] = pm.auc
        if self.miou is not None:
            out["miou"] = self.miou
        if self.dice is not None:
            out["dice"] = self.dice
        if self.joints_root_relative is not None:
            out["rr_mpjpe_cm"] = self.joints_root_relative.mean_cm
        if self.flip_rate is not None:
            out["flip_rate"] = self.flip_rate
            out["flips_judged"] = self.flips_judged
        return out


@dataclass
class EvaluationResult:
    """Metrics of a dataset for the preliminary and (if any) refined outputs."""

    preliminary: StageMetrics
    refined: StageMetrics | None
    num_samples: int
    thresholds_cm: np.ndarray = field(default_factory=lambda: pck_thresholds() * CM_PER_METER)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: summaries plus PCK/PCV curves (lists) of each stage."""

        def stage(s: StageMetrics) -> dict[str, Any]:
            curves = {
                name: pm.curve.tolist()
                for name, pm in (
                    ("pck", s.joints),
                    ("pa_pck", s.joints_aligned),
                    ("pcv", s.vertices),
                    ("pa_pcv", s.vertices_aligned),
                )
                if pm is not None
            }
            return {**s.summary(), "curves": curves}

        return {
            "num_samples": self.num_samples,
            "notes": self.notes,
            "thresholds_cm": self.thresholds_cm.tolist(),
            "preliminary": stage(self.preliminary),
            "refined": None if self.refined is None else stage(self.refined),
        }


class _StageAccumulator:
    def __init__(self, thresholds: np.ndarray) -> None:
        self.points = {name: PointErrorStats(thresholds) for name in ("joints", "joints_aligned", "vertices",
                                                                      "vertices_aligned", "joints_root_relative")}
        self.iou_sum = 0.0
        self.dice_sum = 0.0
        self.mask_count = 0
        self.flipped = 0
        self.judged = 0

    def update_points(self, kind: str, pred: Any, target: Any) -> None:
        self.points[kind].update(point_errors(pred, target, aligned=False))
        self.points[kind + "_aligned"].update(point_errors(pred, target, aligned=True))

    def update_joints(self, pred: Any, target: Any) -> None:
        """The joint metrics: absolute, aligned, root-relative, and palm flips."""
        self.update_points("joints", pred, target)
        pred64, target64 = _as_float64(pred), _as_float64(target)
        self.points["joints_root_relative"].update(point_errors(pred64 - pred64[:, :1], target64 - target64[:, :1]))
        flipped, judged = palm_flips(pred64, target64)
        self.flipped += flipped
        self.judged += judged

    def update_masks(self, vertices: Any, faces: Any, K: Any, mask: Any) -> None:
        # Imported here: the renderer sits below metrics in the data flow but is only
        # needed when silhouette metrics are asked for.
        from mask2hand.render import rasterize_silhouette
        from mask2hand.render.exact import mask_dice, mask_iou

        target = torch.as_tensor(mask).detach().cpu() > 0.5
        vertices, K = (x.detach() if torch.is_tensor(x) else x for x in (vertices, K))
        pred = torch.from_numpy(np.asarray(rasterize_silhouette(vertices, faces, K, image_size=tuple(target.shape[-2:]))))
        self.iou_sum += float(torch.as_tensor(mask_iou(pred, target)).double().sum())
        self.dice_sum += float(torch.as_tensor(mask_dice(pred, target)).double().sum())
        self.mask_count += target.shape[0]

    def result(self) -> StageMetrics:
        res = {name: (s.result() if s.num_samples else None) for name, s in self.points.items()}
        return StageMetrics(
            **res,
            miou=self.iou_sum / self.mask_count if self.mask_count else None,
            dice=self.dice_sum / self.mask_count if self.mask_count else None,
            flip_rate=self.flipped / self.judged if self.judged else None,
            flips_judged=self.judged,
        )


class EvaluationAccumulator:
    """Evaluates a dataset batch by batch (used by `mask2hand eval`).

    `update(output, target, K=None, faces=None)` per batch; `result()` returns an
    `EvaluationResult`.
    """

    def __init__(self, thresholds: np.ndarray | None = None) -> None:
        self.thresholds = pck_thresholds() if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self._stages = {"preliminary": _StageAccumulator(self.thresholds), "refined": _StageAccumulator(self.thresholds)}
        self._has_refined: bool | None = None
        self.num_samples = 0
        self.notes: list[str] = []

    def update(self, output: Mask2HandOutput, target: HandBatch, K: Any = None, faces: Any = None) -> None:
        """Add one batch of the network's output for `target`; meters throughout.

        output: joints (B,21,3), vertices (B,V,3), refined_joints / refined_vertices (None when
        RefineNet is off). target: joints (B,21,3), vertices (B,V,3) (a batch without 3-D
        annotations may hold None: its point metrics are then not measured), mask (B,H,W).
        mIoU/Dice are measured when `K` (B,3,3, for the mask's resolution) and `faces` (F,3) are
        given.
        """
        refined_joints, refined_vertices = output.refined_joints, output.refined_vertices
        has_refined = refined_joints is not None or refined_vertices is not None
        if self._has_refined is None:
            self._has_refined = has_refined
        elif self._has_refined != has_refined:
            raise Mask2HandError("some batches have refined outputs and others not: evaluate one model configuration at a time")

        stages = [("preliminary", output.joints, output.vertices)]
        if has_refined:
            stages.append(("refined", refined_joints, refined_vertices))
        same_mesh = target.vertices is not None and target.vertices.shape[1:] == output.vertices.shape[1:]
        if target.vertices is not None and not same_mesh:
            self._note(f"vertex metrics skipped: the dataset's hands have {target.vertices.shape[1]} vertices, the "
                       f"network's {output.vertices.shape[1]} (another hand model); joints and masks are compared")
        for name, joints, vertices in stages:
            acc = self._stages[name]
            if target.joints is not None and joints is not None:
                acc.update_joints(joints, target.joints)
            if same_mesh and vertices is not None:
                acc.update_points("vertices", vertices, target.vertices)
            if K is not None and faces is not None and vertices is not None:
                acc.update_masks(vertices, faces, K, target.mask)
        self.num_samples += int(output.joints.shape[0])

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    def result(self) -> EvaluationResult:
        if self.num_samples == 0:
            raise Mask2HandError("no samples were accumulated: nothing to evaluate")
        return EvaluationResult(
            preliminary=self._stages["preliminary"].result(),
            refined=self._stages["refined"].result() if self._has_refined else None,
            num_samples=self.num_samples,
            thresholds_cm=self.thresholds * CM_PER_METER,
            notes=list(self.notes),
        )
