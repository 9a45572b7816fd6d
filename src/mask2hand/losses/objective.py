"""Training losses of the paper (section 3.2, eq. 1-8), each term switchable (Table 5).

Terms (unweighted values in `LossTerms`, weights in `LossWeights`):

- joints (eq. 3): squared error of the unaligned joints;
- aligned_joints (eq. 4): the same after Procrustes alignment of the prediction;
- vertices (eq. 7): absolute error of the unaligned vertices;
- aligned_vertices (eq. 8): the same after Procrustes alignment;
- bce, contour (eq. 5): `silhouette_bce` and `contour_loss` of the renderer between the
  rendered silhouette of the preliminary mesh and the input mask;
- joints_2d, vertices_2d (ours, not in the paper): absolute error in pixels of the
  projections of the joints / vertices into the network's input image (intrinsics
  `output.input_K`), for the preliminary and the refined outputs. Unlike the 3-D terms
  they do not see the depth, which a silhouette leaves ambiguous (a larger hand farther
  away casts the same mask), so they keep the mesh on the mask where the unaligned 3-D
  terms would trade image alignment for the mean depth;
- locator (ours): for a network with a locator (mask2hand.nn.locator), the mean absolute error
  of its window code against the code of the hand's own window (target.hand_window); left out
  for networks without one;
- total (eq. 1): the weighted sum of the enabled terms.

The 3-D and 2-D terms apply only to batches that have their ground truth: a batch made with
another hand model (target.vertices None) is supervised through the joints, which every hand
model has, and an unlabelled batch (joints and vertices None: a user's masks in `mask2hand
adapt`) only through the silhouette terms; a term left out is not reported for that batch.

Each 3-D term is the preliminary-output error plus the refined-output error, as in the
paper's equations. When RefineNet is off (refined outputs None) the preliminary outputs are
the final ones and each term has one part. Flags of `LossWeights` drop the separate
preliminary part of some terms when refined outputs exist (Table 5 "*", reference code).

Conventions, chosen to match the reference code (github lijenchang/Mask2Hand, loss.py)
for which the paper's weights were tuned:

- Units: coordinates are converted from meters to millimeters (x `units_per_meter`,
  1000) inside the loss; the inputs stay in meters like everywhere else.
- Reduction: the reference uses torch's MSELoss / L1Loss, i.e. the mean over batch,
  points AND the three coordinates. The paper writes (1/K) sum_i ||.||_2^2 and
  (1/M) sum_i ||.||_1, which sum over xyz; the reference value is that divided by 3.
  We use the reference (per-coordinate mean), so the paper's weights keep their meaning.
- Alignment: aligned terms use `procrustes_align(..., allow_reflection=False)` (a proper
  rotation). The reference code's SVD alignment can return a reflection; for a loss that
  would reward mirror-image hands, so we do not.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.nn.functional as F

from mask2hand.errors import Mask2HandError
from mask2hand.losses.procrustes import procrustes_align

if TYPE_CHECKING:  # annotations only: the losses need neither the network nor the data readers at run time
    from mask2hand.data.dataset import HandBatch
    from mask2hand.nn.model import Mask2HandOutput

_T = TypeVar("_T")

MILLIMETERS_PER_METER = 1000.0


@dataclass(frozen=True)
class LossWeights:
    """Weights (lambda of eq. 1-6) and switches of the loss. A weight of 0 disables a term:
    it is then neither computed nor reported.

    preliminary_joints / preliminary_vertices: include the preliminary joints / vertices in
        the joint (eq. 3, 4) / vertex (eq. 7, 8) terms when refined outputs exist.
    preliminary_aligned: include the preliminary output in the aligned terms (eq. 4, 8);
        False is the "*" row of Table 5 (aligned loss only on the refined outputs).
    units_per_meter: scale applied to coordinates before the 3-D terms (1000: millimeters).
    """

    joints: float = 2e-3
    aligned_joints: float = 2e-2
    vertices: float = 0.1
    aligned_vertices: float = 1.0
    bce: float = 0.0
    contour: float = 1e-4
    joints_2d: float = 0.0
    vertices_2d: float = 0.0
    locator: float = 10.0
    preliminary_joints: bool = True
    preliminary_vertices: bool = True
    preliminary_aligned: bool = True
    units_per_meter: float = MILLIMETERS_PER_METER

    @classmethod
    def paper(cls) -> LossWeights:
        """The final model of the paper (section 4.4 weights, lambda_bce = 0, eq. 1-8 as written)."""
        return cls()

    @classmethod
    def paper_ablation_bce(cls) -> LossWeights:
        """The paper's ablation setting with the BCE silhouette term (lambda_bce = 0.5)."""
        return cls(bce=0.5)

    @classmethod
    def paper_aligned_refined_only(cls) -> LossWeights:
        """Table 5 "*": the aligned terms only on the refined joints and vertices."""
        return cls(preliminary_aligned=False)

    @classmethod
    def reference_code(cls) -> LossWeights:
        """What the released reference code trains with: as paper(), but the vertex terms
        only on the refined mesh."""
        return cls(preliminary_vertices=False)

    @classmethod
    def cpu(cls) -> LossWeights:
        """The preset of the CPU recipes (configs/cpu-*.yaml, every stage of the shipped model):
        the paper's aligned terms, a quarter of its unaligned joint weight, and 2-D reprojection terms instead of the
        silhouette terms (with ground-truth meshes they pull the mesh onto the mask more
        directly, and training then needs no soft rendering)."""
        return cls(joints=5e-4, contour=0.0, joints_2d=1.0, vertices_2d=1.0)

    def needs_silhouette(self) -> bool:
        """Whether a term compares a differentiable rendered silhouette with the mask."""
        return self.bce > 0 or self.contour > 0

    @classmethod
    def self_supervised(cls) -> LossWeights:
        """No annotations: only the silhouette terms (BCE with the ablation's 0.5, contour)."""
        return cls(joints=0.0, aligned_joints=0.0, vertices=0.0, aligned_vertices=0.0, bce=0.5, contour=1e-4)


@dataclass
class LossTerms:
    """Loss value and its unweighted terms (scalar tensors; None when disabled)."""

    total: torch.Tensor
    joints: torch.Tensor | None = None
    aligned_joints: torch.Tensor | None = None
    vertices: torch.Tensor | None = None
    aligned_vertices: torch.Tensor | None = None
    bce: torch.Tensor | None = None
    contour: torch.Tensor | None = None
    joints_2d: torch.Tensor | None = None
    vertices_2d: torch.Tensor | None = None
    locator: torch.Tensor | None = None

    def as_dict(self) -> dict[str, float]:
        """Python floats of the total and every computed term, for logging."""
        return {f.name: float(v.detach()) for f in fields(self) if (v := getattr(self, f.name)) is not None}


def _squared_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(pred, target)


def _absolute_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(pred, target)


def _point_term(
    predictions: list[torch.Tensor], target: torch.Tensor, scale: float, aligned: bool, error_fn
) -> torch.Tensor:
    """Sum over the given predictions of error_fn(prediction, target), coordinates x scale."""
    target_s = torch.as_tensor(target).to(predictions[0]) * scale
    total = target_s.new_zeros(())
    for pred in predictions:
        pred_s = pred * scale
        if aligned:
            pred_s = procrustes_align(pred_s, target_s, allow_reflection=False).aligned
        total = total + error_fn(pred_s, target_s)
    return total


def _projection_term(predictions: list[torch.Tensor], target: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Sum over the predictions (B,N,3) of the mean absolute pixel error of their projections
    through K (B,3,3) against the target's (B,N,3); depths are kept at least NEAR_Z."""
    from mask2hand.render.camera import NEAR_Z

    def project(points: torch.Tensor) -> torch.Tensor:
        pixels = points @ K.transpose(1, 2).to(points)
        return pixels[..., :2] / pixels[..., 2:].clamp_min(NEAR_Z)

    target_uv = project(torch.as_tensor(target).to(predictions[0]))
    return sum(_absolute_error(project(pred), target_uv) for pred in predictions)


def _stage_predictions(preliminary: torch.Tensor | None, refined: torch.Tensor | None,
                       keep_preliminary: bool) -> list[torch.Tensor]:
    """The outputs a term compares: the refined one (and the preliminary one if keep_preliminary),
    or the preliminary one alone when RefineNet is off."""
    if refined is None:
        return [] if preliminary is None else [preliminary]
    return [preliminary, refined] if keep_preliminary and preliminary is not None else [refined]


def _require(value: _T | None, what: str, term: str) -> _T:
    """`value`, or a Mask2HandError saying that loss term `term` needs `what` when it is None."""
    if value is None:
        raise Mask2HandError(
            f"loss term '{term}' needs {what}, which this batch does not have; set its weight to 0 "
            f"(LossWeights.self_supervised() trains from masks alone)"
        )
    return value


def mask2hand_loss(output: Mask2HandOutput, target: HandBatch, weights: LossWeights) -> LossTerms:
    """The paper's training loss (eq. 1) with the terms enabled in `weights`.

    output: the network's joints (B,21,3), vertices (B,V,3), refined_joints, refined_vertices
        (None when RefineNet is off), silhouette (B,H,W) in [0,1]; meters; input_K (B,3,3)
        for the 2-D terms.
    target: joints (B,21,3), vertices (B,V,3) (a batch without 3-D annotations may hold None:
        the terms that need them are left out), mask (B,H,W) with hand = 1, distance_field
        (B,H,W) in pixels to the mask's contour (None when the dataset does not compute it).
    Returns `LossTerms`; `total` is differentiable w.r.t. the output tensors.
    """
    terms = {**_point_terms(output, target, weights), **_projection_terms(output, target, weights),
             **_locator_terms(output, target, weights)}
    if weights.needs_silhouette():
        terms.update(_silhouette_terms(output, target, weights))
    if not terms:
        if target.joints is None:
            raise Mask2HandError("this batch has no 3-D ground truth (unlabelled masks) and only terms that need it "
                                 "are enabled: enable a silhouette term (LossWeights.self_supervised() trains from "
                                 "masks alone)")
        if target.vertices is None:
            raise Mask2HandError("this batch has no vertices of the network's hand model (another hand model's "
                                 "data) and only vertex terms are enabled: enable a joint or silhouette term")
        raise Mask2HandError("every loss weight is 0: enable at least one term")
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return LossTerms(total=total, **terms)  # type: ignore[arg-type]


def _point_terms(output: Mask2HandOutput, target: HandBatch, weights: LossWeights) -> dict[str, torch.Tensor]:
    """The enabled 3-D terms (eq. 3, 4, 7, 8), in millimeters (x units_per_meter)."""
    terms: dict[str, torch.Tensor] = {}
    scale = weights.units_per_meter
    for kind, pred, refined, gt, keep_prelim, err in (
        ("joints", output.joints, output.refined_joints, target.joints, weights.preliminary_joints, _squared_error),
        ("vertices", output.vertices, output.refined_vertices, target.vertices, weights.preliminary_vertices,
         _absolute_error),
    ):
        if gt is None:  # an unlabelled batch, or (vertices) another hand model's
            continue
        if getattr(weights, kind) > 0:
            terms[kind] = _point_term(_stage_predictions(pred, refined, keep_prelim), gt, scale, False, err)
        aligned_kind = "aligned_" + kind
        if getattr(weights, aligned_kind) > 0:
            preds = _stage_predictions(pred, refined, keep_prelim and weights.preliminary_aligned)
            terms[aligned_kind] = _point_term(preds, gt, scale, True, err)
    return terms


def _projection_terms(output: Mask2HandOutput, target: HandBatch, weights: LossWeights) -> dict[str, torch.Tensor]:
    """The enabled 2-D terms (joints_2d, vertices_2d), in pixels of the network's input image."""
    terms: dict[str, torch.Tensor] = {}
    for kind, pred, refined, gt, keep_prelim in (
        ("joints", output.joints, output.refined_joints, target.joints, weights.preliminary_joints),
        ("vertices", output.vertices, output.refined_vertices, target.vertices, weights.preliminary_vertices),
    ):
        if gt is None:
            continue
        if getattr(weights, kind + "_2d") > 0:
            terms[kind + "_2d"] = _projection_term(_stage_predictions(pred, refined, keep_prelim), gt, output.input_K)
    return terms


def _locator_terms(output: Mask2HandOutput, target: HandBatch, weights: LossWeights) -> dict[str, torch.Tensor]:
    """The locator term: its window codes (B,3) against those of target.hand_window (B,3), pixels of
    the model input (target.mask's side)."""
    if weights.locator <= 0 or output.locator_code is None:
        return {}
    from mask2hand.nn.locator import window_to_code

    windows = _require(target.hand_window, "the hands' own windows (a cropping dataset's hand_window)", "locator")
    wanted = window_to_code(windows.to(output.locator_code), int(target.mask.shape[-1]))
    return {"locator": _absolute_error(output.locator_code, wanted)}


def _silhouette_terms(output: Mask2HandOutput, target: HandBatch, weights: LossWeights) -> dict[str, torch.Tensor]:
    """The enabled silhouette terms (bce, contour; eq. 5) of the rendered preliminary silhouette."""
    # Imported here so that the 3-D terms work without the renderer being importable.
    from mask2hand.render.contour import contour_loss, silhouette_bce

    terms: dict[str, torch.Tensor] = {}
    silhouette = output.silhouette
    if weights.bce > 0:
        terms["bce"] = silhouette_bce(silhouette, torch.as_tensor(target.mask).to(silhouette))
    if weights.contour > 0:
        distance = _require(target.distance_field, "the mask's contour distance field", "contour")
        terms["contour"] = contour_loss(silhouette, torch.as_tensor(distance).to(silhouette))
    return terms
