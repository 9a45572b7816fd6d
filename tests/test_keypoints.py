"""2-D keypoints as weak labels: the file format, their path into the network's input and through
the training augmentation, the objective's keypoint term, and `adapt --keypoints`."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask2hand import Mask2HandError
from mask2hand.cli import main as cli_main
from mask2hand.inference.keypoints import KeypointFile, prepared_keypoints
from mask2hand.losses.self_supervised import keypoint_error

sys.path.insert(0, str(Path(__file__).parent))
from tiny_model import write_tiny_weights  # noqa: E402


def test_a_keypoints_file_takes_pairs_triples_and_missing_points(tmp_path):
    points = [[10, 20]] * 10 + [None] + [[1.5, 2.5, 0.25]] * 10
    path = tmp_path / "kp.json"
    path.write_text(json.dumps({"hand.png": points}))
    file = KeypointFile(path)
    got = file.for_input(tmp_path / "hand.png")
    assert got.shape == (21, 3)
    np.testing.assert_allclose(got[0], [10, 20, 1]) and np.testing.assert_allclose(got[10], [0, 0, 0])
    np.testing.assert_allclose(got[20], [1.5, 2.5, 0.25])
    assert file.for_input("other.png") is None
    for bad, message in (([[1, 2]] * 20, "list of 21"), ([[1, 2, 3]] * 21, "confidence in"),
                         ([["a", 2]] * 21, r"\[u, v\]"), ([[float("nan"), 2]] * 21, "finite")):
        path.write_text(json.dumps({"hand.png": bad}))
        with pytest.raises(Mask2HandError, match=message):
            KeypointFile(path)
    with pytest.raises(Mask2HandError, match="not found"):
        KeypointFile(tmp_path / "missing.json")
    with pytest.raises(Mask2HandError, match="not a regular file"):
        KeypointFile(tmp_path)


def test_an_entry_may_carry_3d_points(tmp_path):
    world = np.random.default_rng(0).normal(size=(21, 3)) * 0.03
    path = tmp_path / "kp.json"
    path.write_text(json.dumps({"a.png": {"points": [[1, 2]] * 21, "world": world.tolist()}, "b.png": [[3, 4]] * 21}))
    file = KeypointFile(path)
    np.testing.assert_allclose(file.world_for_input("a.png"), world)
    assert file.world_for_input("b.png") is None and file.for_input("b.png")[0, 0] == 3
    path.write_text(json.dumps({"a.png": {"points": [[1, 2]] * 21, "world": [[0, 0]] * 21}}))
    with pytest.raises(Mask2HandError, match=r"\[x, y, z\] points"):
        KeypointFile(path)
    path.write_text(json.dumps({"a.png": {"dots": []}}))
    with pytest.raises(Mask2HandError, match="'points'"):
        KeypointFile(path)


def test_the_world_term_ignores_where_the_hand_is_and_how_it_is_turned():
    from scipy.spatial.transform import Rotation

    from mask2hand.losses.self_supervised import world_error

    joints = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 21, 3)) * 0.03)
    turn = torch.from_numpy(Rotation.from_rotvec([0.3, -1.0, 0.5]).as_matrix())
    world = 1.3 * joints @ turn.T + torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64)
    confidence = torch.ones(2, 21, dtype=torch.float64)
    assert float(world_error(joints, world, confidence)) == pytest.approx(0.0, abs=1e-4)  # mm
    bent = world.clone()
    bent[:, 8] += torch.tensor([0.0, 0.0, 0.02], dtype=torch.float64)
    assert float(world_error(joints, bent, confidence)) > 0.1
    none = world.clone()
    none[1] = 0
    assert float(world_error(joints, none, confidence)) == pytest.approx(0.0, abs=1e-4)


@pytest.mark.parametrize("side", ["right", "left"])
def test_prepared_keypoints_land_where_the_mask_went(side):
    from mask2hand import Mask2Hand

    model = Mask2Hand.from_pretrained()
    mask = np.zeros((120, 200), np.uint8)
    mask[30:100, 40:90] = 255
    mask[30:38, 82:90] = 0  # a notch: the corner that tells mirrored from not
    prepared = model.prepare(mask, side=side)
    points = np.zeros((21, 3))
    points[:, :2] = [84.5, 40.5]  # in the mask, just below the notch
    points[0, :2] = [85.5, 33.5]  # in the notch (not hand)
    points[:, 2] = 1
    moved = prepared_keypoints(points, prepared)
    model_mask = prepared.mask.model_input
    u, v = moved[1, :2].astype(int)
    assert model_mask[v, u] > 0.5
    u, v = moved[0, :2].astype(int)
    assert model_mask[v, u] < 0.5
    assert (moved[:, 2] == 1).all()


def test_keypoints_follow_the_training_augmentation(tmp_path):
    """In a labelled set whose keypoints are its joints' projections, the loaded keypoints stay the
    projections of the loaded joints through the loaded K, whatever the rotation, scale and crop."""
    from mask2hand.data.dataset import AugmentConfig, CropConfig, MaskDataset
    from mask2hand.data.storage import ArraySpec, DatasetWriter, open_dataset
    from mask2hand.data.synthetic import NaturalCorpus, generate_natural
    from mask2hand.render import project

    source = open_dataset(generate_natural(tmp_path / "natural", seed=3,
                                           corpus=replace(NaturalCorpus(), train=6, val=0, test=0)))
    arrays = {name: np.array(source.arrays[name]) for name in ("K", "joints", "vertices")}
    uv = project(torch.from_numpy(arrays["joints"]).double(), torch.from_numpy(arrays["K"]).double()).numpy()
    keypoints = np.concatenate([uv, np.ones_like(uv[..., :1])], axis=-1).astype(np.float32)
    specs = {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"),
             "vertices": ArraySpec(arrays["vertices"].shape[1:], "float32"), "keypoints": ArraySpec((21, 3), "float32")}
    with DatasetWriter(tmp_path / "with-keypoints", 6, source.image_size, specs) as writer:
        writer.write(0, masks=source.masks(np.arange(6)) > 0, keypoints=keypoints, **arrays)
        folder = writer.finish({"generator": "test", "splits": {"train": {"start": 0, "stop": 6}},
                                "counts": {"train": 6}})
    dataset = MaskDataset(folder, split="train", augment=AugmentConfig(), resolution=96,
                          crop=CropConfig(margin=1.3, jitter_shift=0.1, jitter_scale=(0.8, 1.2)),
                          distance_field=False)
    batch = dataset.load_batch(list(range(6)))
    expected = project(batch.joints.double(), batch.K.double())
    torch.testing.assert_close(batch.keypoints[..., :2].double(), expected, atol=1e-3, rtol=0)
    assert (batch.keypoints[..., 2] == 1).all()


def test_the_keypoint_term_is_a_fraction_of_the_hand_and_pulls_joints_onto_the_points():
    K = torch.tensor([[200.0, 0, 64], [0, 200.0, 64], [0, 0, 1]]).expand(1, 3, 3)
    target = torch.rand(1, 21, 3) * torch.tensor([0.08, 0.08, 0.0]) + torch.tensor([-0.04, -0.04, 0.5])
    from mask2hand.render import project

    points = torch.cat([project(target, K), torch.ones(1, 21, 1)], dim=-1)
    assert float(keypoint_error(target, K, points)) == pytest.approx(0.0, abs=1e-6)
    size = (points[0, :, :2].amax(0) - points[0, :, :2].amin(0)).norm()
    shifted = points.clone()
    shifted[..., 0] += 0.05 * size
    assert float(keypoint_error(target, K, shifted)) == pytest.approx(0.05, rel=1e-4)
    missing = shifted.clone()
    missing[..., 2] = 0
    assert float(keypoint_error(target, K, missing)) == 0.0
    joints = (target + torch.tensor([0.01, -0.02, 0.05])).requires_grad_(True)
    optimizer = torch.optim.Adam([joints], lr=2e-3)
    start = float(keypoint_error(joints, K, points).detach())
    for _ in range(200):
        optimizer.zero_grad()
        keypoint_error(joints, K, points).backward()
        optimizer.step()
    assert float(keypoint_error(joints, K, points).detach()) < 0.2 * start


@pytest.mark.slow
def test_adapt_with_keypoints_stores_them_and_trains_the_term(tmp_path, capsys):
    from mask2hand.data.dataset import MaskDataset
    from mask2hand.data.synthetic import NaturalCorpus, generate_natural
    from mask2hand.render import project

    data = generate_natural(tmp_path / "source", seed=4, corpus=replace(NaturalCorpus(), train=12, val=0, test=0))
    dataset = MaskDataset(data, split="train", distance_field=False)
    points = {}
    for i in range(12):
        sample = dataset[i]
        Image.fromarray((sample.mask.numpy() > 0.5).astype(np.uint8) * 255).save(tmp_path / f"m{i:02d}.png")
        uv = project(sample.joints[None].double(), sample.K[None].double())[0].numpy()
        if i != 3:  # one mask without keypoints
            points[f"m{i:02d}"] = uv.tolist()
        K = sample.K.numpy()
    (tmp_path / "kp.json").write_text(json.dumps(points))
    (tmp_path / "K.json").write_text(json.dumps(K.tolist()))
    weights = write_tiny_weights(tmp_path / "start.pt", num_pose_pcs=6, backbone_width=0.25, input_crop=1.25)
    run = tmp_path / "run"
    code = cli_main(["adapt", *[str(tmp_path / f"m{i:02d}.png") for i in range(12)], "--out", str(run),
                     "--checkpoint", str(weights), "--K", str(tmp_path / "K.json"), "--keypoints",
                     str(tmp_path / "kp.json"), "--synthetic", "16", "--batch-size", "4", "--epochs", "1"])
    assert code == 0
    assert "keypoints: 11 of 12 masks have them" in capsys.readouterr().out
    stored = np.load(run / "masks" / "keypoints.npy")
    order = np.load(run / "masks" / "source_index.npy")
    assert (stored[order == 3] == 0).all() and (stored[order != 3][..., 2] == 1).all()
    header = (run / "epochs.csv").read_text().splitlines()[0].split(",")
    assert "train_keypoints" in header and "train_world" not in header
    capsys.readouterr()
    (tmp_path / "none.json").write_text(json.dumps({"elsewhere.png": [[0, 0]] * 21}))
    assert cli_main(["adapt", str(tmp_path / "m00.png"), str(tmp_path / "m01.png"), "--out", str(tmp_path / "r2"),
                     "--checkpoint", str(weights), "--keypoints", str(tmp_path / "none.json"), "--batch-size", "1"]) == 2
    assert "names none of the 2 inputs" in capsys.readouterr().err
