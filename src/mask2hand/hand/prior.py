"""Anatomical joint frames, joint limits and a pose prior for the open hand.

Rest frame of the open hand (same axes as MANO's right-hand template): wrist joint
at the origin, fingers point along -x, the back of the hand faces +y (palm normal
-y), the thumb lies toward +z. Units: meters, radians.

Every finger joint j has an anatomical frame F_j (3x3, columns):
  flex  = n x d, the flexion axis: a positive angle curls the finger toward its pad;
  abd   = n, the nail (dorsal) normal: a positive angle swings a long finger toward
          the thumb side (radial); for the thumb CMC it is palmar abduction (the thumb
          leaves the palm plane), a negative angle brings it alongside the index;
  twist = d, the bone direction from the joint toward the fingertip.
A finger pose is 15 joints x 3 axis-angle in the rest (world) frame, MANO joint order
(index 1-3, middle 1-3, little 1-3, ring 1-3, thumb 1-3); its *local* form is the same
axis-angle vector expressed in F_j: local_j = F_j^T pose_j = (flex, abd, twist). Joint
limits are boxes on the local form, so they are exact and easy to clamp.

`sample_pose_prior(n, seed)` draws plausible hands: open, relaxed, fist, pinches,
point, grasps, spread, gestures, their mixtures, per-finger curl and per-joint noise,
clamped to the limits.
"""

from __future__ import annotations

import numpy as np
import torch

from mask2hand.hand.data import JOINT_NAMES, MANO_TO_FREIHAND

FINGERS = ("index", "middle", "little", "ring", "thumb")  # MANO chain order
# the 15 finger joints' names in MANO order: rig joint k is FreiHAND joint MANO_TO_FREIHAND.index(k)
FINGER_JOINT_NAMES = tuple(JOINT_NAMES[MANO_TO_FREIHAND.index(k)] for k in range(1, 16))
AXES = ("flex", "abd", "twist")

# Rest-pose finger directions: fan angle in degrees from -x toward -z (toward the
# little-finger side) in the palm plane; a flat hand with a relaxed natural spread.
FINGER_FAN_DEG = {"index": -3.0, "middle": 4.0, "ring": 11.0, "little": 20.0}
# Thumb bones (CMC->MCP, MCP->IP, IP->tip): azimuth from -x toward +z in degrees,
# elevation toward the palm (-y) in degrees, and pronation: the nail normal turned
# from +y about the bone toward the outer (radial) side, in degrees.
THUMB_BONES_DEG = ((48.0, 14.0, 50.0), (40.0, 14.0, 60.0), (36.0, 10.0, 65.0))

# Anatomical limits (radians), rows = the 15 joints in MANO order, columns =
# (flex, abd, twist) as (low, high). Ranges follow active ranges of motion of the
# hand's joints (e.g. Hume et al. 1990, J Hand Surg 15A:240; AAOS goniometry
# tables): finger MCP -25..90 deg flexion, PIP 0..105 deg, DIP -10..80 deg, thumb MCP
# -20..57 deg, thumb IP -20..80 deg; abduction and twist are small passive ranges.
_FINGER_LIMITS = {
    "index": (((-0.45, 1.60), (-0.20, 0.35), (-0.20, 0.20)),
              ((-0.05, 1.85), (-0.08, 0.08), (-0.10, 0.10)),
              ((-0.20, 1.40), (-0.06, 0.06), (-0.08, 0.08))),
    "middle": (((-0.45, 1.60), (-0.22, 0.22), (-0.20, 0.20)),
               ((-0.05, 1.85), (-0.08, 0.08), (-0.10, 0.10)),
               ((-0.20, 1.40), (-0.06, 0.06), (-0.08, 0.08))),
    "little": (((-0.45, 1.60), (-0.35, 0.22), (-0.25, 0.25)),
               ((-0.05, 1.85), (-0.08, 0.08), (-0.10, 0.10)),
               ((-0.20, 1.40), (-0.06, 0.06), (-0.08, 0.08))),
    "ring": (((-0.45, 1.60), (-0.25, 0.20), (-0.20, 0.20)),
             ((-0.05, 1.85), (-0.08, 0.08), (-0.10, 0.10)),
             ((-0.20, 1.40), (-0.06, 0.06), (-0.08, 0.08))),
    "thumb": (((-0.50, 1.00), (-0.60, 0.70), (-0.35, 0.70)),
              ((-0.35, 1.00), (-0.20, 0.25), (-0.20, 0.30)),
              ((-0.35, 1.40), (-0.10, 0.10), (-0.10, 0.10))),
}
JOINT_LIMITS = np.array([_FINGER_LIMITS[f] for f in FINGERS], dtype=np.float64).reshape(15, 3, 2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def finger_direction(name: str) -> np.ndarray:
    """Rest direction (3,) of the four long fingers (MCP toward the tip)."""
    a = np.deg2rad(FINGER_FAN_DEG[name])
    return np.array([-np.cos(a), 0.0, -np.sin(a)])


def thumb_bone_frame(bone: int) -> tuple[np.ndarray, np.ndarray]:
    """Direction d and nail normal n (both (3,)) of thumb bone 0 (CMC), 1 (MCP) or 2 (IP)."""
    az, el, pron = np.deg2rad(THUMB_BONES_DEG[bone])
    d = _unit(np.array([-np.cos(az) * np.cos(el), -np.sin(el), np.sin(az) * np.cos(el)]))
    n0 = _unit(np.array([0.0, 1.0, 0.0]) - d[1] * d)
    # n0 x d points toward +x/+z (proximal-radial): the thumb's outer edge, away from the fingers
    outer = _unit(np.cross(n0, d))
    n = np.cos(pron) * n0 + np.sin(pron) * outer
    return d, _unit(n - (n @ d) * d)


def joint_frames() -> np.ndarray:
    """Anatomical frames (15,3,3) of the finger joints, MANO order; columns flex, abd, twist."""
    frames = []
    for f in FINGERS:
        for k in range(3):
            if f == "thumb":
                d, n = thumb_bone_frame(k)
            else:
                d, n = finger_direction(f), np.array([0.0, 1.0, 0.0])
            frames.append(np.stack([np.cross(n, d), n, d], axis=1))
    return np.array(frames)


JOINT_FRAMES = joint_frames()


def local_to_pose(local: np.ndarray) -> np.ndarray:
    """Anatomical (flex, abd, twist) (...,15,3) or (...,45) -> rest-frame axis-angle (...,45)."""
    local = np.asarray(local)
    if local.shape[-1] == 45:
        local = local.reshape(*local.shape[:-1], 15, 3)
    return np.einsum("jab,...jb->...ja", JOINT_FRAMES, local).reshape(*local.shape[:-2], 45)


def pose_to_local(pose: np.ndarray) -> np.ndarray:
    """Rest-frame axis-angle (...,45) -> anatomical (flex, abd, twist) (...,15,3)."""
    pose = np.asarray(pose).reshape(*np.shape(pose)[:-1], 15, 3)
    return np.einsum("jba,...jb->...ja", JOINT_FRAMES, pose)


def within_limits(pose: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Boolean (...,) whether each finger pose (...,45) respects JOINT_LIMITS."""
    local = pose_to_local(pose)
    ok = (local >= JOINT_LIMITS[..., 0] - tol) & (local <= JOINT_LIMITS[..., 1] + tol)
    return ok.all(axis=(-1, -2))


# Archetypes in anatomical coordinates. Long fingers: (MCP, PIP, DIP) flexion and MCP
# abduction per finger; thumb: (flex, abd, twist) of CMC, MCP, IP.
def _hand(index, middle, ring, little, thumb, spread=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    local = np.zeros((15, 3))
    per_finger = {"index": (index, spread[0]), "middle": (middle, spread[1]),
                  "ring": (ring, spread[2]), "little": (little, spread[3])}
    for fi, f in enumerate(FINGERS):
        if f == "thumb":
            local[12:15] = np.asarray(thumb, dtype=np.float64).reshape(3, 3)
        else:
            flex, abd = per_finger[f]
            local[3 * fi: 3 * fi + 3, 0] = flex
            local[3 * fi, 1] = abd
    return local


_T_REST = ((0, 0, 0), (0, 0, 0), (0, 0, 0))
_T_RELAX = ((0.15, 0.1, 0.0), (0.15, 0, 0), (0.2, 0, 0))
_T_FIST = ((0.55, 0.15, 0.45), (0.5, 0.0, 0.1), (0.7, 0, 0))
_T_OPPOSE = ((0.45, 0.45, 0.45), (0.2, 0.0, 0.1), (0.3, 0, 0))
_T_PINCH = ((0.35, 0.5, 0.5), (0.35, 0.0, 0.15), (0.35, 0, 0))
_T_OUT = ((-0.3, -0.4, 0.0), (-0.1, 0.0, 0.0), (-0.1, 0, 0))
_CURL = (1.45, 1.6, 0.9)
ARCHETYPES = {
    "flat": _hand((0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), _T_REST),
    "relaxed": _hand((0.2, 0.3, 0.15), (0.25, 0.35, 0.2), (0.3, 0.4, 0.2), (0.35, 0.45, 0.25), _T_RELAX),
    "spread": _hand((-0.1, 0, 0), (-0.1, 0, 0), (-0.1, 0, 0), (-0.1, 0, 0), _T_OUT,
                    spread=(0.3, 0.05, -0.22, -0.32)),
    "fist": _hand(_CURL, _CURL, _CURL, _CURL, _T_FIST),
    "point": _hand((0.05, 0.05, 0.0), _CURL, _CURL, _CURL, _T_FIST),
    "victory": _hand((0.05, 0.05, 0.0), (0.05, 0.05, 0.0), _CURL, _CURL, _T_FIST, spread=(0.2, -0.15, 0, 0)),
    "thumbs_up": _hand(_CURL, _CURL, _CURL, _CURL, ((-0.2, 0.0, 0.0), (0.0, 0.0, 0.0), (0.0, 0, 0))),
    "pinch": _hand((0.6, 0.65, 0.35), (0.3, 0.35, 0.2), (0.35, 0.4, 0.2), (0.4, 0.45, 0.25), _T_PINCH),
    "ok": _hand((0.7, 0.9, 0.5), (0.1, 0.1, 0.05), (0.15, 0.1, 0.05), (0.2, 0.1, 0.05), _T_PINCH,
                spread=(0.0, -0.05, -0.1, -0.2)),
    "tripod": _hand((0.6, 0.6, 0.35), (0.7, 0.6, 0.3), (0.9, 0.9, 0.5), (1.0, 1.0, 0.5), _T_OPPOSE),
    "cylinder_grasp": _hand((0.8, 1.0, 0.5), (0.85, 1.05, 0.55), (0.9, 1.05, 0.55), (0.95, 1.05, 0.55),
                            _T_OPPOSE),
    "sphere_grasp": _hand((0.45, 0.6, 0.35), (0.45, 0.6, 0.35), (0.5, 0.6, 0.35), (0.55, 0.6, 0.35),
                          _T_OPPOSE, spread=(0.2, 0.0, -0.15, -0.25)),
    "claw": _hand((-0.1, 1.2, 1.0), (-0.1, 1.2, 1.0), (-0.1, 1.2, 1.0), (-0.1, 1.2, 1.0), _T_RELAX),
    "hook": _hand((0.0, 1.4, 0.9), (0.0, 1.4, 0.9), (0.0, 1.4, 0.9), (0.0, 1.4, 0.9), _T_REST),
    "table_top": _hand((1.4, 0.05, 0.0), (1.4, 0.05, 0.0), (1.4, 0.05, 0.0), (1.4, 0.05, 0.0), _T_RELAX),
    "horns": _hand((0.05, 0.05, 0.0), _CURL, _CURL, (0.05, 0.05, 0.0), _T_FIST, spread=(0.15, 0, 0, -0.25)),
    "call_me": _hand(_CURL, _CURL, _CURL, (0.05, 0.05, 0.0), _T_OUT, spread=(0, 0, 0, -0.3)),
}
# Thumb (flex, abd, twist) of CMC, MCP, IP solved on the open hand by
# tools/open_hand_tune_thumb.py so that pads meet in pinches, the thumb lies over the
# curled fingers in fists and opposes them across an object in grasps.
THUMB_SOLVED: dict[str, tuple] = {
    "pinch": ((0.413, 0.099, -0.044), (0.334, -0.101, -0.121), (0.077, -0.048, -0.053)),
    "ok": ((0.201, 0.098, -0.018), (0.597, -0.099, -0.104), (0.353, -0.045, -0.050)),
    "tripod": ((0.522, 0.050, -0.056), (0.598, -0.112, -0.119), (0.312, -0.053, -0.057)),
    "fist": ((0.875, 0.328, -0.315), (0.204, -0.138, -0.194), (-0.111, -0.091, -0.099)),
    "point": ((0.939, 0.125, -0.211), (0.460, -0.026, -0.176), (-0.223, -0.088, -0.092)),
    "victory": ((0.973, -0.487, 0.162), (0.564, 0.113, -0.188), (-0.297, 0.086, -0.096)),
    "horns": ((0.955, 0.077, -0.250), (0.470, 0.087, -0.186), (-0.262, -0.054, -0.097)),
    "cylinder_grasp": ((0.506, -0.181, -0.243), (0.652, -0.157, -0.168), (1.032, -0.080, -0.080)),
    "sphere_grasp": ((0.774, 0.065, 0.054), (0.489, -0.032, -0.002), (0.045, -0.017, 0.012)),
}
# Flexion of the pinching fingers solved together with the thumb: (MANO joint, flex).
FINGERS_SOLVED: dict[str, tuple] = {
    "pinch": ((0, 0.988), (1, 1.097), (2, 0.850)),
    "ok": ((0, 1.050), (1, 1.288), (2, 0.872)),
    "tripod": ((0, 1.074), (1, 1.137), (2, 0.874), (3, 1.197), (4, 1.224), (5, 0.996)),
}
for _name, _thumb in THUMB_SOLVED.items():
    ARCHETYPES[_name][12:15] = np.asarray(_thumb, dtype=np.float64)
for _name, _flexions in FINGERS_SOLVED.items():
    for _joint, _flex in _flexions:
        ARCHETYPES[_name][_joint, 0] = _flex

# How often each archetype is drawn (a weighting of everyday hand use and gestures).
ARCHETYPE_WEIGHTS = {"flat": 2.0, "relaxed": 3.0, "spread": 1.5, "fist": 2.0, "point": 1.5, "victory": 1.0,
                     "thumbs_up": 0.7, "pinch": 2.0, "ok": 1.0, "tripod": 1.0, "cylinder_grasp": 2.0,
                     "sphere_grasp": 1.5, "claw": 0.7, "hook": 0.5, "table_top": 0.5, "horns": 0.4,
                     "call_me": 0.4}

_NOISE = np.array([0.10, 0.05, 0.04])  # per-joint noise (flex, abd, twist), radians


def _rng_from(generator: int | np.random.Generator | torch.Generator | None) -> np.random.Generator:
    if isinstance(generator, np.random.Generator):
        return generator
    if isinstance(generator, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        return np.random.default_rng(seed)
    return np.random.default_rng(generator)


def sample_local_prior(n: int, generator: int | np.random.Generator | torch.Generator | None = 0) -> np.ndarray:
    """Anatomical finger poses (n,15,3) (flex, abd, twist) from the prior, within JOINT_LIMITS."""
    rng = _rng_from(generator)
    names = list(ARCHETYPES)
    table = np.stack([ARCHETYPES[k] for k in names])
    probs = np.array([ARCHETYPE_WEIGHTS[k] for k in names])
    probs /= probs.sum()
    a = rng.choice(len(names), size=n, p=probs)
    b = rng.choice(len(names), size=n, p=probs)
    # half pure archetypes (plus noise), half blends of two
    t = np.where(rng.random(n) < 0.5, 0.0, rng.random(n))[:, None, None]
    local = (1 - t) * table[a] + t * table[b]
    # per-finger curl: one offset shared by MCP, PIP (and 0.7x DIP) of a finger
    curl = rng.normal(0.0, 0.18, size=(n, 5, 1)) * np.array([1.0, 1.0, 0.7])
    curl[:, 4] *= 0.5  # the thumb's pose is set mainly by its archetype
    local[:, :, 0] += curl.reshape(n, 15)
    # overall spread: one abduction gain for the four long fingers
    spread = rng.normal(0.0, 0.08, size=(n, 1))
    spread_dir = np.array([1.0, 0.2, -1.2, -0.8])  # index, middle, little, ring (MANO order)
    local[:, [0, 3, 6, 9], 1] += spread * spread_dir
    local += rng.normal(0.0, 1.0, size=(n, 15, 3)) * _NOISE
    return np.clip(local, JOINT_LIMITS[..., 0], JOINT_LIMITS[..., 1])


def sample_pose_prior(n: int, generator: int | np.random.Generator | torch.Generator | None = 0
                      ) -> np.ndarray | torch.Tensor:
    """Plausible finger poses (n,45) axis-angle in the rest frame (MANO joint order).

    generator: an int seed, a numpy Generator (-> numpy float64 array) or a
    torch.Generator (-> torch float32 tensor on the CPU). Same seed, same poses.
    """
    pose = local_to_pose(sample_local_prior(n, generator))
    if isinstance(generator, torch.Generator):
        return torch.as_tensor(pose, dtype=torch.float32)
    return pose
