"""MANO parameters, in smplx's convention, for a hand predicted with another hand model.

A prediction made with the shipped open hand has the open hand's topology, rest pose, root joint
and pose PCA, none of which MANO shares, so its parameters mean nothing to MANO. Users who have
MANO's file get MANO parameters by fitting them: MANO, loaded from the user's file at run time,
is posed until its 21 joints reproduce the predicted joints and its surface the predicted mesh.

The parameters are those of `smplx.MANO(model_path, is_rhand=True, use_pca=False,
flat_hand_mean=True)` (is_rhand=False for a left hand fitted with MANO_LEFT): `global_orient` (3,)
and `hand_pose` (45,) axis-angle (MANO joint order: index, middle, little, ring, thumb, three joints
each, the whole pose, MANO's `hands_mean` not added), `betas` (10,), `transl` (3,) meters. The
project's hand layer evaluates them exactly as smplx does: smplx's `lbs` shapes the template (v_template + shapedirs . betas), regresses the rest
joints J from the shaped mesh, adds the pose correctives (posedirs . (R_j - I) of the 15 finger
joints), and chains the joints' transforms with the root's being [R_0 | J_0] (the root joint's
rest position, not the origin) and every other one [R_j | J_j - J_parent]; each vertex moves by
the skinning-weighted G_j (x - J_j); `MANO.forward` then adds `transl` to vertices and joints.
So a rest point x goes to R_0 (x - J_0) + J_0 + transl under the root alone: global_orient
rotates about J_0, which depends on betas, and transl is added afterwards, which is what
`HandModel.forward` computes (`lbs.kinematic_chain` starts from the rest root joint; `transl`
is added after skinning). The root joint is therefore never assumed to be at the origin: it is
whatever the user's file regresses for the fitted betas.

The fit: the rest hand's palm joints (wrist and the five finger bases, which only the root
moves) are aligned to the predicted ones by a rotation (Procrustes, no reflection) and every
finger bone is swung onto its predicted direction, base to tip (the twist about the bone is
left to the fit); then L-BFGS adjusts all parameters, first on the joints alone, then on the
joints and a symmetric point-to-surface term between the two meshes (each mesh's vertices to
the other's triangles, a robust Huber penalty, correspondences found afresh for each round
since the topologies differ), with a small betas prior. Everything runs in float64 on the CPU
and is deterministic.

A left hand is fitted with the user's MANO_LEFT.pkl where one is given, in the input's own camera;
without it, with MANO_RIGHT.pkl in the mirrored camera (camera x negated), where it is a right hand.
The left model's rig is the right one's mirror image (same kinematic tree, vertex order and
fingertip vertices), so the same fit serves both. The official MANO_LEFT.pkl holds the right hand's
`shapedirs` unmirrored (smplx issue 48): a left and a right hand with equal betas differ in shape.
The fit uses the file as it is, so its betas are those smplx's MANO with that file needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.export.closest_points import closest_on_triangles
from mask2hand.fit.unknowns import HandUnknowns
from mask2hand.export.files import json_text, mesh_bytes, write_files
from mask2hand.hand import load_hand_model
from mask2hand.hand.data import JOINT_NAMES, SMPLX_MANO_TO_FREIHAND
from mask2hand.hand.lbs import axis_angle_to_matrix, matrix_to_axis_angle
from mask2hand.hand.mano import MANO_FINGERTIP_SETS
from mask2hand.hand.model import MANO_TO_FREIHAND, NUM_BETAS, HandModel
from mask2hand.inference.mirror import mirror_points
from mask2hand.inference.result import Prediction
from mask2hand.losses.procrustes import procrustes_align
from mask2hand.utils.checks import check_shape
from mask2hand.version import JSON_SCHEMA_VERSION

JOINT_STEPS = 40
"""L-BFGS iterations on the joints alone, from the initial placement."""

SURFACE_ROUNDS = 3
SURFACE_STEPS = 25
"""Rounds of (closest points, then L-BFGS iterations) on the joints and the surface together."""

BETAS_WEIGHT = 0.1
"""Shape prior per unit ||betas||^2 against the joints' mean squared millimetres: it keeps betas
in MANO's range (within about 3) where the two models' joint definitions pull them out of it."""

SURFACE_WEIGHT = 1.0
"""The surface term's weight against the joints' (both mean squared millimetres)."""

HUBER_MM = 5.0
"""Point-to-surface distances beyond this many millimetres count linearly, so a part one mesh
has and the other lacks (MANO's open wrist, a predicted forearm stub) does not drag the fit."""


PALM_JOINTS = (0, 1, 5, 9, 13, 17)
"""FreiHAND indices of the wrist and the finger bases: only the root's rotation moves them."""

FINGER_CHAINS = tuple(tuple(range(1 + 4 * f, 5 + 4 * f)) for f in range(5))
"""FreiHAND indices of each finger, base to tip (thumb, index, middle, ring, little)."""


@dataclass(frozen=True)
class ManoParams:
    """MANO parameters for one predicted hand, smplx's convention (module docstring).

    global_orient (3,) axis-angle about MANO's root joint; hand_pose (45,) axis-angle of the 15
    finger joints, MANO joint order, flat_hand_mean=True; betas (10,); transl (3,) meters; all
    float32. side: the hand the prediction was. is_rhand: which MANO model the parameters are for
    (smplx's argument): MANO_RIGHT (True) in the input camera for a right hand, and for a left one
    fitted without MANO_LEFT in the mirrored camera (camera x negated), like `Prediction.params`;
    MANO_LEFT (False) in the input camera. vertices (V,3) float64 meters and faces (F,3) int64:
    MANO's mesh for the parameters as stored, in the same frame (what smplx's MANO returns).
    fingertips: which MANO vertices were taken as the fingertips (a key of
    mask2hand.hand.mano.MANO_FINGERTIP_SETS; smplx's MANO uses "smplx"). joints_residual_mm: mean
    distance of MANO's 21 joints from the predicted ones; surface_residual_mm: mean distance of
    each mesh's vertices from the other mesh's surface, averaged over both directions; both in
    millimetres, for the parameters as stored. mano_sha256: the MANO file's hash.
    """

    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    side: str
    is_rhand: bool
    vertices: np.ndarray
    faces: np.ndarray
    fingertips: str
    joints_residual_mm: float
    surface_residual_mm: float
    mano_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (numpy arrays become lists through mask2hand.export.files.json_text);
        the mesh is not among them (`save_mano_files` writes it as an OBJ)."""
        mirrored = self.is_rhand and self.side == "left"
        frame = "mirrored camera (camera x negated), right hand" if mirrored else "input camera"
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "convention": (f"smplx.MANO(model_path, is_rhand={self.is_rhand}, use_pca=False, flat_hand_mean=True)"
                           "(global_orient, hand_pose, betas, transl); meters, camera space"
                           " (x right, y down, z forward)"),
            "side": self.side,
            "is_rhand": self.is_rhand,
            "frame": frame,
            "global_orient": self.global_orient,
            "hand_pose": self.hand_pose,
            "betas": self.betas,
            "transl": self.transl,
            "fingertips": self.fingertips,
            "fingertip_vertices": list(MANO_FINGERTIP_SETS[self.fingertips]),
            "smplx_joints": {"freihand_index": list(SMPLX_MANO_TO_FREIHAND),
                             "names": [JOINT_NAMES[i] for i in SMPLX_MANO_TO_FREIHAND]},
            "joints_residual_mm": self.joints_residual_mm,
            "surface_residual_mm": self.surface_residual_mm,
            "mano_sha256": self.mano_sha256,
        }


def load_mano_layer(mano_path: str | os.PathLike | None, fingertips: str = "freihand") -> HandModel:
    """MANO's hand layer (flat_hand_mean=True, float64) from the user's MANO_RIGHT.pkl (or
    MANO_LEFT.pkl), a folder holding MANO_RIGHT.pkl, or None for the MANO_RIGHT_PATH variable;
    Mask2HandError if the file is missing or not MANO's."""
    return load_hand_model("mano", path=mano_path, flat_hand_mean=True, fingertips=fingertips).double()


def fit_mano(layer: HandModel, vertices: np.ndarray, faces: np.ndarray, joints: np.ndarray,
             side: str = "right", is_rhand: bool = True) -> ManoParams:
    """Fit MANO's parameters to one hand of the layer's side (module docstring).

    layer: from `load_mano_layer`, MANO_RIGHT's (is_rhand=True) or MANO_LEFT's (is_rhand=False).
    vertices (V,3) and faces (F,3): the predicted mesh, any topology; joints (21,3) FreiHAND order;
    meters, camera space. side: recorded only (the arrays must be a hand of the layer's side: a left
    prediction mirrored for MANO_RIGHT's layer, as `mano_from_prediction` does).
    """
    fingertips = _fingertip_set(layer)
    vertices, faces, joints = np.asarray(vertices), np.asarray(faces), np.asarray(joints)
    sizes = check_shape(vertices, ["V", "3"], "vertices")
    check_shape(faces, ["F", "3"], "faces")
    check_shape(joints, ["21", "3"], "joints")
    if faces.min() < 0 or faces.max() >= sizes["V"]:
        raise Mask2HandError(f"faces must be vertex indices below {sizes['V']}")
    if not (np.isfinite(vertices).all() and np.isfinite(joints).all()):
        raise Mask2HandError("the hand to fit MANO to has non-finite vertices or joints")
    target = _Target(torch.as_tensor(vertices, dtype=torch.float64), torch.as_tensor(faces, dtype=torch.int64),
                     torch.as_tensor(joints, dtype=torch.float64))
    with torch.no_grad():
        unknowns = _initial_placement(layer, target.joints)
    with torch.enable_grad():
        _minimise(lambda: _joints_loss(layer, unknowns, target), unknowns, JOINT_STEPS)
        for _ in range(SURFACE_ROUNDS):
            with torch.no_grad():
                pairs = _surface_pairs(unknowns.posed().vertices, layer.faces, target)
            _minimise(lambda: _joints_loss(layer, unknowns, target)
                      + SURFACE_WEIGHT * pairs.loss(unknowns.posed().vertices), unknowns, SURFACE_STEPS)
    return _result(layer, unknowns, target, side, is_rhand, fingertips)


def mano_from_prediction(prediction: Prediction, mano_path: str | os.PathLike | None,
                         fingertips: str = "freihand", mano_left_path: str | os.PathLike | None = None) -> ManoParams:
    """MANO parameters of a predicted hand in smplx's convention (`smplx.MANO(is_rhand=...,
    use_pca=False, flat_hand_mean=True)`), fitted to the answer's joints and mesh with the MANO
    model read from `mano_path` (MANO_RIGHT.pkl, its folder, or None for MANO_RIGHT_PATH).

    A left hand is fitted with `mano_left_path` (MANO_LEFT.pkl) in the input camera when it is
    given; otherwise its parameters are MANO's right hand in the mirrored camera (camera x negated),
    like the prediction's `params`. fingertips: which MANO vertices stand for the fingertips
    (mask2hand.hand.mano.MANO_FINGERTIP_SETS). `save_mano_files` writes the result. About 1-2 s.
    """
    vertices, joints = prediction.vertices, prediction.joints
    if prediction.side == "left" and mano_left_path is not None:
        _check_left_file(Path(mano_left_path))
        return fit_mano(load_mano_layer(mano_left_path, fingertips), vertices, prediction.faces, joints,
                        side="left", is_rhand=False)
    if prediction.side == "left":  # into the mirrored camera, where the hand is a right one
        vertices, joints = mirror_points(vertices), mirror_points(joints)
    return fit_mano(load_mano_layer(mano_path, fingertips), vertices, prediction.faces, joints, side=prediction.side)


def _check_left_file(path: Path) -> None:
    """Mask2HandError for a folder or a file named as MANO's right hand (smplx too reads the side
    from the name): the left model is named by its file, MANO_LEFT.pkl."""
    if path.is_dir():
        raise Mask2HandError(f"the left MANO model must be a file (MANO_LEFT.pkl), got the folder {path}")
    if "RIGHT" in path.name.upper():
        raise Mask2HandError(f"{path} is named as MANO's right hand; the left hand needs MANO_LEFT.pkl")


def save_mano_files(params: ManoParams, directory: str | os.PathLike, stem: str) -> dict[str, Path]:
    """Write `<stem>_mano.json` (ManoParams.to_dict) and `<stem>_mano.obj` (MANO's mesh for the
    parameters, in the JSON's frame) into `directory`, all-or-nothing; returns {"mano": JSON path,
    "mano_mesh": OBJ path}."""
    paths = {"mano": Path(directory) / f"{stem}_mano.json", "mano_mesh": Path(directory) / f"{stem}_mano.obj"}
    write_files({paths["mano"]: lambda: json_text(params.to_dict()).encode(),
                 paths["mano_mesh"]: lambda: mesh_bytes(params.vertices, params.faces, "obj")})
    return paths


@dataclass(frozen=True)
class _Target:
    """The predicted hand as float64 tensors: vertices (V,3), faces (F,3), joints (21,3), meters."""

    vertices: torch.Tensor
    faces: torch.Tensor
    joints: torch.Tensor


@dataclass(frozen=True)
class _SurfacePairs:
    """Closest-point correspondences of one round, both ways between MANO's mesh and the target.

    target_points (P,3): the target's vertices, meters; target_faces (P,) and target_weights
    (P,3): for each, the MANO triangle (a row of mano_faces (F,3)) nearest to it and the
    barycentric weights of the closest point, which moves with MANO's vertices; mano_closest
    (M,3): for each MANO vertex, its closest point on the target surface, fixed for the round.
    """

    target_points: torch.Tensor
    target_faces: torch.Tensor
    target_weights: torch.Tensor
    mano_faces: torch.Tensor
    mano_closest: torch.Tensor

    def loss(self, mano_vertices: torch.Tensor) -> torch.Tensor:
        """Mean Huber penalty of both directions' distances, squared mm, for MANO vertices (1,M,3)."""
        corners = mano_vertices[0][self.mano_faces[self.target_faces]]  # (P,3,3)
        on_mano = (self.target_weights.unsqueeze(-1) * corners).sum(1)
        to_mano = _huber_mm2((on_mano - self.target_points).norm(dim=-1) * 1000)
        to_target = _huber_mm2((mano_vertices[0] - self.mano_closest).norm(dim=-1) * 1000)
        return (to_mano.mean() + to_target.mean()) / 2


def _fingertip_set(layer: HandModel) -> str:
    """The name of the layer's fingertip vertex set; Mask2HandError for a layer that is not MANO's
    flat-mean layer."""
    if layer.name != "mano" or not layer.flat_hand_mean:
        raise Mask2HandError("MANO export needs the MANO layer of load_mano_layer (flat_hand_mean=True), "
                             f"got the '{layer.name}' hand with flat_hand_mean={layer.flat_hand_mean}")
    tips = tuple(int(i) for i in layer.fingertip_ids)
    name = next((name for name, ids in MANO_FINGERTIP_SETS.items() if ids == tips), None)
    if name is None:
        raise Mask2HandError(f"MANO layer's fingertip vertices {list(tips)} are none of {sorted(MANO_FINGERTIP_SETS)}")
    return name


def _joints_loss(layer: HandModel, unknowns: HandUnknowns, target: _Target) -> torch.Tensor:
    """Mean squared joint distance (mm^2) plus the betas prior."""
    out = unknowns.posed()
    squared = ((out.joints[0] - target.joints) * 1000).pow(2).sum(-1).mean()
    return squared + BETAS_WEIGHT * unknowns.betas.pow(2).sum()


def _minimise(loss_fn, unknowns: HandUnknowns, steps: int) -> None:
    """L-BFGS (strong Wolfe line search) on the unknowns for up to `steps` iterations."""
    optimizer = torch.optim.LBFGS(unknowns.tensors(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimizer.step(closure)


def _initial_placement(layer: HandModel, target_joints: torch.Tensor) -> HandUnknowns:
    """The start: the palm aligned by Procrustes, the root joint on the target's wrist, each
    finger bone swung onto the target's, betas zero."""
    dtype = target_joints.dtype
    rest = layer(torch.zeros(1, 3, dtype=dtype), torch.zeros(1, 3, dtype=dtype)).joints[0]
    palm = list(PALM_JOINTS)
    # rotation only: a reflected palm is not a hand; the scale is left to betas
    rotation = procrustes_align(rest[palm][None], target_joints[palm][None], allow_reflection=False).rotation[0]
    pose = _swing_pose(rest, target_joints, rotation)
    # the root joint's shift in millimetres keeps the translation as well scaled as the angles
    return HandUnknowns(layer, rotation[None], target_joints[0][None], pose[None],
                        torch.zeros(1, NUM_BETAS, dtype=dtype), scale=torch.full((1, 1), 1e-3, dtype=dtype))


def _swing_pose(rest: torch.Tensor, target: torch.Tensor, root_rotation: torch.Tensor) -> torch.Tensor:
    """Finger pose (45,) axis-angle, MANO joint order, that turns each rest bone (21 rest joints,
    FreiHAND order) parallel to the target's, base to tip, below a root rotation (3,3); the
    smallest such rotation, so no twist."""
    pose = torch.zeros(15, 3, dtype=rest.dtype)
    for chain in FINGER_CHAINS:
        parent = root_rotation
        for joint, child in zip(chain[:-1], chain[1:]):
            bone = parent @ (rest[child] - rest[joint])
            swing = axis_angle_to_matrix(_rotation_between(bone, target[child] - target[joint]))
            local = parent.T @ swing @ parent
            pose[MANO_TO_FREIHAND[joint] - 1] = matrix_to_axis_angle(local)
            parent = parent @ local
    return pose.reshape(45)


def _rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Axis-angle (3,) of the smallest rotation turning direction a (3,) onto direction b (3,);
    zero when either is zero or they are opposite (no unique axis)."""
    a, b = a / a.norm().clamp_min(1e-12), b / b.norm().clamp_min(1e-12)
    axis = torch.linalg.cross(a, b)
    sin = axis.norm()
    return axis * (torch.atan2(sin, (a * b).sum()) / sin.clamp_min(1e-12))


def _huber_mm2(distance_mm: torch.Tensor) -> torch.Tensor:
    """Huber penalty (squared mm) of distances in mm: d^2 below HUBER_MM, linear beyond."""
    return torch.where(distance_mm < HUBER_MM, distance_mm**2, 2 * HUBER_MM * distance_mm - HUBER_MM**2)


def _surface_pairs(mano_vertices: torch.Tensor, mano_faces: torch.Tensor, target: _Target) -> _SurfacePairs:
    """Both ways' closest points between MANO's posed mesh (1,M,3) and the target (see _SurfacePairs)."""
    mano_triangles = mano_vertices[0][mano_faces]
    target_faces, target_weights, _ = closest_on_triangles(target.vertices, mano_triangles)
    faces, weights, _ = closest_on_triangles(mano_vertices[0], target.vertices[target.faces])
    mano_closest = (weights.unsqueeze(-1) * target.vertices[target.faces[faces]]).sum(1)
    return _SurfacePairs(target.vertices, target_faces, target_weights, mano_faces, mano_closest)


def _result(layer: HandModel, unknowns: HandUnknowns, target: _Target, side: str, is_rhand: bool,
            fingertips: str) -> ManoParams:
    """ManoParams from the fitted unknowns: global_orient and transl in smplx's form, the residuals
    of the float32 values as stored, re-evaluated through `forward` (the smplx formulation)."""
    with torch.no_grad():
        global_orient = matrix_to_axis_angle(unknowns.rotation_matrix()[0])
        # transl is what forward adds after rotating about the shaped rest root joint
        transl = unknowns.root()[0] - unknowns.posed().rest_root[0]
        stored = {name: t.detach().to(torch.float32) for name, t in
                  (("global_orient", global_orient), ("hand_pose", unknowns.pose()[0]),
                   ("betas", unknowns.betas[0]), ("transl", transl))}
        as_input = {name: t[None].double() for name, t in stored.items()}
        out = layer(as_input["global_orient"], as_input["transl"], hand_pose=as_input["hand_pose"],
                    betas=as_input["betas"])
        joints_mm = float(((out.joints[0] - target.joints).norm(dim=-1) * 1000).mean())
        surface_mm = _surface_distance_mm(out.vertices[0], layer.faces, target)
    return ManoParams(**{name: t.numpy() for name, t in stored.items()}, side=side, is_rhand=is_rhand,
                      vertices=out.vertices[0].numpy(), faces=layer.faces.numpy(), fingertips=fingertips,
                      joints_residual_mm=joints_mm, surface_residual_mm=surface_mm, mano_sha256=layer.asset_hash)


def _surface_distance_mm(mano_vertices: torch.Tensor, mano_faces: torch.Tensor, target: _Target) -> float:
    """Mean distance (mm) of each mesh's vertices from the other's surface, averaged over both."""
    _, _, to_mano = closest_on_triangles(target.vertices, mano_vertices[mano_faces])
    _, _, to_target = closest_on_triangles(mano_vertices, target.vertices[target.faces])
    return float((to_mano.mean() + to_target.mean()) / 2 * 1000)
