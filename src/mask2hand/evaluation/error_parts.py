"""Where a joint error goes: the MPJPE left after removing, in turn, the centroid's offset,
the rotation and the scale of the prediction (the last is PA-MPJPE), and the centroid's
offset split into its image-plane and depth parts.

The paper's tables give MPJPE and PA-MPJPE; the steps between them tell whether an answer is
misplaced (translation, mostly depth for a single view), turned, mis-sized or mis-posed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mask2hand.errors import Mask2HandError
from mask2hand.evaluation.metrics import CM_PER_METER, point_errors
from mask2hand.losses.procrustes import procrustes_align


@dataclass(frozen=True)
class ErrorParts:
    """Mean errors over the answers, in cm.

    mpjpe: as predicted. after_translation: with the prediction's centroid moved onto the
    target's. after_rotation: then also turned by the best proper rotation. after_scale: then
    also scaled (the similarity alignment of PA-MPJPE, reflections allowed as in the metric).
    centroid_offset: the distance between the two centroids; its image-plane (x, y) and depth
    (z) parts, camera axes. count: the number of answers.
    """

    mpjpe: float
    after_translation: float
    after_rotation: float
    after_scale: float
    centroid_offset: float
    centroid_offset_xy: float
    centroid_offset_depth: float
    count: int


class ErrorPartsAccumulator:
    """Sums of the per-answer errors behind ErrorParts, batch by batch."""

    def __init__(self) -> None:
        self._sums = torch.zeros(7, dtype=torch.float64)
        self._count = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target: (B,N,3) points in meters, camera space."""
        rows = per_answer_parts(pred, target)
        self._sums += rows.sum(dim=0)
        self._count += rows.shape[0]

    def result(self) -> ErrorParts:
        if self._count == 0:
            raise Mask2HandError("no answers were added: nothing to split into parts")
        means = (self._sums / self._count * CM_PER_METER).tolist()
        return ErrorParts(*means, count=self._count)


def per_answer_parts(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,7) float64 meters, one row per answer in the order of ErrorParts' first seven fields.

    pred, target: (B,N,3) points in meters, camera space (torch or numpy).
    """
    pred64 = torch.as_tensor(pred).detach().to("cpu", torch.float64)
    target64 = torch.as_tensor(target).detach().to("cpu", torch.float64)
    raw = point_errors(pred64, target64).mean(dim=1)
    pred_mean, target_mean = pred64.mean(dim=1, keepdim=True), target64.mean(dim=1, keepdim=True)
    pred_c, target_c = pred64 - pred_mean, target64 - target_mean
    translated = point_errors(pred_c, target_c).mean(dim=1)
    rotation = procrustes_align(pred_c, target_c, allow_reflection=False).rotation
    rotated = point_errors(pred_c @ rotation.mT, target_c).mean(dim=1)
    scaled = point_errors(pred64, target64, aligned=True).mean(dim=1)
    offset = (pred_mean - target_mean)[:, 0]
    return torch.stack([raw, translated, rotated, scaled, torch.linalg.vector_norm(offset, dim=-1),
                        torch.linalg.vector_norm(offset[:, :2], dim=-1), offset[:, 2].abs()], dim=1)

