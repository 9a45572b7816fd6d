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
from mask2hand.inference.hand_smoothing import HandSmoother
from mask2hand.inference.sequence import predict_sequence
from mask2hand.inference.smoothing import (JitterMeter, OneEuroConfig, OneEuroFilter, continuous_quaternions,
                                           mean_joint_acceleration, one_euro_filter, smooth_rotations)
from mask2hand.inference.video import Frames, natural_key, read_frames
from mask2hand.testing.scenes import synthetic_sequence
from tiny_model import write_tiny_weights

NUM_FRAMES = 16


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


def test_quaternions_match_scipy_and_round_trip():
    from mask2hand.inference.smoothing import axis_angle_from_quaternion, quaternion_from_axis_angle

    rotvecs = np.r_[np.random.default_rng(2).normal(size=(50, 3)), [[0, 0, 0], [1e-9, 0, 0], [0, math.pi, 0]]]
    for v in rotvecs:
        q, reference = quaternion_from_axis_angle(v), Rotation.from_rotvec(v).as_quat()
        assert min(np.abs(q - reference).max(), np.abs(q + reference).max()) < 1e-12
        turn = Rotation.from_rotvec(axis_angle_from_quaternion(-3.0 * q)) * Rotation.from_rotvec(v).inv()
        assert turn.magnitude() < 1e-9


def test_mean_joint_acceleration():
    t = np.arange(10, dtype=np.float64)
    joints = np.zeros((10, 21, 3))
    joints[..., 0] = 0.01 * t[:, None]  # constant speed: no acceleration
    assert mean_joint_acceleration(joints) == pytest.approx(0.0)
    joints[..., 0] = 0.001 * t[:, None] ** 2  # x = a t^2: second difference 2a
    assert mean_joint_acceleration(joints) == pytest.approx(0.002)
    joints = np.random.default_rng(0).normal(size=(12, 21, 3))
    meter = JitterMeter()
    for frame in joints:
        meter.add(frame)
    assert meter.value == pytest.approx(mean_joint_acceleration(joints))


def test_the_filter_state_is_one_sample_whatever_the_length():
    state = OneEuroFilter()
    signal = np.random.default_rng(1).normal(size=(500, 4, 3))
    out = np.stack([state.step(x, 1 / 30) for x in signal])
    assert state.value.shape == state.speed.shape == (4, 3)
    assert np.array_equal(out, one_euro_filter(signal, 30.0))
    with pytest.raises(Mask2HandError):
        state.step(signal[0], 0.0)


# ---------------------------------------------------------------------- frames

def test_natural_order_and_folder_reading(tmp_path):
    names = ["f10.png", "f2.png", "f1.png", "F3.png"]
    assert sorted(names, key=natural_key) == ["f1.png", "f2.png", "F3.png", "f10.png"]
    for name in names:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / name)
    frames = read_frames(tmp_path)
    assert [name for name, _ in frames] == ["f1", "f2", "F3", "f10"] and frames.fps is None


def test_gif_and_tiff_stacks_and_video(tmp_path, sequence):
    import imageio.v3 as iio

    masks = sequence[0][:5].astype(np.uint8) * 255
    iio.imwrite(tmp_path / "s.gif", masks, extension=".gif", duration=40, loop=0)
    Image.fromarray(masks[0]).save(tmp_path / "s.tif", save_all=True,
                                   append_images=[Image.fromarray(m) for m in masks[1:]])
    gif, tif = read_frames(tmp_path / "s.gif"), read_frames(tmp_path / "s.tif")
    assert gif.count == tif.count == 5 and gif.fps == pytest.approx(25.0)
    assert all(np.array_equal(a, b) for (_, a), b in zip(tif, masks, strict=True))
    assert [name for name, _ in gif][0] == "s_00000"
    pytest.importorskip("imageio_ffmpeg")
    video = tmp_path / "s.mp4"
    iio.imwrite(video, np.repeat(masks[..., None], 3, axis=-1), fps=12, plugin="FFMPEG", macro_block_size=1)
    frames = read_frames(video)
    images = [image for _, image in frames]
    assert len(images) == 5 and frames.count == 5 and frames.fps == pytest.approx(12.0)
    assert images[2].shape == masks[2].shape  # read as grey
    assert np.mean((images[2] > 127) == (masks[2] > 127)) > 0.97  # lossy codec


def test_unreadable_sequences_are_refused(tmp_path):
    with pytest.raises(Mask2HandError, match="no mask files"):
        read_frames(tmp_path)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(Mask2HandError, match="cannot read|imageio-ffmpeg"):
        list(read_frames(tmp_path / "broken.mp4"))


# ---------------------------------------------------------------------- prediction

def test_smoothing_reduces_jitter_and_keeps_consistency(model, sequence):
    masks, _, K = sequence
    frames = Frames.from_images(masks, [f"f{t}" for t in range(len(masks))], fps=30.0, source="<synthetic>")
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


def test_a_stream_frame_by_frame_gives_the_sequence_answers(model, sequence):
    """push() one frame at a time (network batch 1) equals the batched sequence, and the per-frame
    smoother equals the whole-array filters on the network's raw answers."""
    masks, _, K = sequence
    frames = Frames.from_images(masks[:8], fps=30.0)
    whole = predict_sequence(model, frames, K=K, batch_size=8)
    stream = model.stream(fps=30.0, K=K)
    for t, mask in enumerate(masks[:8]):
        pushed = stream.push(mask, timestamp=t / 30.0)  # timestamps 1/fps apart: the same periods
        assert np.allclose(pushed.joints, whole.predictions[t].joints, atol=1e-5)
    assert stream.smoother.filters["pose"].value.shape == (45,)  # one frame's state

    items = [model.prepare(m, K=K) for m in masks[:8]]
    raw = model.run_network(items)
    smoothed = HandSmoother(model.runner.numpy_hand, 30.0).smooth(raw)
    assert np.allclose(smoothed.transl, one_euro_filter(raw.transl, 30.0), atol=1e-6)
    assert np.allclose(smoothed.pose, one_euro_filter(raw.pose, 30.0), atol=1e-6)
    assert np.allclose(smoothed.global_orient, smooth_rotations(raw.global_orient, 30.0), atol=1e-6)


def test_a_bad_frame_in_a_stream_is_that_frame_s_error(model, sequence):
    masks, _, K = sequence
    stream = model.stream(K=K)
    stream.push(masks[0])
    with pytest.raises(Mask2HandError, match="empty"):
        stream.push(np.zeros_like(masks[0]))
    assert stream.push(masks[1]).joints.shape == (21, 3)


def test_left_sequence_is_mirrored(model, sequence):
    masks, _, K = sequence
    frames = Frames.from_images(masks[:4], list("abcd"), fps=30.0, source="<synthetic>")
    right = predict_sequence(model, frames, K=K)
    mirrored = Frames.from_images([m[:, ::-1].copy() for m in masks[:4]], list("abcd"), fps=30.0, source="<m>")
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
    Image.fromarray(masks[0]).save(tmp_path / "clip.png")
    code = cli.main(["predict", str(gif), "--out", str(out), "--checkpoint", str(weights), "--no-figure",
                     "--no-gif", "--no-smoothing"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 4 and summary["fps"] == pytest.approx(20.0) and summary["smoothing"] is None
    assert summary["animation"] is None and (out / "clip_00003.ply").is_file() and summary["frame"] == "opencv"
    code = cli.main(["predict", str(gif), str(tmp_path / "clip.png"), "--out", str(out), "--checkpoint", str(weights)])
    assert code == 2 and "not a video or GIF" in capsys.readouterr().err


def test_cli_predicts_several_videos_frame_by_frame(tmp_path, weights, sequence, capsys):
    import imageio.v3 as iio

    pytest.importorskip("imageio_ffmpeg")
    masks = np.repeat(sequence[0][:6, ..., None].astype(np.uint8) * 255, 3, axis=-1)
    iio.imwrite(tmp_path / "a.mp4", masks, fps=10, plugin="FFMPEG", macro_block_size=1)
    iio.imwrite(tmp_path / "b.mp4", masks[::-1], fps=10, plugin="FFMPEG", macro_block_size=1)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "out"
    code = cli.main(["predict", str(tmp_path / "a.mp4"), str(tmp_path / "broken.mp4"), str(tmp_path / "b.mp4"),
                     "--out", str(out), "--checkpoint", str(weights), "--no-figure", "--batch-size", "4"])
    err = capsys.readouterr().err
    assert code == 2 and "broken.mp4" in err and len([line for line in err.splitlines() if "error" in line]) == 1
    top = json.loads((out / "summary.json").read_text())
    assert [s["status"] for s in top["sequences"]] == ["ok", "error", "ok"]
    assert [s.get("folder") for s in top["sequences"]] == ["a", None, "b"]
    for stem in ("a", "b"):
        summary = json.loads((out / stem / "summary.json").read_text())
        assert summary["frames"] == 6 and summary["fps"] == pytest.approx(10.0) and summary["failed"] == 0
        assert (out / stem / f"{stem}_00005.json").is_file() and Image.open(out / stem / f"{stem}.gif").n_frames == 6


def test_the_gif_of_a_long_sequence_keeps_a_bounded_number_of_frames(monkeypatch, model, sequence):
    from mask2hand.commands import predict

    monkeypatch.setattr(predict, "GIF_MAX_FRAMES", 4)
    prediction = model.predict(sequence[0][0], K=sequence[2])
    gif = predict._GifFrames(None)
    for _ in range(11):
        gif.add(prediction)
    assert len(gif.panels) <= 4 and gif.stride == 4 and gif.seen == 11  # frames 0, 4, 8 kept
