"""Finding the hand on an arm: a small CNN that says where the hand's window lies in the mask's.

A real silhouette shows the forearm, often longer than the hand, so the square around the
whole mask (mask2hand.image.crop) is mostly arm and the hand fills a fraction of it. A
network with a locator (NetConfig.locator_input) takes that whole-mask window at a higher
resolution L (e.g. 256), and:

1. the locator sees it pooled to LOCATOR_SIDE pixels (with two coordinate channels, so
   that positions are easy to regress) and answers a window code (du, dv, log r): the
   hand's window, the square `input_crop` times the larger side of the hand's own box, has
   its center at L (0.5 + du, 0.5 + dv) and its side L r. A mask without an arm has the
   code (0, 0, 0): its window is the hand's;
2. `crop_windows` cuts that window out of the input by bilinear sampling (from the input
   pooled 2x when the window is much larger than the encoder's input, so that a downscaled
   binary edge is averaged rather than point-sampled) at the encoder's size S, and maps the
   intrinsics with it (K_crop = A K, as for any crop: the camera and the 3-D outputs stay
   those of the image);
3. the rest of the network runs on the hand's window as a cropping network always did.

The crop is part of the network's graph, so `predict`, evaluation and the ONNX export see
one network with one input, as before. In training the crop can be given (the ground-truth
window, jittered: see mask2hand.train.loop), while the locator learns the window from the
ground truth through the loss term `locator`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

LOCATOR_SIDE = 64
"""The locator's input side in pixels: the whole-mask window pooled to it."""

POOLED_ABOVE = 1.5
"""A window wider than this many times the encoder's input is cut from the input pooled 2x."""


class HandLocator(nn.Module):
    """Whole-mask windows (B,1,L,L) in [0,1], L a multiple of LOCATOR_SIDE -> window codes (B,3)
    (du, dv, log r), see the module docstring. Four stride-2 convolutions (16-96 channels) and
    two linear layers on the flattened 4 x 4 map (not a global pool: where things are matters)."""

    def __init__(self):
        super().__init__()
        layers, channels = [], 3
        for width in (16, 32, 64, 96):
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.AdaptiveAvgPool2d(4))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels * 16, 128), nn.ReLU(inplace=True), nn.Linear(128, 3))
        nn.init.zeros_(self.head[-1].weight)  # start at "the hand's window is the mask's"
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        side = mask.shape[-1]
        pooled = F.avg_pool2d(mask, side // LOCATOR_SIDE) if side > LOCATOR_SIDE else mask
        steps = torch.linspace(-1.0, 1.0, pooled.shape[-1], dtype=pooled.dtype, device=pooled.device)
        rows, cols = torch.meshgrid(steps, steps, indexing="ij")
        coords = torch.stack([cols, rows]).expand(pooled.shape[0], 2, -1, -1)
        return self.head(self.features(torch.cat([pooled, coords], dim=1)))


def code_to_window(code: torch.Tensor, side: int) -> torch.Tensor:
    """Window codes (B,3) -> windows (B,3) (u0, v0, side) in pixels of an L x L input (L = side)."""
    width = side * torch.exp(code[:, 2])
    center = side * (0.5 + code[:, :2])
    return torch.cat([center - 0.5 * width[:, None], width[:, None]], dim=1)


def window_to_code(window: torch.Tensor, side: int) -> torch.Tensor:
    """Inverse of `code_to_window`: windows (B,3) in pixels of an L x L input -> codes (B,3)."""
    center = window[:, :2] + 0.5 * window[:, 2:3]
    return torch.cat([center / side - 0.5, torch.log(window[:, 2:3] / side)], dim=1)


def crop_windows(mask: torch.Tensor, K: torch.Tensor, window: torch.Tensor,
                 size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut windows (B,3) (u0, v0, side; pixels) out of masks (B,1,L,L) with intrinsics K (B,3,3)
    at L -> crops (B,1,S,S) (S = size; outside the image is background) and their K (B,3,3)."""
    batch, _, height, width = mask.shape
    u0, v0, side = window.unbind(-1)
    # grid_sample's normalised coordinates run from -1 at the input's left (top) edge to 1 at its
    # right (bottom) edge; the crop's pixel centers are at u0 + side (j + 0.5) / size. Built by hand
    # rather than with affine_grid, which ONNX has only from opset 20.
    steps = (torch.arange(size, dtype=mask.dtype, device=mask.device) + 0.5) / size
    us = 2 * (u0[:, None] + side[:, None] * steps) / width - 1
    vs = 2 * (v0[:, None] + side[:, None] * steps) / height - 1
    grid = torch.stack([us[:, None, :].expand(batch, size, size), vs[:, :, None].expand(batch, size, size)], dim=-1)
    fine = F.grid_sample(mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    coarse = F.grid_sample(F.avg_pool2d(mask, 2), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    crops = torch.where((side > POOLED_ABOVE * size).view(batch, 1, 1, 1), coarse, fine)
    scale = size / side
    A = torch.zeros(batch, 3, 3, dtype=K.dtype, device=K.device)
    A[:, 0, 0] = A[:, 1, 1] = scale
    A[:, 0, 2] = -scale * u0
    A[:, 1, 2] = -scale * v0
    A[:, 2, 2] = 1.0
    return crops, A @ K  # the window's camera: its pixel map times K (mask2hand.image.camera.Camera.mapped)
