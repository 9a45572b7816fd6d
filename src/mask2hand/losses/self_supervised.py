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
  the student (mask2hand.train.adapt).

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


def adapt_objective(net: Mask2HandNet, output: Mask2HandOutput, weights: AdaptWeights,
                    teacher_output: Mask2HandOutput | None = None) -> AdaptTerms:
    """The adaptation objective of one unlabelled batch (see the module docstring).

    net: the student network (its hand layer, faces and renderer settings); output: its answer
    for the batch (forward with exact_silhouette=False, so the preliminary silhouette is soft);
    teacher_output: the teacher's answer for the same batch (needed when weights.teacher > 0).
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
    if not terms:
        raise Mask2HandError("every adapt weight is 0: enable at least one term")
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return AdaptTerms(total=total, **terms)
