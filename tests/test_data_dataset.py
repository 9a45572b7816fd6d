"""The torch Dataset: sample layout, resolution, augmentation consistency, determinism, batching."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mask2hand.data.dataset import AugmentConfig, CropConfig, HandBatch, MaskDataset, SensorConfig, collate_samples
from mask2hand.data.noise import NoiseConfig
from mask2hand.data.synthetic import PaperProtocol, generate_paper
from mask2hand.hand import load_hand_model
from mask2hand.render import rasterize_silhouette


@pytest.fixture(scope="module")
def paper_path(tmp_path_factory):
    return generate_paper(tmp_path_factory.mktemp("ds") / "paper", hand="open", seed=2,
                          protocol=PaperProtocol(train_poses=4, test_poses=2))


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open", num_pose_pcs=45, flat_hand_mean=True)


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / max((a | b).sum(), 1)


def test_sample_layout(paper_path, hand):
    ds = MaskDataset(paper_path, split="train")
    assert len(ds) == 20
    s = ds[3]
    assert s.mask.shape == (224, 224) and s.mask.dtype == torch.float32
    assert set(torch.unique(s.mask).tolist()) == {0.0, 1.0}
    assert s.K.shape == (3, 3) and s.joints.shape == (21, 3) and s.vertices.shape == (hand.num_vertices, 3)
    assert s.distance_field.shape == (224, 224) and s.distance_field.dtype == torch.float32
    assert s.params.pose.shape == (45,) and s.params.betas.shape == (10,)
    assert s.index == 3
    # the mask is the exact rendering of the stored mesh
    rendered = rasterize_silhouette(s.vertices[None], hand.faces, s.K[None], (224, 224))[0]
    np.testing.assert_array_equal(rendered, s.mask.numpy().astype(bool))
    test = MaskDataset(paper_path, split="test")
    assert len(test) == 10 and test[0].index == 20


def test_resolution_scales_K(paper_path, hand):
    full = MaskDataset(paper_path, split="train")[5]
    low = MaskDataset(paper_path, split="train", resolution=128)[5]
    assert low.mask.shape == (128, 128) and low.distance_field.shape == (128, 128)
    np.testing.assert_allclose(low.K[:2].numpy(), full.K[:2].numpy() * 128 / 224, rtol=1e-6)
    assert torch.equal(low.vertices, full.vertices)
    rendered = rasterize_silhouette(low.vertices[None], hand.faces, low.K[None], (128, 128))[0]
    assert iou(rendered, low.mask.numpy()) >= 0.95


def test_augmentation_is_consistent_and_deterministic(paper_path, hand):
    ds = MaskDataset(paper_path, split="train", augment=True, seed=7)
    plain = MaskDataset(paper_path, split="train")
    for i in range(0, 20, 4):
        s = ds[i]
        rendered = rasterize_silhouette(s.vertices[None], hand.faces, s.K[None], (224, 224))[0]
        assert iou(rendered, s.mask.numpy()) >= 0.97
        with torch.inference_mode():
            out = hand(s.params.global_orient[None], s.params.transl[None], hand_pose=s.params.pose[None],
                       betas=s.params.betas[None])
        np.testing.assert_allclose(out.vertices[0].numpy(), s.vertices.numpy(), atol=3e-5)
    a, b = ds[1], MaskDataset(paper_path, split="train", augment=True, seed=7)[1]
    assert torch.equal(a.mask, b.mask) and torch.equal(a.vertices, b.vertices)
    assert not torch.equal(a.vertices, plain[1].vertices)
    ds.set_epoch(1)
    assert not torch.equal(ds[1].vertices, a.vertices)
    narrow = MaskDataset(paper_path, split="train", augment=AugmentConfig(angle_range=(0.0, 1e-9),
                                                                          scale_range=(1.0, 1.0 + 1e-9)))
    assert iou(narrow[2].mask.numpy(), plain[2].mask.numpy()) > 0.99


def test_one_view_per_pose(paper_path):
    ds = MaskDataset(paper_path, split="train", one_view_per_pose=True)
    assert len(ds) == 4
    seen = set()
    for epoch in range(12):
        ds.set_epoch(epoch)
        s = ds[2]
        assert 10 <= s.index < 15  # the views of pose 2
        seen.add(s.index)
    assert len(seen) > 1


def test_noise_changes_the_input_and_its_distance_field(paper_path):
    clean = MaskDataset(paper_path, split="train")[0]
    noisy = MaskDataset(paper_path, split="train", noise=NoiseConfig(kinds=("dilate",), severities=(3,)))[0]
    assert noisy.mask.sum() > clean.mask.sum()
    assert not torch.equal(noisy.distance_field, clean.distance_field)
    assert torch.equal(noisy.vertices, clean.vertices)


def test_dataloader_batches(paper_path):
    ds = MaskDataset(paper_path, split="train", augment=True, resolution=96)
    loader = DataLoader(ds, batch_size=8, shuffle=False, collate_fn=collate_samples)
    batch = next(iter(loader))
    assert isinstance(batch, HandBatch) and len(batch) == 8
    assert batch.mask.shape == (8, 96, 96) and batch.K.shape == (8, 3, 3) and batch.joints.shape == (8, 21, 3)
    assert batch.params.global_orient.shape == (8, 3) and batch.index.tolist() == list(range(8))
    moved = batch.to("cpu")
    assert moved.distance_field.shape == (8, 96, 96)


def test_hand_rotated_out_of_the_image_is_kept_unrotated(tmp_path):
    from mask2hand.data.storage import ArraySpec, DatasetWriter

    masks = np.zeros((1, 64, 64), bool)
    masks[0, 1:5, 1:5] = True  # a blob in the corner leaves the image under a 45 degree turn
    specs = {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"),
             "vertices": ArraySpec((5, 3), "float32")}
    K = np.array([[[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]], np.float32)
    with DatasetWriter(tmp_path / "corner", 1, (64, 64), specs) as writer:
        writer.write(0, masks=masks, K=K, joints=np.ones((1, 21, 3), np.float32),
                     vertices=np.ones((1, 5, 3), np.float32))
        writer.finish({"generator": "test"})
    ds = MaskDataset(tmp_path / "corner", augment=AugmentConfig(angle_range=(0.78, 0.79)))
    s = ds[0]
    np.testing.assert_array_equal(s.mask.numpy(), masks[0])
    np.testing.assert_allclose(s.K.numpy(), K[0])
    assert torch.equal(s.joints, torch.ones(21, 3))


def test_crop_centres_the_hand_and_keeps_the_camera_consistent(paper_path, hand):
    margin = 1.25
    ds = MaskDataset(paper_path, split="train", augment=True, resolution=64, crop=CropConfig(margin=margin), seed=3)
    full = MaskDataset(paper_path, split="train", augment=True, seed=3)
    for i in range(4):
        s, f = ds[i], full[i]
        assert s.mask.shape == (64, 64)
        # same augmentation draws: the 3-D truth is the same; only the pixels' frame changed
        torch.testing.assert_close(s.vertices, f.vertices)
        rendered = rasterize_silhouette(s.vertices[None], hand.faces, s.K[None], (64, 64))[0]
        assert iou(rendered, s.mask.numpy()) >= 0.93
        rows, cols = np.nonzero(s.mask.numpy())
        extent = max(rows.max() + 1 - rows.min(), cols.max() + 1 - cols.min())
        assert abs(extent - 64 / margin) <= 2.5
        centre = (0.5 * (rows.min() + rows.max() + 1), 0.5 * (cols.min() + cols.max() + 1))
        assert max(abs(centre[0] - 32), abs(centre[1] - 32)) <= 2.0


def test_crop_jitter_moves_and_scales_the_window(paper_path):
    plain = MaskDataset(paper_path, split="train", resolution=64, crop=CropConfig())
    jittered = MaskDataset(paper_path, split="train", resolution=64,
                           crop=CropConfig(jitter_shift=0.1, jitter_scale=(0.8, 1.2)))
    changed = [not torch.equal(plain[i].K, jittered[i].K) for i in range(4)]
    assert all(changed)
    with pytest.raises(Exception, match="square"):
        MaskDataset(paper_path, split="train", resolution=(64, 48), crop=CropConfig())


@pytest.mark.parametrize("kind", ["erode", "dilate"])
def test_noisy_crop_is_what_predict_makes_of_the_noisy_image(paper_path, kind):
    from mask2hand.data.noise import apply_noise
    from mask2hand.image.masks import resample_masks

    noise = NoiseConfig(kinds=(kind,), severities=(3,))
    cropped = MaskDataset(paper_path, split="train", resolution=48, crop=CropConfig(), noise=noise)
    image = MaskDataset(paper_path, split="train")
    for i in range(3):
        s, f = cropped[i], image[i]
        # the noise acts in the image frame, at its size relative to the hand there; the window
        # is then found from the noisy mask, exactly as predict and evaluation find it
        noisy = apply_noise(f.mask.numpy(), kind, 3)
        expected, K = resample_masks(noisy[None], f.K.numpy()[None], 48, CropConfig().margin)
        np.testing.assert_array_equal(s.mask.numpy(), expected[0])
        np.testing.assert_allclose(s.K.numpy(), K[0], rtol=1e-6)
    clean = MaskDataset(paper_path, split="train", resolution=48, crop=CropConfig())[0]
    # erosion shrinks the hand's box, so the window is smaller and the focal length in it longer
    assert (cropped[0].K[0, 0] > clean.K[0, 0]) == (kind == "erode")


def test_specks_do_not_move_the_hand_window(paper_path):
    from mask2hand.image.masks import resample_masks

    sample = MaskDataset(paper_path, split="test")[0]
    mask, K = sample.mask.numpy(), sample.K.numpy()[None]
    specked = mask.copy()
    specked[1, 1] = specked[-2, -2] = 1
    clean_input, clean_K = resample_masks(mask[None], K, 48, 1.25)
    specked_input, specked_K = resample_masks(specked[None], K, 48, 1.25)
    np.testing.assert_array_equal(specked_input, clean_input)
    np.testing.assert_allclose(specked_K, clean_K)


def test_sensor_samples_are_what_evaluation_makes_of_a_sensor_image(paper_path):
    from mask2hand.image.masks import resample_masks
    from mask2hand.errors import Mask2HandError

    sensed = MaskDataset(paper_path, split="train", resolution=48, crop=CropConfig(),
                         sensor=SensorConfig(sizes=(32,), probability=1.0))
    at_32 = MaskDataset(paper_path, split="train", resolution=32)
    full = MaskDataset(paper_path, split="train", resolution=48, crop=CropConfig())
    for i in range(3):
        s, f = sensed[i], at_32[i]
        expected, K = resample_masks(f.mask.numpy()[None], f.K.numpy()[None], 48, CropConfig().margin)
        np.testing.assert_array_equal(s.mask.numpy(), expected[0])
        np.testing.assert_allclose(s.K.numpy(), K[0], rtol=1e-6)
        torch.testing.assert_close(s.vertices, f.vertices)
    assert not np.array_equal(sensed[0].mask.numpy(), full[0].mask.numpy())
    half = MaskDataset(paper_path, split="train", resolution=48, crop=CropConfig(),
                       sensor=SensorConfig(sizes=(32,), probability=0.5))
    kinds = {bool(np.array_equal(half[i].mask.numpy(), full[i].mask.numpy())) for i in range(len(half))}
    assert kinds == {True, False}
    with pytest.raises(Mask2HandError, match="cropping network"):
        MaskDataset(paper_path, split="train", resolution=48, sensor=SensorConfig())
    with pytest.raises(Mask2HandError, match="at least 8"):
        SensorConfig(sizes=(4,))
