"""Hand crops: the square window around the hand that a cropping network sees.

A network trained with `NetConfig.input_crop = margin` never sees the whole image:
the mask is cut to a square window around the hand, `margin` times the larger
side of the hand's bounding box, centred on the box, and resampled to the input
size S. The window is a change of pixel coordinates, p_crop = s (p - (u0, v0))
with s = S / side, so the intrinsics follow as K_crop = A K with
A = [[s, 0, -s u0], [0, s, -s v0], [0, 0, 1]]: the camera is unchanged and every
3-D output stays in the original camera frame. The hand then always fills about
1/margin of the input whatever its size in the image, and the network learns its
distance from the focal length of K_crop (see mask2hand.nn.encoder).

Coordinates are continuous pixels (the README's Conventions: pixel (row i, col j)
covers [j, j+1) x [i, i+1)). Boxes are (u_min, v_min, u_max, v_max); windows are
(u0, v0, side) with (u0, v0) the top-left corner. numpy only (no torch).
"""

from __future__ import annotations

import numpy as np

from mask2hand.errors import Mask2HandError

DEFAULT_MARGIN = 1.25


def box_of_mask(mask: np.ndarray) -> np.ndarray:
    """Bounding box (4,) float64 of the nonzero pixels of a mask (H,W), pixel extents included."""
    rows = np.flatnonzero(np.asarray(mask).any(axis=1))
    cols = np.flatnonzero(np.asarray(mask).any(axis=0))
    if rows.size == 0:
        raise Mask2HandError("the mask is empty: there is no hand to crop around")
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)


def box_of_points(uv: np.ndarray) -> np.ndarray:
    """Bounding boxes (...,4) float64 of projected points (...,N,2) in pixels."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.concatenate([uv.min(axis=-2), uv.max(axis=-2)], axis=-1)


def square_window(box: np.ndarray, margin: float = DEFAULT_MARGIN, shift: np.ndarray | float = 0.0,
                  scale: np.ndarray | float = 1.0) -> np.ndarray:
    """Windows (...,3) (u0, v0, side) around boxes (...,4).

    side = margin * scale * max(box width, box height); the window's center is the box's
    center moved by shift * side (shift (...,2) or a scalar; used to jitter crops in training).
    """
    if margin <= 0:
        raise Mask2HandError(f"the crop margin must be positive, got {margin}")
    box = np.asarray(box, dtype=np.float64)
    extent = np.maximum(box[..., 2] - box[..., 0], box[..., 3] - box[..., 1])
    side = margin * np.asarray(scale, dtype=np.float64) * np.maximum(extent, 1.0)
    center = 0.5 * (box[..., :2] + box[..., 2:]) + np.asarray(shift, dtype=np.float64) * side[..., None]
    return np.concatenate([center - 0.5 * side[..., None], side[..., None]], axis=-1)


def whole_image_window(image_size: tuple[int, int]) -> np.ndarray:
    """The window (3,) of the image (H,W) padded to a centered square (no crop)."""
    height, width = image_size
    side = max(height, width)
    return np.array([-((side - width) // 2), -((side - height) // 2), side], dtype=np.float64)


def integer_window(window: np.ndarray) -> np.ndarray:
    """A window (3,) grown to whole pixels: integer corner and side, covering the original."""
    u0, v0, side = (float(x) for x in window)
    left, top = np.floor(u0), np.floor(v0)
    size = np.ceil(max(u0 + side - left, v0 + side - top))
    return np.array([left, top, size], dtype=np.float64)


def window_matrix(window: np.ndarray, size: int) -> np.ndarray:
    """The pixel map(s) (...,3,3) from the image to a window (...,3) resampled to size x size."""
    window = np.asarray(window, dtype=np.float64)
    s = size / window[..., 2]
    out = np.zeros(window.shape[:-1] + (3, 3))
    out[..., 0, 0] = out[..., 1, 1] = s
    out[..., 0, 2] = -s * window[..., 0]
    out[..., 1, 2] = -s * window[..., 1]
    out[..., 2, 2] = 1.0
    return out
