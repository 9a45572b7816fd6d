"""Silhouette losses and mask metrics on hand-made masks with known answers."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from mask2hand.errors import Mask2HandError
from mask2hand.render.contour import (
    contour_distance_field,
    contour_loss,
    contour_pixels,
    contour_term,
    silhouette_bce,
)
from mask2hand.render.exact import mask_dice, mask_iou


def test_contour_is_the_outer_ring_of_background_pixels():
    mask = np.zeros((7, 7), dtype=np.uint8)
    mask[3, 3] = 1
    ring = contour_pixels(mask)
    assert ring.sum() == 4
    assert ring[2, 3] and ring[4, 3] and ring[3, 2] and ring[3, 4]


def test_distance_field_of_a_single_pixel():
    mask = np.zeros((7, 7), dtype=np.uint8)
    mask[3, 3] = 255
    field = contour_distance_field(mask)
    assert field.dtype == np.float32 and field.shape == (7, 7)
    assert field[2, 3] == 0 and field[3, 3] == 1
    assert field[0, 0] == pytest.approx(math.hypot(2, 3))  # nearest contour pixels (2,3) and (3,2)
    assert field[6, 6] == pytest.approx(math.hypot(2, 3))


def test_distance_field_matches_an_exact_transform_on_a_batch():
    rng = np.random.default_rng(0)
    masks = np.zeros((2, 20, 24), dtype=bool)
    masks[0, 4:12, 5:19] = True
    masks[1] = rng.random((20, 24)) > 0.7
    fields = contour_distance_field(masks)
    for mask, field in zip(masks, fields):
        expected = distance_transform_edt(~contour_pixels(mask))
        assert np.allclose(field, expected, atol=1e-3)


def test_distance_field_rejects_masks_without_contour():
    with pytest.raises(Mask2HandError, match="no contour"):
        contour_distance_field(np.zeros((8, 8)))
    with pytest.raises(Mask2HandError, match="no contour"):
        contour_distance_field(np.ones((2, 8, 8)))


def test_contour_loss_of_a_single_soft_pixel():
    # One pixel at 0.49: binarized to 1 / (1 + e) = 0.2689 and kept (below 0.5); its Laplacian
    # is positive on its four neighbours only, tanh(0.2689) each.
    silhouette = torch.zeros(1, 9, 9, dtype=torch.float64)
    silhouette[0, 4, 4] = 0.49
    field = torch.arange(81, dtype=torch.float64).view(1, 9, 9)
    b = 1 / (1 + math.e)
    expected = math.tanh(b) * (field[0, 3, 4] + field[0, 5, 4] + field[0, 4, 3] + field[0, 4, 5]).item()
    loss = contour_loss(silhouette, field)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    term = contour_term(silhouette)
    assert term[0, 4, 4] == 0 and term[0, 3, 4] == pytest.approx(math.tanh(b))


def test_contour_loss_zeroes_values_above_one_half():
    # Step 3 read literally (and as in the reference code): binarized values above 0.5
    # are set to 0, so a confident pixel or a hard 0/1 silhouette has (almost) no contour.
    silhouette = torch.zeros(1, 9, 9, dtype=torch.float64)
    silhouette[0, 4, 4] = 0.6
    field = torch.ones(1, 9, 9, dtype=torch.float64)
    assert contour_loss(silhouette, field).item() < 1e-15
    hard = torch.zeros(1, 9, 9, dtype=torch.float64)
    hard[0, 2:7, 2:7] = 1.0
    assert contour_loss(hard, field).item() < 1e-15


def test_contour_loss_is_a_batch_mean_and_differentiable():
    silhouette = torch.zeros(2, 9, 9, dtype=torch.float64)
    silhouette[0, 4, 4] = 0.49
    silhouette[1, 2, 2] = 0.49
    field = torch.full((2, 9, 9), 2.0, dtype=torch.float64)
    one = contour_loss(silhouette[:1], field[:1]).item()
    two = contour_loss(silhouette, field).item()
    assert two == pytest.approx(one)  # same sum in each image: the mean equals each
    silhouette.requires_grad_(True)
    contour_loss(silhouette, field).backward()
    assert silhouette.grad[0, 4, 4] != 0 and torch.isfinite(silhouette.grad).all()


def test_silhouette_bce_known_values():
    mask = torch.zeros(1, 4, 4)
    mask[0, :2] = 1
    half = torch.full((1, 4, 4), 0.5)
    assert silhouette_bce(half, mask).item() == pytest.approx(math.log(2))
    sil = mask * 0.9 + (1 - mask) * 0.2
    expected = -(0.5 * math.log(0.9) + 0.5 * math.log(0.8))
    assert silhouette_bce(sil, mask).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(Mask2HandError):
        silhouette_bce(half, mask[:, :2])


def test_iou_and_dice_known_values():
    pred = np.zeros((3, 6, 6), dtype=bool)
    target = np.zeros((3, 6, 6), dtype=bool)
    pred[0, 1:3, 1:3] = True  # 4 pixels
    target[0, 1:3, 1:4] = True  # 6 pixels, 4 shared
    target[1, 0, 0] = True  # prediction empty
    iou = mask_iou(pred, target)  # image 2: both empty
    dice = mask_dice(torch.from_numpy(pred), torch.from_numpy(target).float())
    assert iou.tolist() == pytest.approx([4 / 6, 0.0, 1.0])
    assert dice.tolist() == pytest.approx([8 / 10, 0.0, 1.0])
    assert mask_iou(torch.from_numpy(target[:1]) * 0.7, target[:1]).item() == 1.0  # values > 0.5 are hand
