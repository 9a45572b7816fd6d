"""The mask loader and preparer (mask2hand.image.masks) and the camera defaults."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2hand.inference import cameras
from mask2hand.image.camera import Camera
from mask2hand.inference.cameras import DEFAULT_FOCAL_FACTOR, KFile, default_focal, resolve_camera
from mask2hand.errors import Mask2HandError
from mask2hand.image.files import MAX_IMAGE_SIDE, read_image
from mask2hand.image.masks import binarize, keep_largest_component, load_mask, resample_mask
from mask2hand.inference.prepare import prepare_mask


def hand_like(height: int = 120, width: int = 90) -> np.ndarray:
    """A bool blob with a palm and three 'fingers' (uint8 0/255 via * 255)."""
    mask = np.zeros((height, width), dtype=bool)
    mask[60:100, 25:65] = True
    for col in (28, 40, 52):
        mask[25:60, col:col + 8] = True
    return mask


def save_png(path, array: np.ndarray, mode: str = "L") -> None:
    Image.fromarray(array, mode=mode).save(path)


# ------------------------------------------------------------------ reading

@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".pgm", ".jpg"])
def test_read_common_formats(tmp_path, suffix):
    mask = hand_like()
    path = tmp_path / f"m{suffix}"
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    loaded, warnings = load_mask(path)
    assert loaded.shape == mask.shape
    # JPEG ringing may move the boundary by a pixel at most
    assert (loaded != mask).mean() < (0.01 if suffix == ".jpg" else 1e-9)
    assert warnings == []


def test_read_npy_bool_01_and_255(tmp_path):
    mask = hand_like()
    for name, array in (("b", mask), ("f", mask.astype(np.float32)), ("u", mask.astype(np.uint8) * 255)):
        np.save(tmp_path / f"{name}.npy", array)
        loaded, _ = load_mask(tmp_path / f"{name}.npy")
        assert np.array_equal(loaded, mask)


def test_png_with_values_0_and_1(tmp_path):
    """Masks saved as 0/1 PNGs (common from segmenters) are not empty at threshold 127."""
    mask = hand_like()
    save_png(tmp_path / "m.png", mask.astype(np.uint8))
    loaded, _ = load_mask(tmp_path / "m.png")
    assert np.array_equal(loaded, mask)


def test_coloured_mask_and_alpha_cutout(tmp_path):
    mask = hand_like()
    green = np.zeros(mask.shape + (3,), np.uint8)
    green[mask] = (40, 200, 60)
    save_png(tmp_path / "green.png", green, "RGB")
    assert np.array_equal(load_mask(tmp_path / "green.png")[0], mask)
    rgba = np.zeros(mask.shape + (4,), np.uint8)
    rgba[..., :3] = 255
    rgba[..., 3] = mask * 255
    save_png(tmp_path / "cut.png", rgba, "RGBA")
    assert np.array_equal(load_mask(tmp_path / "cut.png")[0], mask)


def test_threshold_is_configurable():
    grey = np.zeros((40, 40), np.uint8)
    grey[10:30, 10:30] = 100
    with pytest.raises(Mask2HandError, match="empty"):
        load_mask(grey)
    assert load_mask(grey, threshold=50)[0].sum() == 400


# ------------------------------------------------------------------ bad inputs

def test_empty_and_all_hand():
    with pytest.raises(Mask2HandError, match="empty"):
        binarize(np.zeros((30, 30), np.uint8))
    with pytest.raises(Mask2HandError, match="all hand"):
        binarize(np.full((30, 30), 255, np.uint8))


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is text, not a picture\n")
    with pytest.raises(Mask2HandError, match="not an image"):
        read_image(path)


def test_truncated_image(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(hand_like(400, 300).astype(np.uint8) * 255).save(full)
    data = full.read_bytes()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(Mask2HandError, match="truncated"):
        read_image(cut)


def test_too_large_image_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    Image.new("1", (MAX_IMAGE_SIDE + 1, 8)).save(path)
    with pytest.raises(Mask2HandError, match="larger than 8000"):
        read_image(path)
    np.save(tmp_path / "huge.npy", np.zeros((2, MAX_IMAGE_SIDE + 1), np.uint8))
    with pytest.raises(Mask2HandError, match="larger than 8000"):
        read_image(tmp_path / "huge.npy")


def test_colour_photo_and_grey_photo_refused(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    photo = np.stack([xx * 1.5, yy * 2.0, (xx + yy) * 0.9], -1) + rng.normal(0, 10, (120, 160, 3))
    save_png(tmp_path / "photo.png", np.clip(photo, 0, 255).astype(np.uint8), "RGB")
    with pytest.raises(Mask2HandError, match="photo"):
        read_image(tmp_path / "photo.png")
    grey = np.clip(xx * 1.5 + rng.normal(0, 5, xx.shape), 0, 255).astype(np.uint8)
    save_png(tmp_path / "grey.png", grey)
    with pytest.raises(Mask2HandError, match="photo"):
        read_image(tmp_path / "grey.png")


def test_bad_npy(tmp_path):
    np.save(tmp_path / "three.npy", np.zeros((2, 3, 4)))
    with pytest.raises(Mask2HandError, match="2-D"):
        read_image(tmp_path / "three.npy")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(Mask2HandError, match="npy"):
        read_image(tmp_path / "junk.npy")


# ------------------------------------------------------------------ cleaning

def test_inverted_mask_is_flipped_with_warning():
    mask = hand_like()
    flipped, warnings = binarize((~mask).astype(np.uint8) * 255)
    assert np.array_equal(flipped, mask)
    assert len(warnings) == 1 and "inverted" in warnings[0]


def test_hand_touching_the_border_is_not_flipped():
    """A forearm cut by the image's bottom edge (as in FreiHAND crops) is not an inverted mask."""
    mask = hand_like()
    mask[95:, 35:55] = True
    out, warnings = binarize(mask.astype(np.uint8) * 255)
    assert np.array_equal(out, mask) and warnings == []


def test_largest_component_kept_and_large_blobs_warned():
    mask = hand_like()
    specks = mask.copy()
    specks[2, 2] = specks[110, 80] = True
    kept, warnings = keep_largest_component(specks)
    assert np.array_equal(kept, mask) and warnings == []
    blob = mask.copy()
    blob[105:118, 64:88] = True  # 312 px, 13% of the hand
    kept, warnings = keep_largest_component(blob)
    assert np.array_equal(kept, mask)
    assert len(warnings) == 1 and "largest region" in warnings[0]


def test_tiny_hand_refused():
    mask = np.zeros((50, 50), bool)
    mask[10:12, 10:12] = True
    with pytest.raises(Mask2HandError, match="only 4 pixels"):
        keep_largest_component(mask)


# ------------------------------------------------------------------ padding, resizing and K

@pytest.mark.parametrize("crop_margin", [None, 1.25])
@pytest.mark.parametrize("shape", [(120, 90), (90, 120), (300, 300), (50, 70)])
def test_transform_maps_pixels_and_K_consistently(shape, crop_margin):
    mask = np.zeros(shape, bool)
    mask[shape[0] // 3: shape[0] // 2, shape[1] // 4: shape[1] // 2] = True
    model_input, transform = resample_mask(mask, 64, crop_margin)
    assert model_input.shape == (64, 64) and model_input.dtype == np.float32
    # the blob's box lands where the transform says (to within a model pixel)
    rows, cols = np.nonzero(mask)
    lo = transform.to_model(np.array([cols.min(), rows.min()], float))
    hi = transform.to_model(np.array([cols.max() + 1, rows.max() + 1], float))
    r2, c2 = np.nonzero(model_input)
    assert abs(c2.min() - lo[0]) <= 1 and abs(r2.min() - lo[1]) <= 1
    assert abs(c2.max() + 1 - hi[0]) <= 1 and abs(r2.max() + 1 - hi[1]) <= 1
    # round trip of pixel coordinates, and K: projecting with K_model == mapping the projection
    uv = np.array([[3.25, 7.5], [40.0, 11.0]])
    assert np.allclose(transform.to_original(transform.to_model(uv)), uv)
    camera = Camera.centered(shape, 2.2 * max(shape))
    model_camera = transform.camera(camera)
    point = np.array([0.01, -0.02, 0.5])
    assert model_camera.image_size == transform.model_size
    assert np.allclose(model_camera.project(point), transform.to_model(camera.project(point)))


def test_prepare_centers_non_square_masks():
    mask = np.ones((20, 80), bool)
    mask[0] = mask[-1] = False
    mask[:, 0] = mask[:, -1] = False
    prepared = prepare_mask(mask.astype(np.uint8) * 255, 80)
    rows = np.nonzero(prepared.model_input.any(axis=1))[0]
    assert rows.min() == 31 and rows.max() == 48  # 30 rows of padding above and below, minus the border row


# ------------------------------------------------------------------ camera

def test_default_camera_and_note():
    choice = resolve_camera((224, 224))
    assert choice.source == "default" and "absolute depth" in choice.note
    assert default_focal((224, 224)) == pytest.approx(DEFAULT_FOCAL_FACTOR * 224)
    assert np.allclose(choice.camera.K[:2, 2], [112, 112]) and choice.camera.image_size == (224, 224)
    assert resolve_camera((100, 300), focal=500).camera.K[0, 2] == 150
    assert resolve_camera((10, 10), focal=5).note is None
    with pytest.raises(Mask2HandError):
        resolve_camera((10, 10), focal=-1)
    with pytest.raises(Mask2HandError):
        resolve_camera((10, 10), K=np.eye(2))


def test_k_file_forms(tmp_path):
    K = Camera.centered((224, 224), 500.0).K
    (tmp_path / "one.json").write_text(json.dumps(K.tolist()))
    assert np.allclose(KFile(tmp_path / "one.json").for_input("anything.png"), K)
    (tmp_path / "list.json").write_text(json.dumps([K.tolist(), (K * [[2], [2], [1]]).tolist()]))
    kl = KFile(tmp_path / "list.json")
    assert kl.for_input("dir/00000001.jpg")[0, 0] == 1000.0
    with pytest.raises(Mask2HandError, match="cannot tell"):
        kl.for_input("hand.png")
    with pytest.raises(Mask2HandError, match="only 2"):
        kl.for_input("00000007.jpg")
    (tmp_path / "named.json").write_text(json.dumps({"a.png": K.tolist(), "b": K.tolist()}))
    kn = KFile(tmp_path / "named.json")
    assert np.allclose(kn.for_input("x/a.png"), K) and np.allclose(kn.for_input("b.npy"), K)
    with pytest.raises(Mask2HandError, match="no entry"):
        kn.for_input("c.png")
    (tmp_path / "bad.json").write_text("[[1, 2]")
    with pytest.raises(Mask2HandError, match="not valid JSON"):
        KFile(tmp_path / "bad.json")


def test_crop_fills_the_input_with_the_hand():
    # a small blob near a corner: the crop centres it and scales its larger side to 1/margin
    mask = np.zeros((400, 300), bool)
    mask[20:60, 250:270] = True
    model_input, transform = resample_mask(mask, 64, crop_margin=1.25)
    rows, cols = np.nonzero(model_input)
    assert abs((rows.max() + 1 - rows.min()) - 64 / 1.25) <= 2
    assert abs(0.5 * (rows.min() + rows.max() + 1) - 32) <= 1.5 and abs(0.5 * (cols.min() + cols.max() + 1) - 32) <= 1.5
    assert transform.scale > 1  # the 40-pixel blob was enlarged


def test_a_16_bit_mask_is_called_empty_at_the_level_actually_used(tmp_path):
    """A 16-bit picture holding 0/255 is cut at 127 on the 8-bit scale, i.e. 32639: the message
    names that level, the one the pixels were compared with."""
    image = np.zeros((40, 40), np.uint16)
    image[10:30, 10:30] = 255
    Image.fromarray(image).save(tmp_path / "hand16.tif")
    with pytest.raises(Mask2HandError, match=r"above 32639 \(threshold 127 on the 8-bit scale"):
        load_mask(tmp_path / "hand16.tif")
    with pytest.raises(Mask2HandError, match=r"above 0\.5 \(values in \[0, 1\]\)"):
        binarize(np.zeros((30, 30), np.float32))


@pytest.mark.parametrize("skew", [1e6, 1e300])
def test_a_k_with_a_huge_skew_is_refused_naming_the_skew(skew, tmp_path):
    K = Camera.centered((100, 100), 220.0).K
    K[0, 1] = skew
    with pytest.raises(Mask2HandError, match="^K has a skew of"):
        resolve_camera((100, 100), K=K)
    path = tmp_path / "K.json"
    path.write_text(json.dumps(K.tolist()))
    with pytest.raises(Mask2HandError, match=f"^K in {path} has a skew of"):
        KFile(path)
    K[0, 1] = 5.0  # a skew a real camera (or a sheared crop) can have is kept
    assert resolve_camera((100, 100), K=K).camera.K[0, 1] == 5.0


def _k_file_error(path) -> str:
    """The message of KFile(path), in a thread that must finish within 20 s (a FIFO blocks on open)."""
    outcome: dict[str, str] = {}

    def read() -> None:
        try:
            KFile(path)
            outcome["error"] = "accepted"
        except Mask2HandError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), f"KFile({path}) still reading after 20 s"
    return outcome["error"]


def test_k_files_that_never_end_are_refused_in_one_line(tmp_path, monkeypatch):
    """--K /dev/zero passed 4 GB and a FIFO hung: only a regular file of bounded size is read."""
    fifo = tmp_path / "K.fifo"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo, tmp_path):
        message = _k_file_error(path)
        assert message.startswith(f"K file {path} is not a regular file") and "\n" not in message, message
    big = tmp_path / "big.json"
    big.write_text(json.dumps(Camera.centered((224, 224), 500.0).K.tolist()))
    monkeypatch.setattr(cameras, "MAX_K_FILE_BYTES", 40)
    assert _k_file_error(big).startswith(f"K file {big} is larger than 40 bytes")
    monkeypatch.undo()
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert _k_file_error(deep).startswith(f"K file {deep} is not valid JSON")
