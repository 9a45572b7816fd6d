"""Reading mask files: an image (Pillow) or a .npy array -> a 2-D array of grey levels.

`read_image(path)` checks that the file is an image, is complete, is at most MAX_IMAGE_SIDE
pixels a side and looks like a mask (two grey levels, not a photo); `read_array(array)`
applies the same checks to an array a caller already holds. Cleaning the result (threshold,
largest region) is mask2hand.image.masks's job.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mask2hand.errors import InputError
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".pbm", ".ppm", ".pnm", ".webp")


ARRAY_SUFFIXES = (".npy",)


MASK_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES
"""File name endings `mask2hand predict` picks up from folders."""


MAX_IMAGE_SIDE = 8000
"""Larger images are refused: a silhouette needs no more, and decoding them costs gigabytes."""


TWO_LEVEL_FRACTION = 0.9
"""A mask image has at least this fraction of its pixels near its two dominant grey levels."""


_LEVEL_TOLERANCE = 40  # grey levels around each dominant level that still count as "that level" (JPEG ringing)


_MIN_CONTRAST = 64  # the two levels of a mask differ by at least this much


def check_image_size(height: int, width: int, what: str) -> None:
    if max(height, width) > MAX_IMAGE_SIDE:
        raise InputError(f"{what} is {width}x{height} pixels, larger than {MAX_IMAGE_SIDE} a side; "
                         "downscale it (a silhouette needs a few hundred pixels)")


NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of every .npy file."""


def _read_npy(path: Path) -> np.ndarray:
    with path.open("rb") as file:
        if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
            raise InputError("not a .npy array (it lacks numpy's .npy header: an image named .npy?); save the "
                             "mask with numpy.save as a 2-D array, or give an image its own suffix")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # truncated header, an array of Python objects
        # numpy's message for objects advises enabling pickled objects, which would run code from the file
        reason = "it holds Python objects" if "pickle" in str(exc) else f"{type(exc).__name__}: {exc}"
        raise InputError(f"not a readable .npy array ({reason}); save the mask with numpy.save as a 2-D "
                         "array of numbers") from None
    array = np.squeeze(array)
    if array.ndim != 2:
        raise InputError(f"the array has shape {tuple(array.shape)}; a mask must be 2-D (H,W)")
    check_image_size(*array.shape, "the array")
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise InputError(f"the array has dtype {array.dtype}; a mask must be boolean, integer or real "
                         "(not complex, text or objects)")
    try:
        return np.array(array)
    except Exception as exc:  # memory-mapped data shorter than the header says
        raise InputError(f"the .npy file is truncated ({exc}); save it again") from None


def _grey_from_pil(image) -> np.ndarray:
    """Pillow image -> 2-D grey array; refuses colour photos."""
    mode = image.mode
    if mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        has_alpha = mode in ("LA", "PA", "RGBA") or (mode == "P" and "transparency" in image.info)
        if mode in ("P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
            image = image.convert("RGBA" if has_alpha else "RGB")
        array = np.asarray(image)
        if array.dtype == bool:
            return array
        if array.ndim == 2:
            return array
        colour = array[..., :-1] if has_alpha else array
        alpha = array[..., -1] if has_alpha else None
        if alpha is not None and alpha.min() < 255:
            if int(colour.max()) - int(colour.min()) <= 8:
                return alpha  # a cut-out: the hand is where the image is opaque
            colour = (colour.astype(np.float32) * (alpha[..., None] / 255.0)).round().astype(np.uint8)
        if colour.shape[-1] == 1:
            return colour[..., 0]
        _check_not_colour_photo(colour)
        grey = colour.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(grey.round(), 0, 255).astype(np.uint8)
    # 16-bit and float modes ("I;16", "I", "F"): numbers as they are
    return np.asarray(image)


def _check_not_colour_photo(rgb: np.ndarray) -> None:
    """Refuse images whose pixels are strongly and variously coloured (a photo, not a mask).

    A coloured mask (e.g. a green hand on black) has few distinct colours and passes; the
    grey-level test in `check_two_levels` catches the rest.
    """
    rgb16 = rgb.astype(np.int16)
    chroma = rgb16.max(-1) - rgb16.min(-1)
    coloured = chroma > 48
    if coloured.mean() < 0.05:
        return
    # how many distinct (coarsely quantised) colours the coloured pixels use
    quant = (rgb[coloured] // 32).astype(np.int32)
    codes = np.unique(quant[:, 0] * 64 + quant[:, 1] * 8 + quant[:, 2])
    if len(codes) > 12:
        raise InputError("this looks like a colour photo, not a mask (many colours); give a binary "
                         "silhouette: hand white on black (segment the hand first)")


def check_two_levels(grey: np.ndarray) -> None:
    """Raise InputError if an 8-bit grey image is not essentially two-level (a photo).

    A mask, even saved as JPEG or anti-aliased, has nearly all its pixels near two grey
    levels; a photo spreads over many.
    """
    if grey.dtype == bool or grey.size == 0:
        return
    levels = np.clip(np.asarray(grey, dtype=np.float64), 0, 255).round().astype(np.int64)
    hist = np.bincount(levels.ravel(), minlength=256).astype(np.float64)
    first = int(hist.argmax())
    far = np.abs(np.arange(256) - first) >= _MIN_CONTRAST
    if not far.any() or hist[far].sum() == 0:
        near = np.abs(np.arange(256) - first) <= _LEVEL_TOLERANCE
    else:
        second = int(np.argmax(np.where(far, hist, -1)))
        near = (np.abs(np.arange(256) - first) <= _LEVEL_TOLERANCE) | \
            (np.abs(np.arange(256) - second) <= _LEVEL_TOLERANCE)
    fraction = hist[near].sum() / hist.sum()
    if fraction < TWO_LEVEL_FRACTION:
        raise InputError(f"this looks like a photo, not a mask (only {fraction:.0%} of the pixels are near two "
                         "grey levels); give a binary silhouette: hand white on black")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A mask file -> 2-D array (H,W): uint8 grey levels, bool, or the numbers of a .npy / 16-bit image.

    Raises InputError for a missing file, a file that is not an image, a truncated
    image, an image larger than MAX_IMAGE_SIDE a side, or a colour photo.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found" if not path.exists() else "not a file")
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return _read_npy(path)

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            check_image_size(height, width, "the image")
            frames = getattr(image, "n_frames", 1)
            if frames > 1:  # a multi-page TIFF, an animated PNG or GIF: which frame is the mask?
                raise InputError(f"the file holds {frames} frames; predict it as a sequence (--sequence, "
                                 "or Mask2Hand with mask2hand.inference.read_frames) or save one frame")
            try:
                image.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise InputError(f"the image is truncated or corrupt ({exc}); export it again") from None
            array = _grey_from_pil(image)
    except UnidentifiedImageError:
        raise InputError("not an image (Pillow cannot identify it); give a PNG, JPEG, BMP, TIFF or PGM "
                         "mask, or a .npy array") from None
    except Image.DecompressionBombError:
        raise InputError(f"the image is too large to decode safely; downscale it below {MAX_IMAGE_SIDE} "
                         "pixels a side") from None
    except OSError as exc:
        raise InputError(f"cannot read the image ({exc}); export it again as PNG") from None
    if array.dtype == np.uint8:
        check_two_levels(array)
    return array


def _pil_from_array(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(array)


def read_array(image: np.ndarray) -> np.ndarray:
    """An in-memory mask -> 2-D array (H,W): (H,W) as it is, an (H,W,3) / (H,W,4) uint8 picture
    converted to grey as a file would be. Raises InputError for other shapes, an array
    larger than MAX_IMAGE_SIDE a side, or an 8-bit picture that is not two-level (a photo)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] in (3, 4) and image.dtype == np.uint8:
        image = _grey_from_pil(_pil_from_array(image))
    elif image.ndim != 2:
        raise InputError(f"a mask must be a 2-D array (H,W), got shape {tuple(image.shape)}")
    check_image_size(*image.shape[:2], "the array")
    if image.dtype == np.uint8:
        check_two_levels(image)
    return image
