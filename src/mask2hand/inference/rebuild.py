"""Hand parameters that rebuild the answer: the network's final mesh is its parametric hand plus
RefineNet's per-vertex offsets, which no parameters reproduce exactly. So the parameters
written out are fitted to the final mesh (Levenberg-Marquardt on the NumPy hand layer with its
exact Jacobian, starting from the network's own parameters), and the residual is reported
beside them. NumPy only: every runtime, the torch-free ONNX one included, writes the same
parameters.

The parameters written out are in the flat_hand_mean=True convention (HandParams.flat_hand_mean),
like datasets and the README's hand-layer call: `pose` is the whole finger pose, the model's mean
included, so `load_hand_model(name)(global_orient, transl, hand_pose=pose, betas=betas)` rebuilds
the hand whatever convention the network was trained in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mask2hand.hand.params import HandParams

if TYPE_CHECKING:
    from mask2hand.hand.numpy_layer import NumpyHand

MAX_ITERATIONS = 5
"""Levenberg-Marquardt steps at most per batch (each one Jacobian and one trial forward). The
problem is nearly linear about the network's parameters: on the shipped model's 12 examples two
steps come within 0.01 mm of the optimum and the fit stops after four, rebuilding the final
joints within 1.07 mm and the mesh within 1.31 mm (the worst example; 0.67 and 0.72 mm on
average), in about 35 ms for one mask on 2 cores."""

BETAS_WEIGHT = 1e-3
"""Shape regularisation (per unit ||betas||^2, against squared millimetres): keeps betas in the
model's range where the offsets would pull them out of it."""

CONVERGED = 1e-4
"""A step that lowers no hand's objective by more than this fraction ends the fit."""


@dataclass(frozen=True)
class RebuiltParams:
    """Parameters fitted to a batch of final meshes, numpy float32, flat_hand_mean=True.

    params: HandParams (global_orient (B,3), transl (B,3), pose (B,45) the whole finger pose,
    betas (B,10)). joints_mm, vertices_mm: (B,) mean distance of the rebuilt joints (kinematic
    chain) and vertices from the final ones, in millimetres. offsets: (B,V,3) meters, the final
    mesh minus the rebuilt one.
    """

    params: HandParams
    joints_mm: np.ndarray
    vertices_mm: np.ndarray
    offsets: np.ndarray


CHUNK = 8
"""Hands fitted together: each holds its Jacobians (several MB) during the fit, so a batch is
fitted CHUNK hands at a time and its memory does not grow with the batch."""


def rebuild_params(hand: "NumpyHand", start: HandParams, vertices: np.ndarray, joints: np.ndarray) -> RebuiltParams:
    """Fit hand-layer parameters to final meshes, CHUNK hands at a time (see `rebuild_chunk`)."""
    parts = [rebuild_chunk(hand, start.map(lambda v, s=s: np.asarray(v)[s:s + CHUNK]),
                           vertices[s:s + CHUNK], joints[s:s + CHUNK]) for s in range(0, len(vertices), CHUNK)]
    return RebuiltParams(params=HandParams.stack([p.params for p in parts], np.concatenate),
                         joints_mm=np.concatenate([p.joints_mm for p in parts]),
                         vertices_mm=np.concatenate([p.vertices_mm for p in parts]),
                         offsets=np.concatenate([p.offsets for p in parts]))


def rebuild_chunk(hand: "NumpyHand", start: HandParams, vertices: np.ndarray, joints: np.ndarray) -> RebuiltParams:
    """Fit hand-layer parameters to final meshes.

    hand: the network's hand layer in NumPy; start: batched parameters with `pose` (B,45), in
    either convention; vertices (B,V,3) and joints (B,21,3): the final answer, meters. The fit
    runs in the layer's convention.

    The objective per hand is mean_v |v - v*|^2 + mean_j |j - j*|^2 in mm^2, plus BETAS_WEIGHT
    ||betas||^2: both the mesh and the joints, because the answer's joints are regressed from
    its refined mesh while the layer's come from its kinematic chain, and the two differ by
    millimetres. Hands are fitted independently (each its own damping), all in one batch.
    """
    start = hand.in_convention(start)
    target = np.asarray(vertices, dtype=np.float64)
    target_joints = np.asarray(joints, dtype=np.float64)
    batch, num_vertices = target.shape[:2]
    x = np.concatenate([np.asarray(v, dtype=np.float64).reshape(batch, -1)
                        for v in (start.global_orient, start.transl, start.pose, start.betas)], axis=1)
    num_betas = x.shape[1] - 51
    # residuals in mm, scaled so that their sum of squares is the objective
    vertex_scale, joint_scale, betas_scale = 1000 / np.sqrt(num_vertices), 1000 / np.sqrt(21), np.sqrt(BETAS_WEIGHT)

    def split(x: np.ndarray) -> tuple[np.ndarray, ...]:
        return x[:, :3], x[:, 3:6], x[:, 6:51], x[:, 51:]

    def residuals(posed_vertices: np.ndarray, posed_joints: np.ndarray, x: np.ndarray) -> np.ndarray:
        # coordinate-major, the layout of NumpyHand.jacobian's derivatives
        return np.concatenate([(np.swapaxes(posed_vertices - target, 1, 2) * vertex_scale).reshape(batch, -1),
                               (np.swapaxes(posed_joints - target_joints, 1, 2) * joint_scale).reshape(batch, -1),
                               x[:, 51:] * betas_scale], axis=1)

    num_params = x.shape[1]
    betas_rows = np.broadcast_to(np.eye(num_params)[:, 51:] * betas_scale, (batch, num_params, num_betas))
    damping = np.full(batch, 1e-3)
    for _ in range(MAX_ITERATIONS):
        posed_vertices, posed_joints, d_vertices, d_joints = hand.jacobian(*split(x))
        r = residuals(posed_vertices, posed_joints, x)
        jac_t = np.concatenate([d_vertices.reshape(batch, num_params, -1) * vertex_scale,
                                d_joints.reshape(batch, num_params, -1) * joint_scale, betas_rows], axis=2)  # (B,P,R)
        normal = jac_t @ np.swapaxes(jac_t, 1, 2)
        gradient = (jac_t @ r[..., None])[..., 0]
        # Marquardt's scaling: the damping acts on each parameter in its own units (radians, meters)
        diagonal = np.einsum("bpp->bp", normal)
        step = np.linalg.solve(normal + damping[:, None, None] * (diagonal[:, :, None] * np.eye(num_params)),
                               -gradient[..., None])[..., 0]
        trial = x + step
        cost, trial_cost = (r ** 2).sum(1), (residuals(*hand.forward(*split(trial)), trial) ** 2).sum(1)
        better = trial_cost < cost
        x = np.where(better[:, None], trial, x)
        damping = np.where(better, damping / 10, damping * 10)
        if not np.any(better & (cost - trial_cost > CONVERGED * cost)):
            break
    rebuilt_vertices, rebuilt_joints = hand.forward(*split(x))
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    global_orient, transl, pose, betas = split(x)
    params = HandParams(global_orient=f32(global_orient), transl=f32(transl), pose=f32(pose), betas=f32(betas),
                        flat_hand_mean=hand.flat_hand_mean)
    return RebuiltParams(params=hand.in_convention(params, flat_hand_mean=True),
                         joints_mm=np.linalg.norm(rebuilt_joints - target_joints, axis=-1).mean(-1) * 1000,
                         vertices_mm=np.linalg.norm(rebuilt_vertices - target, axis=-1).mean(-1) * 1000,
                         offsets=(target - rebuilt_vertices).astype(np.float32))


def parametric_params(hand: "NumpyHand", params: HandParams, vertices: np.ndarray) -> RebuiltParams:
    """The RebuiltParams of answers that already are the hand layer's for `params` (a fitted
    answer): the parameters in the flat convention, no residual, no offsets. vertices (B,V,3)."""
    batch = len(vertices)
    return RebuiltParams(params=hand.in_convention(params, flat_hand_mean=True), joints_mm=np.zeros(batch),
                         vertices_mm=np.zeros(batch), offsets=np.zeros_like(vertices, dtype=np.float32))


class BatchParams:
    """The parameters of a batch of answers, rebuilt when first read: `Prediction.params` (and
    its residual and offsets) of any of the batch's predictions rebuilds the whole batch once,
    so a caller who never reads them (a live view, the joints alone) never pays for the fit.

    layer: the NumPy hand layer, or None where the runtime lacks the hand's arrays (the answers'
    own parameters are then given as they are); answers: the batch's NetworkResult (anything
    with hand_params(), params(b), vertices, joints and parametric).
    """

    def __init__(self, layer: "NumpyHand | None", answers):
        self._layer, self._answers = layer, answers
        self._rebuilt: RebuiltParams | None = None
        self._lock = threading.Lock()

    @property
    def rebuilds(self) -> bool:
        """Whether the parameters are fitted to the answers (flat_hand_mean=True) rather than the network's own."""
        return self._layer is not None

    def row(self, b: int) -> tuple[HandParams, dict[str, float] | None, np.ndarray | None]:
        """(params, residual {"joints", "vertices"} mm or None, offsets (V,3) or None) of answer b."""
        if self._layer is None:
            return self._answers.params(b), None, None
        with self._lock:
            if self._rebuilt is None:
                answers = self._answers
                self._rebuilt = (parametric_params(self._layer, answers.hand_params(), answers.vertices)
                                 if answers.parametric else
                                 rebuild_params(self._layer, answers.hand_params(), answers.vertices, answers.joints))
                self._answers = None
        rebuilt = self._rebuilt
        return (rebuilt.params.map(lambda v: v[b]),
                {"joints": float(rebuilt.joints_mm[b]), "vertices": float(rebuilt.vertices_mm[b])}, rebuilt.offsets[b])


@dataclass(frozen=True)
class ParamsOfAnswer:
    """One answer's place in its BatchParams: what a Prediction reads its parameters from."""

    batch: BatchParams
    row: int

    def get(self) -> tuple[HandParams, dict[str, float] | None, np.ndarray | None]:
        return self.batch.row(self.row)
