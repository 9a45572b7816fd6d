"""The one loader and preparer of input masks: file or array -> clean binary mask -> model input.

Steps, each a function of its own so other parts (evaluation, sequences, the ONNX
runtime) reuse them:

1. `read_image(path)`: PNG / JPEG / BMP / TIFF / PGM (Pillow) or .npy -> a 2-D array of
   grey levels (uint8 0..255, or 0/1 values, or floats), after checking the file is an
   image, is complete, is at most MAX_IMAGE_SIDE pixels a side and looks like a mask
   (two grey levels, not a photo).
2. `binarize(image, threshold)`: hand = value > threshold (0/1 images and boolean arrays
   are taken as they are); an inverted mask (hand black on white) is detected from its
   border and flipped, with a warning.
3. `keep_largest_component(mask)`: the hand is the largest 8-connected region; other
   regions are dropped, with a warning when one of them is large.
4. `prepare_mask(mask, size)`: pad to a square (centered), or cut the square around the
   hand for a cropping network (mask2hand.image.crop), and resample to the model's input size;
   the `MaskTransform` it returns maps pixel coordinates and K between the original
   image and the model input, so outputs map back exactly.

`load_mask(source)` runs steps 1-3. Problems the user can fix raise Mask2HandError with
a one-line message; recoverable oddities are returned as warning strings (one line
each), never printed here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.image.crop import box_of_mask, integer_window, square_window, whole_image_window

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".pbm", ".ppm", ".pnm", ".webp")
ARRAY_SUFFIXES = (".npy",)
MASK_SUFFIXES = IMAGE_SUFFIXES + ARRAY_SUFFIXES
"""File name endings `mask2hand predict` picks up from folders."""

DEFAULT_THRESHOLD = 127
"""8-bit grey level above which a pixel is hand (FreiHAND's masks are binarized the same way)."""

MAX_IMAGE_SIDE = 8000
"""Larger images are refused: a silhouette needs no more, and decoding them costs gigabytes."""

MIN_HAND_PIXELS = 16
"""A hand region smaller than this (in pixels) carries no shape to predict from."""

LARGE_BLOB_FRACTION = 0.1
"""Warn when a dropped region is at least this fraction of the kept hand's area."""

TWO_LEVEL_FRACTION = 0.9
"""A mask image has at least this fraction of its pixels near its two dominant grey levels."""

_LEVEL_TOLERANCE = 40  # grey levels around each dominant level that still count as "that level" (JPEG ringing)
_MIN_CONTRAST = 64  # the two levels of a mask differ by at least this much


@dataclass(frozen=True)
class MaskTransform:
    """Similarity map from original-image pixel coordinates to model-input pixel coordinates.

    p_model = scale * p_orig + offset, for continuous coordinates (u right, v down; the
    guide's convention, pixel centers at j + 0.5). Intrinsics follow the same map:
    K_model = A @ K_orig with A = [[scale, 0, ox], [0, scale, oy], [0, 0, 1]], so a 3-D
    point projects to corresponding pixels in both images: camera-space outputs need no
    change, only 2-D quantities do.
    """

    scale: float
    offset: tuple[float, float]
    original_size: tuple[int, int]
    model_size: tuple[int, int]

    @property
    def matrix(self) -> np.ndarray:
        """A (3,3) float64: homogeneous pixel map original -> model."""
        return np.array([[self.scale, 0.0, self.offset[0]], [0.0, self.scale, self.offset[1]], [0.0, 0.0, 1.0]])

    def K_to_model(self, K: np.ndarray) -> np.ndarray:
        """Intrinsics (3,3) or (B,3,3) of the original image -> of the model input."""
        return self.matrix @ np.asarray(K, dtype=np.float64)

    def to_model(self, uv: np.ndarray) -> np.ndarray:
        """Pixel coordinates (...,2) of the original image -> of the model input."""
        uv = np.asarray(uv, dtype=np.float64)
        return uv * self.scale + np.asarray(self.offset)

    def to_original(self, uv: np.ndarray) -> np.ndarray:
        """Pixel coordinates (...,2) of the model input -> of the original image."""
        uv = np.asarray(uv, dtype=np.float64)
        return (uv - np.asarray(self.offset)) / self.scale


@dataclass
class PreparedMask:
    """A mask ready for the network.

    mask: (H,W) bool, the cleaned mask at the original resolution (what IoU is measured
    against). model_input: (S,S) float32 0/1, the padded and resampled network input.
    transform: original <-> model pixel map. warnings: one-line messages about what was
    changed. source: file name or "<array i>".
    """

    mask: np.ndarray
    model_input: np.ndarray
    transform: MaskTransform
    warnings: list[str] = field(default_factory=list)
    source: str = "<array>"

    @property
    def image_size(self) -> tuple[int, int]:
        return self.transform.original_size


# --------------------------------------------------------------------------- reading

def _check_side(height: int, width: int, what: str) -> None:
    if max(height, width) > MAX_IMAGE_SIDE:
        raise Mask2HandError(f"{what} is {width}x{height} pixels, larger than {MAX_IMAGE_SIDE} a side; "
                             "downscale it (a silhouette needs a few hundred pixels)")


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # truncated header, pickled object, not numpy at all
        raise Mask2HandError(f"not a readable .npy array ({type(exc).__name__}: {exc}); "
                             "save the mask with numpy.save as a 2-D array") from None
    array = np.squeeze(array)
    if array.ndim != 2:
        raise Mask2HandError(f"the array has shape {tuple(array.shape)}; a mask must be 2-D (H,W)")
    _check_side(*array.shape, "the array")
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise Mask2HandError(f"the array has dtype {array.dtype}; a mask must be boolean or numeric")
    try:
        return np.array(array)
    except Exception as exc:  # memory-mapped data shorter than the header says
        raise Mask2HandError(f"the .npy file is truncated ({exc}); save it again") from None


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
        raise Mask2HandError("this looks like a colour photo, not a mask (many colours); give a binary "
                             "silhouette: hand white on black (segment the hand first)")


def check_two_levels(grey: np.ndarray) -> None:
    """Raise Mask2HandError if an 8-bit grey image is not essentially two-level (a photo).

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
        raise Mask2HandError(f"this looks like a photo, not a mask (only {fraction:.0%} of the pixels are near two "
                             "grey levels); give a binary silhouette: hand white on black")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A mask file -> 2-D array (H,W): uint8 grey levels, bool, or the numbers of a .npy / 16-bit image.

    Raises Mask2HandError for a missing file, a file that is not an image, a truncated
    image, an image larger than MAX_IMAGE_SIDE a side, or a colour photo.
    """
    path = Path(path)
    if not path.is_file():
        raise Mask2HandError("file not found" if not path.exists() else "not a file")
    if path.suffix.lower() in ARRAY_SUFFIXES:
        return _read_npy(path)

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            _check_side(height, width, "the image")
            try:
                image.load()
            except (OSError, SyntaxError, ValueError) as exc:
                raise Mask2HandError(f"the image is truncated or corrupt ({exc}); export it again") from None
            array = _grey_from_pil(image)
    except UnidentifiedImageError:
        raise Mask2HandError("not an image (Pillow cannot identify it); give a PNG, JPEG, BMP, TIFF or PGM "
                             "mask, or a .npy array") from None
    except Image.DecompressionBombError:
        raise Mask2HandError(f"the image is too large to decode safely; downscale it below {MAX_IMAGE_SIDE} "
                             "pixels a side") from None
    except OSError as exc:
        raise Mask2HandError(f"cannot read the image ({exc}); export it again as PNG") from None
    if array.dtype == np.uint8:
        check_two_levels(array)
    return array


# ---------------------------------------------------------------------- binarizing

def binarize(image: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, list[str]]:
    """Grey image (H,W) -> (hand mask (H,W) bool, warnings).

    bool arrays are used as they are; arrays whose values all lie in [0, 1] (0/1 masks,
    probabilities) are cut at 0.5; anything else at `threshold` (8-bit scale; 16-bit
    images are rescaled to 8 bits first). An inverted mask (hand black on white: "hand"
    covers over 3/4 of the image border, or over half of both the border and the image)
    is flipped with a warning.
    Raises Mask2HandError for an empty or an all-hand mask.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise Mask2HandError(f"a mask must be 2-D (H,W), got shape {tuple(image.shape)}")
    if image.size == 0:
        raise Mask2HandError("the mask has no pixels")
    warnings: list[str] = []
    if image.dtype == bool:
        mask = image.copy()
        how = "nonzero"
    else:
        values = image.astype(np.float64, copy=False)
        if not np.isfinite(values).all():
            raise Mask2HandError("the mask holds NaN or infinite values; give finite numbers (0/1 or 0..255)")
        low, high = float(values.min()), float(values.max())
        if low >= 0.0 and high <= 1.0:
            mask = values > 0.5
            how = "0.5 (values in [0, 1])"
        else:
            if image.dtype == np.uint16 or (np.issubdtype(image.dtype, np.integer) and high > 255):
                values = values * (255.0 / 65535.0)
            mask = values > threshold
            how = f"{threshold:g}"
    fraction = float(mask.mean())
    if fraction == 0.0:
        raise Mask2HandError(f"the mask is empty (no pixel above threshold {how}); the hand must be white "
                             "(bright) on black, or lower --threshold")
    if fraction == 1.0:
        raise Mask2HandError(f"the mask is all hand (every pixel above threshold {how}); give a silhouette "
                             "with background around the hand, or raise --threshold")
    border = _border_fraction(mask)
    # A real hand rarely covers most of the image border; the background of an inverted
    # mask covers nearly all of it.
    if border > 0.75 or (border > 0.5 and fraction > 0.5):
        mask = ~mask
        warnings.append("the mask looked inverted (hand black on white) and was flipped; "
                        "save masks with the hand white to avoid this guess")
    return mask, warnings


def _border_fraction(mask: np.ndarray) -> float:
    border = np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])
    return float(border.mean())


def _regions(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mask (H,W) -> (labels (H,W) int32 of its 8-connected regions, 0 for background;
    areas (R,) in pixels of regions 1..R)."""
    import cv2

    _, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask).astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return labels, areas


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Mask (H,W) -> its largest 8-connected region (H,W) bool (an empty mask stays empty).

    The silhouette of one hand is one connected region, so any other region is noise
    (a segmenter's speckle); `predict`, evaluation, fitting and training all cut the
    hand's window around this region.
    """
    labels, areas = _regions(mask)
    if len(areas) == 0:
        return np.zeros(np.shape(mask), bool)
    return labels == int(np.argmax(areas)) + 1


def keep_largest_component(mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Mask (H,W) bool -> (its largest 8-connected region, warnings).

    The hand is taken to be the largest region; a warning names other regions of at
    least LARGE_BLOB_FRACTION of its area (small specks are dropped silently).
    Raises Mask2HandError when the hand region has fewer than MIN_HAND_PIXELS pixels.
    """
    labels, areas = _regions(mask)
    if len(areas) == 0:
        raise Mask2HandError("the mask is empty; the hand must be white (bright) on black")
    order = np.argsort(areas)[::-1]
    hand_area = int(areas[order[0]])
    if hand_area < MIN_HAND_PIXELS:
        raise Mask2HandError(f"the hand region has only {hand_area} pixels; give a mask where the hand "
                             f"covers at least {MIN_HAND_PIXELS} pixels")
    warnings: list[str] = []
    if len(areas) > 1:
        others = areas[order[1:]]
        large = others[others >= LARGE_BLOB_FRACTION * hand_area]
        if len(large):
            warnings.append(f"kept the largest region ({hand_area} px) and dropped {len(others)} other(s), "
                            f"the biggest {int(others[0])} px ({others[0] / hand_area:.0%} of the hand); "
                            "give a mask with one hand only")
        mask = labels == (order[0] + 1)
    return mask, warnings


def load_mask(source: str | os.PathLike | np.ndarray, threshold: float = DEFAULT_THRESHOLD
              ) -> tuple[np.ndarray, list[str]]:
    """A mask file or array -> (clean hand mask (H,W) bool, warnings): read, binarize, largest region."""
    if isinstance(source, (str, os.PathLike)):
        image = read_image(source)
    else:
        image = np.asarray(source)
        if image.ndim == 3 and image.shape[-1] in (3, 4) and image.dtype == np.uint8:
            image = _grey_from_pil(_pil_from_array(image))
        elif image.ndim != 2:
            raise Mask2HandError(f"a mask must be a 2-D array (H,W), got shape {tuple(image.shape)}")
        _check_side(*image.shape[:2], "the array")
        if image.dtype == np.uint8:
            check_two_levels(image)
    mask, warnings = binarize(image, threshold)
    mask, more = keep_largest_component(mask)
    return mask, warnings + more


def _pil_from_array(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(array)


# ---------------------------------------------------------------------- preparing

def window_transform(image_size: tuple[int, int], window: np.ndarray, size: int) -> MaskTransform:
    """The map from an (H,W) image to a window (u0, v0, side) of it resampled to (size, size)
    (see mask2hand.image.crop)."""
    u0, v0, side = (float(x) for x in window)
    scale = size / side
    return MaskTransform(scale=scale, offset=(-u0 * scale, -v0 * scale), original_size=tuple(image_size),
                         model_size=(size, size))


def resample_window(mask: np.ndarray, window: np.ndarray, size: int) -> np.ndarray:
    """Cut an integer window (3,) (u0, v0, side) out of a mask (H,W) and resample it to
    (size, size) float32 0/1; parts outside the image are background.

    Area averaging when shrinking (thin fingers survive large reductions), bilinear when
    enlarging, then a cut at one half. cv2.resize maps continuous coordinates by exactly
    size/side, so `window_transform` of the same window is exact.
    """
    import cv2

    left, top, side = (int(x) for x in window)
    padded = np.zeros((side, side), dtype=np.float32)
    rows = slice(max(top, 0), min(top + side, mask.shape[0]))
    cols = slice(max(left, 0), min(left + side, mask.shape[1]))
    if rows.start < rows.stop and cols.start < cols.stop:
        padded[rows.start - top:rows.stop - top, cols.start - left:cols.stop - left] = mask[rows, cols]
    if side == size:
        resized = padded
    else:
        interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        resized = cv2.resize(padded, (size, size), interpolation=interp)
    return (resized > 0.5).astype(np.float32)


def resample_mask(mask: np.ndarray, size: int, crop_margin: float | None = None) -> tuple[np.ndarray, MaskTransform]:
    """Cut a square window out of a mask (H,W) and resample it to (size, size) float32 0/1
    (`resample_window`), with the transform from the image to the result.

    The window is the whole image padded to a centered square, or with `crop_margin` the
    square around the hand (mask2hand.image.crop.square_window), grown to whole pixels.
    """
    window = whole_image_window(mask.shape) if crop_margin is None else hand_window(mask, crop_margin)
    return resample_window(mask, window, size), window_transform(mask.shape, window, size)


def hand_window(mask: np.ndarray, crop_margin: float) -> np.ndarray:
    """The integer window (3,) (u0, v0, side) around a mask's hand that `resample_mask` cuts:
    the square of crop_margin x the box's larger side (mask2hand.image.crop.square_window), grown
    to whole pixels."""
    return integer_window(square_window(box_of_mask(mask), crop_margin))


def resample_masks(masks, K: np.ndarray, size: int,
                   crop_margin: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Masks (each (H,W) 0/1, sizes may differ) with their intrinsics K (B,3,3) -> model inputs
    (B,size,size) float32 0/1 and their intrinsics (B,3,3) float64, prepared as `predict`
    prepares a mask: the largest region kept (`largest_component`), then cut and resampled by
    `resample_mask`; an empty mask keeps the whole image (there is no hand to cut around)."""
    inputs, Ks = [], []
    for mask, k in zip(masks, np.asarray(K)):
        mask = largest_component(np.asarray(mask) > 0.5)
        resampled, transform = resample_mask(mask, size, crop_margin if mask.any() else None)
        inputs.append(resampled)
        Ks.append(transform.K_to_model(k))
    return np.stack(inputs), np.stack(Ks)


def prepare_mask(source: str | os.PathLike | np.ndarray, size: int, threshold: float = DEFAULT_THRESHOLD,
                 name: str | None = None, crop_margin: float | None = None) -> PreparedMask:
    """Load (file or array) and prepare a mask for a network with (size, size) input
    (cropped around the hand with `crop_margin`, see `resample_mask`)."""
    mask, warnings = load_mask(source, threshold)
    model_input, transform = resample_mask(mask, size, crop_margin)
    if not model_input.any():
        raise Mask2HandError(f"the hand region vanishes when the mask is resized to {size}x{size}; "
                             "give a mask where the hand covers more of the image")
    if name is None:
        name = str(source) if isinstance(source, (str, os.PathLike)) else "<array>"
    return PreparedMask(mask=mask, model_input=model_input, transform=transform, warnings=warnings, source=name)
