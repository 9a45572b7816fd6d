"""Test-time fitting: adjust hand parameters until the rendered silhouette matches the mask.

    from mask2hand.fit import FitConfig, fit_to_silhouette

    result = fit_to_silhouette(params, masks, K, hand, FitConfig(steps=40))
    result.iou_before, result.iou      # (B,) exact IoU at each input's resolution
    result.params, result.vertices     # the fitted hands (numpy, batched)

What is optimized, per mask and all masks of a batch at once (Adam):
- the finger pose, by default coarse to fine: first a change of the first `num_pcs`
  pose-PCA coefficients (`pose_space="pca"`; the part of the start outside their span is
  kept), which moves the fingers together along the prior's main modes, then a short
  *detail stage* of `detail_steps` updates of all 45 axis-angle values, held near the
  first stage's answer by `detail_pose_weight` (the first stage's answer is its start).
  `pose_space="axis_angle"` fits the 45 values in one stage. On held-out masks the
  coarse-to-fine fit lowers PA-MPJPE about 10% more than the one-stage axis-angle fit, at
  the same IoU (benchmarks/fitting.py);
- the global rotation, as a left-multiplied change exp([delta]x) R0 of the start's
  (no axis-angle singularity near pi);
- the root joint's camera position r = r0 + d z0 (d is relative to the start's depth z0,
  so one learning rate suits near and far hands); the layer's `transl` follows as
  r - J0(betas), J0 the rest root joint;
- the shape `betas` (`optimize_shape`).

Objective per mask: silhouette term (soft IoU or BCE) + contour term (the paper's,
mask2hand.render.contour) + joint limits (penalty outside mask2hand.hand.prior's boxes,
in the anatomical joint frames) + shape prior (||betas||^2) + closeness to the start
(finger pose, betas and the root's depth). All of it is evaluated in a *working frame*: the mask cropped
to a square around the hand (`crop_margin` x the box's larger side) and resampled to
`resolution` pixels, with K mapped the same way (mask2hand.image.masks.resample_mask), so the
cost per step does not depend on the input's size. The silhouette term compares on the
coarser of the working frame's pixels and the mask's own (`WorkingFrame`): a small hand
or a low-resolution sensor's mask is matched cell by cell, by the fraction of each of its
pixels the hand covers, not as an enlarged, blurred copy. The soft silhouette uses the
renderer's fast "contour" mode, whose 0.5-threshold is the exact silhouette, so the
IoU of every step comes for free: each mask keeps its best step, and stops
(early stopping) once its IoU has not risen by `min_improvement` for `patience` steps;
a stage ends when every mask has stopped or after its number of updates.

Finally the IoU before and after is measured with the exact rasterizer at each input's
own resolution; where the fitted hand does not beat the start there, the start is
returned unchanged (`FitResult.kept_start`), so fitting never lowers the IoU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.utils.checks import check_shape
from mask2hand.fit.priors import prior_penalty
from mask2hand.fit.unknowns import HandUnknowns
from mask2hand.hand.lbs import axis_angle_to_matrix
from mask2hand.image.camera import Camera
from mask2hand.hand.params import HandParams
from mask2hand.render.exact import mask_iou, silhouette_iou

SILHOUETTE_LOSSES = ("iou", "bce")
POSE_SPACES = ("axis_angle", "pca")


@dataclass
class FitConfig:
    """Settings of `fit_to_silhouette`. Angles in radians, sigma in working-frame pixel^2.

    steps: most Adam updates; resolution: working frame side (pixels); crop_margin: the
    working window's side over the mask box's larger side; sigma: the soft silhouette's
    sharpness; silhouette_loss: "iou" (soft IoU) or "bce".
    *_weight: objective weights. limit: per radian^2 of excess; shape: per unit
    ||betas||^2; init_pose / init_shape: per radian^2 / unit^2 away from the start;
    init_depth: per squared relative change of the root's depth, which the silhouette
    barely constrains (a bigger hand farther away looks the same), so the size is left to
    the shape and the depth to the start.
    lr_*: Adam step sizes (rotation and pose in radians, translation relative to the
    start's depth, shape in betas units). pose_space: "pca" (first num_pcs coefficients,
    then the detail stage) or "axis_angle" (45 values, one stage); detail_steps: most
    updates of the detail stage (0: none); detail_pose_weight: its init_pose_weight, per
    radian^2 away from the first stage's answer; optimize_shape: fit betas too.
    patience / min_improvement: early stopping on the working-frame IoU. align_below_iou:
    a start whose working-frame IoU is below this is first moved so its silhouette's
    centroid and area match the mask's (where that raises its IoU; 0: never).
    plausibility_weight: how much the prior penalty lowers a score
    (score = IoU - plausibility_weight x prior penalty).
    """

    steps: int = 80
    resolution: int = 128
    crop_margin: float = 1.4
    sigma: float = 1.0
    silhouette_loss: str = "iou"
    silhouette_weight: float = 1.0
    contour_weight: float = 0.01
    limit_weight: float = 10.0
    shape_weight: float = 1e-3
    init_pose_weight: float = 0.02
    init_shape_weight: float = 0.002
    init_depth_weight: float = 5.0
    lr_pose: float = 0.05
    lr_rotation: float = 0.04
    lr_translation: float = 0.01
    lr_shape: float = 0.05
    pose_space: str = "pca"
    num_pcs: int = 20
    detail_steps: int = 30
    detail_pose_weight: float = 0.05
    optimize_shape: bool = True
    patience: int = 20
    min_improvement: float = 1e-3
    align_below_iou: float = 0.5
    plausibility_weight: float = 1.0

    def check(self) -> "FitConfig":
        """Raise Mask2HandError naming the first bad setting; returns self."""
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise Mask2HandError(f"fit steps must be a whole number >= 0, got {self.steps!r}")
        if not isinstance(self.resolution, int) or self.resolution < 16:
            raise Mask2HandError(f"fit resolution must be an integer of at least 16 pixels, got {self.resolution!r}")
        if not isinstance(self.detail_steps, int) or isinstance(self.detail_steps, bool) or self.detail_steps < 0:
            raise Mask2HandError(f"detail_steps must be a whole number >= 0, got {self.detail_steps!r}")
        if not isinstance(self.patience, int) or self.patience < 1:
            raise Mask2HandError(f"fit patience must be an integer >= 1, got {self.patience!r}")
        if self.silhouette_loss not in SILHOUETTE_LOSSES:
            raise Mask2HandError(f"silhouette_loss must be one of {SILHOUETTE_LOSSES}, got {self.silhouette_loss!r}")
        if self.pose_space not in POSE_SPACES:
            raise Mask2HandError(f"pose_space must be one of {POSE_SPACES}, got {self.pose_space!r}")
        if not isinstance(self.num_pcs, int) or not 1 <= self.num_pcs <= 45:
            raise Mask2HandError(f"num_pcs must be an integer from 1 to 45, got {self.num_pcs!r}")
        if not self.crop_margin > 1.0:
            raise Mask2HandError(f"crop_margin must be above 1 (the window must contain the hand), "
                                 f"got {self.crop_margin}")
        for f in fields(self):
            value = getattr(self, f.name)
            numeric = f.name.endswith("_weight") or f.name.startswith("lr_")
            if numeric or f.name in ("sigma", "min_improvement", "align_below_iou"):
                if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                    raise Mask2HandError(f"fit setting {f.name} must be a finite number >= 0, got {value!r}")
        if not self.sigma > 0:
            raise Mask2HandError(f"sigma must be positive, got {self.sigma}")
        return self


@dataclass(frozen=True)
class FitResult:
    """Fitted hands, numpy float32, batch first.

    params: HandParams (global_orient (B,3), transl (B,3), pose (B,45) as
    HandModel.forward(hand_pose=...) takes it, in the hand layer's convention, betas (B,10); pose_pcs
    None); vertices (B,V,3)
    and joints (B,21,3) in meters, camera space; iou_before, iou (B,) float64: exact IoU
    with each input mask at its own resolution, of the start and of the answer; steps
    (B,) int: Adam updates made before the mask stopped; prior_penalty (B,): the weighted
    joint-limit and shape terms of the answer; kept_start (B,) bool: the fit did not
    beat the start, which is returned.
    """

    params: HandParams
    vertices: np.ndarray
    joints: np.ndarray
    iou_before: np.ndarray
    iou: np.ndarray
    steps: np.ndarray
    prior_penalty: np.ndarray
    kept_start: np.ndarray

    def score(self, plausibility_weight: float) -> np.ndarray:
        """(B,) IoU minus plausibility_weight x prior penalty: how well each hand explains its mask."""
        return self.iou - plausibility_weight * self.prior_penalty


# ---------------------------------------------------------------------- inputs

def _tensor(value: Any, device, dtype=torch.float32) -> torch.Tensor:
    if hasattr(value, "detach"):
        return value.detach().to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(value), dtype=dtype, device=device)


def start_tensors(params: HandParams, hand, device) -> dict[str, torch.Tensor]:
    """Batched start parameters as float32 tensors on `device`: global_orient, transl, betas (B,10)
    and pose (B,45) as the hand layer's `pose` input (from pose_pcs if that is all there is)."""
    params = hand.in_convention(params)
    global_orient = _tensor(params.global_orient, device).reshape(-1, 3)
    batch = global_orient.shape[0]
    transl = _tensor(params.transl, device).reshape(batch, 3)
    if params.pose is not None:
        pose = _tensor(params.pose, device).reshape(batch, 45)
    elif params.pose_pcs is not None:
        pcs = _tensor(params.pose_pcs, device).reshape(batch, -1)
        pose = hand.pose_from_pcs(pcs)
    else:
        raise Mask2HandError("the start parameters need a finger pose (pose or pose_pcs)")
    betas = torch.zeros(batch, 10, device=device)
    if params.betas is not None:
        given = _tensor(params.betas, device).reshape(batch, -1)
        betas[:, :given.shape[1]] = given
    return {"global_orient": global_orient, "transl": transl, "pose": pose, "betas": betas}


def as_mask_list(masks: Any) -> list[np.ndarray]:
    """(B,H,W) array (numpy/torch) or a list of (H,W) arrays -> list of bool (H,W) numpy arrays."""
    if hasattr(masks, "detach"):
        masks = masks.detach().cpu().numpy()
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3:
            raise Mask2HandError(f"masks must be (B,H,W) or a list of (H,W) masks, got shape {masks.shape}")
        masks = list(masks)
    out = []
    for i, m in enumerate(masks):
        m = np.asarray(m.detach().cpu().numpy() if hasattr(m, "detach") else m)
        if m.ndim != 2:
            raise Mask2HandError(f"mask {i} must be 2-D (H,W), got shape {m.shape}")
        m = m > 0.5 if m.dtype != bool else m
        if not m.any():
            raise Mask2HandError(f"mask {i} is empty: there is no silhouette to fit")
        out.append(m)
    return out


def as_K_array(K: Any, batch: int) -> np.ndarray:
    """(B,3,3) float64 intrinsics from a (3,3) (shared), (B,3,3) or a list of (3,3)."""
    K = np.asarray(K.detach().cpu().numpy() if hasattr(K, "detach") else
                   [np.asarray(k) for k in K] if isinstance(K, (list, tuple)) else K, dtype=np.float64)
    if K.shape == (3, 3):
        K = np.broadcast_to(K, (batch, 3, 3))
    check_shape(K, ["B", "3", "3"], "K", {"B": batch})
    return np.ascontiguousarray(K)


@dataclass(frozen=True)
class WorkingFrame:
    """The masks and cameras of the fit's working frame.

    target (B,R,R) float 0/1: each mask's hand window resampled to R = resolution pixels;
    distance (B,R,R): pixels to the target's contour; K (B,3,3) in working pixels.
    pixels (B,G,G) float 0/1: the same window on the comparison grid, the coarser of the
    mask's own pixels and the working frame's (G_b = min(window side, R), zero-padded to
    the batch's largest G); pooling (B,G,R): averages working pixels into comparison cells
    (each row an area-weighted mean; zero rows pad), so `coverage` of a working-frame
    silhouette is the fraction of each cell it covers; cells (B,) long: each G_b.
    """

    target: torch.Tensor
    distance: torch.Tensor
    K: torch.Tensor
    pixels: torch.Tensor
    pooling: torch.Tensor
    cells: torch.Tensor

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.target.shape[1]), int(self.target.shape[2]))

    def coverage(self, silhouette: torch.Tensor) -> torch.Tensor:
        """(B,G,G) fraction of each comparison cell covered by a silhouette (B,R,R)."""
        if self.pixels.shape[1] == silhouette.shape[1] and bool(self.cells.min() == silhouette.shape[1]):
            return silhouette  # every mask is compared on the working frame's own pixels
        pooling = self.pooling.to(silhouette.dtype)
        return pooling @ silhouette @ pooling.transpose(1, 2)


def pooling_matrix(cells: int, size: int) -> np.ndarray:
    """(cells, size) float32: row i averages the pixels [0, size) that fall in the i-th of `cells`
    equal intervals, each pixel weighted by its overlap (pixel j covers [j, j+1)); the
    identity when cells == size. cells <= size."""
    width = size / cells
    starts = np.arange(cells)[:, None] * width
    pixel = np.arange(size)[None, :]
    overlap = np.clip(np.minimum(starts + width, pixel + 1) - np.maximum(starts, pixel), 0.0, None)
    return (overlap / width).astype(np.float32)


def working_frame(masks: list[np.ndarray], K: np.ndarray, resolution: int, crop_margin: float,
                  device) -> WorkingFrame:
    """Crop each mask around its hand, resample to resolution^2 and map its K the same way; also
    the window on its comparison grid (see WorkingFrame).

    A mask whose hand window has fewer pixels than the working frame (a small hand, a
    low-resolution sensor) is compared on its own pixels: a cell is hand when the silhouette
    covers more than half of it, which is how an area-averaged, thresholded picture records
    a hand. Comparing with an enlarged (blurred, re-thresholded) copy would fit its blur.
    """
    from mask2hand.image.masks import hand_window, largest_component, resample_window, window_transform
    from mask2hand.render.contour import contour_distance_field

    # (window, target, comparison pixels) per distinct mask: a mask given once per start (hypotheses)
    # is cleaned once, and no full-resolution copy outlives its own entry
    frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for mask in masks:
        if id(mask) not in frames:
            cleaned = largest_component(mask)
            window = hand_window(cleaned, crop_margin)
            cells = min(int(window[2]), resolution)
            frames[id(mask)] = (window, resample_window(cleaned, window, resolution),
                                resample_window(cleaned, window, cells))
    windows = [frames[id(m)][0] for m in masks]
    target = np.stack([frames[id(m)][1] for m in masks])
    if not target.reshape(len(target), -1).any(axis=1).all():
        raise Mask2HandError("the mask's hand vanishes at the fit's working resolution; raise the resolution")
    Ks = np.stack([window_transform(m.shape, w, resolution).camera(Camera(k, m.shape)).K
                   for m, w, k in zip(masks, windows, K)])
    grids = [min(int(w[2]), resolution) for w in windows]
    grid = max(grids)
    pixels = np.zeros((len(masks), grid, grid), dtype=np.float32)
    pooling = np.zeros((len(masks), grid, resolution), dtype=np.float32)
    for b, (mask, cells) in enumerate(zip(masks, grids)):
        pixels[b, :cells, :cells] = frames[id(mask)][2]
        pooling[b, :cells] = pooling_matrix(cells, resolution)
    return WorkingFrame(target=torch.as_tensor(target, device=device),
                        distance=torch.as_tensor(contour_distance_field(target), device=device),
                        K=torch.as_tensor(Ks, dtype=torch.float32, device=device),
                        pixels=torch.as_tensor(pixels, device=device), pooling=torch.as_tensor(pooling, device=device),
                        cells=torch.as_tensor(grids, device=device))


def exact_iou(vertices: np.ndarray, faces: np.ndarray, K: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
    """(B,) IoU of each hand's exact silhouette (vertices (B,V,3), K (B,3,3)) with its mask
    (H_b,W_b), at the mask's resolution, one hand at a time (mask2hand.render.exact.silhouette_iou)."""
    return silhouette_iou(vertices, faces, K, masks)


# ---------------------------------------------------------------------- the fit

class _Variables(HandUnknowns):
    """The silhouette fit's unknowns (mask2hand.fit.unknowns, the shift in units of the start's
    depth) with what the fit adds: start (`start_tensors` of the starts), config, and
    depth_reference (B,): the depth shift the start was aligned to, which the depth prior holds.

    root0 (B,3): the starts' root joints in camera space (joints[:, 0] of the hand layer's
    output for them).
    """

    def __init__(self, start: dict[str, torch.Tensor], root0: torch.Tensor, hand, config: FitConfig):
        components = None
        if config.pose_space == "pca":
            components = hand.pose_components[:min(config.num_pcs, hand.num_pose_pcs)].to(start["pose"])
        super().__init__(hand, axis_angle_to_matrix(start["global_orient"]), root0, start["pose"], start["betas"],
                         scale=root0[:, 2:3].abs().clamp_min(1e-3), components=components,
                         optimize_shape=config.optimize_shape)
        self.start = start
        self.config = config
        self.depth_reference = torch.zeros(start["pose"].shape[0], device=start["pose"].device)

    def optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        groups = [{"params": [self.pose_var], "lr": c.lr_pose}, {"params": [self.rotation], "lr": c.lr_rotation},
                  {"params": [self.shift], "lr": c.lr_translation}]
        if c.optimize_shape:
            groups.append({"params": [self.betas], "lr": c.lr_shape})
        return torch.optim.Adam(groups)


def _objective(variables: _Variables, silhouette: torch.Tensor, frame: WorkingFrame,
               config: FitConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(total (B,), prior penalty (B,)) of the current state and its soft silhouette (B,R,R)."""
    from mask2hand.render.contour import contour_term

    target = frame.pixels
    covered = frame.coverage(silhouette)
    if config.silhouette_loss == "iou":
        inter = (covered * target).sum(dim=(1, 2))
        union = (covered + target - covered * target).sum(dim=(1, 2)).clamp_min(1.0)
        sil = 1.0 - inter / union
    else:
        sil = torch.nn.functional.binary_cross_entropy(covered.clamp(1e-6, 1 - 1e-6), target, reduction="none")
        sil = sil.sum(dim=(1, 2)) / frame.cells.to(sil.dtype) ** 2  # the padding's cells left out
    side = float(frame.size[0])
    contour = (contour_term(silhouette) * frame.distance).sum(dim=(1, 2)) / (side * side)
    pose = variables.pose()
    prior = prior_penalty(variables.hand, pose, variables.betas, config.limit_weight, config.shape_weight)
    start = variables.start
    init = (config.init_pose_weight * ((pose - start["pose"]) ** 2).sum(dim=1)
            + config.init_shape_weight * ((variables.betas - start["betas"]) ** 2).sum(dim=1)
            + config.init_depth_weight * (variables.shift[:, 2] - variables.depth_reference) ** 2)
    total = config.silhouette_weight * sil + config.contour_weight * contour + prior + init
    return total, prior


def fit_to_silhouette(params_init: HandParams, masks: Any, K: Any, hand, config: FitConfig | None = None
                      ) -> FitResult:
    """Fit hands to silhouettes, all masks of the batch at once (see the module docstring): the
    first stage, then (pose_space "pca", steps and detail_steps > 0) the detail stage from its answer.

    params_init: HandParams, batched (B leading; numpy or torch), pose or pose_pcs, in either
    convention (the fit works in the hand layer's: `hand.in_convention`); masks: (B,H,W) (bool or 0/1, numpy or torch) or a
    list of B (H_i,W_i) masks; K (3,3) or (B,3,3) pixel intrinsics of each mask; hand:
    the HandModel the parameters belong to; config: FitConfig (default settings if None).
    Raises Mask2HandError for bad settings or an empty mask.
    """
    config = (config or FitConfig()).check()
    if config.pose_space == "pca" and hand.num_pose_pcs < config.num_pcs:
        raise Mask2HandError(f"num_pcs={config.num_pcs} but the hand layer has {hand.num_pose_pcs} pose PCs")
    mask_list = as_mask_list(masks)
    batch = _tensor(params_init.global_orient, "cpu").reshape(-1, 3).shape[0]
    if len(mask_list) != batch:
        raise Mask2HandError(f"{len(mask_list)} masks for {batch} start hands; give one mask per hand")
    K_np = as_K_array(K, batch)
    frame = None
    if config.steps > 0:
        frame = working_frame(mask_list, K_np, config.resolution, config.crop_margin, hand.faces.device)
    first = _fit_stage(params_init, mask_list, K_np, frame, hand, config)
    if config.pose_space != "pca" or config.steps == 0 or config.detail_steps == 0:
        return first
    detail = replace(config, pose_space="axis_angle", steps=config.detail_steps,
                     init_pose_weight=config.detail_pose_weight, align_below_iou=0.0)
    second = _fit_stage(first.params, mask_list, K_np, frame, hand, detail, iou_before=first.iou)
    return replace(second, iou_before=first.iou_before, steps=first.steps + second.steps,
                   kept_start=first.kept_start & second.kept_start)


def _fit_stage(params_init: HandParams, mask_list: list[np.ndarray], K_np: np.ndarray, frame: WorkingFrame | None,
               hand, config: FitConfig, iou_before: np.ndarray | None = None) -> FitResult:
    """One stage of `fit_to_silhouette` in config.pose_space, on the masks' working frame (None
    when config.steps is 0); iou_before: the start's exact IoU, when it is already known."""
    device = hand.faces.device
    with torch.no_grad():
        start = start_tensors(params_init, hand, device)
        start_out = hand(start["global_orient"], start["transl"], hand_pose=start["pose"], betas=start["betas"])
    batch = start["pose"].shape[0]
    faces_np = hand.faces.detach().cpu().numpy()
    if iou_before is None:
        iou_before = exact_iou(start_out.vertices.cpu().numpy(), faces_np, K_np, mask_list)

    # the layer rotates about the root joint, so the start's posed root joint is its camera position
    variables = _Variables(start, start_out.joints[:, 0], hand, config)
    steps = np.zeros(batch, dtype=np.int64)
    if frame is not None:
        steps = _optimize(variables, frame, config)

    fitted, out = variables.answer()
    with torch.no_grad():
        prior_fit = prior_penalty(hand, fitted["pose"], fitted["betas"], config.limit_weight, config.shape_weight)
        prior_start = prior_penalty(hand, start["pose"], start["betas"], config.limit_weight, config.shape_weight)
    vertices = out.vertices.cpu().numpy()
    iou = exact_iou(vertices, faces_np, K_np, mask_list)
    keep = iou <= iou_before  # the fit must beat the start on the input's own pixels
    keep_t = torch.as_tensor(keep, device=device)[:, None]

    def choose(fit_value: torch.Tensor, start_value: torch.Tensor) -> np.ndarray:
        shape = (-1,) + (1,) * (fit_value.ndim - 1)
        return torch.where(keep_t.reshape(shape), start_value, fit_value).float().cpu().numpy()

    params = HandParams(**{name: choose(fitted[name], start[name]) for name in ("global_orient", "transl", "pose",
                                                                                 "betas")},
                        flat_hand_mean=hand.flat_hand_mean)
    return FitResult(params=params, vertices=choose(out.vertices, start_out.vertices),
                     joints=choose(out.joints, start_out.joints), iou_before=iou_before,
                     iou=np.where(keep, iou_before, iou), steps=steps,
                     prior_penalty=choose(prior_fit, prior_start), kept_start=keep)


def _hard_iou(vertices: torch.Tensor, frame: WorkingFrame, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact silhouettes (B,R,R) bool in the working frame and their IoU (B,) with the target."""
    from mask2hand.render import rasterize_silhouette

    hard = torch.as_tensor(rasterize_silhouette(vertices.detach(), faces, frame.K, frame.size))
    return hard, mask_iou(hard, frame.target.cpu())


def _align_start(variables: _Variables, frame: WorkingFrame, below_iou: float) -> None:
    """Move each start whose working-frame IoU is below `below_iou` so its silhouette's centroid
    and area match the target's (depth scaled by the square root of the area ratio), where
    that raises the IoU: a start off the mask (IoU ~ 0) would otherwise get no gradient at
    all. Good starts are left alone: their area mismatch is more often the pose's or the
    shape's than the depth's. The depth prior then holds the new depth."""
    with torch.no_grad():
        hard, iou = _hard_iou(variables.posed().vertices, frame, variables.hand.faces)
        target = frame.target.cpu() > 0.5
        rows = torch.arange(frame.size[0], dtype=torch.float64)[None, :, None] + 0.5
        cols = torch.arange(frame.size[1], dtype=torch.float64)[None, None, :] + 0.5

        def moments(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            area = m.sum(dim=(1, 2)).double()
            safe = area.clamp_min(1.0)
            u = (m * cols).sum(dim=(1, 2)) / safe
            v = (m * rows).sum(dim=(1, 2)) / safe
            return torch.stack([u, v, torch.ones_like(u)], dim=1), area

        c_hand, a_hand = moments(hard)
        c_target, a_target = moments(target)
        K_inv = torch.linalg.inv(frame.K.double().cpu())
        root = variables.root().double().cpu()
        depth = root[:, 2]
        seen = a_hand > 0
        new_depth = torch.where(seen, depth * (a_hand / a_target).sqrt(), depth)
        ray_hand = (K_inv @ c_hand.unsqueeze(-1)).squeeze(-1)
        ray_target = (K_inv @ c_target.unsqueeze(-1)).squeeze(-1)
        offset = torch.where(seen[:, None], root - ray_hand * depth[:, None], torch.zeros_like(root))
        new_root = ray_target * new_depth[:, None] + offset
        old_shift = variables.shift.detach().clone()
        depth0 = variables.scale.double().cpu()
        variables.shift.copy_(((new_root - variables.root0.double().cpu()) / depth0).to(variables.shift))
        _, aligned_iou = _hard_iou(variables.posed().vertices, frame, variables.hand.faces)
        keep_old = ((aligned_iou <= iou) | (iou >= below_iou)).to(variables.shift.device)[:, None]
        variables.shift.copy_(torch.where(keep_old, old_shift, variables.shift))
        variables.depth_reference = variables.shift[:, 2].detach().clone()


def _optimize(variables: _Variables, frame: WorkingFrame, config: FitConfig) -> np.ndarray:
    """Adam on the objective with per-mask best-step tracking and early stopping; leaves the
    best state of each mask in `variables`. Returns the updates made per mask (B,)."""
    from mask2hand.render import render_soft_silhouette

    batch = frame.target.shape[0]
    device = frame.target.device
    optimizer = variables.optimizer()
    best_iou = torch.full((batch,), -1.0, dtype=torch.float64, device=device)
    best = variables.snapshot()
    since_best = torch.zeros(batch, dtype=torch.long, device=device)
    active = torch.ones(batch, dtype=torch.bool, device=device)
    steps = torch.zeros(batch, dtype=torch.long, device=device)
    faces = variables.hand.faces
    if config.align_below_iou > 0:
        _align_start(variables, frame, config.align_below_iou)
    for step in range(config.steps + 1):
        silhouette = render_soft_silhouette(variables.posed().vertices, faces, frame.K, frame.size, sigma=config.sigma)
        with torch.no_grad():
            # the soft silhouette's 0.5-threshold is the exact one: this step's IoU for free
            iou = mask_iou(frame.coverage((silhouette > 0.5).to(silhouette.dtype)), frame.pixels)
            better = active & (iou > best_iou + config.min_improvement)
            # a new best by any margin is kept; only a real improvement resets the patience
            improved = active & (iou > best_iou)
            state = variables.snapshot()
            for name, value in state.items():
                best[name][improved] = value[improved]
            best_iou = torch.where(improved, iou, best_iou)
            since_best = torch.where(better, torch.zeros_like(since_best), since_best + 1)
            steps = torch.where(active, torch.full_like(steps, step), steps)
            active &= since_best <= config.patience
        if step == config.steps or not bool(active.any()):
            break
        total, _ = _objective(variables, silhouette, frame, config)
        optimizer.zero_grad(set_to_none=True)
        # inactive masks no longer move: their best state is already kept
        (total * active.to(total.dtype)).sum().backward()
        optimizer.step()
    variables.restore(best)
    return steps.cpu().numpy()
