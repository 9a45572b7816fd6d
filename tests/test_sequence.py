"""Sequences: One Euro smoothing, frame reading, smoothed predictions, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from mask2hand import cli
from mask2hand.errors import Mask2HandError
from mask2hand.hand import load_hand_model
from mask2hand.inference.api import Mask2Hand
from mask2hand.export.animation import skeleton_panel
from mask2hand.inference.sequence import Frames, natural_key, predict_sequence, read_frames
from mask2hand.testing.scenes import synthetic_sequence
from mask2hand.inference.smoothing import (OneEuroConfig, continuous_quaternions, mean_joint_acceleration, one_euro_filter,
                                 smooth_rotations)
from tiny_model import write_tiny_weights

NUM_FRAMES = 16


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture(scope="module")
def model(weights) -> Mask2Hand:
    return Mask2Hand.from_pretrained(weights)


@pytest.fixture(scope="module")
def sequence():
    masks, joints, K = synthetic_sequence(load_hand_model("open"), num_frames=NUM_FRAMES, seed=0)
    return masks, joints, K


@pytest.fixture(autouse=True)
def predict_registered(monkeypatch):
    monkeypatch.setitem(cli.SUBCOMMANDS, "predict", cli.SUBCOMMANDS.get(
        "predict", ("predict", "predict 3D hands from silhouette files")))


# ---------------------------------------------------------------------- filter

def test_one_euro_keeps_constants_and_follows_ramps_with_bounded_lag():
    constant = np.full((50, 3), 2.5)
    assert np.allclose(one_euro_filter(constant, 30.0), constant)
    ramp = np.linspace(0.0, 1.0, 200)[:, None]
    out = one_euro_filter(ramp, 30.0)
    assert np.all(np.diff(out[:, 0]) >= 0) and np.all(out <= ramp + 1e-12)  # monotone, lags behind, no overshoot


def test_one_euro_reduces_noise_and_beta_reduces_lag():
    rng = np.random.default_rng(0)
    t = np.arange(300) / 30.0
    clean = np.sin(2 * np.pi * 0.3 * t)[:, None]
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    smooth = one_euro_filter(noisy, 30.0, OneEuroConfig(min_cutoff=1.0, beta=0.0))
    accel = lambda x: np.abs(np.diff(x, 2, axis=0)).mean()  # noqa: E731
    assert accel(smooth) < 0.2 * accel(noisy)
    assert np.abs(smooth - clean).max() < 0.4  # a lag, bounded (first-order low-pass at 1 Hz on a 0.3 Hz wave)
    step = np.r_[np.zeros(30), np.ones(30)][:, None]
    slow = one_euro_filter(step, 30.0, OneEuroConfig(beta=0.0))
    fast = one_euro_filter(step, 30.0, OneEuroConfig(beta=5.0))
    assert fast[33, 0] > slow[33, 0]  # speed opens the cutoff


def test_one_euro_settings_are_checked():
    with pytest.raises(Mask2HandError):
        one_euro_filter(np.zeros((3, 1)), 30.0, OneEuroConfig(min_cutoff=0.0))
    with pytest.raises(Mask2HandError):
        one_euro_filter(np.zeros((3, 1)), 0.0)


def test_rotation_smoothing_is_continuous_across_pi():
    """A rotation about z sweeping through pi: axis-angle jumps (pi -> -pi), the smoothed one does not."""
    angles = np.linspace(math.pi - 0.3, math.pi + 0.3, 31)
    rotvec = Rotation.from_euler("z", angles[:, None]).as_rotvec()
    assert np.abs(np.diff(rotvec[:, 2])).max() > 6.0  # the raw representation jumps
    q = continuous_quaternions(rotvec)
    assert np.all(np.sum(q[1:] * q[:-1], axis=1) > 0)
    smooth = Rotation.from_rotvec(smooth_rotations(rotvec, 30.0, OneEuroConfig(min_cutoff=100.0)))
    # with a very high cutoff the filter barely changes the rotations: nothing averaged across the flip
    assert (smooth * Rotation.from_rotvec(rotvec).inv()).magnitude().max() < 0.05


def test_mean_joint_acceleration():
    t = np.arange(10, dtype=np.float64)
    joints = np.zeros((10, 21, 3))
    joints[..., 0] = 0.01 * t[:, None]  # constant speed: no acceleration
    assert mean_joint_acceleration(joints) == pytest.approx(0.0)
    joints[..., 0] = 0.001 * t[:, None] ** 2  # x = a t^2: second difference 2a
    assert mean_joint_acceleration(joints) == pytest.approx(0.002)


# ---------------------------------------------------------------------- frames

def test_natural_order_and_folder_reading(tmp_path):
    names = ["f10.png", "f2.png", "f1.png", "F3.png"]
    assert sorted(names, key=natural_key) == ["f1.png", "f2.png", "F3.png", "f10.png"]
    for name in names:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name)
    frames = read_frames(tmp_path)
    assert frames.names == ["f1", "f2", "F3", "f10"] and frames.fps is None


def test_gif_and_tiff_stacks_and_video(tmp_path, sequence):
    import imageio.v3 as iio

    masks = sequence[0][:5].astype(np.uint8) * 255
    iio.imwrite(tmp_path / "s.gif", masks, extension=".gif", duration=40, loop=0)
    Image.fromarray(masks[0]).save(tmp_path / "s.tif", save_all=True,
                                   append_images=[Image.fromarray(m) for m in masks[1:]])
    gif, tif = read_frames(tmp_path / "s.gif"), read_frames(tmp_path / "s.tif")
    assert len(gif.images) == len(tif.images) == 5 and gif.fps == pytest.approx(25.0)
    assert all(np.array_equal(a, b) for a, b in zip(tif.images, masks))
    assert gif.names[0] == "s_00000"
    pytest.importorskip("imageio_ffmpeg")
    video = tmp_path / "s.mp4"
    iio.imwrite(video, np.repeat(masks[..., None], 3, axis=-1), fps=12, plugin="FFMPEG", macro_block_size=1)
    frames = read_frames(video)
    assert len(frames.images) == 5 and frames.fps == pytest.approx(12.0)
    assert frames.images[2].shape == masks[2].shape  # read as grey
    assert np.mean((frames.images[2] > 127) == (masks[2] > 127)) > 0.97  # lossy codec


def test_unreadable_sequences_are_refused(tmp_path):
    with pytest.raises(Mask2HandError, match="no mask files"):
        read_frames(tmp_path)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(Mask2HandError, match="cannot read|imageio-ffmpeg"):
        read_frames(tmp_path / "broken.mp4")


# ---------------------------------------------------------------------- prediction

def test_smoothing_reduces_jitter_and_keeps_consistency(model, sequence):
    masks, _, K = sequence
    frames = Frames(images=list(masks), names=[f"f{t}" for t in range(len(masks))], fps=30.0, source="<synthetic>")
    result = predict_sequence(model, frames, K=K)
    raw = mean_joint_acceleration(result.raw_joints)
    smoothed = mean_joint_acceleration(np.stack([p.joints for p in result.predictions]))
    assert smoothed < raw
    first, last = result.predictions[0], result.predictions[-1]
    # the first frame is the filter's starting point: same hand as unsmoothed
    assert np.allclose(first.joints, result.raw_joints[0], atol=1e-5)
    # smoothed params reproduce the smoothed mesh up to the (smoothed) refinement offsets, and the
    # joints are regressed from the smoothed mesh
    hand = model.runner.hand
    import torch

    with torch.inference_mode():
        regressed = hand.joints_from_vertices(torch.from_numpy(last.vertices[None]).double())[0].numpy()
    assert np.allclose(regressed, last.joints, atol=1e-5)
    assert any("One Euro" in note for note in last.notes)
    off = predict_sequence(model, frames, K=K, smoothing=None)
    assert all(np.array_equal(a.joints, b) for a, b in zip(off.predictions, result.raw_joints))


def test_left_sequence_is_mirrored(model, sequence):
    masks, _, K = sequence
    frames = Frames(images=list(masks[:4]), names=list("abcd"), fps=30.0, source="<synthetic>")
    right = predict_sequence(model, frames, K=K)
    mirrored = Frames(images=[m[:, ::-1].copy() for m in masks[:4]], names=list("abcd"), fps=30.0, source="<m>")
    left = predict_sequence(model, mirrored, K=K, side="left")  # K is centered: its mirror is itself
    for a, b in zip(right.predictions, left.predictions):
        assert b.side == "left" and np.allclose(b.joints, a.joints * np.array([-1, 1, 1]), atol=1e-5)


def test_skeleton_panel_is_an_rgb_image(model, sequence):
    masks, _, K = sequence
    panel = skeleton_panel(model.predict(masks[0], K=K))
    assert panel.dtype == np.uint8 and panel.shape == (320, 320, 3) and panel.any()


def test_cli_folder_sequence(tmp_path, weights, sequence, capsys):
    masks, _, K = sequence
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in range(6):  # names whose alphabetical order is wrong
        Image.fromarray(masks[t].astype(np.uint8) * 255).save(folder / f"frame{t * 5}.png")
    out = tmp_path / "out"
    code = cli.main(["predict", str(folder), "--sequence", "--out", str(out), "--checkpoint", str(weights),
                     "--focal", str(K[0, 0]), "--fps", "15", "--no-figure"])
    capsys.readouterr()
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 6 and summary["fps"] == 15.0 and summary["smoothing"]["filter"] == "one_euro"
    assert [e["input"].rsplit("/", 1)[-1] for e in summary["inputs"]] == [f"frame{t * 5}.png" for t in range(6)]
    assert summary["jitter_m_per_frame2"]["smoothed"] <= summary["jitter_m_per_frame2"]["raw"]
    assert (out / "frame25.obj").is_file() and (out / "frame0.json").is_file()
    gif = Image.open(out / "frames.gif")
    assert gif.n_frames == 6


def test_cli_video_input_and_errors(tmp_path, weights, sequence, capsys):
    import imageio.v3 as iio

    masks = sequence[0][:4].astype(np.uint8) * 255
    gif = tmp_path / "clip.gif"
    iio.imwrite(gif, masks, extension=".gif", duration=50, loop=0)
    out = tmp_path / "out"
    code = cli.main(["predict", str(gif), "--out", str(out), "--checkpoint", str(weights), "--no-figure",
                     "--no-gif", "--no-smoothing"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 4 and summary["fps"] == pytest.approx(20.0) and summary["smoothing"] is None
    assert summary["animation"] is None and (out / "clip_00003.ply").is_file() and summary["frame"] == "opencv"
    code = cli.main(["predict", str(gif), str(gif), "--out", str(out), "--checkpoint", str(weights)])
    assert code == 2 and "one INPUT" in capsys.readouterr().err
