"""Silhouette noise: deterministic per seed, stronger at higher severity, never empty."""

import cv2
import numpy as np
import pytest

from mask2hand.data.noise import NOISE_KINDS, NoiseConfig, apply_noise
from mask2hand.errors import Mask2HandError


def hand_like_mask(size=224, spread=10):
    """A palm and five fingers with gaps between them (what 'merge' should fill)."""
    m = np.zeros((size, size), np.uint8)
    s = size / 224
    cv2.ellipse(m, (int(112 * s), int(150 * s)), (int(38 * s), int(45 * s)), 0, 0, 360, 1, -1)
    for k, angle in enumerate((-40, -12, 0, 12, 24)):
        length = (55 if k == 0 else 70) * s
        base = np.array([112 + (k - 2) * (spread + 6), 120 if k else 160]) * s
        a = np.deg2rad(angle - 90)
        tip = base + length * np.array([np.cos(a), np.sin(a)])
        cv2.line(m, tuple(int(v) for v in base), tuple(int(v) for v in tip), 1, int(max(2, 12 * s)))
    return m


def change(a, b):
    return float((a != b).mean())


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_deterministic_per_seed(kind):
    mask = hand_like_mask()
    a = apply_noise(mask, kind, 2, seed=5)
    b = apply_noise(mask, kind, 2, seed=5)
    assert a.dtype == np.uint8 and a.shape == mask.shape and set(np.unique(a)) <= {0, 1}
    np.testing.assert_array_equal(a, b)
    if kind in ("jitter", "holes"):  # the random ones
        assert not np.array_equal(a, apply_noise(mask, kind, 2, seed=6))


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_higher_severity_changes_more(kind):
    mask = hand_like_mask()
    amounts = [np.mean([change(mask, apply_noise(mask, kind, s, seed=seed)) for seed in range(3)]) for s in (1, 2, 3)]
    assert 0 < amounts[0] < amounts[1] < amounts[2], amounts


def test_merge_fills_gaps_between_fingers():
    mask = hand_like_mask()
    closed = apply_noise(mask, "merge", 3)
    assert closed.sum() > mask.sum() and np.all(closed >= mask)


def test_empty_and_tiny_masks():
    empty = np.zeros((32, 32), np.uint8)
    assert apply_noise(empty, "jitter", 3).sum() == 0
    tiny = np.zeros((64, 64), np.uint8)
    tiny[30:32, 30:32] = 1
    out = apply_noise(tiny, "erode", 3)
    np.testing.assert_array_equal(out, tiny)  # eroded away -> the input is kept


def test_bad_arguments_and_config():
    with pytest.raises(Mask2HandError):
        apply_noise(hand_like_mask(), "blur", 1)
    with pytest.raises(Mask2HandError):
        apply_noise(hand_like_mask(), "erode", 4)
    with pytest.raises(Mask2HandError):
        NoiseConfig(kinds=("nope",))
    config = NoiseConfig(kinds=("erode", "dilate"), severities=(3,), probability=1.0)
    mask = hand_like_mask()
    out = config.apply(mask, np.random.default_rng(0))
    assert change(mask, out) > 0
    np.testing.assert_array_equal(NoiseConfig(probability=0.0).apply(mask, np.random.default_rng(0)), mask)
