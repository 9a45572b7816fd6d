"""Mask-process variety: anti-aliased cuts and JPEG files, deterministic, binary, only near the contour."""

import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from mask2hand.data.dataset import MaskDataset
from mask2hand.data.mask_process import MaskProcess, apply_mask_process, jpeg_roundtrip
from mask2hand.data.noise import NoiseConfig
from mask2hand.data.synthetic import PaperProtocol, generate_paper
from mask2hand.errors import Mask2HandError
from mask2hand.render import rasterize_silhouette
from mask2hand.testing.scenes import synthetic_scene

ANTIALIAS = MaskProcess(antialias=1.0)
JPEG = MaskProcess(jpeg=1.0)
BOTH = MaskProcess(antialias=1.0, jpeg=1.0)


@pytest.fixture(scope="module")
def masks():
    scene = synthetic_scene(3, (224, 224), seed=5)
    return rasterize_silhouette(scene.vertices, scene.faces, scene.K, (224, 224)).astype(np.uint8)


def contour_distance(mask):
    """Distance (px) of every pixel to the mask's contour (pixels of the other label)."""
    m = mask.astype(bool)
    return np.where(m, distance_transform_edt(m), distance_transform_edt(~m))


@pytest.mark.parametrize("process, reach", [(ANTIALIAS, 5.0), (JPEG, 12.0), (BOTH, 12.0)])
def test_deterministic_binary_and_near_the_contour(masks, process, reach):
    """(A JPEG of a binary mask at quality 60-95 rings by under 0.3 of the step: it may flip nothing.)"""
    changed_any = False
    for k, mask in enumerate(masks):
        out = apply_mask_process(mask, process, seed=k)
        assert out.dtype == np.uint8 and set(np.unique(out)) <= {0, 1} and out.shape == mask.shape
        assert np.array_equal(out, apply_mask_process(mask, process, seed=k))
        changed = out != mask
        changed_any |= bool(changed.any())
        assert contour_distance(mask)[changed].max(initial=0) <= reach  # 8x8 JPEG blocks reach a block's diagonal
        assert 0.9 < out.sum() / mask.sum() < 1.1
    if process.antialias:
        assert changed_any
        outs = [apply_mask_process(masks[0], process, seed=s) for s in range(6)]
        assert any(not np.array_equal(outs[0], o) for o in outs[1:])  # the draws differ between seeds


def test_the_image_border_is_no_edge():
    mask = np.zeros((64, 64), np.uint8)
    mask[20:, 10:30] = 1  # an arm leaving the image at the bottom
    out = apply_mask_process(mask, MaskProcess(antialias=1.0, blur_px=(1.5, 1.5), threshold=(0.7, 0.7)), 0)
    assert out[-1, 12:28].all()


def test_threshold_moves_the_contour(masks):
    low = MaskProcess(antialias=1.0, blur_px=(1.5, 1.5), threshold=(0.3, 0.3))
    high = MaskProcess(antialias=1.0, blur_px=(1.5, 1.5), threshold=(0.7, 0.7))
    a, b = apply_mask_process(masks[0], low, 0), apply_mask_process(masks[0], high, 0)
    assert a.sum() > masks[0].sum() > b.sum()  # a low cut grows the hand, a high one shrinks it
    assert np.all(a >= b)


def test_jpeg_roundtrip_is_a_real_jpeg(masks):
    soft = masks[0].astype(np.float32)
    low, high = jpeg_roundtrip(soft, 60), jpeg_roundtrip(soft, 95)
    assert np.abs(low - soft).max() > np.abs(high - soft).max() > 0  # quality matters, and it is lossy
    # on soft edges it moves the cut: a JPEG of an anti-aliased mask differs from the mask's own cut
    blurred = [apply_mask_process(m, MaskProcess(antialias=1.0), k) for k, m in enumerate(masks)]
    filed = [apply_mask_process(m, BOTH, k) for k, m in enumerate(masks)]
    assert any(not np.array_equal(a, b) for a, b in zip(blurred, filed))
    assert np.array_equal(jpeg_roundtrip(np.zeros((16, 16), np.float32), 60), np.zeros((16, 16), np.float32))


def test_off_and_empty_change_nothing(masks):
    assert np.array_equal(apply_mask_process(masks[0], MaskProcess(), 3), masks[0])
    empty = np.zeros((32, 32), np.uint8)
    assert np.array_equal(apply_mask_process(empty, BOTH, 0), empty)


def test_settings_are_checked():
    with pytest.raises(Mask2HandError, match="threshold"):
        MaskProcess(threshold=(0.2, 1.2))
    with pytest.raises(Mask2HandError, match="jpeg_quality"):
        MaskProcess(jpeg_quality=(50, 120))
    with pytest.raises(Mask2HandError, match="probability"):
        MaskProcess(jpeg=2.0)


def test_usable_in_the_dataset_noise_config(tmp_path):
    path = generate_paper(tmp_path / "p", seed=1, protocol=PaperProtocol(train_poses=2, test_poses=1))
    plain = MaskDataset(path, split="train").load_batch(list(range(10)))
    noise = NoiseConfig(kinds=(), process=BOTH)
    a = MaskDataset(path, split="train", noise=noise, seed=3).load_batch(list(range(10)))
    b = MaskDataset(path, split="train", noise=noise, seed=3).load_batch(list(range(10)))
    assert torch.equal(a.mask, b.mask) and not torch.equal(a.mask, plain.mask)
    assert set(torch.unique(a.mask).tolist()) <= {0.0, 1.0}
    # after the noise models: with both, draws still repeat per seed
    both = NoiseConfig(probability=1.0, process=ANTIALIAS)
    assert torch.equal(MaskDataset(path, noise=both, seed=4)[5].mask, MaskDataset(path, noise=both, seed=4)[5].mask)
    # a training recipe turns it on with an override
    from mask2hand.train.config import load_config

    config = load_config("cpu-default", ["data.noise.process.jpeg=0.5", "data.noise.process.antialias=0.5"])
    assert config.data.noise.process == MaskProcess(antialias=0.5, jpeg=0.5)
