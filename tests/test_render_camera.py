"""Cameras: the pixel convention, projection round trip, the near plane."""

import numpy as np
import pytest
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.render import NEAR_Z, project, rasterize_silhouette, render_soft_silhouette, unproject
from mask2hand.render.exact import project_for_rendering


def test_projection_follows_the_guide_convention():
    K = torch.tensor([[[100.0, 0.0, 112.0], [0.0, 120.0, 112.0], [0.0, 0.0, 1.0]]])
    points = torch.tensor([[[0.0, 0.0, 1.0], [0.1, -0.2, 2.0]]])
    uv = project(points, K)
    assert torch.allclose(uv[0, 0], torch.tensor([112.0, 112.0]))  # the principal point: the image center
    assert torch.allclose(uv[0, 1], torch.tensor([112.0 + 100 * 0.05, 112.0 - 120 * 0.1]))  # +x right, +y down


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_unproject_inverts_project(dtype):
    gen = torch.Generator().manual_seed(0)
    K = torch.tensor([[500.0, 2.0, 100.0], [0.0, 480.0, 90.0], [0.0, 0.0, 1.0]], dtype=dtype).repeat(3, 1, 1)
    points = torch.rand(3, 50, 3, generator=gen, dtype=dtype) - 0.5
    points[..., 2] += 1.0
    uv = project(points, K)
    back = unproject(uv, points[..., 2], K)
    assert back.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(back, points, atol=tol)
    assert torch.allclose(project(back, K), uv, atol=tol * 1e3)


def test_projection_rejects_bad_shapes():
    with pytest.raises(Mask2HandError):
        project(torch.zeros(2, 5, 3), torch.eye(3).repeat(3, 1, 1))
    with pytest.raises(Mask2HandError):
        project(torch.zeros(2, 5, 2), torch.eye(3).repeat(2, 1, 1))


def test_faces_behind_the_near_plane_are_dropped_not_wrapped():
    # A big triangle crossing z = 0: projecting its vertex behind the camera would flip it
    # to the other side of the image and cover pixels it never covers.
    K = torch.tensor([[[20.0, 0.0, 16.0], [0.0, 20.0, 16.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    vertices = torch.tensor([[[-0.3, -0.3, 1.0], [0.3, -0.3, 1.0], [0.0, 0.5, -0.5],  # crossing face
                              [-0.2, 0.1, 1.0], [0.0, 0.1, 1.0], [-0.1, 0.3, 1.0],  # a small face in front
                              [0.1, 0.1, NEAR_Z], [0.2, 0.1, 1.0], [0.1, 0.2, 1.0]]],  # a vertex on the plane
                            dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
    _, valid = project_for_rendering(vertices, faces, K)
    assert valid.tolist() == [[False, True, False]]
    mask = rasterize_silhouette(vertices, faces, K, (32, 32))
    only_front = rasterize_silhouette(vertices, faces[1:2], K, (32, 32))
    assert only_front.any()
    assert np.array_equal(mask, only_front)
    for mode in ("contour", "faces"):
        v = vertices.clone().requires_grad_(True)
        soft = render_soft_silhouette(v, faces, K, (32, 32), mode=mode)
        soft_front = render_soft_silhouette(vertices, faces[1:2], K, (32, 32), mode=mode)
        assert torch.allclose(soft, soft_front)
        soft.sum().backward()
        assert torch.isfinite(v.grad).all()
        assert (v.grad[0, [2, 6]] == 0).all()  # vertices of dropped faces get no gradient
