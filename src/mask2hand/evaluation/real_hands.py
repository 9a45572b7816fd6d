"""Scores of answers on real hands, against a 2-D reference (landmarks from another method).

Real photos carry no 3-D truth: an answer is scored by how its silhouette covers the mask and
how its projected joints fall on the reference's landmarks. Every 2-D figure is relative to the
hand's size in the picture, the diagonal of the reference landmarks' bounding box, so it does not
depend on the unknown focal length or the photo's resolution.

- `cut_at_wrist(mask, landmarks)`: the mask without what lies beyond the wrist (the forearm).
- `joint_errors_2d(joints_2d, landmarks)`: per-joint distance and the hand's size.
- `palm_toward_camera(points_2d, side)`: whether a hand shows its palm, from the order of its
  knuckles around the wrist (the thumb's side of the hand).
- `palm_clearly_facing(world_landmarks)`: whether a reference's palm is far enough from edge-on
  for a palm/back flip to be judged (the rule of mask2hand.evaluation.metrics.palm_flips).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mask2hand.evaluation.metrics import FLIP_JUDGED_DEGREES

WRIST, INDEX_BASE, MIDDLE_BASE, LITTLE_BASE = 0, 5, 9, 17
PCK_FRACTION = 0.1
"""PCK counts a joint as right within this fraction of the hand's size (landmark box diagonal)."""


def cut_at_wrist(mask: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A mask (H,W) bool cleared beyond the wrist: pixels whose center lies on the far side of the
    line through the wrist landmark perpendicular to the wrist -> middle-knuckle direction.
    landmarks: (21,2) pixels."""
    wrist = landmarks[WRIST]
    direction = landmarks[MIDDLE_BASE] - wrist
    norm = np.linalg.norm(direction)
    if norm == 0:
        return mask.copy()
    rows, cols = np.indices(mask.shape, dtype=np.float64)
    along = (cols + 0.5 - wrist[0]) * direction[0] + (rows + 0.5 - wrist[1]) * direction[1]
    return mask & (along >= 0)


def hand_size(landmarks: np.ndarray) -> float:
    """The diagonal (pixels) of the bounding box of landmarks (21,2)."""
    return float(np.linalg.norm(landmarks.max(axis=0) - landmarks.min(axis=0)))


@dataclass(frozen=True)
class JointErrors2D:
    """2-D joint errors of one answer against the reference.

    distances: (21,) pixels; size: the hand's size in pixels (landmark box diagonal);
    mean_px: mean distance; mean_fraction: mean_px / size; pck: fraction of joints within
    PCK_FRACTION x size.
    """

    distances: np.ndarray
    size: float
    mean_px: float
    mean_fraction: float
    pck: float


def joint_errors_2d(joints_2d: np.ndarray, landmarks: np.ndarray) -> JointErrors2D:
    """Errors of projected joints (21,2) pixels against reference landmarks (21,2) pixels."""
    distances = np.linalg.norm(np.asarray(joints_2d, np.float64) - landmarks, axis=-1)
    size = hand_size(landmarks)
    return JointErrors2D(distances=distances, size=size, mean_px=float(distances.mean()),
                         mean_fraction=float(distances.mean() / size),
                         pck=float((distances <= PCK_FRACTION * size).mean()))


def palm_toward_camera(points_2d: np.ndarray, side: str) -> bool:
    """Whether a hand (21,2) image points, y down, of the given side ("right"/"left") shows its
    palm: seen palm-on with the fingers up, a right hand has its index knuckle right of its little
    knuckle and its thumb on the picture's right (examples/open_palm.png)."""
    index = points_2d[INDEX_BASE] - points_2d[WRIST]
    little = points_2d[LITTLE_BASE] - points_2d[WRIST]
    cross = index[0] * little[1] - index[1] * little[0]
    return bool(cross < 0) == (side == "right")


def palm_clearly_facing(world_landmarks: np.ndarray) -> bool:
    """Whether a hand's palm plane, from 3-D landmarks (21,3) in a camera-aligned frame (x right,
    y down, z away from the camera; MediaPipe's world landmarks are), is within
    FLIP_JUDGED_DEGREES of facing the camera or facing away: more edge-on hands are not judged."""
    normal = np.cross(world_landmarks[INDEX_BASE] - world_landmarks[WRIST],
                      world_landmarks[LITTLE_BASE] - world_landmarks[WRIST])
    length = np.linalg.norm(normal)
    return bool(length > 0 and abs(normal[2]) / length >= np.cos(np.radians(FLIP_JUDGED_DEGREES)))
