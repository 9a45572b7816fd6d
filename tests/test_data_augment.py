"""Augmentation keeps the 3D truth consistent with the mask: re-rendering gives the warped mask back."""

import math

import numpy as np
import pytest
import torch

from mask2hand.data.augment import (ANGLE_RANGE, SCALE_RANGE, camera_change, crop_change, rotation_about_z, transform_hand_params,
                                    transform_points, warp_mask)
from mask2hand.data.storage import open_dataset
from mask2hand.data.synthetic import PaperProtocol, generate_paper
from mask2hand.hand import load_hand_model
from mask2hand.render import rasterize_silhouette


def iou(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    path = generate_paper(tmp_path_factory.mktemp("aug") / "paper", hand="open", seed=1,
                          protocol=PaperProtocol(train_poses=3, test_poses=1))
    return open_dataset(path)


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open", num_pose_pcs=45, flat_hand_mean=True)


def test_identity_change_keeps_everything(small_set):
    K = small_set.arrays["K"][0]
    change = camera_change(K, (224, 224))
    np.testing.assert_allclose(change.K, K, rtol=1e-6)
    np.testing.assert_allclose(change.warp, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    assert iou(warp_mask(small_set.masks(0), change), small_set.masks(0)) > 0.99


def test_rotation_about_principal_point_equals_rotation_about_z():
    K = np.array([[500.0, 0, 112], [0, 500.0, 112], [0, 0, 1]])
    change = camera_change(K, (224, 224), angle=0.7, scale=1.0)
    point = np.array([0.03, -0.02, 0.5])
    uv = K @ point
    uv2 = change.K @ (change.rotation @ point)
    # the image point rotated by the angle about (cx, cy)
    c, s = math.cos(0.7), math.sin(0.7)
    d = uv[:2] / uv[2] - 112
    np.testing.assert_allclose(uv2[:2] / uv2[2], 112 + np.array([c * d[0] - s * d[1], s * d[0] + c * d[1]]))
    np.testing.assert_allclose(rotation_about_z(0.7) @ rotation_about_z(-0.7), np.eye(3), atol=1e-12)


@pytest.mark.parametrize("out_size", [None, (128, 128)])
def test_rerendered_transformed_mesh_matches_warped_mask(small_set, hand, out_size):
    rng = np.random.default_rng(0)
    n = len(small_set)
    scores = []
    for i in range(n):
        angle, scale = rng.uniform(*ANGLE_RANGE), rng.uniform(*SCALE_RANGE)
        change = camera_change(small_set.arrays["K"][i], (224, 224), angle, scale, out_size)
        warped = warp_mask(small_set.masks(i), change)
        vertices = transform_points(np.asarray(small_set.arrays["vertices"][i]), change)
        rendered = rasterize_silhouette(vertices[None], hand.faces, change.K[None], change.image_size)[0]
        scores.append(iou(warped, rendered))
    assert min(scores) >= 0.97, scores
    if out_size is not None:
        assert change.K[0, 2] == pytest.approx(64.0) and warped.shape == (128, 128)


def test_transformed_params_reproduce_the_transformed_hand(small_set, hand):
    a = small_set.arrays
    change = camera_change(a["K"][0], (224, 224), angle=2.5, scale=1.05)
    go, tr = transform_hand_params(a["global_orient"][0], a["transl"][0], a["joints"][0][0], change)
    with torch.inference_mode():
        out = hand(torch.from_numpy(go[None]).float(), torch.from_numpy(tr[None]).float(),
                   hand_pose=torch.from_numpy(np.array(a["pose"][0:1])),
                   betas=torch.from_numpy(np.array(a["betas"][0:1])))
    np.testing.assert_allclose(out.vertices[0].numpy(), transform_points(np.asarray(a["vertices"][0]), change),
                               atol=2e-5)
    np.testing.assert_allclose(out.joints[0].numpy(), transform_points(np.asarray(a["joints"][0]), change), atol=2e-5)


def test_crop_change_maps_pixels_as_its_K_projects(small_set, hand):
    K = small_set.arrays["K"][:2].astype(np.float64)
    change = camera_change(K, (224, 224), angle=np.array([0.4, -1.2]), scale=np.array([1.05, 0.95]), out_size=(96, 96))
    windows = np.array([[10.0, 20.0, 50.0], [-5.0, 30.0, 70.0]])
    cropped = crop_change(change, windows, 64)
    assert cropped.image_size == (64, 64)
    np.testing.assert_array_equal(cropped.rotation, change.rotation)
    points = np.array([[0.02, -0.01, 0.5], [-0.03, 0.04, 0.6]])
    for b in range(2):
        source = points @ K[b].T
        source_px = source[:, :2] / source[:, 2:]
        moved = transform_points(points, cropped[b]) @ cropped.K[b].T
        target_px = moved[:, :2] / moved[:, 2:]
        # the pixel map acts on pixel indices: continuous coordinate = index + 0.5
        index = source_px - 0.5
        mapped = index @ cropped.warp[b][:, :2].T + cropped.warp[b][:, 2] + 0.5
        np.testing.assert_allclose(mapped, target_px, atol=1e-9)
        # the window's corner lands on the crop's corner
        corner = (windows[b, :2] - change.K[b][:2, 2]) / change.K[b][[0, 1], [0, 1]]
        at_corner = transform_points(np.array([[*corner, 1.0]]) @ np.linalg.inv(change.rotation[b]).T, cropped[b])
        np.testing.assert_allclose((at_corner @ cropped.K[b].T)[0, :2], [0.0, 0.0], atol=1e-9)
