"""Forearms: a closed, smooth mesh joined at the wrist, anatomical limits, masks, reproducibility."""

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from mask2hand.data.dataset import CropConfig, MaskDataset
from mask2hand.data.forearm import (FOREARM_FACES, ForearmDraw, ForearmSettings, build_forearms, draw_forearms)
from mask2hand.data.hand_axes import hand_axes
from mask2hand.data.storage import open_dataset, unpack_masks
from mask2hand.data.synthetic import BroadCorpus, PaperProtocol, generate_broad, generate_paper
from mask2hand.errors import Mask2HandError
from mask2hand.hand import load_hand_model
from mask2hand.hand.prior import sample_pose_prior

ARMS = ForearmSettings(probability=1.0)


@pytest.fixture(scope="module")
def hands():
    """Eight prior hands of the open hand, randomly oriented, 0.5 m in front of the camera."""
    model = load_hand_model("open")
    rng = np.random.default_rng(3)
    orient = torch.from_numpy(rng.uniform(-1, 1, (8, 3)).astype(np.float32))
    pose = torch.as_tensor(sample_pose_prior(8, rng), dtype=torch.float32)
    with torch.inference_mode():
        out = model(orient, torch.tensor([[0.0, 0.0, 0.5]] * 8), hand_pose=pose)
    return out.vertices.numpy(), out.joints.numpy()


def test_mesh_is_closed_smooth_and_outward(hands):
    arms = build_forearms(*hands, draw_forearms(np.random.default_rng(0), 8, ARMS))
    assert arms.present.all()
    faces = FOREARM_FACES
    edges = Counter((int(a), int(b)) for f in faces for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])))
    # closed and consistently wound: every directed edge once, and its reverse once
    assert max(edges.values()) == 1 and all((b, a) in edges for a, b in edges)
    assert len(np.unique(faces)) == arms.vertices.shape[1]
    for v in arms.vertices.astype(np.float64):
        gaps = np.linalg.norm(v[:, None] - v[None], axis=-1) + np.eye(len(v))
        assert gaps.min() > 1e-4  # no duplicated (seam) vertices
        a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
        assert np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6 > 0  # outward normals enclose a positive volume
        normals = np.cross(b - a, c - a)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        by_edge = {}
        for k, f in enumerate(faces):
            for e in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
                by_edge.setdefault(tuple(sorted(e)), []).append(k)
        pairs = np.array(list(by_edge.values()))
        bend = np.degrees(np.arccos(np.clip((normals[pairs[:, 0]] * normals[pairs[:, 1]]).sum(1), -1, 1)))
        assert bend.max() < 40.0, bend.max()  # smooth: no crease, no box corner


def test_joined_at_the_wrist_with_anthropometric_sizes(hands):
    vertices, joints = hands
    arms = build_forearms(vertices, joints, draw_forearms(np.random.default_rng(1), 8, ARMS))
    nearest = np.linalg.norm(arms.vertices - joints[:, :1], axis=-1).min(1)
    assert nearest.max() < 0.003  # the wrist dome's pole is at the wrist joint
    assert np.all((arms.wrist_breadth > 0.05) & (arms.wrist_breadth < 0.07))  # the open hand's wrist, about 5.7 cm
    assert np.all((arms.wrist_depth > 0.025) & (arms.wrist_depth < arms.wrist_breadth))
    ratio = arms.elbow_breadth / arms.wrist_breadth
    assert np.all((ratio >= 1.2 - 1e-9) & (ratio <= 1.45 + 1e-9))
    # the arm's far part is broader than its wrist, in the elbow's range for adults
    assert np.all((arms.elbow_breadth > 0.065) & (arms.elbow_breadth < 0.095))


def test_wrist_angles_respect_the_limits(hands):
    vertices, joints = hands
    settings = ForearmSettings(probability=1.0, flexion_std_deg=200.0, deviation_std_deg=200.0)
    draw = draw_forearms(np.random.default_rng(2), 4000, settings)
    flexion, deviation = np.degrees(draw.flexion), np.degrees(draw.deviation)
    assert flexion.min() >= -70 and flexion.max() <= 80 and flexion.min() < -60 and flexion.max() > 70
    assert deviation.min() >= -20 and deviation.max() <= 30 and deviation.min() < -15 and deviation.max() > 25
    take = ForearmDraw(**{k: getattr(draw, k)[:8] for k in ForearmDraw.__dataclass_fields__ if k != "away_from_camera"})
    arms = build_forearms(vertices, joints, take)
    axes = hand_axes(joints)
    f = arms.direction
    # the applied angles, read back from the arm's axis in the hand's frame
    flex = -np.arcsin(np.sum(f * axes.dorsal, 1))
    dev = np.arctan2(-np.sum(f * axes.radial, 1), np.sum(f * axes.proximal, 1))
    np.testing.assert_allclose(flex, take.flexion, atol=1e-9)
    np.testing.assert_allclose(dev, take.deviation, atol=1e-9)
    # positive flexion bends the hand toward the palm: the arm leaves toward the palm side
    flexed = replace(take, flexion=np.full(8, np.radians(60.0)), deviation=np.zeros(8))
    assert np.all(np.sum(build_forearms(vertices, joints, flexed).direction * axes.dorsal, 1) < -0.8)


def test_length_zero_gives_no_arm_and_arms_stay_in_front(hands):
    vertices, joints = hands
    draw = draw_forearms(np.random.default_rng(4), 8, ARMS)
    assert not build_forearms(vertices, joints, replace(draw, length_fraction=np.zeros(8))).present.any()
    off = draw_forearms(np.random.default_rng(4), 8, ForearmSettings())
    assert not build_forearms(vertices, joints, off).present.any()
    # hands 12 cm from the camera with arms toward it: shortened, never behind the near plane
    shift = np.array([0.0, 0.0, 0.12]) - joints[:, 0]
    arms = build_forearms(vertices + shift[:, None], joints + shift[:, None], draw, near_z=0.05)
    assert arms.present.any() and arms.vertices[arms.present][..., 2].min() > 0.05


def test_settings_are_checked():
    with pytest.raises(Mask2HandError, match="probability"):
        ForearmSettings(probability=1.5)
    with pytest.raises(Mask2HandError, match="limits"):
        ForearmSettings(flexion_deg=(-120.0, 80.0))


@pytest.fixture(scope="module")
def armed(tmp_path_factory):
    corpus = BroadCorpus(train=10, val=0, test=4, forearm=ForearmSettings(probability=0.8))
    return generate_broad(tmp_path_factory.mktemp("arms") / "broad", seed=7, corpus=corpus)


def test_full_mask_contains_the_hand_mask_and_seeds_repeat(armed, tmp_path):
    ds = open_dataset(armed, verify=True)
    masks, hand = ds.masks(slice(None)).astype(bool), unpack_masks(np.asarray(ds.arrays["hand_mask"]), 224).astype(bool)
    assert np.all(masks | ~hand) and (masks & ~hand).any()
    assert ds.card["statistics"]["forearm_share"] > 0
    again = generate_broad(tmp_path / "again", seed=7, corpus=BroadCorpus(train=10, val=0, test=4,
                                                                          forearm=ForearmSettings(probability=0.8)))
    assert {k: e["sha256"] for k, e in open_dataset(again).card["arrays"].items()} == \
        {k: e["sha256"] for k, e in ds.card["arrays"].items()}
    # the arm is drawn on its own stream: the hands are those of the corpus without arms
    plain = open_dataset(generate_broad(tmp_path / "plain", seed=7, corpus=BroadCorpus(train=10, val=0, test=4)))
    assert not plain.has("hand_mask")
    np.testing.assert_array_equal(plain.arrays["vertices"], ds.arrays["vertices"])
    np.testing.assert_array_equal(plain.masks(slice(None)), hand.astype(np.uint8))


def test_dataset_exposes_the_hand_mask(armed, tmp_path):
    for crop in (None, CropConfig()):
        ds = MaskDataset(armed, split="train", augment=True, resolution=128, crop=crop, seed=1)
        batch = ds.load_batch(list(range(10)))
        assert batch.hand_mask.shape == batch.mask.shape == (10, 128, 128)
        assert torch.all(batch.mask >= batch.hand_mask) and set(torch.unique(batch.hand_mask).tolist()) <= {0.0, 1.0}
        assert ds[3].hand_mask.shape == (128, 128)
        assert batch.to("cpu").hand_mask is not None and batch.sample(2).hand_mask.shape == (128, 128)
    paper = generate_paper(tmp_path / "p", protocol=PaperProtocol(train_poses=1, test_poses=1))
    sample = MaskDataset(paper)[0]
    assert sample.hand_mask is None
    arms = generate_paper(tmp_path / "pa", protocol=PaperProtocol(train_poses=1, test_poses=1,
                                                                  forearm=ForearmSettings(probability=1.0)))
    assert open_dataset(arms).has("hand_mask")
    np.testing.assert_array_equal(MaskDataset(arms)[2].hand_mask.numpy(), MaskDataset(paper)[2].mask.numpy())
