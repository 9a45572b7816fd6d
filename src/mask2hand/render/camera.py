"""Pinhole cameras, their pixel convention (as in the README's Conventions) and the near plane.

Image coordinates are continuous: the image's top-left corner is (0, 0), pixel
(row i, column j) covers [j, j+1) x [i, i+1) and its center is (j + 0.5, i + 0.5).
A camera-space point (x, y, z) (meters, +x right, +y down, +z forward) maps to
(u, v) = (K @ [x, y, z])[:2] / z, i.e. u = fx x/z + s y/z + cx, v = fy y/z + cy for the
usual K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]].

Near plane: a point is in front of the camera when z > NEAR_Z (1 mm). The renderers
drop every face that has a vertex at or behind the near plane, so a triangle that
crosses z = 0 is never projected "through infinity" and wrapped around the image.
"""

from __future__ import annotations

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.render import exact
from mask2hand.render.exact import NEAR_Z  # noqa: F401  (defined with the torch-free core; re-exported here)



def _check_K(K: torch.Tensor, batch: int) -> None:
    if K.ndim != 3 or K.shape[1:] != (3, 3) or K.shape[0] != batch:
        raise Mask2HandError(f"K must have shape (B,3,3) with B={batch}, got {tuple(K.shape)}")


def project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Pixel coordinates (B,N,2) (u right, v down) of camera-space points (B,N,3), K (B,3,3).

    Differentiable. Points at or behind the near plane give meaningless (possibly
    infinite) coordinates: use `in_front(points)` to know which ones are valid.
    """
    if points.ndim != 3 or points.shape[-1] != 3:
        raise Mask2HandError(f"points must have shape (B,N,3), got {tuple(points.shape)}")
    K = torch.as_tensor(K).to(points)
    _check_K(K, points.shape[0])
    return exact.project_points(points, K)


def unproject(uv: torch.Tensor, depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Camera-space points (B,N,3) at depth z (B,N) (meters) seen at pixel coordinates uv (B,N,2).

    The inverse of `project` for the given depth: project(unproject(uv, z, K), K) == uv.
    K is a pinhole matrix (upper triangular, last row 0 0 1), so the ray is solved in closed
    form (which also exports to ONNX, unlike a general solve).
    """
    if uv.ndim != 3 or uv.shape[-1] != 2 or depth.shape != uv.shape[:2]:
        raise Mask2HandError(f"uv must be (B,N,2) and depth (B,N), got {tuple(uv.shape)} and {tuple(depth.shape)}")
    K = torch.as_tensor(K).to(uv)
    _check_K(K, uv.shape[0])
    fx, skew, cx = K[:, 0, 0, None], K[:, 0, 1, None], K[:, 0, 2, None]
    fy, cy = K[:, 1, 1, None], K[:, 1, 2, None]
    y = (uv[..., 1] - cy) / fy
    x = (uv[..., 0] - cx - skew * y) / fx
    return torch.stack([x * depth, y * depth, depth], dim=-1)


def in_front(points: torch.Tensor, near: float = NEAR_Z) -> torch.Tensor:
    """Boolean (B,N): which points lie strictly in front of the near plane."""
    return points[..., 2] > near


def check_finite(name: str, value: torch.Tensor | np.ndarray) -> None:
    """Raise Mask2HandError when `value` holds NaN or inf."""
    finite = torch.isfinite(value).all() if torch.is_tensor(value) else np.isfinite(value).all()
    if not bool(finite):
        raise Mask2HandError(f"{name} contains NaN or inf values; check the hand parameters / camera that produced them")
