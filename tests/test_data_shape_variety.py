"""Shape variety: off changes nothing, finger lengths within range, joints follow, smooth bounded offsets."""

from dataclasses import replace

import numpy as np
import pytest

from mask2hand.data.forearm import ForearmSettings
from mask2hand.data.hand_source import LayerHands
from mask2hand.data.shape_variety import (ShapeVariety, _vertex_normals, apply_shape_variety, bone_weights,
                                          draw_shape_variety)
from mask2hand.data.storage import open_dataset
from mask2hand.data.synthetic import BroadCorpus, PaperProtocol, generate_broad, generate_paper
from mask2hand.errors import Mask2HandError
from mask2hand.hand import load_hand_model
from mask2hand.hand.prior import sample_pose_prior

FINGERS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16), (17, 18, 19, 20))
NO_OFFSET = ShapeVariety(probability=1.0, offset_mm=(0.0, 0.0))
ONLY_OFFSET = ShapeVariety(probability=1.0, finger_length=(1.0, 1.0), finger_width=(1.0, 1.0), palm_width=(1.0, 1.0),
                           palm_thickness=(1.0, 1.0), offset_mm=(3.0, 3.0))


@pytest.fixture(scope="module")
def source():
    return LayerHands(load_hand_model("open"))


@pytest.fixture(scope="module")
def posed(source):
    rng = np.random.default_rng(0)
    n = 12
    out = source(rng.uniform(-2, 2, (n, 3)).astype(np.float32), sample_pose_prior(n, rng).astype(np.float32),
                 source.sample_shapes(rng, n))
    return out.vertices, out.joints


def finger_lengths(joints):
    return np.stack([np.linalg.norm(np.diff(joints[:, list(f)], axis=1), axis=-1).sum(1) for f in FINGERS], axis=1)


def vary(source, posed, settings, seed=1, geometric=False):
    draw = draw_shape_variety(np.random.default_rng(seed), len(posed[0]), settings)
    weights = None if geometric else source.skin_weights()
    return draw, apply_shape_variety(*posed, source.faces.numpy(), draw, weights, source.fingertip_vertices())


def test_off_changes_nothing(source, posed, tmp_path):
    draw, (v, j) = vary(source, posed, replace(NO_OFFSET, probability=0.0))
    assert not draw.present.any()
    assert np.array_equal(v, posed[0]) and np.array_equal(j, posed[1])
    # generators: variety (and forearms) off, whatever their other settings, give the default corpus bit for bit
    base = generate_broad(tmp_path / "base", seed=2, corpus=BroadCorpus(train=6, val=0, test=2))
    off = generate_broad(tmp_path / "off", seed=2, corpus=BroadCorpus(
        train=6, val=0, test=2, shape_variety=replace(ShapeVariety(), finger_length=(0.5, 0.6)),
        forearm=replace(ForearmSettings(), cut_probability=1.0)))
    digests = [{k: e["sha256"] for k, e in open_dataset(p).card["arrays"].items()} for p in (base, off)]
    assert digests[0] == digests[1]


def test_finger_lengths_scale_within_the_range_and_joints_follow(source, posed):
    draw, (v, j) = vary(source, posed, NO_OFFSET)
    ratio = finger_lengths(j) / finger_lengths(posed[1])
    np.testing.assert_allclose(ratio, draw.finger_length, rtol=1e-5)
    assert ratio.min() >= 0.9 - 1e-5 and ratio.max() <= 1.1 + 1e-5 and np.ptp(ratio) > 0.1
    # fingertip joints are the hand layer's tip vertices, moved with them
    np.testing.assert_array_equal(j[:, [4, 8, 12, 16, 20]], v[:, source.fingertip_vertices()])
    # the mesh follows its joints: the open hand's regressor finds the new joints on the new mesh
    import torch

    regressed = source.model.joints_from_vertices(torch.from_numpy(v)).numpy()
    before = source.model.joints_from_vertices(torch.from_numpy(posed[0])).numpy()
    assert np.abs(np.linalg.norm(regressed - j, axis=-1) - np.linalg.norm(before - posed[1], axis=-1)).max() < 0.002
    # the wrist stays; palm width moves the finger bases
    np.testing.assert_array_equal(j[:, 0], posed[1][:, 0])
    assert np.abs(j[:, 5] - posed[1][:, 5]).max() > 1e-4


def test_surface_offsets_are_smooth_and_bounded(source, posed):
    for geometric in (False, True):  # the layer's skinning weights, or weights from the joints alone
        draw, (v, j) = vary(source, posed, ONLY_OFFSET, geometric=geometric)
        moved = np.linalg.norm(v.astype(np.float64) - posed[0], axis=-1)
        assert moved.max() <= 0.003 + 1e-6 and moved.max() > 0.0029  # peak = the drawn 3 mm
        np.testing.assert_array_equal(j[:, :4], posed[1][:, :4])  # rig joints do not move with the surface
        faces = source.faces.numpy()
        edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
        normals = _vertex_normals(posed[0].astype(np.float64), faces)
        offset = np.sum((v.astype(np.float64) - posed[0]) * normals, -1)  # along the normals, signed
        np.testing.assert_allclose(np.abs(offset), moved, atol=1e-6)
        step = np.abs(offset[:, edges[:, 0]] - offset[:, edges[:, 1]])
        length = np.linalg.norm(posed[0][:, edges[:, 0]] - posed[0][:, edges[:, 1]], axis=-1)
        # neighbours move alike: the offset changes by at most 0.5 mm per mm of edge, typically 0.05
        # (independent noise of this size would change by about 0.6 mm per mm on a typical 7 mm edge)
        slope = step / length
        assert slope.max() < 0.5 and np.median(slope) < 0.1 and np.ptp(offset) > 0.005


def test_geometric_bone_weights(posed):
    weights = bone_weights(*(x.astype(np.float64) for x in posed))
    np.testing.assert_allclose(weights.sum(-1), 1.0)
    assert np.all(weights[..., [4, 8, 12, 16, 20]] == 0)
    # the fingertip vertices belong to their distal bones
    tips = load_hand_model("open").fingertip_ids.numpy()
    assert np.all(weights[:, tips].argmax(-1) == [3, 7, 11, 15, 19])


def test_paper_views_share_their_hand(tmp_path):
    protocol = PaperProtocol(train_poses=2, test_poses=1, views_per_pose=3, shape_variety=NO_OFFSET)
    ds = open_dataset(generate_paper(tmp_path / "p", seed=1, protocol=protocol))
    j = np.asarray(ds.arrays["joints"], np.float64)
    lengths = finger_lengths(j)
    for pose in range(3):
        np.testing.assert_allclose(lengths[3 * pose:3 * pose + 3], lengths[3 * pose:3 * pose + 1].repeat(3, 0),
                                   rtol=1e-4)
    assert "shape variety" in ds.card["choices"]["hand_params"]


def test_settings_are_checked():
    with pytest.raises(Mask2HandError, match="finger_length"):
        ShapeVariety(finger_length=(1.1, 0.9))
    with pytest.raises(Mask2HandError, match="probability"):
        ShapeVariety(probability=-0.1)
