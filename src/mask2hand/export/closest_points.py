"""Closest points between a point set and a triangle mesh (3-D, batched, torch): what the MANO
export matches its mesh to the prediction's with."""

from __future__ import annotations

import torch

CANDIDATE_FACES = 8
"""Triangles (the nearest by centroid) searched for each point's closest surface point."""


def closest_on_triangles(points: torch.Tensor, triangles: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For points (N,3), the closest point on a mesh's triangles (F,3,3): the triangle (N,) int64,
    its barycentric weights (N,3) and the distance (N,), units of the input. Only the
    CANDIDATE_FACES triangles with the nearest centroids are searched for each point."""
    k = min(CANDIDATE_FACES, triangles.shape[0])
    candidates = torch.cdist(points, triangles.mean(1)).topk(k, largest=False).indices  # (N,k)
    weights = closest_weights(points[:, None].expand(-1, k, -1), triangles[candidates])
    closest = (weights.unsqueeze(-1) * triangles[candidates]).sum(-2)
    distance = (closest - points[:, None]).norm(dim=-1)
    best = distance.argmin(1, keepdim=True)
    return (candidates.gather(1, best)[:, 0], weights.gather(1, best[..., None].expand(-1, -1, 3))[:, 0],
            distance.gather(1, best)[:, 0])


def closest_weights(points: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Barycentric weights (...,3) of the point of each triangle (...,3,3) closest to points (...,3).

    The projection onto the triangle's plane where it falls inside, else the nearest of the
    three edges' closest points; a degenerate (zero-area) triangle falls back to its edges.
    """
    a, b, c = triangles.unbind(-2)
    ab, ac, ap = b - a, c - a, points - a
    d00, d01, d11 = (ab * ab).sum(-1), (ab * ac).sum(-1), (ac * ac).sum(-1)
    d20, d21 = (ap * ab).sum(-1), (ap * ac).sum(-1)
    denom = d00 * d11 - d01 * d01
    area_ok = denom > 1e-12 * (d00 * d11).clamp_min(1e-30)
    safe = torch.where(area_ok, denom, torch.ones_like(denom))
    v, w = (d11 * d20 - d01 * d21) / safe, (d00 * d21 - d01 * d20) / safe
    inside = area_ok & (v >= 0) & (w >= 0) & (v + w <= 1)
    edges = [edge_weights(points, a, b, (0, 1)), edge_weights(points, b, c, (1, 2)),
             edge_weights(points, a, c, (0, 2))]
    stacked = torch.stack(edges, -2)  # (...,3 edges,3 weights)
    on_edges = (stacked.unsqueeze(-1) * triangles.unsqueeze(-3)).sum(-2)
    nearest = (on_edges - points.unsqueeze(-2)).norm(dim=-1).argmin(-1, keepdim=True)
    edge_best = stacked.gather(-2, nearest[..., None].expand(*nearest.shape, 3)).squeeze(-2)
    face = torch.stack([1 - v - w, v, w], -1)
    return torch.where(inside[..., None], face, edge_best)


def edge_weights(points: torch.Tensor, start: torch.Tensor, end: torch.Tensor,
                  corners: tuple[int, int]) -> torch.Tensor:
    """Barycentric weights (...,3) of the point of segment start-end (the triangle's corners
    `corners`) closest to points (...,3)."""
    direction = end - start
    length2 = (direction * direction).sum(-1)
    t = (((points - start) * direction).sum(-1) / length2.clamp_min(1e-30)).clamp(0, 1)
    weights = torch.zeros(*t.shape, 3, dtype=t.dtype, device=t.device)
    weights[..., corners[0]] = 1 - t
    weights[..., corners[1]] = t
    return weights
