"""How a real mask was made: an anti-aliased edge cut at some threshold, a JPEG file.

Our synthetic masks are exact (a pixel is hand iff its center is inside the mesh). Real
ones are cut from a soft edge (a renderer's anti-aliasing, a segmenter's probabilities)
at a threshold that moves the contour by a fraction of a pixel to a pixel, and are
often stored as JPEG (FreiHAND's masks are), whose 8x8-block artefacts ring along the
contour. Both change only pixels near the contour. Measured on 200 natural masks
(224 x 224): the anti-aliased cut flips about 100 pixels per mask, all within 1.5 px of
the contour (IoU 0.990 to the exact mask on average, 0.945 at worst); a JPEG of a binary mask at quality 60-95 flips
none (its ringing stays under 0.3 of the step), a JPEG of an anti-aliased one about a
dozen more.

`MaskProcess` draws, per mask, with its probabilities:

- anti-aliasing: a Gaussian blur of sigma U[blur_px] px (at 224 px, scaled with the
  image), then the cut at a threshold U[threshold] (0.5 keeps the contour in place);
- JPEG: the (blurred or binary) 8-bit mask encoded at a quality U{jpeg_quality},
  decoded, then cut at that threshold (at 0.5, FreiHAND's reader's "> 127", without
  anti-aliasing).

It acts after the silhouette noise models in `NoiseConfig(process=...)`, as a file is
written after its mask was made.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mask2hand.errors import Mask2HandError

REFERENCE_SIZE = 224


def antialias(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """A binary mask (H,W) -> its soft version (H,W) float32 in [0, 1]: a Gaussian blur of sigma_px.

    The image border is no edge (a hand or arm leaving the image goes on beyond it): the mask
    is extended by replication there."""
    return cv2.GaussianBlur((np.asarray(mask) > 0).astype(np.float32), (0, 0), sigma_px,
                            borderType=cv2.BORDER_REPLICATE)


def jpeg_roundtrip(soft: np.ndarray, quality: int) -> np.ndarray:
    """A soft mask (H,W) in [0, 1] -> what a grey JPEG file of it at `quality` (1-100) reads back as,
    (H,W) float32 in [0, 1]."""
    grey = np.clip(np.rint(np.asarray(soft, np.float32) * 255.0), 0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise Mask2HandError("OpenCV could not encode a JPEG")
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0


@dataclass(frozen=True)
class MaskProcess:
    """Per mask, with probability `antialias` an anti-aliased edge cut at a threshold from `threshold`
    (Gaussian blur, sigma from `blur_px` at 224 px), and with probability `jpeg` a JPEG round trip at a
    quality from `jpeg_quality` (whole numbers, inclusive). Both off by default."""

    antialias: float = 0.0
    blur_px: tuple[float, float] = (0.5, 1.5)
    threshold: tuple[float, float] = (0.3, 0.7)
    jpeg: float = 0.0
    jpeg_quality: tuple[int, int] = (60, 95)

    def __post_init__(self):
        for name in ("antialias", "jpeg"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise Mask2HandError(f"mask process {name} probability must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 < self.blur_px[0] <= self.blur_px[1]:
            raise Mask2HandError(f"mask process blur_px must be a positive range, got {list(self.blur_px)}")
        if not 0.0 < self.threshold[0] <= self.threshold[1] < 1.0:
            raise Mask2HandError(f"mask process threshold must be a range within (0, 1), got {list(self.threshold)}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise Mask2HandError(f"mask process jpeg_quality must be a range within 1..100, got "
                                 f"{list(self.jpeg_quality)}")

    def apply(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Mask (H,W) bool or 0/1 -> uint8 0/1 (H,W). Always the same number of draws; an empty
        result gives the input back (as the noise models do)."""
        clean = (np.asarray(mask) > 0).astype(np.uint8)
        blur, jpeg = rng.random() < self.antialias, rng.random() < self.jpeg
        sigma = rng.uniform(*self.blur_px) * min(clean.shape) / REFERENCE_SIZE
        threshold = rng.uniform(*self.threshold)
        quality = int(rng.integers(self.jpeg_quality[0], self.jpeg_quality[1] + 1))
        if not (blur or jpeg) or not clean.any():
            return clean
        soft = antialias(clean, sigma) if blur else clean.astype(np.float32)
        if jpeg:
            soft = jpeg_roundtrip(soft, quality)
        out = (soft > (threshold if blur else 0.5)).astype(np.uint8)
        return out if out.any() else clean


def apply_mask_process(mask: np.ndarray, process: MaskProcess,
                       seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """`process.apply` with a seed or Generator: the same seed gives the same mask."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return process.apply(mask, rng)
