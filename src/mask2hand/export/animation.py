"""Animation frames and files for sequences: a light skeleton panel per frame and a looping GIF."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def _hex_rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def skeleton_panel(prediction, max_side: int = 320) -> np.ndarray:
    """A light animation frame (H',W',3) uint8: the input mask in grey, the predicted
    silhouette's contour in amber and the 2-D skeleton coloured per finger (cv2, no
    matplotlib, so it costs about a millisecond)."""
    import cv2

    from mask2hand.export.figures import CONTOUR_COLOR, FREIHAND_BONES, bone_colors, joint_colors

    mask = np.asarray(prediction.mask, dtype=bool)
    scale = max_side / max(mask.shape)
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    image = cv2.resize(np.where(mask, 110, 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    image = np.repeat(image[:, :, None], 3, axis=2)
    rendered = cv2.resize(np.asarray(prediction.rendered_mask, dtype=np.uint8), size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(rendered, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, _hex_rgb(CONTOUR_COLOR), 1, lineType=cv2.LINE_AA)
    # continuous pixel coordinates (centers at +0.5) -> cv2's integer pixel indices, with 4 bits of subpixel
    uv = np.nan_to_num(np.asarray(prediction.joints_2d, dtype=np.float64), nan=-1e6, posinf=1e6, neginf=-1e6)
    points = np.round(np.clip((uv * scale - 0.5) * 16, -(2 ** 20), 2 ** 20)).astype(np.int64)
    for (a, b), color in zip(FREIHAND_BONES, bone_colors()):
        cv2.line(image, tuple(map(int, points[a])), tuple(map(int, points[b])), _hex_rgb(color), 2, cv2.LINE_AA, 4)
    for point, color in zip(points, joint_colors()):
        cv2.circle(image, tuple(map(int, point)), 3 * 16, _hex_rgb(color), -1, cv2.LINE_AA, 4)
    return image


GIF_PANEL_BYTES = 200_000_000
"""Most bytes the panels of one animation may hold together (a sequence's GIF is written from
panels kept in memory): a long sequence gets smaller panels (`gif_panel_side`)."""


def gif_panel_side(frames: int, max_side: int = 320) -> int:
    """The longer side of the panels of an animation of `frames` frames: max_side, or less so
    that the RGB panels fit GIF_PANEL_BYTES (at least 32 pixels)."""
    return int(max(32, min(max_side, (GIF_PANEL_BYTES / (3 * max(frames, 1))) ** 0.5)))


def write_gif(path: str | os.PathLike, images: list[np.ndarray], fps: float) -> Path:
    """An animated GIF (looping) of RGB frames (H,W,3) uint8, written atomically; frames smaller than
    the largest (a sequence whose frames differ in size) are padded with black on the right and
    bottom."""
    import imageio.v3 as iio

    from mask2hand.utils.files import atomic_path

    path = Path(path)
    height, width = max(image.shape[0] for image in images), max(image.shape[1] for image in images)
    images = [image if image.shape[:2] == (height, width) else
              np.pad(image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0))) for image in images]
    # GIF stores durations in hundredths of a second: round to what survives
    duration = max(20, round(100.0 / fps) * 10)
    with atomic_path(path) as tmp:  # the list as a batch of frames: no stacked copy of it
        iio.imwrite(tmp, images, extension=".gif", duration=duration, loop=0, is_batch=True)
    return path
