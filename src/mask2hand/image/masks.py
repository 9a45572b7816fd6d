"""Cleaning masks and cutting the hand's window: grey image -> hand mask -> square window.

1. `binarize(image, threshold)`: hand = value > threshold (0/1 images and boolean arrays
   are taken as they are); an inverted mask (hand black on white) is detected from its
   border and flipped, with a warning.
2. `keep_largest_component(mask)`: the hand is the largest 8-connected region; other
   regions are dropped, with a warning when one of them is large.
3. `resample_mask(mask, size, crop_margin)`: pad to a centered square, or cut the square
   around the hand (mask2hand.image.crop), and resample to `size`; the `MaskTransform` it
   returns maps pixel coordinates and K between the original image and the result, so
   outputs map back exactly.

`load_mask(source)` reads a file or array (mask2hand.image.files) and runs steps 1-2. The
datasets, evaluation, fitting and `predict` all cut windows with these functions. Problems
the user can fix raise InputError with a one-line message; recoverable oddities are
returned as warning strings (one line each), never printed here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mask2hand.errors import InputError
from mask2hand.image.camera import Camera
from mask2hand.image.crop import box_of_mask, integer_window, square_window, whole_image_window
from mask2hand.image.files import read_array, read_image

DEFAULT_THRESHOLD = 127
"""8-bit grey level above which a pixel is hand (FreiHAND's masks are binarized the same way)."""


MIN_HAND_PIXELS = 16
"""A hand region smaller than this (in pixels) carries no shape to predict from."""

LARGE_BLOB_FRACTION = 0.1
"""Warn when a dropped region is at least this fraction of the kept hand's area."""




@dataclass(frozen=True)
class MaskTransform:
    """Similarity map from original-image pixel coordinates to model-input pixel coordinates.

    p_model = scale * p_orig + offset, for continuous coordinates (u right, v down; the
    README's Conventions, pixel centers at j + 0.5). Intrinsics follow the same map:
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

    def camera(self, camera: Camera) -> Camera:
        """The camera of the original image -> the camera of the model input."""
        return camera.mapped(self.matrix, self.model_size)

    def to_model(self, uv: np.ndarray) -> np.ndarray:
        """Pixel coordinates (...,2) of the original image -> of the model input."""
        uv = np.asarray(uv, dtype=np.float64)
        return uv * self.scale + np.asarray(self.offset)

    def to_original(self, uv: np.ndarray) -> np.ndarray:
        """Pixel coordinates (...,2) of the model input -> of the original image."""
        uv = np.asarray(uv, dtype=np.float64)
        return (uv - np.asarray(self.offset)) / self.scale

















# ---------------------------------------------------------------------- binarizing

def binarize(image: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> tuple[np.ndarray, list[str]]:
    """Grey image (H,W) -> (hand mask (H,W) bool, warnings).

    bool arrays are used as they are; arrays whose values all lie in [0, 1] (0/1 masks,
    probabilities) are cut at 0.5; anything else at `threshold` (8-bit scale; 16-bit
    images are rescaled to 8 bits first). An inverted mask (hand black on white: "hand"
    covers over 3/4 of the image border, or over half of both the border and the image)
    is flipped with a warning.
    Raises InputError for an empty or an all-hand mask.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise InputError(f"a mask must be 2-D (H,W), got shape {tuple(image.shape)}")
    if image.size == 0:
        raise InputError("the mask has no pixels")
    warnings: list[str] = []
    if image.dtype == bool:
        mask = image.copy()
        how = "0 (a bool mask)"
    else:
        # compared in the image's own dtype: a float64 copy of a large image would cost 8 bytes a pixel
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            raise InputError("the mask holds NaN or infinite values; give finite numbers (0/1 or 0..255)")
        low, high = float(image.min()), float(image.max())
        if low >= 0.0 and high <= 1.0:
            mask = image > 0.5
            how = "0.5 (values in [0, 1])"
        else:
            level = float(threshold)
            how = f"threshold {threshold:g}"
            if image.dtype == np.uint16 or (np.issubdtype(image.dtype, np.integer) and high > 255):
                level *= 65535.0 / 255.0  # the 8-bit threshold on the 16-bit scale
                how = f"{level:g} (threshold {threshold:g} on the 8-bit scale, for 16-bit values)"
            mask = image > level
    fraction = float(mask.mean())
    if fraction == 0.0:
        raise InputError(f"the mask is empty: no pixel above {how}; the hand must be white "
                         "(bright) on black, or lower --threshold")
    if fraction == 1.0:
        raise InputError(f"the mask is all hand: every pixel above {how}; give a silhouette "
                         "with background around the hand, or raise --threshold")
    border = _border_fraction(mask)
    # A real hand rarely covers most of the image border; the background of an inverted
    # mask covers nearly all of it.
    if border > 0.75 or (border > 0.5 and fraction > 0.5):
        mask = ~mask
        warnings.append("the mask looked inverted (hand black on white) and was flipped; "
                        "save masks with the hand white to avoid this guess")
    return mask, warnings


def touched_sides(mask: np.ndarray) -> list[str]:
    """The image borders ("top", "bottom", "left", "right") that a mask (H,W) bool reaches."""
    edges = {"top": mask[0], "bottom": mask[-1], "left": mask[:, 0], "right": mask[:, -1]}
    return [side for side, edge in edges.items() if edge.any()]


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
    Raises InputError when the hand region has fewer than MIN_HAND_PIXELS pixels.
    """
    labels, areas = _regions(mask)
    if len(areas) == 0:
        raise InputError("the mask is empty; the hand must be white (bright) on black")
    order = np.argsort(areas)[::-1]
    hand_area = int(areas[order[0]])
    if hand_area < MIN_HAND_PIXELS:
        raise InputError(f"the hand region has only {hand_area} pixels; give a mask where the hand "
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
    image = read_image(source) if isinstance(source, (str, os.PathLike)) else read_array(source)
    mask, warnings = binarize(image, threshold)
    mask, more = keep_largest_component(mask)
    return mask, warnings + more


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
        Ks.append(transform.camera(Camera(k, mask.shape)).K)
    return np.stack(inputs), np.stack(Ks)


