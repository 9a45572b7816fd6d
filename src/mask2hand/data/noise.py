"""Silhouette noise models, for robustness tests and robust training.

The paper's appendix C tests on masks from a segmentation network, which lose
finger detail. These models produce such defects in a controlled way. Each takes
a mask (H,W) (bool or 0/1), a severity 1 (mild), 2 or 3 (strong) and a seed or
numpy Generator, and returns a new uint8 0/1 mask; the same seed gives the same
mask. Sizes are defined for 224x224 images and scale with the image.

    jitter   boundary moved in and out by a smooth random field (std 1 / 2 / 3.5 px)
    erode    eroded by a disk of radius 1 / 2 / 4 px
    dilate   dilated by a disk of radius 1 / 2 / 4 px
    merge    closing with a disk of radius 3 / 6 / 10 px: gaps between fingers fill
    holes    holes inside and speckle outside the hand: 4 / 10 / 20 blobs
    lowres   down to 96 / 56 / 32 px (area average, threshold) and back up

A result without any hand pixel is replaced by the input (a tiny hand eroded
away would otherwise become an empty mask, which no model can use).

`NoiseConfig(process=MaskProcess(...))` also applies the mask-process variety of
mask_process.py (anti-aliased edges cut at a random threshold, JPEG files) after these.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mask2hand.data.mask_process import MaskProcess
from mask2hand.errors import Mask2HandError

NOISE_KINDS = ("jitter", "erode", "dilate", "merge", "holes", "lowres")
SEVERITIES = (1, 2, 3)
REFERENCE_SIZE = 224

_JITTER_PX = {1: 1.0, 2: 2.0, 3: 3.5}
_ERODE_DILATE_PX = {1: 1, 2: 2, 3: 4}
_MERGE_PX = {1: 3, 2: 6, 3: 10}
_BLOBS = {1: 4, 2: 10, 3: 20}
_LOWRES_PX = {1: 96, 2: 56, 3: 32}


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _scaled(px: float, mask: np.ndarray) -> float:
    return px * min(mask.shape) / REFERENCE_SIZE


def signed_distance(mask: np.ndarray) -> np.ndarray:
    """Approximate signed distance (H,W) float32 in pixels to the mask boundary, > 0 inside."""
    inside = mask.astype(np.uint8)
    d_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_5)
    d_out = cv2.distanceTransform(1 - inside, cv2.DIST_L2, cv2.DIST_MASK_5)
    return np.where(inside > 0, d_in - 0.5, 0.5 - d_out).astype(np.float32)


def _smooth_field(shape: tuple[int, int], cell: float, rng: np.random.Generator) -> np.ndarray:
    """Random field with unit standard deviation and correlation length about `cell` px."""
    h, w = shape
    gh, gw = int(np.ceil(h / cell)) + 3, int(np.ceil(w / cell)) + 3
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    field = cv2.resize(coarse, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)[:h, :w]
    return field / max(float(field.std()), 1e-6)


def jitter(mask: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    amplitude = _scaled(_JITTER_PX[severity], mask)
    field = _smooth_field(mask.shape, max(_scaled(10.0, mask), 2.0), rng)
    return (signed_distance(mask) + amplitude * field > 0).astype(np.uint8)


def erode(mask: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius = max(1, round(_scaled(_ERODE_DILATE_PX[severity], mask)))
    return cv2.erode(mask.astype(np.uint8), _disk(radius))


def dilate(mask: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius = max(1, round(_scaled(_ERODE_DILATE_PX[severity], mask)))
    return cv2.dilate(mask.astype(np.uint8), _disk(radius))


def merge(mask: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    radius = max(1, round(_scaled(_MERGE_PX[severity], mask)))
    m = mask.astype(np.uint8)
    # pad so the closing does not treat the image border as hand
    padded = cv2.copyMakeBorder(m, radius, radius, radius, radius, cv2.BORDER_CONSTANT, value=0)
    closed = cv2.morphologyEx(padded, cv2.MORPH_CLOSE, _disk(radius))
    return closed[radius:-radius, radius:-radius]


def holes(mask: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    m = mask.astype(np.uint8).copy()
    h, w = m.shape
    ys, xs = np.nonzero(m)
    count = _BLOBS[severity]
    r_max = max(1.0, _scaled(1.0 + severity, m))
    # holes inside: centers on hand pixels
    for _ in range(count // 2):
        i = rng.integers(len(ys))
        radius = int(round(rng.uniform(0.6, 1.0) * r_max))
        cv2.circle(m, (int(xs[i]), int(ys[i])), radius, 0, -1)
    # speckle outside: centers in the hand's box grown by a quarter of its size
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    gy, gx = (y1 - y0) // 4 + 2, (x1 - x0) // 4 + 2
    for _ in range(count - count // 2):
        cy = int(rng.integers(max(0, y0 - gy), min(h, y1 + gy + 1)))
        cx = int(rng.integers(max(0, x0 - gx), min(w, x1 + gx + 1)))
        radius = int(round(rng.uniform(0.6, 1.0) * r_max))
        cv2.circle(m, (cx, cy), radius, 1, -1)
    return m


def lowres(mask: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    h, w = mask.shape
    factor = _LOWRES_PX[severity] / REFERENCE_SIZE
    lh, lw = max(4, round(h * factor)), max(4, round(w * factor))
    small = cv2.resize(mask.astype(np.float32), (lw, lh), interpolation=cv2.INTER_AREA) > 0.5
    up = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return (up > 0.5).astype(np.uint8)


_MODELS = {"jitter": jitter, "erode": erode, "dilate": dilate, "merge": merge, "holes": holes, "lowres": lowres}


def apply_noise(mask: np.ndarray, kind: str, severity: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Mask (H,W) -> noisy uint8 0/1 mask (H,W) of the given kind and severity (1, 2 or 3)."""
    if kind not in _MODELS:
        raise Mask2HandError(f"unknown noise kind '{kind}'; choose one of {NOISE_KINDS}")
    if severity not in SEVERITIES:
        raise Mask2HandError(f"noise severity must be one of {SEVERITIES}, got {severity}")
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise Mask2HandError(f"apply_noise takes one mask (H,W), got shape {mask.shape}")
    clean = (mask > 0).astype(np.uint8)
    if not clean.any():
        return clean
    noisy = _MODELS[kind](clean, severity, _rng(seed))
    return noisy if noisy.any() else clean


@dataclass(frozen=True)
class NoiseConfig:
    """Random noise for training or evaluation: with `probability`, one kind and one
    severity drawn uniformly from the given lists; then, if `process` is set, the
    mask-process variety (mask_process.MaskProcess: anti-aliased cut, JPEG) with its own
    probabilities. `kinds=()` leaves only the process."""

    kinds: tuple[str, ...] = NOISE_KINDS
    severities: tuple[int, ...] = SEVERITIES
    probability: float = 1.0
    process: MaskProcess | None = None

    def __post_init__(self):
        for kind in self.kinds:
            if kind not in _MODELS:
                raise Mask2HandError(f"unknown noise kind '{kind}'; choose from {NOISE_KINDS}")
        for severity in self.severities:
            if severity not in SEVERITIES:
                raise Mask2HandError(f"noise severity must be one of {SEVERITIES}, got {severity}")
        if not 0.0 <= self.probability <= 1.0:
            raise Mask2HandError(f"noise probability must be in [0, 1], got {self.probability}")

    def apply(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = self._apply_noise_model(mask, rng)
        return noisy if self.process is None else self.process.apply(noisy, rng)

    def _apply_noise_model(self, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if not self.kinds or rng.random() >= self.probability:
            return (np.asarray(mask) > 0).astype(np.uint8)
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        severity = self.severities[int(rng.integers(len(self.severities)))]
        return apply_noise(mask, kind, severity, rng)
