"""Starting points for fits: hands placed from a mask alone, and variants of an answer.

All functions take numpy HandParams (batch first, float32, `pose` set) and return them in the
hand layer's convention (HandModel.in_convention); rotations act in camera space (x right, y
down, z forward).

Placement from a mask (`place_on_mask`): the mask's centroid, area and principal axis
(the eigenvector of its pixels' covariance with the larger eigenvalue) set where the
hand goes. The hand is turned so that its long axis (the rest frame's -x, wrist toward
the fingers) lies along the principal axis in the image plane, palm toward or away from
the camera; its projected area is measured by rasterizing it at a far orthographic-like
camera (1 px = 1 mm), which gives the depth at which its silhouette has the mask's area
(area scales as (f/z)^2), and it is shifted so that its silhouette's centroid falls on
the mask's.

Variants of an answer (`palm_flip`, `swap_flexion`, `with_poses`) are the ambiguities
of a silhouette: see each function.
"""

from __future__ import annotations

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.hand.params import HandParams
from mask2hand.hand.prior import ARCHETYPES, FINGERS, local_to_pose, pose_to_local, sample_pose_prior

_FAR_DEPTH = 10.0  # meters: the orthographic-like camera that measures a hand's projected area
_FAR_PX_PER_M = 1000.0  # at that depth 1 px = 1 mm
_FAR_CANVAS = 400  # px: 40 cm, more than any hand


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Axis-angle (...,3) -> rotation matrices (...,3,3), float64."""
    from scipy.spatial.transform import Rotation

    flat = np.asarray(rotvec, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(*np.shape(rotvec)[:-1], 3, 3)


def matrix_to_rotvec(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices (...,3,3) -> axis-angle (...,3), float64."""
    from scipy.spatial.transform import Rotation

    flat = np.asarray(matrix, dtype=np.float64).reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).as_rotvec().reshape(*np.shape(matrix)[:-2], 3)


def _posed(hand, params: HandParams):
    with torch.no_grad():
        device = hand.faces.device
        inputs = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=device)
                  for k, v in params.layer_inputs(hand).items()}
        return hand(**inputs)


def with_rotation(params: HandParams, rotation: np.ndarray) -> HandParams:
    """The same hands turned to new global rotations (B,3,3). The layer rotates about the root
    joint, so the root joint stays where it was and `transl` is unchanged."""
    return HandParams(global_orient=matrix_to_rotvec(rotation).astype(np.float32),
                      transl=np.asarray(params.transl, dtype=np.float32),
                      pose=np.asarray(params.pose, dtype=np.float32),
                      betas=np.asarray(params.betas, dtype=np.float32), flat_hand_mean=params.flat_hand_mean)


def palm_flip(params: HandParams) -> HandParams:
    """The silhouette's depth twin: the hand tilted the other way, palm on the other side.

    Under a (near-)orthographic view, reflecting a hand through the plane z = z_root
    (camera depth) keeps its silhouette but makes a left hand; reflecting it also through
    its own palm plane (the rest frame's y -> -y) makes it a right hand again. The two
    reflections compose to a rotation, R' = M R N with M = diag(1,1,-1) (camera),
    N = diag(1,-1,1) (hand frame): a turn by twice the palm's tilt from the image plane
    about the line where the palm plane and the image plane meet. For a hand seen edge-on
    that is a 180 degree turn about its long axis (palm left <-> palm right); for a tilted
    hand it swaps "fingers toward the camera" and "fingers away". A flat hand keeps its
    silhouette; the finger pose is kept (still flexing toward the palm, now on the other
    side), so bent fingers change it and the fit has to bend them anew. The root joint
    stays in place. palm_flip(palm_flip(p)) == p.
    """
    rotation = rotvec_to_matrix(params.global_orient)
    flipped = np.diag([1.0, 1.0, -1.0]) @ rotation @ np.diag([1.0, -1.0, 1.0])
    return with_rotation(params, flipped)


NEIGHBOURS = (("index", "middle"), ("middle", "ring"), ("ring", "little"))
"""Pairs of neighbouring long fingers whose flexions `swap_flexion` exchanges."""


def swap_flexion(hand, params: HandParams, first: str, second: str) -> HandParams:
    """The same hands with two fingers' flexions (MCP, PIP, DIP, anatomical frames) exchanged:
    "a bent index and a straight middle finger look like the reverse" (the flexion axis
    of neighbouring fingers is nearly the same, so their silhouettes trade places)."""
    for name in (first, second):
        if name not in FINGERS or name == "thumb":
            raise Mask2HandError(f"swap_flexion takes two long fingers of {FINGERS[:4]}, got {name!r}")
    absolute = hand.in_convention(params, flat_hand_mean=True)
    local = pose_to_local(np.asarray(absolute.pose, dtype=np.float64)).copy()
    a, b = 3 * FINGERS.index(first), 3 * FINGERS.index(second)
    local[:, a:a + 3, 0], local[:, b:b + 3, 0] = local[:, b:b + 3, 0].copy(), local[:, a:a + 3, 0].copy()
    return with_poses(hand, params, local_to_pose(local))


def with_poses(hand, params: HandParams, absolute_poses: np.ndarray) -> HandParams:
    """The same hands (same rotation, root joint and shape) with other finger poses (B,45),
    given as absolute poses (e.g. from sample_pose_prior)."""
    return hand.in_convention(HandParams(global_orient=np.asarray(params.global_orient, dtype=np.float32),
                                         transl=np.asarray(params.transl, dtype=np.float32),
                                         pose=np.asarray(absolute_poses, dtype=np.float32),
                                         betas=np.asarray(params.betas, dtype=np.float32), flat_hand_mean=True))


def prior_poses(n: int, seed: int = 0, first: str | None = "relaxed") -> np.ndarray:
    """n absolute finger poses (n,45): the named archetype first (if given), then prior samples."""
    poses = sample_pose_prior(n, np.random.default_rng(seed))
    if first is not None and n > 0:
        poses[0] = local_to_pose(ARCHETYPES[first])
    return poses


# ---------------------------------------------------------------------- placement from a mask

def mask_moments(mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(centroid (2,) in pixels (u, v), area in pixels, principal-axis angle in radians from +u
    toward +v) of a bool mask (H,W)."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise Mask2HandError("the mask is empty: there is no hand to place")
    uv = np.stack([cols + 0.5, rows + 0.5], axis=1)
    centroid = uv.mean(axis=0)
    cov = np.cov((uv - centroid).T) if rows.size > 1 else np.eye(2)
    values, vectors = np.linalg.eigh(cov)
    major = vectors[:, np.argmax(values)]
    return centroid, float(rows.size), float(np.arctan2(major[1], major[0]))


def facing_rotation(angle: float, palm_toward_camera: bool) -> np.ndarray:
    """Rotation (3,3) taking the rest frame to camera space with the hand's long axis (rest -x,
    wrist to fingers) along the image direction `angle` (radians from +u toward +v) and the
    palm (rest -y) toward the camera (-z) or away from it."""
    fingers = np.array([np.cos(angle), np.sin(angle), 0.0])
    x_axis = -fingers
    y_axis = np.array([0.0, 0.0, 1.0 if palm_toward_camera else -1.0])  # the back of the hand
    return np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)], axis=1)


ORIENTATION_CANDIDATES = ((0.0, True), (np.pi, True), (0.0, False), (np.pi, False))
"""(angle added to the principal axis, palm toward camera) of the starts of `place_on_mask`:
the principal axis does not say which end has the fingers, nor which side faces the camera."""


def place_on_mask(hand, mask: np.ndarray, K: np.ndarray, absolute_poses: np.ndarray,
                  orientations: list[tuple[float, bool]], betas: np.ndarray | None = None) -> HandParams:
    """Hands (n = len(orientations)) placed on a mask (H,W) seen through K (3,3) (see the module
    docstring). absolute_poses (n,45): finger poses; orientations: (angle offset from the
    principal axis, palm toward camera) per hand; betas (n,10) or None for the mean shape."""
    from mask2hand.render import rasterize_silhouette

    n = len(orientations)
    centroid, area, axis = mask_moments(mask)
    rotations = np.stack([facing_rotation(axis + offset, toward) for offset, toward in orientations])
    betas = np.zeros((n, 10), np.float32) if betas is None else np.asarray(betas, np.float32)
    params = hand.in_convention(HandParams(global_orient=matrix_to_rotvec(rotations).astype(np.float32),
                                           transl=np.zeros((n, 3), np.float32),
                                           pose=np.asarray(absolute_poses, dtype=np.float32), betas=betas,
                                           flat_hand_mean=True))
    vertices = _posed(hand, params).vertices.cpu().numpy().astype(np.float64)  # root joint near the origin
    center = 0.5 * (vertices.min(axis=1) + vertices.max(axis=1))
    far = vertices - center[:, None] + np.array([0.0, 0.0, _FAR_DEPTH])
    f_far = _FAR_DEPTH * _FAR_PX_PER_M
    K_far = np.array([[f_far, 0.0, _FAR_CANVAS / 2], [0.0, f_far, _FAR_CANVAS / 2], [0.0, 0.0, 1.0]])
    silhouettes = rasterize_silhouette(far, hand.faces, np.repeat(K_far[None], n, 0), (_FAR_CANVAS, _FAR_CANVAS))
    K = np.asarray(K, dtype=np.float64)
    fx, fy = K[0, 0], K[1, 1]
    transl = np.zeros((n, 3))
    for i, sil in enumerate(silhouettes):
        pixels = max(int(sil.sum()), 1)
        area_m2 = pixels / _FAR_PX_PER_M**2
        depth = np.sqrt(fx * fy * area_m2 / area)
        rows, cols = np.nonzero(sil)
        # the silhouette's centroid relative to the box center, in meters (x right, y down)
        offset = (np.array([cols.mean() + 0.5, rows.mean() + 0.5]) - _FAR_CANVAS / 2) / _FAR_PX_PER_M \
            if pixels > 1 else np.zeros(2)
        ray = np.linalg.solve(K, np.array([centroid[0], centroid[1], 1.0]))
        target = ray / ray[2] * depth  # where the silhouette's centroid must be
        transl[i] = target - np.array([offset[0], offset[1], 0.0]) - center[i]
    return HandParams(global_orient=params.global_orient, transl=transl.astype(np.float32), pose=params.pose,
                      betas=betas, flat_hand_mean=params.flat_hand_mean)
