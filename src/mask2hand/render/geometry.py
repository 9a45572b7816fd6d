"""2-D distance helpers shared by the soft renderers (pixel units, batched, differentiable)."""

from __future__ import annotations

import torch


def point_segment_dist2(px, py, ax, ay, bx, by) -> torch.Tensor:
    """Squared distance from points (px, py) to segments a-b, all 1-D or broadcastable; finite
    gradients for zero-length segments and points on the segment."""
    dx, dy = bx - ax, by - ay
    rx, ry = px - ax, py - ay
    length_sq = dx * dx + dy * dy
    t = ((rx * dx + ry * dy) / length_sq.clamp_min(1e-12)).clamp(0.0, 1.0)
    ex, ey = rx - t * dx, ry - t * dy
    return ex * ex + ey * ey


def triangle_signed_dist2(px, py, ax, ay, bx, by, cx, cy) -> torch.Tensor:
    """Signed squared distance (negative inside) from points (px, py) to triangles a-b-c
    (all arguments 1-D or broadcastable). Zero-area triangles have no inside."""
    d2 = torch.minimum(torch.minimum(point_segment_dist2(px, py, ax, ay, bx, by),
                                     point_segment_dist2(px, py, bx, by, cx, cy)),
                       point_segment_dist2(px, py, cx, cy, ax, ay))
    with torch.no_grad():
        e0 = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
        e1 = (cx - bx) * (py - by) - (cy - by) * (px - bx)
        e2 = (ax - cx) * (py - cy) - (ay - cy) * (px - cx)
        inside = ((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0))
        area2 = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        inside &= area2 != 0
    return torch.where(inside, -d2, d2)


def expand_counts(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For items repeated counts[k] times: the owner k of each entry and its rank within its owner."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(owner), device=counts.device) - start.index_select(0, owner)
    return owner, rank
