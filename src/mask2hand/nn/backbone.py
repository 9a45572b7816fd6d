"""Image backbones for 1-channel masks, built without downloaded weights.

`build_backbone(name, width)` returns a module mapping (B,1,H,W) to (B,C) features
and its feature size C:

- "resnet18": torchvision's ResNet18 layout (conv1, bn1, maxpool, layer1..4 of
  basic residual blocks, global average pool) with a 1-channel first convolution. At
  width 1.0 its parameters have the same names and shapes as
  `torchvision.models.resnet18()` without `fc` (the paper's backbone); a smaller
  width scales every stage's channels (64, 128, 256, 512) * width, which on a CPU
  costs about width^2 of the full network. Built here (`BasicBlock`), without torchvision,
  whose import costs 2-3 s of every prediction's start.
- "mobilenet_v3_small": torchvision's MobileNetV3-Small features with a
  1-channel stem (width is its width multiplier); torchvision is imported only for it.
"""

from __future__ import annotations

import torch
from torch import nn

from mask2hand.errors import Mask2HandError

BACKBONES = ("resnet18", "mobilenet_v3_small")


class BasicBlock(nn.Module):
    """ResNet's basic residual block (He et al. 2016): two 3x3 convolutions with batch norm,
    the input added back (through `downsample` where the shape changes), then ReLU.
    (B,inplanes,H,W) -> (B,planes,H/stride,W/stride). Its parameter names are torchvision's
    (conv1, bn1, conv2, bn2, downsample.0/.1), so checkpoints of either load into the other."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18Features(nn.Module):
    """ResNet18 trunk for a 1-channel input: (B,1,H,W) -> (B, 512*width) features."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        channels = [max(8, int(round(c * width))) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(1, channels[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(channels[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = channels[0]
        for index, planes in enumerate(channels):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                           nn.BatchNorm2d(planes))
            layer = nn.Sequential(BasicBlock(inplanes, planes, stride, downsample), BasicBlock(planes, planes))
            self.add_module(f"layer{index + 1}", layer)
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_features = channels[-1]
        # torchvision's initialisation: He-normal convolutions, unit BN
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


class MobileNetV3SmallFeatures(nn.Module):
    """MobileNetV3-Small features for a 1-channel input: (B,1,H,W) -> (B,C)."""

    def __init__(self, width: float = 1.0):
        super().__init__()
        from torchvision.models import mobilenet_v3_small  # only this backbone needs torchvision

        net = mobilenet_v3_small(weights=None, width_mult=width)
        stem = net.features[0][0]
        net.features[0][0] = nn.Conv2d(1, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=False)
        nn.init.kaiming_normal_(net.features[0][0].weight, mode="fan_out")
        self.features = net.features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_features = net.features[-1].out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.features(x)), 1)


def build_backbone(name: str = "resnet18", width: float = 1.0) -> nn.Module:
    """A feature extractor for masks; its `out_features` attribute is the feature size C."""
    if not 0.0 < width <= 4.0:
        raise Mask2HandError(f"backbone width must be in (0, 4], got {width}")
    if name == "resnet18":
        return ResNet18Features(width)
    if name == "mobilenet_v3_small":
        return MobileNetV3SmallFeatures(width)
    raise Mask2HandError(f"unknown backbone '{name}'; choose one of {BACKBONES}")
