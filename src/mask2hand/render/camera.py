"""Projection of batched torch tensors, checked, and the near plane.

The conventions and the formulas are mask2hand.image.camera's (`project_points`,
`unproject_points`); here they get the renderers' and losses' checks of shapes (B,N,3) and
(B,3,3).

Near plane: a point is in front of the camera when z > NEAR_Z (1 mm). The renderers
drop every face that has a vertex at or behind the near plane, so a triangle that
crosses z = 0 is never projected "through infinity" and wrapped around the image.
"""

from __future__ import annotations

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.image.camera import project_points, unproject_points
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
    return project_points(points, K)


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
    return unproject_points(uv, depth, K)


def in_front(points: torch.Tensor, near: float = NEAR_Z) -> torch.Tensor:
    """Boolean (B,N): which points lie strictly in front of the near plane."""
    return points[..., 2] > near


def check_finite(name: str, value: torch.Tensor | np.ndarray) -> None:
    """Raise Mask2HandError when `value` holds NaN or inf."""
    finite = torch.isfinite(value).all() if torch.is_tensor(value) else np.isfinite(value).all()
    if not bool(finite):
        raise Mask2HandError(f"{name} contains NaN or inf values; check the hand parameters / camera that produced them")
