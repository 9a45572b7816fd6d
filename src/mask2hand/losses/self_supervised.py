"""The objective of adapting a network to unlabelled masks (`mask2hand adapt`).

The mask supervises itself: the network's hands, rendered with the soft renderer, must cast
the mask. The silhouette leaves some things open (the depth of each finger, which side of
the hand faces the camera), so plausibility terms and a teacher hold those where they were:

- silhouette: soft mask error of the preliminary and the refined mesh against the input, one
  minus a Tversky index: 1 - overlap / (overlap + outside + uncovered x left), where a hand pixel
  outside the mask is always wrong and a mask pixel the hand leaves uncovered may be a forearm, so
  it costs `uncovered` times less. It is 1 for an empty silhouette, the worst answer, so that no
  answer escapes it by shrinking the hand (with an error normalised by the mask's area, an empty
  silhouette would cost only `uncovered`);
- contour: the paper's contour term (mask2hand.render.contour) on both meshes; off by default
  (weight 0): without 3-D labels to hold the hand's size it raised the silhouette error from the
  first steps on v4 and Anny masks (the sum along the rendered contour is smaller for a shorter
  contour, and a version averaged along the contour did no better), so it is there to switch on
  where labelled batches dominate;
- limits, shape: the fit's priors (mask2hand.fit.priors) on the preliminary hand's pose
  (radians^2 outside the joint limits) and betas (||betas||^2);
- teacher: mean distance (mm) between the student's and the teacher's refined joints relative
  to their wrists, where the teacher is the starting network or a slowly moving average of
  the student (mask2hand.train.adapt);
- keypoints: where a batch carries 2-D weak labels (HandBatch.keypoints, e.g. a detector's
  landmarks on the photo the mask came from), the confidence-weighted mean distance between the
  projected joints of both meshes and those points, divided by the diagonal of the points' box
  (`keypoint_error`): it does not depend on the focal length, which photos seldom state, nor on
  the image's resolution, and leaves the depth free.

Every term is computed in the encoder's frame (Mask2HandOutput.input_mask / input_K), which
for a network with a locator is the hand's window.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.fit.priors import absolute_pose, limit_penalty, shape_penalty

if TYPE_CHECKING:
    from mask2hand.nn.model import Mask2HandNet, Mask2HandOutput

MILLIMETERS_PER_METER = 1000.0


@dataclass(frozen=True)
class AdaptWeights:
    """Weights of the adaptation objective's terms (0 disables a term) and the uncovered-pixel
    factor of the silhouette term (see the module docstring)."""

    silhouette: float = 1.0
    uncovered: float = 0.3
    contour: float = 0.0
    limits: float = 1.0
    shape: float = 1e-3
    teacher: float = 0.02
    keypoints: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise Mask2HandError(f"adapt weight {f.name} must be a number >= 0, got {value!r}")
        if self.uncovered > 1:
            raise Mask2HandError(f"adapt weight uncovered must be at most 1, got {self.uncovered}")


@dataclass
class AdaptTerms:
    """The objective's value and its unweighted terms (scalar tensors; None when disabled)."""

    total: torch.Tensor
    silhouette: torch.Tensor | None = None
    contour: torch.Tensor | None = None
    limits: torch.Tensor | None = None
    shape: torch.Tensor | None = None
    teacher: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(v.detach()) for f in fields(self) if (v := getattr(self, f.name)) is not None}


def mask_error(silhouette: torch.Tensor, mask: torch.Tensor, uncovered: float) -> torch.Tensor:
    """Soft silhouettes (B,S,S) in [0,1] against masks (B,S,S) 0/1 -> the mean over the batch of
    1 - overlap / (overlap + hand outside the mask + uncovered x mask left uncovered): 0 for a
    perfect match, 1 for no overlap (an empty silhouette included)."""
    overlap = (silhouette * mask).sum(dim=(1, 2))
    outside = (silhouette * (1 - mask)).sum(dim=(1, 2))
    left = ((1 - silhouette) * mask).sum(dim=(1, 2))
    return (1 - overlap / (overlap + outside + uncovered * left).clamp_min(1e-6)).mean()


def keypoint_error(joints: torch.Tensor, K: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
    """Joints (B,21,3) camera space, projected through K (B,3,3), against 2-D keypoints (B,21,3)
    (u, v pixels, confidence) -> the batch mean of sum_j c_j min(1, |proj_j - kp_j| / size) / sum_j c_j,
    size the diagonal of the box of the keypoints with c > 0: a fraction of the hand's size (0.1 =
    a tenth; a joint a whole hand off, or behind the camera, counts 1). A sample with no confident
    keypoint adds 0."""
    from mask2hand.render import project

    confidence = keypoints[..., 2]
    points = keypoints[..., :2]
    present = confidence > 0
    big = torch.finfo(points.dtype).max
    low = torch.where(present[..., None], points, points.new_tensor(big)).amin(dim=1)
    high = torch.where(present[..., None], points, points.new_tensor(-big)).amax(dim=1)
    size = torch.where(present.any(dim=1), (high - low).norm(dim=-1), points.new_ones(()))
    distance = ((project(joints, K) - points).norm(dim=-1) / size.clamp_min(1.0)[:, None]).nan_to_num(1.0).clamp(max=1.0)
    per_sample = (confidence * distance).sum(dim=1) / confidence.sum(dim=1).clamp_min(1e-6)
    return per_sample.mean()


def adapt_objective(net: Mask2HandNet, output: Mask2HandOutput, weights: AdaptWeights,
                    teacher_output: Mask2HandOutput | None = None, keypoints: torch.Tensor | None = None,
                    K: torch.Tensor | None = None) -> AdaptTerms:
    """The adaptation objective of one unlabelled batch (see the module docstring).

    net: the student network (its hand layer, faces and renderer settings); output: its answer
    for the batch (forward with exact_silhouette=False, so the preliminary silhouette is soft);
    teacher_output: the teacher's answer for the same batch (needed when weights.teacher > 0);
    keypoints (B,21,3) and K (B,3,3): the batch's 2-D weak labels in pixels of its masks and the
    masks' intrinsics (the keypoint term is on where both are given and its weight is > 0).
    """
    from mask2hand import render
    from mask2hand.render.contour import contour_distance_field, contour_loss

    size = tuple(output.input_mask.shape[-2:])
    mask = output.input_mask.detach()
    silhouettes = [output.silhouette]
    if output.refined_vertices is not None:
        silhouettes.append(render.render_soft_silhouette(output.refined_vertices, net.faces, output.input_K,
                                                         image_size=size, sigma=net.config.sigma,
                                                         mode=net.config.silhouette_mode))
    terms: dict[str, torch.Tensor] = {}
    if weights.silhouette > 0:
        terms["silhouette"] = sum(mask_error(s, mask, weights.uncovered) for s in silhouettes)
    if weights.contour > 0:
        field = torch.as_tensor(contour_distance_field(mask.cpu().numpy() > 0.5)).to(mask)
        terms["contour"] = sum(contour_loss(s, field) for s in silhouettes)
    if weights.limits > 0 or weights.shape > 0:
        params = output.params
        pose = params.pose if params.pose is not None else net.hand.pose_from_pcs(params.pose_pcs)
        if weights.limits > 0:
            terms["limits"] = limit_penalty(absolute_pose(net.hand, pose.reshape(pose.shape[0], -1))).mean()
        if weights.shape > 0 and params.betas is not None:
            terms["shape"] = shape_penalty(params.betas).mean()
    if weights.teacher > 0:
        if teacher_output is None:
            raise Mask2HandError("the adapt teacher term needs the teacher's answer; set its weight to 0 "
                                 "or give a teacher")
        student = output.final_joints - output.final_joints[:, :1]
        teacher = (teacher_output.final_joints - teacher_output.final_joints[:, :1]).detach()
        terms["teacher"] = (student - teacher).norm(dim=-1).mean() * MILLIMETERS_PER_METER
    if weights.keypoints > 0 and keypoints is not None:
        if K is None:
            raise Mask2HandError("the adapt keypoint term needs the batch's intrinsics K")
        joint_sets = [output.joints] + ([output.refined_joints] if output.refined_joints is not None else [])
        terms["keypoints"] = sum(keypoint_error(j, K, keypoints) for j in joint_sets)
    if not terms:
        raise Mask2HandError("every adapt weight is 0: enable at least one term")
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return AdaptTerms(total=total, **terms)
