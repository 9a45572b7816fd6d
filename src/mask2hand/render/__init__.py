"""Rendering: pinhole cameras, the exact silhouette rasterizer, the soft silhouette
renderer and the silhouette losses/metrics (`mask2hand.render.contour`)."""

from mask2hand.render.camera import NEAR_Z, project, unproject
from mask2hand.render.raster import rasterize_silhouette
from mask2hand.render.soft import (
    SoftSilhouetteRenderer,
    default_sigma,
    render_soft_silhouette,
)

__all__ = [
    "NEAR_Z",
    "SoftSilhouetteRenderer",
    "default_sigma",
    "project",
    "rasterize_silhouette",
    "render_soft_silhouette",
    "unproject",
]
