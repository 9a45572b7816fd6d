"""The Camera type: projection and its inverse, the cameras of resampled and mirrored images, checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mask2hand.errors import CameraError
from mask2hand.image.camera import Camera, project_points, unproject_points

SKEWED = np.array([[300.0, 2.0, 70.0], [0.0, 310.0, 50.0], [0.0, 0.0, 1.0]])


def test_unproject_inverts_project_for_numpy_and_torch():
    camera = Camera(SKEWED, (100, 140))
    points = np.random.default_rng(0).uniform(-0.1, 0.1, size=(5, 3)) + [0.0, 0.0, 0.6]
    back = camera.unproject(camera.project(points), points[:, 2])
    np.testing.assert_allclose(back, points, atol=1e-12)
    as_tensors = unproject_points(torch.from_numpy(camera.project(points)), torch.from_numpy(points[:, 2]),
                                  torch.from_numpy(SKEWED))
    np.testing.assert_allclose(as_tensors.numpy(), points, atol=1e-12)
    # batched intrinsics broadcast over the points
    np.testing.assert_allclose(project_points(points[None], SKEWED[None]), camera.project(points)[None])


def test_a_mapped_camera_sees_points_where_the_pixel_map_puts_them():
    camera = Camera(SKEWED, (100, 140))
    pixel_map = np.array([[0.5, 0.0, 4.0], [0.0, 0.5, -3.0], [0.0, 0.0, 1.0]])  # halve, then shift
    mapped = camera.mapped(pixel_map, (50, 70))
    points = np.array([[0.01, -0.02, 0.5], [0.05, 0.03, 0.8]])
    uv = camera.project(points)
    expected = uv * 0.5 + [4.0, -3.0]
    np.testing.assert_allclose(mapped.project(points), expected, atol=1e-12)
    assert mapped.image_size == (50, 70)


def test_mirroring_twice_gives_the_camera_back():
    camera = Camera(SKEWED, (100, 140))
    twice = camera.mirrored().mirrored()
    np.testing.assert_allclose(twice.K, camera.K)
    assert camera.mirrored().K[0, 2] == pytest.approx(140 - 70) and camera.mirrored().K[0, 1] == -2.0


def test_centered_cameras_and_what_is_refused():
    camera = Camera.centered((100, 300), 500.0)
    np.testing.assert_allclose(camera.K[:2, 2], [150.0, 50.0])
    for focal in (0.0, -1.0, float("nan")):
        with pytest.raises(CameraError, match="focal length"):
            Camera.centered((10, 10), focal)
    with pytest.raises(CameraError):
        Camera(np.eye(2), (10, 10))
    with pytest.raises(CameraError, match="at least one pixel"):
        Camera(SKEWED, (0, 10))
    with pytest.raises(CameraError, match="field of view"):
        Camera(np.diag([1e30, 1e30, 1.0]), (100, 100)).check_plausible()
    with pytest.raises(CameraError, match="principal point"):
        Camera(np.array([[200.0, 0, 1e9], [0, 200.0, 48], [0, 0, 1.0]]), (100, 100)).check_plausible()
    assert Camera(SKEWED, (100, 140)).check_plausible().image_size == (100, 140)
