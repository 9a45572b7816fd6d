"""How sure the network is of each joint: the spread of its answers to slightly changed inputs.

Each prepared input is also given to the network changed in ways that do not change the hand:
moved by a pixel or two, scaled by a few percent (each with the camera that sees the hand there,
mask2hand.image.camera), and its outline grown or shrunk by a pixel (what a segmentation may
give). A joint the network places the same way in every variant is one it is sure of; one that
moves is not. The spread of a joint is the root-mean-square distance (meters) of its variants
from their mean, the hand's root joint held fixed (so an uncertain depth of the whole hand,
which the image cannot tell, does not make every joint uncertain). The confidence is
1 / (1 + spread / SPREAD_SCALE_M), 1 for a joint that never moves. `benchmarks/confidence.py`
measures how well it ranks the joints' errors.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import cv2
import numpy as np

from mask2hand.image.camera import Camera
from mask2hand.inference.prepare import PreparedInput

SPREAD_SCALE_M = 0.005
"""The spread (meters) at which a joint's confidence is one half."""


@dataclass(frozen=True)
class Variant:
    """A change of the model input that keeps the hand: shift (du, dv) pixels, scale about the
    input's center, and `grow` pixels added to (> 0) or taken from (< 0) the outline."""

    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    grow: int = 0


VARIANTS = (Variant(shift=(2.0, 0.0)), Variant(shift=(-2.0, 0.0)), Variant(shift=(0.0, 2.0)),
            Variant(shift=(0.0, -2.0)), Variant(scale=1.05), Variant(scale=0.95), Variant(grow=1), Variant(grow=-1))
"""The variants each input is also predicted in."""


def changed_input(model_input: np.ndarray, camera: Camera, variant: Variant) -> tuple[np.ndarray, Camera]:
    """A model input (S,S) float32 0/1 and its camera, changed by `variant`: the mask warped by the
    pixel map (nearest-neighbour keeps it binary) with the camera mapped by the same map, then its
    outline grown or shrunk."""
    size = model_input.shape[0]
    center = size / 2.0
    s = variant.scale
    pixel_map = np.array([[s, 0.0, center * (1 - s) + variant.shift[0]],
                          [0.0, s, center * (1 - s) + variant.shift[1]], [0.0, 0.0, 1.0]])
    # cv2 maps pixel indices; the map of continuous coordinates (centers at j + 0.5) moves them by 0.5 (1 - s)
    index_map = pixel_map[:2].copy()
    index_map[:, 2] += 0.5 * (s - 1)
    warped = cv2.warpAffine(model_input.astype(np.float32), index_map, (size, size), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if variant.grow:
        kernel = np.ones((3, 3), np.uint8)
        operation = cv2.dilate if variant.grow > 0 else cv2.erode
        warped = operation(warped, kernel, iterations=abs(variant.grow))
    return warped.astype(np.float32), camera.mapped(pixel_map, (size, size))


def joint_spreads(model, items: Sequence[PreparedInput], variants: Sequence[Variant] = VARIANTS) -> np.ndarray:
    """The spread (B,21) meters of each input's joints over the variants (see the module
    docstring), from one network pass of B x len(variants) inputs; model: a Mask2Hand."""
    changed = []
    for item in items:
        camera = item.model_camera
        for variant in variants:
            model_input, variant_camera = changed_input(item.mask.model_input, camera, variant)
            changed.append((model_input, variant_camera.K))
    masks = np.stack([m for m, _ in changed])
    Ks = np.stack([k for _, k in changed]).astype(np.float32)
    joints = model.runner(masks, Ks).joints.reshape(len(items), len(variants), 21, 3).astype(np.float64)
    relative = joints - joints[:, :, :1]
    deviation = relative - relative.mean(axis=1, keepdims=True)
    return np.sqrt((deviation ** 2).sum(-1).mean(axis=1))


def confidence_of(spread: np.ndarray) -> np.ndarray:
    """Confidence in (0, 1] of spreads (meters): 1 / (1 + spread / SPREAD_SCALE_M)."""
    return 1.0 / (1.0 + np.asarray(spread) / SPREAD_SCALE_M)


def with_confidence(model, items: Sequence[PreparedInput], predictions: list) -> list:
    """The predictions of `items` with `joint_confidence` (21,) set (AnswerErrors passed through)."""
    confidence = confidence_of(joint_spreads(model, items))
    return [p if isinstance(p, Exception) else replace(p, joint_confidence=c.astype(np.float32))
            for p, c in zip(predictions, confidence)]
