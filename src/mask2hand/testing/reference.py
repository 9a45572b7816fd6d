"""The dense reference soft silhouette: every pixel against every face, no cutoff.

The naive SoftRas formulation, for tests and for the benchmark's speed-up ratio. Pixels
are processed in chunks under activation checkpointing, so memory stays bounded while
the result remains differentiable (the backward pass recomputes each chunk).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from mask2hand.render.exact import project_for_rendering
from mask2hand.render.geometry import triangle_signed_dist2
from mask2hand.render.soft import check_mesh_inputs, resolve_sigma


def _chunk_silhouette(tri: torch.Tensor, valid: torch.Tensor, px: torch.Tensor, py: torch.Tensor,
                      sigma: float) -> torch.Tensor:
    """1 - prod_f (1 - D) for pixel centers (P,) against triangles tri (F,3,2) with valid (F,)."""
    corners = [tri[:, k, i].unsqueeze(0) for k in range(3) for i in range(2)]  # each (1,F)
    dist = triangle_signed_dist2(px.unsqueeze(1), py.unsqueeze(1), *corners)  # (P,F)
    log_keep = torch.nn.functional.softplus(-dist / sigma) * valid
    return -torch.expm1(-log_keep.sum(1))


def render_soft_silhouette_dense(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
                                 image_size: tuple[int, int], sigma: float | None = None,
                                 chunk_pixels: int = 128) -> torch.Tensor:
    """Soft silhouettes (B,H,W) by the dense formula (see module docstring); slow."""
    image_size = (int(image_size[0]), int(image_size[1]))
    height, width = image_size
    sigma = resolve_sigma(sigma, image_size)
    faces, K = check_mesh_inputs(vertices, faces, K)
    uv, face_valid = project_for_rendering(vertices, faces, K)
    rows, cols = torch.meshgrid(torch.arange(height, device=uv.device), torch.arange(width, device=uv.device),
                                indexing="ij")
    px, py = cols.reshape(-1).to(uv.dtype) + 0.5, rows.reshape(-1).to(uv.dtype) + 0.5
    images = []
    for b in range(uv.shape[0]):
        tri = uv[b, faces]
        valid = face_valid[b].to(uv.dtype)
        parts = []
        for start in range(0, height * width, chunk_pixels):
            sl = slice(start, start + chunk_pixels)
            if tri.requires_grad:
                parts.append(checkpoint(_chunk_silhouette, tri, valid, px[sl], py[sl], sigma, use_reentrant=False))
            else:
                parts.append(_chunk_silhouette(tri, valid, px[sl], py[sl], sigma))
        images.append(torch.cat(parts).view(height, width))
    return torch.stack(images)
