"""Natural views and hand sources: the view distribution, framing, empty splits, Anny-like sources."""

import argparse
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from mask2hand.data.dataset import MaskDataset
from mask2hand.data.forearm import ForearmSettings
from mask2hand.data.hand_source import load_hand_source
from mask2hand.data.shape_variety import ShapeVariety
from mask2hand.data.storage import open_dataset
from mask2hand.data.synthetic import BroadCorpus, NaturalCorpus, generate_broad, generate_natural
from mask2hand.data.views import NaturalOrientation, rest_axes_of, sample_natural_orientations, view_angles
from mask2hand.errors import Mask2HandError
from mask2hand.hand import load_hand_model
from mask2hand.render import rasterize_silhouette

SMALL = NaturalCorpus(train=24, val=4, test=4)


@pytest.fixture(scope="module")
def natural(tmp_path_factory):
    return generate_natural(tmp_path_factory.mktemp("natural") / "nat", seed=0, corpus=SMALL)


def test_orientations_face_the_camera_with_fingers_up_to_sideways():
    source = load_hand_source("open")
    settings = NaturalOrientation()
    rotvec = sample_natural_orientations(np.random.default_rng(0), 2000, settings, rest_axes_of(source))
    posed = source(rotvec.astype(np.float32), np.zeros((2000, 45), np.float32), np.zeros((2000, 10), np.float32))
    joints = posed.joints + np.array([0.0, 0.0, 0.6], np.float32)
    K = np.tile(np.array([[500.0, 0, 112], [0, 500.0, 112], [0, 0, 1]]), (2000, 1, 1))
    angles = view_angles(joints, K)
    assert angles["facing_deg"].max() <= settings.cone_deg + 0.5
    back = angles["back_toward_camera_share"].mean()
    assert 0.45 < back < 0.55
    # uniform on the cap: the mean of cos(facing) is halfway between cos(cone) and 1
    assert abs(np.cos(np.radians(angles["facing_deg"])).mean() - (1 + np.cos(np.radians(settings.cone_deg))) / 2) < 0.01
    finger = angles["finger_angle_deg"]
    assert np.abs(finger).max() < 100.0 and np.abs(np.median(finger)) < 5.0  # never down
    assert (finger < -60).any() and (finger > 60).any()  # sideways both ways
    with pytest.raises(Mask2HandError, match="cone"):
        NaturalOrientation(cone_deg=120.0)


def test_natural_corpus_framing_arms_and_card(natural, tmp_path):
    ds = open_dataset(natural, verify=True)
    card = ds.card
    assert card["generator"] == "synthetic-natural" and card["counts"] == {"train": 24, "val": 4, "test": 4}
    for key in ("orientation", "camera", "size", "forearm", "shape_variety", "hand_params"):
        assert key in card["choices"]
    stats = card["statistics"]
    for key in ("palm_to_camera_deg", "facing_deg", "finger_angle_deg", "box_px", "forearm_pixel_fraction"):
        assert key in stats
    assert stats["facing_deg"]["max"] < 55.0 and 0.5 < stats["forearm_share"] <= 1.0
    a = {k: np.array(v) for k, v in ds.arrays.items()}
    f = a["K"][:, 0, 0]
    assert np.all((f >= 350) & (f < 700)) and np.all(a["K"][:, :2, 2] == 112)
    # FreiHAND-like framing of the hand: its box 100-170 px (up to perspective), near the center
    uvw = np.einsum("nij,nvj->nvi", a["K"].astype(np.float64), a["vertices"].astype(np.float64))
    uv = uvw[..., :2] / uvw[..., 2:]
    side = np.maximum(np.ptp(uv[..., 0], 1), np.ptp(uv[..., 1], 1))
    assert np.all((side > 90) & (side < 190))
    # the hand-only mask is the exact rendering of the stored hand; the mask adds the arm
    hand = load_hand_model("open")
    rendered = rasterize_silhouette(a["vertices"], hand.faces, a["K"], (224, 224))
    batch = MaskDataset(natural).load_batch(list(range(len(ds))))
    np.testing.assert_array_equal(batch.hand_mask.numpy().astype(bool), rendered)
    assert torch.all(batch.mask >= batch.hand_mask) and torch.any(batch.mask > batch.hand_mask)
    assert batch.params is not None and batch.params.betas.shape == (32, 10)


def test_empty_splits_and_the_command(tmp_path, capsys):
    from mask2hand.commands import synth

    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    args = parser.parse_args(["natural", "--out", str(tmp_path / "n"), "--count", "0", "--val-count", "0",
                              "--test-count", "6", "--seed", "2", "--forearm", "1", "--shape-variety", "0"])
    assert synth.run(args) == 0
    ds = open_dataset(tmp_path / "n")
    assert ds.card["counts"] == {"test": 6} and len(MaskDataset(tmp_path / "n", split="test")) == 6
    assert ds.card["sampling"]["corpus"]["forearm"]["probability"] == 1.0
    assert ds.card["choices"]["shape_variety"] == "none"
    assert "wrote" in capsys.readouterr().out
    # the test split does not depend on the others' sizes
    more = generate_natural(tmp_path / "more", seed=2, corpus=NaturalCorpus(
        train=3, val=0, test=6, forearm=ForearmSettings(probability=1.0, away_from_camera=True),
        shape_variety=ShapeVariety()))
    np.testing.assert_array_equal(open_dataset(more).arrays["vertices"][3:], ds.arrays["vertices"])
    np.testing.assert_array_equal(open_dataset(more).masks(slice(3, None)), ds.masks(slice(None)))
    with pytest.raises(Mask2HandError, match="at least one sample"):
        generate_natural(tmp_path / "none", corpus=NaturalCorpus(train=0, val=0, test=0))
    with pytest.raises(Mask2HandError, match="paper protocol"):
        synth.run(parser.parse_args(["paper", "--out", str(tmp_path / "p"), "--hand", "anny"]))


@dataclass(frozen=True)
class FakeOutput:
    vertices: torch.Tensor
    joints: torch.Tensor


class FakeAnnyHand:
    """A hand of AnnyHand's interface: the open hand scaled about its wrist by its shape's first value."""

    name = "fake-anny"
    asset_hash = "fake-0"
    flat_hand_mean = True
    num_shape = 2

    def __init__(self):
        self.layer = load_hand_model("open")
        self.faces = self.layer.faces
        self.num_vertices = self.layer.num_vertices

    def sample_shapes(self, rng, n):
        return rng.uniform(-1.0, 1.0, (n, self.num_shape)).astype(np.float32)

    def __call__(self, global_orient, transl, pose, shape):
        out = self.layer(global_orient, torch.zeros_like(transl), hand_pose=pose)
        wrist = out.joints[:, :1]
        scale = 1.0 + 0.1 * shape[:, :1, None]
        return FakeOutput(vertices=wrist + scale * (out.vertices - wrist) + transl[:, None],
                          joints=wrist + scale * (out.joints - wrist) + transl[:, None])

    def shape_card(self):
        return {"shape": ["scale", "unused"]}


def test_a_source_of_annys_interface(tmp_path):
    fake = FakeAnnyHand()
    path = generate_natural(tmp_path / "fake", hand=fake, seed=3, corpus=NaturalCorpus(train=8, val=0, test=2))
    ds = open_dataset(path)
    assert "betas" not in ds.arrays and ds.arrays["shape"].shape == (10, 2)
    assert ds.card["hand"]["name"] == "fake-anny" and ds.card["hand"]["source"].endswith("FakeAnnyHand")
    assert ds.card["hand"]["shape"] == {"shape": ["scale", "unused"]} and "betas" in ds.card["choices"]["hand_params"]
    sample = MaskDataset(path, split="train", augment=True)[0]
    assert sample.params is None and sample.hand_mask is not None and sample.joints.shape == (21, 3)
    # the stored inputs reproduce the hand (shape variety off)
    plain = generate_broad(tmp_path / "broad", hand=fake, seed=3, corpus=BroadCorpus(train=4, val=0, test=0))
    a = {k: torch.from_numpy(np.array(v)) for k, v in open_dataset(plain).arrays.items() if k != "masks"}
    with torch.inference_mode():
        out = fake(a["global_orient"], a["transl"], a["pose"], a["shape"])
    np.testing.assert_allclose(out.vertices.numpy(), a["vertices"].numpy(), atol=1e-5)


def test_anny_natural_samples(tmp_path):
    pytest.importorskip("anny")
    pytest.importorskip("mask2hand.data.anny")
    path = generate_natural(tmp_path / "anny", hand="anny", seed=0, corpus=NaturalCorpus(train=4, val=0, test=0))
    ds = open_dataset(path, verify=True)
    assert ds.card["hand"]["name"] == "anny" and "shape" in ds.arrays and "betas" not in ds.arrays
    batch = MaskDataset(path).load_batch([0, 1, 2, 3])
    assert batch.params is None and batch.mask.sum() > 0 and torch.all(batch.mask >= batch.hand_mask)
