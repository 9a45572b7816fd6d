"""What `Mask2Hand.predict` returns for one mask: `Prediction`. Its files, JSON form, figure and MANO
parameters are functions of mask2hand.export (`prediction`, `figures`, `mano`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from mask2hand.hand.params import HandParams
from mask2hand.image.camera import Camera, project_points
from mask2hand.inference.mirror import mirror_mask
from mask2hand.inference.rebuild import ParamsOfAnswer


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixel coordinates (B,N,2) float32 of camera-space points (B,N,3) through K (B,3,3),
    computed in float64 with the renderer's projection."""
    return project_points(np.asarray(points, dtype=np.float64), np.asarray(K, dtype=np.float64)).astype(np.float32)


@dataclass(frozen=True)
class Prediction:
    """One predicted hand, in the input image's camera.

    vertices: (V,3) meters, camera space, the final (refined, if the network refines) mesh.
    joints: (21,3) meters, camera space, FreiHAND order.
    joints_2d: (21,2) their projections in the input image's pixels.
    params: HandParams that rebuild the answer, in the flat_hand_mean=True convention:
        `load_hand_model(hand["name"])(global_orient, transl, hand_pose=pose, betas=betas)` (fitted to
        the final mesh, mask2hand.inference.rebuild; see below for a left hand). Where the runtime
        lacks the hand's arrays (an ONNX export of a MANO network) they are the network's own, in
        the convention `params.flat_hand_mean` (and `hand["flat_hand_mean"]`) names. Whatever
        takes them with a hand layer converts them (`HandModel.in_convention`).
        params_residual_mm: {"joints", "vertices"} mean distance of the rebuilt hand from the
        answer (None where not rebuilt); vertex_offsets: (V,3) meters, the answer's mesh minus
        the rebuilt one, in the frame of params (None where not rebuilt). The three are rebuilt
        when first read (for the prediction's whole batch at once), from `params_of`, so a
        caller who never reads them does not pay for the fit.
    K: (3,3) the input image's intrinsics; image_size: (H, W).
    mask: (H,W) bool, the cleaned input mask; rendered_mask: (H,W) bool, the exact
        silhouette of the predicted hand at the input's resolution; iou: their IoU (for a network
        with a locator, against the mask within hand_window: an arm beyond the hand is not counted).
    hand_window: (3,) (u0, v0, side) the square the network's locator found the hand in, pixels of
        the input image, or None for a network without a locator (mask2hand.nn.locator).
    silhouette: (S,S) the network's silhouette of its preliminary hand in the model input's
        frame, or None where the runner gives none.
    faces: (F,3) int64. hand: the hand model's identity (name, asset hash, flat_hand_mean).
    model: the weights' identity. camera: where K came from ("K", "focal", "default").
    warnings: what was changed in the input; notes: what the user should know about the
        answer (e.g. the assumed focal length). source: the input file name or "<array i>".
    side: "right" or "left". For a left hand, vertices, joints, joints_2d, faces (winding
        reversed), mask and rendered_mask are in the input's own frame, but params (and
        silhouette) describe the mirrored right hand the network saw, in the mirrored camera
        (camera x negated, `Camera.mirrored`; see mask2hand.inference.mirror).
    iou_before_fit, fit_steps: with test-time fitting, the network's IoU and the updates made.
    hypotheses: with hypotheses, a list of mask2hand.fit.Hypothesis, best first (vertices and
        joints in the input's frame, params in the network's).
    joint_confidence: (21,) in (0, 1], how sure the network is of each joint (asked for with
        confidence=True; mask2hand.inference.confidence), else None.
    side_margin, side_ambiguous: with side="auto" (mask2hand.inference.side), how much better the
        chosen side's reading explains the mask (IoU difference) and whether the two readings are
        too close to tell; None where the side was given.
    """

    vertices: np.ndarray
    joints: np.ndarray
    joints_2d: np.ndarray
    params_of: ParamsOfAnswer = field(repr=False, compare=False)
    K: np.ndarray
    image_size: tuple[int, int]
    mask: np.ndarray
    rendered_mask: np.ndarray
    iou: float
    silhouette: np.ndarray | None
    faces: np.ndarray
    hand: dict[str, Any]
    model: dict[str, Any]
    camera: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    source: str = "<array>"
    side: str = "right"
    iou_before_fit: float | None = None
    fit_steps: int | None = None
    hypotheses: list | None = None
    hand_window: np.ndarray | None = None
    joint_confidence: np.ndarray | None = None
    side_margin: float | None = None
    side_ambiguous: bool | None = None

    @cached_property
    def _rebuilt(self) -> tuple[HandParams, dict[str, float] | None, np.ndarray | None]:
        return self.params_of.get()

    @property
    def params(self) -> HandParams:
        return self._rebuilt[0]

    @property
    def params_residual_mm(self) -> dict[str, float] | None:
        return self._rebuilt[1]

    @property
    def vertex_offsets(self) -> np.ndarray | None:
        return self._rebuilt[2]

    def network_frame(self) -> tuple[HandParams, np.ndarray, np.ndarray]:
        """(params, mask (H,W) bool, K (3,3)) in the frame the params live in: the input's own for a
        right hand, the mirrored picture for a left one (what mask2hand.fit.hypotheses takes)."""
        if self.side == "right":
            return self.params, self.mask, self.K
        return self.params, mirror_mask(self.mask), Camera(self.K, self.image_size).mirrored().K

    def to_trimesh(self):
        """The answer's mesh as a `trimesh.Trimesh` (meters, camera space; vertices kept as they are)."""
        import trimesh

        return trimesh.Trimesh(vertices=np.asarray(self.vertices, dtype=np.float64), faces=self.faces, process=False)
