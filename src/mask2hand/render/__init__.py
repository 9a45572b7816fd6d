"""Rendering: pinhole cameras, the exact silhouette rasterizer, the soft silhouette
renderer and the silhouette losses/metrics (`mask2hand.render.contour`).

The names below are imported on first use, so that the torch-free parts
(`mask2hand.render.exact`: projection, the exact rasterizer and IoU) can be used without torch.
"""

from __future__ import annotations

import importlib

from mask2hand.render.exact import NEAR_Z, mask_iou, rasterize_by_size, rasterize_silhouette

_LAZY = {
    "default_sigma": "soft",
    "project": "camera",
    "render_soft_silhouette": "soft",
    "unproject": "camera",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"mask2hand.render.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mask2hand.render' has no attribute {name!r}")


__all__ = ["NEAR_Z", "mask_iou", "rasterize_by_size", "rasterize_silhouette", *sorted(_LAZY)]
