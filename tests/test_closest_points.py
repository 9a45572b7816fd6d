"""Closest points on triangle meshes (mask2hand.export.closest_points) against dense sampling."""

from __future__ import annotations

import torch

from mask2hand.export.closest_points import closest_on_triangles


def test_closest_points_match_a_dense_sampling_of_the_triangles():
    generator = torch.Generator().manual_seed(0)
    triangles = torch.rand(6, 3, 3, generator=generator, dtype=torch.float64)
    triangles[5] = triangles[5, :1].expand(3, 3) + torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [0.2, 0, 0]],
                                                                 dtype=torch.float64)  # zero area: a segment
    points = torch.rand(40, 3, generator=generator, dtype=torch.float64) * 1.4 - 0.2
    face, weights, distance = closest_on_triangles(points, triangles)
    # barycentric weights are a convex combination, and they give the distance reported
    assert (weights >= -1e-12).all() and torch.allclose(weights.sum(-1), torch.ones(40, dtype=torch.float64))
    closest = (weights.unsqueeze(-1) * triangles[face]).sum(1)
    torch.testing.assert_close((closest - points).norm(dim=-1), distance)
    # no sample of any triangle is closer (up to the sampling's resolution)
    steps = torch.linspace(0, 1, 41, dtype=torch.float64)
    u, v = torch.meshgrid(steps, steps, indexing="ij")
    keep = (u + v) <= 1
    bary = torch.stack([1 - u[keep] - v[keep], u[keep], v[keep]], -1)  # (S,3)
    samples = torch.einsum("sk,fkd->fsd", bary, triangles).reshape(-1, 3)
    dense = torch.cdist(points, samples).min(1).values
    assert (distance <= dense + 1e-12).all() and (dense - distance < 0.03).all()
