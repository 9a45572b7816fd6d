"""Left hands: the network knows right hands only, so a left hand is predicted as the right
hand of the mirrored picture and mirrored back.

The mask is mirrored about the image's vertical center line, u -> W - u (pixel column
j -> W - 1 - j), and its camera with it (`Camera.mirrored`: cx -> W - cx and the skew
negated, fx, fy, cy unchanged). A camera point (x,y,z) seen at u in the original image is
then seen at W - u = fx (-x)/z + (W - cx) in the mirrored one: the mirrored picture is the
original scene with camera x negated. So
the right hand predicted in the mirrored picture maps back by x -> -x (vertices, joints),
exactly, and its 2-D joints by u -> W - u; a reflection turns the mesh inside out, so the
faces' winding is reversed to keep normals pointing outward.
"""

from __future__ import annotations

import numpy as np

SIDES = ("right", "left")


def mirror_mask(mask: np.ndarray) -> np.ndarray:
    """The mask (H,W) mirrored left to right (column j -> W - 1 - j), contiguous."""
    return np.ascontiguousarray(np.asarray(mask)[:, ::-1])


def mirror_points(points: np.ndarray) -> np.ndarray:
    """Camera-space points (...,3) with x negated (a new array)."""
    points = np.asarray(points)
    return points * np.array([-1.0, 1.0, 1.0], dtype=points.dtype)


def mirror_faces(faces: np.ndarray) -> np.ndarray:
    """Triangles (F,3) with their winding reversed, for a mirrored mesh."""
    return np.ascontiguousarray(np.asarray(faces)[:, ::-1])
