"""Helpers for the predict tests: a tiny randomly initialised network saved as a weights file.

The tests never need the real trained model: they check plumbing (shapes, coordinate
maps, files, errors), which a random network exercises as well as a trained one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mask2hand.nn.checkpoint import CHECKPOINT_FORMAT, export_weights
from mask2hand.utils.dataclass_config import to_dict
from mask2hand.nn import Mask2HandNet, NetConfig

TINY = dict(input_size=32, backbone_width=0.125)


def write_tiny_weights(path: Path, seed: int = 0, **changes) -> Path:
    """A weights file of a small random Mask2HandNet (32x32 input, narrow ResNet18)."""
    torch.manual_seed(seed)
    config = NetConfig(**{**TINY, **changes})
    net = Mask2HandNet(config)
    checkpoint = {"format": CHECKPOINT_FORMAT, "config": {"network": to_dict(config)}, "hand": net.hand.identity,
                  "model": net.state_dict()}
    return export_weights(checkpoint, path)


def blob_mask(height: int = 96, width: int = 96) -> np.ndarray:
    """A hand-like bool mask: a palm and four fingers, centered."""
    mask = np.zeros((height, width), dtype=bool)
    cy, cx = height // 2, width // 2
    s = min(height, width) / 96
    mask[int(cy):int(cy + 30 * s), int(cx - 16 * s):int(cx + 16 * s)] = True
    for k in range(4):
        x0 = int(cx - 16 * s + k * 8.5 * s)
        mask[int(cy - 28 * s):int(cy), x0:x0 + max(1, int(6 * s))] = True
    mask[int(cy + 5 * s):int(cy + 15 * s), int(cx + 16 * s):int(cx + 28 * s)] = True  # thumb
    return mask


def save_mask_png(path: Path, mask: np.ndarray) -> Path:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return path
