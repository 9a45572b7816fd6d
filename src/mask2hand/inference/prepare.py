"""Stage 1 of prediction: a mask file or array and its camera -> what the network takes.

`prepare_mask` reads and cleans the mask (mask2hand.image), mirrors it for a left hand
(mask2hand.inference.mirror), cuts the hand's window (or pads the whole image, for a
network that sees it whole) and resamples it to the network's input size; `PreparedInput`
adds the camera and gives the cameras of the picture the network sees and of its input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from mask2hand.errors import InputError, Mask2HandError
from mask2hand.image.masks import DEFAULT_THRESHOLD, MaskTransform, load_mask, resample_mask, touched_sides
from mask2hand.image.camera import Camera
from mask2hand.inference.mirror import SIDES, mirror_mask


CUT_SIDES_WARNING = 3
"""A hand reaching this many image borders is warned about: the image cuts it, and the answer
guesses what lies outside. (One side is an arm entering the picture, two an arm at a corner.)"""


@dataclass(frozen=True)
class PreparedMask:
    """A mask ready for the network.

    mask: (H,W) bool, the cleaned mask at the original resolution, in the frame the network
    sees (mirrored for a left hand). model_input: (S,S) float32 0/1, the cut (or padded)
    and resampled network input. transform: original <-> model pixel map. warnings:
    one-line messages about what was changed. source: file name or "<array i>".
    """

    mask: np.ndarray
    model_input: np.ndarray | None
    transform: MaskTransform
    warnings: list[str] = field(default_factory=list)
    source: str = "<array>"

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the input image."""
        return self.transform.original_size


def check_side(side: str, allow_auto: bool = False) -> str:
    """A validated hand side: "right" or "left", or with allow_auto also "auto" (the pipeline's
    choice, mask2hand.inference.side); raises Mask2HandError for anything else."""
    allowed = SIDES + ("auto",) if allow_auto else SIDES
    if side not in allowed:
        raise Mask2HandError(f"side must be {', '.join(repr(s) for s in allowed)}, got {side!r}")
    return side


def prepare_mask(source: str | os.PathLike | np.ndarray, size: int, threshold: float = DEFAULT_THRESHOLD,
                 name: str | None = None, crop_margin: float | None = None, side: str = "right") -> PreparedMask:
    """Load (file or array) and prepare a mask for a network with (size, size) input: cut
    around the hand with `crop_margin` (see mask2hand.image.masks.resample_mask), mirrored
    first for side="left". Raises Mask2HandError for a bad input (message without the
    file name: callers add it)."""
    clean, warnings = load_mask(source, threshold)
    if check_side(side) == "left":
        clean = mirror_mask(clean)
    model_input, transform = resample_mask(clean, size, crop_margin)
    if not model_input.any():
        raise InputError(f"the hand region vanishes when the mask is resized to {size}x{size}; "
                         "give a mask where the hand covers more of the image")
    if name is None:
        name = str(source) if isinstance(source, (str, os.PathLike)) else "<array>"
    sides = touched_sides(clean)
    if len(sides) >= CUT_SIDES_WARNING:
        warnings = warnings + [f"the hand is cut by the image border on {len(sides)} sides ({', '.join(sides)}); "
                               "the answer guesses the parts outside the image: frame the whole hand"]
    return PreparedMask(mask=clean, model_input=model_input, transform=transform, warnings=warnings, source=name)


@dataclass(frozen=True)
class PreparedInput:
    """A mask ready for the network with its camera: mask (PreparedMask), camera (Camera of the
    input image), side ("right" or "left"), camera_source ("K", "focal" or "default") and
    camera_note (see mask2hand.inference.cameras.CameraChoice)."""

    mask: PreparedMask
    camera: Camera
    side: str = "right"
    camera_source: str = "K"
    camera_note: str | None = None

    @property
    def network_camera(self) -> Camera:
        """The camera of the full-resolution picture the network sees (mirrored for a left hand)."""
        return self.camera if self.side == "right" else self.camera.mirrored()

    @property
    def model_camera(self) -> Camera:
        """The camera of the model input (S,S)."""
        return self.mask.transform.camera(self.network_camera)

    @property
    def original_mask(self) -> np.ndarray:
        """The cleaned mask (H,W) bool in the input's own frame (`mask.mask` is mirrored for a left hand)."""
        return self.mask.mask if self.side == "right" else mirror_mask(self.mask.mask)

    @property
    def source(self) -> str:
        return self.mask.source
