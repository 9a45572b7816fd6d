"""Natural hand orientations, and the view statistics every synthetic card reports.

Natural views are the ways people hold a hand in front of a camera or over a light:
the palm or the back toward the camera, fingers pointing up to sideways, never down,
the wrist (and the arm) below. A view's rotation is built in three steps from the
hand's own axes (hand_axes.py, calibrated once on the source's rest hand, so any
source gets the same views):

1. facing: proximal -> image down (+y), dorsal -> away from the camera (+z), so the
   palm faces the camera, fingers up; with `back_probability` the hand is turned half
   about the image's vertical first, so the back faces it;
2. roll about the camera axis by a finger angle U[finger_angle_deg] (0: fingers up,
   > 0: toward the image's right);
3. tilt about an axis in the image plane (direction uniform) by an angle drawn
   uniformly on the spherical cap of half-angle `cone_deg`: the visible side's normal
   stays within that cone around the camera axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mask2hand.data.hand_axes import hand_axes
from mask2hand.errors import Mask2HandError
from mask2hand.image.camera import project_points

# step 1's target of the rest axes (proximal, dorsal, radial): image down, away from the camera, image right
FACING = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # columns: +y, +z, +x
TURN_BACK = np.diag([-1.0, 1.0, -1.0])  # half a turn about the image's vertical


@dataclass(frozen=True)
class NaturalOrientation:
    """cone_deg: the visible side's normal lies within this angle of the camera axis (uniform on
    the cap); back_probability: share of views showing the back of the hand; finger_angle_deg:
    the roll of the fingers from image-up, uniform (negative: toward the image's left)."""

    cone_deg: float = 50.0
    back_probability: float = 0.5
    finger_angle_deg: tuple[float, float] = (-80.0, 80.0)

    def __post_init__(self):
        if not 0.0 <= self.cone_deg <= 90.0:
            raise Mask2HandError(f"natural views: cone_deg must be in [0, 90], got {self.cone_deg}")
        if not 0.0 <= self.back_probability <= 1.0:
            raise Mask2HandError(f"natural views: back_probability must be in [0, 1], got {self.back_probability}")
        lo, hi = self.finger_angle_deg
        if not -180.0 <= lo <= hi <= 180.0:
            raise Mask2HandError(f"natural views: finger_angle_deg must be a range within -180..180, got {[lo, hi]}")


def _rotation_about(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotations (n,3,3) about unit axes (n,3) by angles (n,) radians (Rodrigues)."""
    k = axis
    cross = np.zeros(axis.shape[:1] + (3, 3))
    cross[:, 0, 1], cross[:, 0, 2], cross[:, 1, 2] = -k[:, 2], k[:, 1], -k[:, 0]
    cross -= np.swapaxes(cross, 1, 2)
    c, s = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    return np.eye(3) + s * cross + (1 - c) * (cross @ cross)


def sample_natural_orientations(rng: np.random.Generator, n: int, settings: NaturalOrientation,
                                rest_axes: np.ndarray) -> np.ndarray:
    """(n,3) axis-angle global orientations of natural views. rest_axes (3,3): the source's rest hand's
    axes as columns (proximal, dorsal, radial; `rest_axes_of`)."""
    from scipy.spatial.transform import Rotation

    back = rng.random(n) < settings.back_probability
    roll = np.deg2rad(rng.uniform(*settings.finger_angle_deg, size=n))
    psi = rng.uniform(0.0, 2 * math.pi, size=n)
    cos_tilt = rng.uniform(math.cos(math.radians(settings.cone_deg)), 1.0, size=n)
    face = np.where(back[:, None, None], TURN_BACK @ FACING, FACING) @ rest_axes.T
    rolled = _rotation_about(np.tile([0.0, 0.0, 1.0], (n, 1)), roll) @ face
    tilt_axis = np.stack([np.cos(psi), np.sin(psi), np.zeros(n)], axis=1)
    rotation = _rotation_about(tilt_axis, np.arccos(np.clip(cos_tilt, -1.0, 1.0))) @ rolled
    return Rotation.from_matrix(rotation).as_rotvec()


def rest_axes_of(source) -> np.ndarray:
    """(3,3) axes (columns proximal, dorsal, radial) of a hand source's rest hand (no rotation,
    flat fingers, its reference shape)."""
    posed = source(np.zeros((1, 3), np.float32), np.zeros((1, 45), np.float32),
                   source.reference_shape()[None].astype(np.float32))
    return hand_axes(posed.joints).matrix()[0]


def view_angles(joints: np.ndarray, K: np.ndarray) -> dict[str, np.ndarray]:
    """Per view (n,) of hands with joints (n,21,3) in camera space and intrinsics K (n,3,3):
    palm_to_camera_deg: the palm normal's angle to the camera axis pointing at the camera (0: the palm
    faces the camera, 180: the back does); facing_deg: that of the side facing the camera (palm or
    back, 0..90); back_toward_camera_share: 1 where the back faces the camera, else 0;
    finger_angle_deg: the image direction from the wrist to the middle finger's MCP, from image-up,
    > 0 toward the right (+-180: fingers down)."""
    axes = hand_axes(joints)
    palm_to_camera = np.degrees(np.arccos(np.clip(axes.dorsal[:, 2], -1.0, 1.0)))  # palm . (-z) = dorsal . z
    uv = project_points(np.asarray(joints, np.float64)[:, [0, 9]], np.asarray(K, np.float64))
    du, dv = (uv[:, 1] - uv[:, 0]).T
    return {"palm_to_camera_deg": palm_to_camera, "facing_deg": np.minimum(palm_to_camera, 180.0 - palm_to_camera),
            "back_toward_camera_share": (palm_to_camera > 90.0).astype(np.float64),
            "finger_angle_deg": np.degrees(np.arctan2(du, -dv))}
