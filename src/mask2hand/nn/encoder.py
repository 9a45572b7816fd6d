"""The Mask2Hand encoder (paper section 3.1, Table A1) and its camera parameterisation.

Backbone, camera features -> Linear(C + 4, 512) + ReLU -> four heads:
    pose       Linear(512, 256), ReLU, Linear(256, #pose outputs)
    rotation   Linear(512, 256), ReLU, Linear(256, 128), ReLU, Linear(128, 3 or 6)
    translation Linear(512, 256), ReLU, Linear(256, 128), ReLU, Linear(128, 3)
    shape      Linear(512, 256), ReLU, Linear(256, 10)          (optional)
C is 512 for the paper's ResNet18.

Camera features. The paper's code feeds the focal lengths in pixels to the translation
head. Here every head sees four scale-free numbers of the intrinsics K' at the input
size S (`camera_features`): log(fx'/S), log(fy'/S) (how far away a hand of a given size
in the input is), and (S/2 - cx')/fx', (S/2 - cy')/fy', the direction of the ray through
the input's center. The last two are 0 for a whole image with a centered principal
point; for a crop around the hand (mask2hand.image.crop) they tell where in the field of view
the crop lies, which changes the camera-space rotation that a given picture means.
They are concatenated to the backbone's features before the shared fully connected layer.

Translation. The head's output (tx, ty, tz) has a scale-free meaning, so that the same
weights serve any image size and focal length: the wrist (root joint) projects to the
input-image point u' = S (1/2 + tx), v' = S (1/2 + ty), i.e. (tx, ty) is its offset
from the image center in units of the image size, something a CNN sees in the mask; its
depth is z = DEPTH_UNIT * f'/S * exp(tz) with f' = (fx' + fy')/2. Apparent size in
pixels is f' * size / z, so tz is the log of the hand's metric size relative to its
size in the image and does not depend on the focal length; the hand in front of the
camera always has z > 0. The root is z K'^-1 (u', v', 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mask2hand.nn.backbone import build_backbone

FEATURE_SIZE = 512
NUM_BETAS = 10
NUM_CAMERA_FEATURES = 4
BETA_LIMIT = 3.0  # shape coefficients stay within +-3 standard deviations (the corpora clip there too)
# A hand of about 0.2 m that spans 2/3 of the image is at 0.3 * f/S meters: tz = 0
DEPTH_UNIT = 0.3
MAX_LOG_DEPTH = 6.0


@dataclass
class EncoderOutput:
    """Raw head outputs: pose (B,P), rotation (B,3) axis-angle or (B,6) 6D,
    translation code (B,3) (see the module docstring), betas (B,10) or None."""

    pose: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    betas: torch.Tensor | None


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[index], sizes[index + 1]))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Mask (B,1,S,S) and camera features (B,4) -> EncoderOutput.

    Args:
        num_pose_outputs: pose PCA coefficients or 45 axis-angle values.
        rotation_dim: 3 (axis-angle, the paper) or 6 (6D representation).
        predict_shape: without the shape head the hand keeps betas = 0.
        backbone, backbone_width: see mask2hand.nn.backbone.build_backbone.
    """

    def __init__(self, num_pose_outputs: int, rotation_dim: int = 3, predict_shape: bool = True,
                 backbone: str = "resnet18", backbone_width: float = 1.0):
        super().__init__()
        self.backbone = build_backbone(backbone, backbone_width)
        self.fc = nn.Sequential(nn.Linear(self.backbone.out_features + NUM_CAMERA_FEATURES, FEATURE_SIZE),
                                nn.ReLU(inplace=True))
        self.pose_head = _mlp([FEATURE_SIZE, 256, num_pose_outputs])
        self.rotation_head = _mlp([FEATURE_SIZE, 256, 128, rotation_dim])
        self.translation_head = _mlp([FEATURE_SIZE, 256, 128, 3])
        self.shape_head = _mlp([FEATURE_SIZE, 256, NUM_BETAS]) if predict_shape else None
        self._init_outputs(rotation_dim)

    @torch.no_grad()
    def _init_outputs(self, rotation_dim: int) -> None:
        # Start from a plausible answer: hand at the image center at the reference depth,
        # identity rotation for the 6D head, mean pose and shape.
        for head in (self.pose_head, self.translation_head, self.shape_head):
            if head is not None:
                head[-1].weight.mul_(0.1)
                head[-1].bias.zero_()
        if rotation_dim == 6:
            last = self.rotation_head[-1]
            last.weight.mul_(0.1)
            last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def forward(self, mask: torch.Tensor, camera: torch.Tensor) -> EncoderOutput:
        backbone = self.backbone(mask)
        features = self.fc(torch.cat([backbone, camera.to(backbone.dtype)], dim=1))
        return EncoderOutput(
            pose=self.pose_head(features),
            rotation=self.rotation_head(features),
            translation=self.translation_head(features),
            betas=bounded_betas(self.shape_head(features)) if self.shape_head is not None else None,
        )


def bounded_betas(raw: torch.Tensor, limit: float = BETA_LIMIT) -> torch.Tensor:
    """Shape coefficients squashed smoothly into (-limit, limit) standard deviations.

    Unbounded, the linear shape space lets a network shrink the hand without limit
    (a 5 cm hand at beta0 = -16 was seen in training): early in training, when the hand is
    misplaced, a collapsed hand lowers the unaligned joint error, and the aligned losses
    are blind to scale. Real hands lie within +-3 sigma; near zero this is the identity.
    """
    return limit * torch.tanh(raw / limit)


def camera_features(K: torch.Tensor, input_size: int) -> torch.Tensor:
    """(B,4) log(fx/S), log(fy/S), (S/2 - cx)/fx, (S/2 - cy)/fy of intrinsics K (B,3,3) at the
    input size S (see the module docstring)."""
    fx, fy, cx, cy = K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2]
    half = 0.5 * input_size
    return torch.stack([torch.log(fx / input_size), torch.log(fy / input_size), (half - cx) / fx, (half - cy) / fy],
                       dim=1)


def decode_root_position(code: torch.Tensor, K: torch.Tensor, input_size: int) -> torch.Tensor:
    """Wrist position (B,3) in meters, camera space, from the translation code (B,3).

    K (B,3,3) are the intrinsics at the input size S; see the module docstring.
    """
    from mask2hand.render.camera import unproject

    tx, ty, tz = code.unbind(-1)
    focal = 0.5 * (K[:, 0, 0] + K[:, 1, 1]) / input_size
    depth = DEPTH_UNIT * focal * torch.exp(tz.clamp(-MAX_LOG_DEPTH, MAX_LOG_DEPTH))
    pixel = torch.stack([input_size * (0.5 + tx), input_size * (0.5 + ty)], dim=-1)
    return unproject(pixel[:, None], depth[:, None], K.to(code.dtype))[:, 0]


def encode_root_position(root: torch.Tensor, K: torch.Tensor, input_size: int) -> torch.Tensor:
    """Inverse of `decode_root_position`: translation code (B,3) of a wrist position (B,3)."""
    pixel = torch.einsum("bij,bj->bi", K.to(root.dtype), root)
    u, v = pixel[:, 0] / pixel[:, 2], pixel[:, 1] / pixel[:, 2]
    focal = 0.5 * (K[:, 0, 0] + K[:, 1, 1]) / input_size
    tz = torch.log(root[:, 2] / (DEPTH_UNIT * focal))
    return torch.stack([u / input_size - 0.5, v / input_size - 0.5, tz], dim=-1)
