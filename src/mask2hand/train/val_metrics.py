"""Per-batch metric sums for validation during training (reducible across processes).

`mask2hand eval` uses the full FreiHAND-protocol accumulator of mask2hand.evaluation.metrics;
training only needs means, which add up across batches and ranks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mask2hand.evaluation.metrics import point_errors

if TYPE_CHECKING:
    from mask2hand.data.dataset import HandBatch
    from mask2hand.nn.model import Mask2HandOutput

CM = 100.0


def batch_metric_sums(output: Mask2HandOutput, batch: HandBatch, faces: torch.Tensor) -> dict[str, float]:
    """Sums over the batch of MPJPE, PA-MPJPE, MPVPE (cm) per output stage and of mask IoU.

    faces (F,3) of the hand model; the IoU is of the final mesh's exact mask at the batch's mask size
    against the hand-only mask when the batch has one, else the mask.
    """
    from mask2hand.render import rasterize_silhouette
    from mask2hand.render.exact import mask_iou

    sums: dict[str, float] = {}
    stages = [("prelim", output.joints, output.vertices)]
    if output.refined_joints is not None:
        stages.append(("refined", output.refined_joints, output.refined_vertices))
    for stage, joints, vertices in stages:
        if batch.joints is None:  # unlabelled masks: the IoU alone
            continue
        sums[f"{stage}_mpjpe_cm"] = float(point_errors(joints, batch.joints).mean(1).sum()) * CM
        sums[f"{stage}_pa_mpjpe_cm"] = float(point_errors(joints, batch.joints, aligned=True).mean(1).sum()) * CM
        if batch.vertices is not None and vertices.shape == batch.vertices.shape:
            sums[f"{stage}_mpvpe_cm"] = float(point_errors(vertices, batch.vertices).mean(1).sum()) * CM
    final_vertices = stages[-1][2]
    size = tuple(batch.mask.shape[-2:])
    predicted = torch.as_tensor(rasterize_silhouette(final_vertices.detach().cpu(), faces.cpu(), batch.K.cpu(), size))
    # the hand's own pixels where the set has them: a forearm is no part of the answer's silhouette
    target = batch.hand_mask if batch.hand_mask is not None else batch.mask
    sums["miou"] = float(mask_iou(predicted, target.cpu() > 0.5).sum())
    return sums
