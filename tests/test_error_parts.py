"""mask2hand.evaluation.error_parts: each step removes exactly the part it names."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.evaluation.error_parts import ErrorPartsAccumulator, per_answer_parts
from mask2hand.losses.procrustes import procrustes_align


def _hands(count: int = 4, seed: int = 0) -> torch.Tensor:
    """(count,21,3) point sets about 10 cm across, 50 cm in front of the camera."""
    rng = np.random.default_rng(seed)
    points = rng.normal(scale=0.04, size=(count, 21, 3))
    points[..., 2] += 0.5
    return torch.from_numpy(points)


def _turn(degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    return torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]],
                        dtype=torch.float64)


def _about_centroid(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    centre = points.mean(dim=1, keepdim=True)
    return (points - centre) @ matrix.mT + centre


def test_a_moved_answer_is_all_translation_split_into_image_plane_and_depth():
    target = _hands()
    rows = per_answer_parts(target + torch.tensor([0.03, 0.04, 0.12], dtype=torch.float64), target)
    raw, translated, rotated, scaled, offset, offset_xy, offset_depth = rows.T
    assert torch.allclose(raw, torch.full_like(raw, 0.13))
    assert translated.abs().max() < 1e-12 and rotated.abs().max() < 1e-9 and scaled.abs().max() < 1e-7  # PA keeps a tiny norm epsilon
    assert torch.allclose(offset, torch.full_like(raw, 0.13))
    assert torch.allclose(offset_xy, torch.full_like(raw, 0.05)) and torch.allclose(offset_depth, torch.full_like(raw, 0.12))


def test_a_turned_answer_is_removed_by_the_rotation_step_and_a_resized_one_by_the_scale_step():
    target = _hands()
    turned = per_answer_parts(_about_centroid(target, _turn(30.0)), target)
    assert turned[:, 1].min() > 0.01 and turned[:, 2].abs().max() < 1e-9 and turned[:, 4].abs().max() < 1e-12
    resized = per_answer_parts(_about_centroid(target, 1.2 * torch.eye(3, dtype=torch.float64)), target)
    assert resized[:, 2].min() > 0.002 and resized[:, 3].abs().max() < 1e-7


def test_the_rotation_is_proper_even_when_a_mirror_fits_better():
    target = _hands(count=2)
    mirrored = target * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    centred = [points - points.mean(dim=1, keepdim=True) for points in (mirrored, target)]
    rotation = procrustes_align(*centred, allow_reflection=False).rotation  # the rotation step's
    assert torch.allclose(torch.linalg.det(rotation), torch.ones(2, dtype=torch.float64))
    rows = per_answer_parts(mirrored, target)
    assert (rows[:, 2] > rows[:, 3] + 1e-3).all()  # the metric's alignment may mirror, the rotation may not


def test_the_accumulator_averages_answers_over_batches_in_cm():
    target = _hands(count=6)
    pred = _about_centroid(target, _turn(20.0)) + torch.tensor([0.0, 0.0, 0.02], dtype=torch.float64)
    parts = ErrorPartsAccumulator()
    parts.update(pred[:4].float(), target[:4].float())
    parts.update(pred[4:].numpy(), target[4:].numpy())
    result = parts.result()
    whole = per_answer_parts(pred, target).mean(dim=0) * 100
    assert result.count == 6
    assert result.mpjpe == pytest.approx(float(whole[0]), abs=1e-4)
    assert result.centroid_offset_depth == pytest.approx(2.0, abs=1e-4)
    with pytest.raises(Mask2HandError, match="no answers"):
        ErrorPartsAccumulator().result()
