"""Hostile and broken inputs to `predict`: every case gives one line (or a warning), exit 2 at
the end, the other inputs still processed, nothing half-written, and bounded memory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2hand import cli
from mask2hand.errors import Mask2HandError
from mask2hand.inference.api import Mask2Hand
from mask2hand.utils.files import TEMP_PREFIX, stale_temp_files
from tiny_model import blob_mask, save_mask_png, write_tiny_weights

REPO = Path(__file__).resolve().parents[1]
POOR_FIT = "explains the mask poorly"


@pytest.fixture(scope="module")
def shipped() -> Mask2Hand:
    return Mask2Hand.from_pretrained()


def predict(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = cli.main(["predict", *argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_out_may_be_the_input_folder(weights, tmp_path, capsys):
    folder = tmp_path / "masks"
    folder.mkdir()
    save_mask_png(folder / "a.png", blob_mask())
    save_mask_png(folder / "b.png", blob_mask(80, 100))
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for _ in range(2):  # the second run must not take the first run's figures for masks
        code, lines = predict([str(folder), "--out", str(folder), "--checkpoint", str(weights), "--focal", "200"],
                              capsys)
        assert code == 0, lines
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["counts"] == {"inputs": 2, "ok": 2, "failed": 0}
        assert sorted(Path(e["input"]).name for e in summary["inputs"]) == ["a.png", "b.png"]
    assert all((folder / name).read_bytes() == data for name, data in before.items())  # inputs untouched
    figures = [e["outputs"]["png"] for e in summary["inputs"]]
    assert len(set(figures)) == 2 and not set(figures) & set(before)


@pytest.mark.parametrize("name, mask", [
    ("checkerboard", (np.indices((96, 96)).sum(axis=0) // 6 % 2).astype(bool)),
    ("line", np.pad(np.ones((1, 80), bool), ((47, 48), (8, 8)))),
])
def test_masks_the_answer_explains_poorly_are_flagged(shipped, name, mask):
    prediction = shipped.predict(mask, focal=200.0)
    assert prediction.iou < 0.5 and any(POOR_FIT in w for w in prediction.warnings), (name, prediction.iou)


def test_a_hand_cut_by_the_border_on_several_sides_is_flagged(shipped):
    mask = np.zeros((96, 96), bool)
    mask[:, 40:56] = True
    mask[40:56, :] = True  # a cross: reaches all four borders
    prediction = shipped.predict(mask, focal=200.0)
    assert any("cut by the image border on 4 sides" in w for w in prediction.warnings)


def test_a_good_mask_carries_no_warning(shipped):
    prediction = shipped.predict(str(REPO / "examples" / "open_palm.png"))
    assert prediction.warnings == [] and prediction.iou > 0.9  # measured 0.953


@pytest.mark.parametrize("K, phrase", [
    (np.array([[1e30, 0, 48], [0, 1e30, 48], [0, 0, 1.0]]), "field of view"),
    (np.array([[0.5, 0, 48], [0, 0.5, 48], [0, 0, 1.0]]), "field of view"),
    (np.array([[200.0, 0, 1e9], [0, 200.0, 48], [0, 0, 1.0]]), "principal point"),
])
def test_a_K_that_cannot_belong_to_the_image_is_refused(weights, K, phrase):
    model = Mask2Hand.from_pretrained(weights)
    with pytest.raises(Mask2HandError, match=phrase):
        model.predict(blob_mask(), K=K)


def test_a_hand_behind_the_camera_is_refused(weights):
    model = Mask2Hand.from_pretrained(weights)
    items = [model.prepare(blob_mask(), focal=200.0)]
    raw = model.run_network(items)
    behind = replace(raw, vertices=raw.vertices * [1, 1, -1], joints=raw.joints * [1, 1, -1])
    with pytest.raises(Mask2HandError, match="behind the camera"):
        model.finish(items, behind)


@pytest.mark.parametrize("channels", [3, 4])
def test_an_rgb_array_is_one_picture_not_a_batch(weights, channels):
    picture = np.repeat(blob_mask()[:, :, None].astype(np.uint8) * 255, channels, axis=2)
    if channels == 4:
        picture[..., 3] = 255
    prediction = Mask2Hand.from_pretrained(weights).predict(picture, focal=200.0)
    assert prediction.image_size == (96, 96)


def test_hypotheses_are_capped(weights, tmp_path, capsys):
    save_mask_png(tmp_path / "a.png", blob_mask())
    code, lines = predict([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--checkpoint", str(weights),
                           "--hypotheses", "1000"], capsys)
    assert code == 2 and len(lines) == 1 and "at most 20" in lines[0]


def test_a_memory_error_costs_only_its_input(weights, tmp_path, capsys, monkeypatch):
    for name in ("a", "b", "c"):
        save_mask_png(tmp_path / f"{name}.png", blob_mask())
    prepare = Mask2Hand.prepare

    def starved(self, source, *args, **kwargs):
        if Path(source).name == "b.png":
            raise MemoryError
        return prepare(self, source, *args, **kwargs)

    monkeypatch.setattr(Mask2Hand, "prepare", starved)
    code, lines = predict([str(tmp_path / "*.png"), "--out", str(tmp_path / "out"), "--checkpoint", str(weights),
                           "--focal", "200", "--no-figure"], capsys)
    errors = [line for line in lines if ": error: " in line]
    assert code == 2 and len(errors) == 1 and "b.png" in errors[0] and "memory" in errors[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["counts"] == {"inputs": 3, "ok": 2, "failed": 1}


@pytest.mark.slow
def test_large_images_are_processed_in_bounded_memory(tmp_path):
    """An 8000 x 8000 mask (a 30 KB PNG) with its figure costs well under a gigabyte more than a
    small one (it took 1.9 GB, 7.5 GB with the figure, before memory was bounded)."""
    import cv2

    big = np.zeros((8000, 8000), np.uint8)
    cv2.ellipse(big, (4000, 4300), (900, 1400), 15, 0, 360, 255, -1)
    for k in range(4):
        cv2.rectangle(big, (3300 + k * 380, 1500), (3500 + k * 380, 3200), 255, -1)
    Image.fromarray(big).convert("1").save(tmp_path / "big.png")
    save_mask_png(tmp_path / "small.png", blob_mask())
    code = """
import resource, sys
from mask2hand import Mask2Hand
from mask2hand.export.prediction import write_prediction
model = Mask2Hand.from_pretrained()
write_prediction(model.predict(sys.argv[1]), sys.argv[3])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
write_prediction(model.predict(sys.argv[2]), sys.argv[3])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "small.png"), str(tmp_path / "big.png"),
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    extra_mb = int(proc.stdout.split()[-1]) / 1024
    assert extra_mb < 1000, extra_mb
    assert (tmp_path / "out" / "big.png").is_file()


def test_a_long_file_name_gets_its_outputs(weights, tmp_path, capsys):
    name = "m" * 247 + ".png"  # 251 characters: the outputs' names fit the 255-byte limit, a long temp name would not
    save_mask_png(tmp_path / name, blob_mask())
    code, lines = predict([str(tmp_path / name), "--out", str(tmp_path / "out"), "--checkpoint", str(weights),
                           "--focal", "200"], capsys)
    assert code == 0, lines
    assert (tmp_path / "out" / ("m" * 247 + ".json")).is_file()


def test_a_folder_in_the_way_leaves_nothing_half_written(weights, tmp_path, capsys):
    save_mask_png(tmp_path / "a.png", blob_mask())
    save_mask_png(tmp_path / "b.png", blob_mask())
    (tmp_path / "out" / "a.obj").mkdir(parents=True)
    code, lines = predict([str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(tmp_path / "out"),
                           "--checkpoint", str(weights), "--focal", "200"], capsys)
    errors = [line for line in lines if ": error: " in line]
    assert code == 2 and len(errors) == 1 and "a.obj exists and is not a file" in errors[0]
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == ["a.obj", "b.glb", "b.json", "b.obj", "b.ply", "b.png", "summary.json"]


def test_complex_arrays_and_multi_frame_images_are_refused(weights, tmp_path, capsys):
    np.save(tmp_path / "complex.npy", blob_mask().astype(np.complex64))
    frames = [Image.fromarray(blob_mask().astype(np.uint8) * 255) for _ in range(3)]
    frames[0].save(tmp_path / "stack.tif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "animated.png", save_all=True, append_images=frames[1:])
    save_mask_png(tmp_path / "good.png", blob_mask())
    inputs = [str(tmp_path / n) for n in ("complex.npy", "stack.tif", "animated.png", "good.png")]
    code, lines = predict([*inputs, "--out", str(tmp_path / "out"), "--checkpoint", str(weights), "--focal", "200",
                           "--no-figure"], capsys)
    errors = [line for line in lines if ": error: " in line]
    assert code == 2 and len(errors) == 3
    assert "complex" in errors[0] and "3 frames" in errors[1] and "3 frames" in errors[2]
    assert (tmp_path / "out" / "good.json").is_file()


def test_a_bad_frame_costs_only_that_frame(weights, tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(4):
        save_mask_png(frames / f"f{t}.png", blob_mask())
    Image.fromarray(np.zeros((96, 96), np.uint8)).save(frames / "f2.png")  # an empty frame
    code, lines = predict([str(frames), "--sequence", "--out", str(tmp_path / "out"), "--checkpoint", str(weights),
                           "--focal", "200", "--no-figure", "--no-gif"], capsys)
    errors = [line for line in lines if ": error: " in line]
    assert code == 2 and len(errors) == 1 and "f2" in errors[0] and "empty" in errors[0]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [e["status"] for e in summary["inputs"]] == ["ok", "ok", "error", "ok"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.json")) == ["f0.json", "f1.json", "f3.json",
                                                                        "summary.json"]


def test_a_stack_of_frames_too_large_is_refused_before_decoding(tmp_path, monkeypatch):
    from PIL import ImageSequence

    from mask2hand.image import files
    from mask2hand.inference import video

    frames = [Image.fromarray(np.roll(blob_mask(), 4 * t, axis=1).astype(np.uint8) * 255) for t in range(3)]
    frames[0].save(tmp_path / "stack.gif", save_all=True, append_images=frames[1:])
    assert [name for name, _ in video.read_frames(tmp_path / "stack.gif")] == ["stack_00000", "stack_00001",
                                                                                "stack_00002"]
    monkeypatch.setattr(files, "MAX_IMAGE_SIDE", 64)

    def no_decoding(image):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(ImageSequence, "Iterator", no_decoding)
    with pytest.raises(Mask2HandError, match="96x96 pixels"):
        video.read_frames(tmp_path / "stack.gif")


def test_sigterm_removes_the_file_being_written(tmp_path):
    code = f"""
import sys, time
sys.path.insert(0, {str(REPO / "src")!r})
from mask2hand.utils.files import atomic_path
from mask2hand.utils.interrupts import sigterm_as_keyboard_interrupt
sigterm_as_keyboard_interrupt()
try:
    with atomic_path(sys.argv[1]) as tmp:
        tmp.write_bytes(b"half a mesh")
        print("writing", flush=True)
        time.sleep(60)
except KeyboardInterrupt:
    sys.exit(130)
"""
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "mesh.obj")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert any(p.name.startswith(TEMP_PREFIX) for p in tmp_path.iterdir())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert list(tmp_path.iterdir()) == [] and stale_temp_files(tmp_path) == []


def test_the_cli_turns_sigterm_into_an_interrupt(weights, tmp_path, capsys):
    save_mask_png(tmp_path / "a.png", blob_mask())
    previous = signal.getsignal(signal.SIGTERM)
    try:
        predict([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--checkpoint", str(weights)], capsys)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
