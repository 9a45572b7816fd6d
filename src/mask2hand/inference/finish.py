"""The last stage of prediction: a network batch's answers -> Predictions in each input's own image.

It runs in two steps, so that an input with several candidate answers (the network's and a
fitted one) is scored for each and finished once, for the one kept:

- `place_answers`: vertices and joints in the input's frame (left hands mirrored back), their
  2-D joints, the exact silhouette at the input's resolution and its IoU with the input mask,
  and per input the AnswerError that makes its answer unusable (a hand behind the camera; the
  message does not name the input);
- `build_predictions`: the Prediction objects, whose hand-layer parameters are rebuilt from
  the usable answers when first read (mask2hand.inference.rebuild.BatchParams).

One input's unusable answer never costs the others theirs: both steps work per input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mask2hand.errors import AnswerError
from mask2hand.inference.mirror import mirror_faces, mirror_points
from mask2hand.inference.prepare import PreparedInput
from mask2hand.inference.rebuild import BatchParams, ParamsOfAnswer
from mask2hand.inference.result import Prediction, project
from mask2hand.inference.runner import NetworkResult

POOR_FIT_IOU = 0.5
"""Below this IoU between the input mask and the answer's silhouette, the answer explains the mask
poorly (on held-out synthetic hands the shipped model's IoU is about 0.8): the prediction says
so. Not a hand, a hand cut off, or a pose far from what the model knows."""


@dataclass(frozen=True)
class PlacedAnswers:
    """A batch of B answers in their inputs' own images.

    vertices (B,V,3) and joints (B,21,3): meters, each input's camera frame; joints_2d (B,21,2):
    pixels of each input; rendered: B exact silhouettes (H_b,W_b) bool; ious: B IoUs with the
    input masks (within the located hand's window where the network has a locator); windows: B
    windows (3,) (u0, v0, side) in input pixels, or None; errors: B AnswerErrors, None where the
    answer is usable.
    """

    vertices: np.ndarray
    joints: np.ndarray
    joints_2d: np.ndarray
    rendered: list[np.ndarray]
    ious: list[float]
    windows: list[np.ndarray | None]
    errors: list[AnswerError | None]

    def take(self, rows: Sequence[int]) -> "PlacedAnswers":
        """The answers of the given rows, in that order."""
        rows = list(rows)
        return PlacedAnswers(vertices=self.vertices[rows], joints=self.joints[rows], joints_2d=self.joints_2d[rows],
                             rendered=[self.rendered[r] for r in rows], ious=[self.ious[r] for r in rows],
                             windows=[self.windows[r] for r in rows], errors=[self.errors[r] for r in rows])


def place_answers(items: Sequence[PreparedInput], raw: NetworkResult, faces: np.ndarray) -> PlacedAnswers:
    """The answers `raw` (in the frame the network saw) placed in each input's image: see PlacedAnswers."""
    from mask2hand.render.exact import NEAR_Z, mask_iou, rasterize_by_size

    left = [item.side == "left" for item in items]
    vertices = np.stack([mirror_points(v) if flip else v for v, flip in zip(raw.vertices, left)])
    joints = np.stack([mirror_points(j) if flip else j for j, flip in zip(raw.joints, left)])
    Ks = np.stack([item.camera.K for item in items])
    # the rasterizer ignores winding, so one call per image size serves both sides
    rendered = rasterize_by_size(vertices, faces, Ks, [item.mask.image_size for item in items])
    windows = [None if raw.hand_window is None else window_in_image(item, raw.hand_window[b])
               for b, item in enumerate(items)]
    ious = [float(mask_iou(r[None], within_window(item.original_mask, w)[None])[0])
            for r, item, w in zip(rendered, items, windows)]
    errors = [None if (hand_joints[:, 2] > NEAR_Z).all() else AnswerError(
        "the answer puts the hand behind the camera (z <= 0); check that K belongs to this image")
        for hand_joints in joints]
    return PlacedAnswers(vertices=vertices, joints=joints, joints_2d=project(joints, Ks), rendered=list(rendered),
                         ious=ious, windows=windows, errors=errors)


def build_predictions(model, items: Sequence[PreparedInput], raw: NetworkResult,
                      placed: PlacedAnswers) -> list[Prediction | AnswerError]:
    """Per input, the Prediction of its placed answer, or its AnswerError; model: the Mask2Hand
    whose runner gave the answers. The parameters are rebuilt for the usable answers only."""
    usable = [b for b, error in enumerate(placed.errors) if error is None]
    results: list[Prediction | AnswerError] = list(placed.errors)
    if not usable:
        return results
    # rebuilt when first read; layer None: an ONNX export of a hand whose arrays this installation lacks
    params = BatchParams(model.runner.numpy_hand, raw.take(usable))
    hand = {**model.hand_identity, "flat_hand_mean": True if params.rebuilds else model.flat_hand_mean}
    mirrored_faces = mirror_faces(model.faces)
    for k, b in enumerate(usable):
        item = items[b]
        iou = placed.ious[b]
        results[b] = Prediction(
            vertices=placed.vertices[b], joints=placed.joints[b], joints_2d=placed.joints_2d[b],
            params_of=ParamsOfAnswer(params, k),
            K=item.camera.K, image_size=item.mask.image_size, mask=item.original_mask,
            rendered_mask=placed.rendered[b], iou=iou,
            silhouette=None if raw.silhouette is None else raw.silhouette[b], hand_window=placed.windows[b],
            faces=mirrored_faces if item.side == "left" else model.faces, hand=hand, model=model.model_identity,
            camera=item.camera_source, warnings=item.mask.warnings + fit_warnings(iou),
            notes=[item.camera_note] if item.camera_note else [], source=item.source, side=item.side)
    return results


def fit_warnings(iou: float) -> list[str]:
    """The warning a prediction carries when its answer explains the mask poorly."""
    if iou >= POOR_FIT_IOU:
        return []
    return [f"the answer explains the mask poorly (IoU {iou:.2f} < {POOR_FIT_IOU}): is it one hand, whole in the "
            "picture? --fit may help"]


def window_in_image(item: PreparedInput, window: np.ndarray) -> np.ndarray:
    """A window (3,) (u0, v0, side) in pixels of an input's model input (the located hand) -> the same
    window in the input image's own pixels (mirrored back for a left hand)."""
    transform = item.mask.transform
    corner = transform.to_original(np.asarray(window[:2], dtype=np.float64))
    side = float(window[2]) / transform.scale
    u0 = corner[0] if item.side == "right" else item.mask.image_size[1] - (corner[0] + side)
    return np.array([u0, corner[1], side])


def within_window(mask: np.ndarray, window: np.ndarray | None) -> np.ndarray:
    """The pixels of a mask (H,W) whose centers lie in a window (3,) (u0, v0, side), the rest cleared:
    a forearm beyond the located hand is no part of what the answer must explain. None: the mask."""
    if window is None:
        return mask
    u0, v0, side = (float(x) for x in window)
    cols = np.arange(mask.shape[1]) + 0.5
    rows = np.arange(mask.shape[0]) + 0.5
    inside = ((rows >= v0) & (rows < v0 + side))[:, None] & ((cols >= u0) & (cols < u0 + side))[None, :]
    return mask & inside
