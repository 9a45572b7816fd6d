"""RefineNet: per-vertex offsets from the input mask and the rendered silhouette.

A small CNN over the 2-channel image (input mask, soft silhouette of the
preliminary mesh) followed by a head that outputs an offset for every vertex
(paper section 3.1). Two heads:

- "paper": the reference code's layout: conv 7x7/2 (64) + max-pool, conv 3x3/2 (128),
  conv 3x3/2 (256), pooled to 7x7, one fully connected layer 12,544 -> 3V (29M
  parameters for MANO's 778 vertices, 41M for the open hand's 1,100).
- "compact" (default): a stride-4 patch convolution (16) and three 3x3/2 convolutions
  (32, 64, 128), pooled to 4x4, Linear(2048, 128) + ReLU, then a learned linear basis
  of 128 vertex-offset fields (128 -> 3V): a low-rank version of the paper's head with
  under 3% of its parameters. The patch stem avoids full-resolution convolutions,
  which dominated the cost of a 7x7 stem on a CPU (about 4x slower in training).

Offsets are in meters, bounded smoothly: MAX_OFFSET * tanh(OFFSET_UNIT * raw / MAX_OFFSET),
so a raw output of 1 is 1 cm for small offsets and no offset exceeds 5 cm (the
reference code clamps at 50 mm). The last layer starts near zero, so a fresh
RefineNet leaves the preliminary mesh almost unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from mask2hand.errors import Mask2HandError

REFINE_HEADS = ("compact", "paper")
OFFSET_UNIT = 0.01
MAX_OFFSET = 0.05

_LAYOUTS = {
    # stem (channels, kernel = stride, max-pool after it), 3x3/2 convolutions, pooled grid, hidden sizes
    "paper": ((64, 7, True), (128, 256), 7, ()),
    "compact": ((16, 4, False), (32, 64, 128), 4, (128,)),
}


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int, padding: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class RefineNet(nn.Module):
    """(B,2,S,S) mask + silhouette -> vertex offsets (B,V,3) in meters."""

    def __init__(self, num_vertices: int, head: str = "compact"):
        super().__init__()
        if head not in _LAYOUTS:
            raise Mask2HandError(f"unknown refine head '{head}'; choose one of {REFINE_HEADS}")
        (stem_channels, stem_kernel, stem_pool), channels, grid, hidden = _LAYOUTS[head]
        self.num_vertices = num_vertices
        if stem_pool:  # the reference: 7x7 stride 2 (padding 3), then a 3x3/2 max-pool
            layers: list[nn.Module] = [*_conv_bn_relu(2, stem_channels, stem_kernel, 2, stem_kernel // 2),
                                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]
        else:  # non-overlapping patches
            layers = _conv_bn_relu(2, stem_channels, stem_kernel, stem_kernel, 0)
        previous = stem_channels
        for width in channels:
            layers += _conv_bn_relu(previous, width, 3, 2, 1)
            previous = width
        self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(grid), nn.Flatten())
        sizes = [previous * grid * grid, *hidden, 3 * num_vertices]
        layers = []
        for index in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[index], sizes[index + 1]))
            if index < len(sizes) - 2:
                layers.append(nn.ReLU(inplace=True))
        self.head = nn.Sequential(*layers)
        with torch.no_grad():
            self.head[-1].weight.mul_(1e-2)
            self.head[-1].bias.zero_()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        raw = self.head(self.trunk(images)).view(images.shape[0], self.num_vertices, 3)
        return MAX_OFFSET * torch.tanh(raw * (OFFSET_UNIT / MAX_OFFSET))
