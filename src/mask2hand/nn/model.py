"""The Mask2Hand network (paper Fig. 2): encoder -> hand layer -> soft silhouette -> RefineNet.

Input: a batch of masks of any size H x W and their intrinsics K. The masks are
resized to the network's input size S x S (area averaging when shrinking,
bilinear when enlarging) and K is scaled to match: with continuous pixel coordinates
(README, Conventions) a resize maps u -> sx u and v -> sy v (sx = S/W, sy = S/H), so
the first row of K (fx, skew, cx) is multiplied by sx and the second (fy, cy) by sy.
Resizing changes pixels, not the camera frame: every 3D output is in the camera
space of the original image, in meters.

Global pose. The encoder's rotation (axis-angle or 6D) becomes a matrix R and its
translation code gives the wrist position (see mask2hand.nn.encoder). The hand layer
places the hand with them (`HandModel.place`: rotated by R about the rest wrist, the
wrist moved to the predicted position), which is exactly the hand layer with
`global_orient` = axis-angle of R and `transl` = wrist - rest wrist (global_orient rotates
about the root joint, transl is added afterwards), and it needs no matrix -> axis-angle
conversion in the differentiable path; `HandParams` reports those equivalent parameters.

Fast inference: `net.fold_batch_norms()` (BatchNorm merged into the convolutions)
and `net(mask, K, exact_silhouette=True)` (RefineNet fed the exact rasterizer's mask
instead of the soft silhouette) together take about a quarter off the batch-1
latency of the CPU model; see benchmarks/network.py.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch
from torch import nn

import mask2hand.render as render
from mask2hand.errors import Mask2HandError
from mask2hand.utils.checks import check_shape
from mask2hand.hand import HandModel, HandParams, load_hand_model
from mask2hand.hand.lbs import axis_angle_to_matrix
from mask2hand.image.masks import resample_masks
from mask2hand.nn.encoder import NUM_BETAS, Encoder, camera_features, decode_root_position
from mask2hand.nn.fold import fold_batch_norms
from mask2hand.nn.locator import LOCATOR_SIDE, HandLocator, code_to_window, crop_windows
from mask2hand.nn.refine import RefineNet
from mask2hand.nn.rotation import rotation_6d_to_matrix


@dataclass
class NetConfig:
    """Everything that defines a Mask2Hand network (the defaults are the CPU model).

    hand_model / hand_model_path: "open" (shipped) or "mano" (path to MANO_RIGHT.pkl).
    num_pose_pcs: pose outputs; with pose_space "pca" the first k pose-PCA
        coefficients (the paper: 6 or 45), with "axis_angle" it must be 45 and the
        network regresses the 15 x 3 finger axis-angles directly.
    predict_shape: regress betas; off keeps betas = 0 (the paper's ablation).
    refine / refine_head: RefineNet on or off; "compact" (low-rank) or "paper" (29M).
    input_size: side S of the square network input (the paper: 224).
    backbone / backbone_width: "resnet18" (width 1.0 is the paper's) or "mobilenet_v3_small".
    rotation: "axis_angle" (the paper) or "6d" (continuous, Zhou et al. 2019).
    sigma / silhouette_mode: sharpness of the soft silhouette in pixel^2 (None: the
        paper's value scaled to the input size) and the renderer's mode ("contour",
        fast and exact when thresholded, or "faces", PyTorch3D's per-face product);
        see mask2hand.render.soft.
    channels_last: run the CNNs in channels-last memory format.
    flat_hand_mean: see `uses_flat_hand_mean` (None: chosen by the hand model).
    input_crop: None (the paper): the network sees the whole image, padded to a square;
        a margin (e.g. 1.25): it sees the square window around the hand, that many times
        the hand's larger side (mask2hand.image.crop). A preprocessing contract: the datasets and
        `Mask2Hand.predict` cut the windows; `forward` takes masks and K as given.
    locator_input: None: the network takes its input at input_size. A side L (a multiple of 64,
        at least input_size; with input_crop): it takes the whole mask's window at L x L, finds
        the hand's own window in it (an arm's mask is mostly arm) with a small locator CNN and
        runs on that window cut at input_size (mask2hand.nn.locator). `model_input_size` is
        the side the network takes either way.
    """

    hand_model: Literal["open", "mano"] = "open"
    hand_model_path: str | None = None
    num_pose_pcs: int = 45
    pose_space: Literal["pca", "axis_angle"] = "pca"
    predict_shape: bool = True
    refine: bool = True
    refine_head: Literal["compact", "paper"] = "compact"
    input_size: int = 128
    backbone: Literal["resnet18", "mobilenet_v3_small"] = "resnet18"
    backbone_width: float = 0.375
    rotation: Literal["axis_angle", "6d"] = "6d"
    sigma: float | None = None
    silhouette_mode: Literal["contour", "faces"] = "contour"
    channels_last: bool = True
    flat_hand_mean: bool | None = None
    input_crop: float | None = None
    locator_input: int | None = None

    @property
    def model_input_size(self) -> int:
        """The side of the square masks the network takes (what datasets and `predict` cut)."""
        return self.locator_input if self.locator_input is not None else self.input_size

    def uses_flat_hand_mean(self) -> bool:
        """Whether zero pose coefficients mean the flat hand (None: the flat hand for MANO,
        as in the paper's code; the model's mean pose for the open hand, whose PCA is
        centred on its pose prior)."""
        return self.flat_hand_mean if self.flat_hand_mean is not None else self.hand_model == "mano"

    @classmethod
    def paper(cls, num_pose_pcs: int = 45, **changes) -> "NetConfig":
        """The paper's network: ResNet18, 224 x 224, axis-angle rotation, the 29M refine head."""
        base = cls(num_pose_pcs=num_pose_pcs, input_size=224, backbone="resnet18", backbone_width=1.0,
                   rotation="axis_angle", refine_head="paper")
        return replace(base, **changes)

    def validate(self) -> None:
        """Raise Mask2HandError for an inconsistent configuration."""
        if self.pose_space not in ("pca", "axis_angle"):
            raise Mask2HandError(f"pose_space must be 'pca' or 'axis_angle', got {self.pose_space!r}")
        if self.pose_space == "axis_angle" and self.num_pose_pcs != 45:
            raise Mask2HandError("pose_space 'axis_angle' regresses all 45 finger values: set num_pose_pcs to 45")
        if not 1 <= self.num_pose_pcs <= 45:
            raise Mask2HandError(f"num_pose_pcs must be between 1 and 45, got {self.num_pose_pcs}")
        if self.rotation not in ("axis_angle", "6d"):
            raise Mask2HandError(f"rotation must be 'axis_angle' or '6d', got {self.rotation!r}")
        if self.input_size < 32:
            raise Mask2HandError(f"input_size must be at least 32 pixels, got {self.input_size}")
        if self.sigma is not None and self.sigma <= 0:
            raise Mask2HandError(f"sigma must be positive, got {self.sigma}")
        if self.input_crop is not None and not 1.0 <= self.input_crop <= 4.0:
            raise Mask2HandError(f"input_crop must be a margin between 1 and 4 (or null), got {self.input_crop}")
        if self.locator_input is not None:
            if self.input_crop is None:
                raise Mask2HandError("locator_input needs a cropping network: set input_crop (e.g. 1.25)")
            if self.locator_input < self.input_size or self.locator_input % LOCATOR_SIDE:
                raise Mask2HandError(f"locator_input must be a multiple of {LOCATOR_SIDE} and at least input_size "
                                     f"({self.input_size}), got {self.locator_input}")


@dataclass(frozen=True)
class Mask2HandOutput:
    """What the network returns for a batch of B masks; geometry in meters, camera space of
    the input image; S is the network's input size.

    params: the equivalent hand-layer inputs (mask2hand.hand.HandParams; pose_pcs with
        pose_space "pca", else pose).
    vertices (B,V,3), joints (B,21,3): the preliminary hand (the hand layer's).
    silhouette (B,S,S) in [0,1]: soft silhouette of the preliminary mesh (the exact 0/1
        mask with `exact_silhouette`).
    input_mask (B,S,S): the resized input mask it is compared with (with a locator: the hand's
        window cut from the input).
    input_K (B,3,3): the intrinsics at S (of that window).
    refined_vertices (B,V,3), refined_joints (B,21,3): after RefineNet; None when it is off.
    locator_code (B,3): with a locator, its window code (mask2hand.nn.locator), else None.
    """

    params: HandParams
    vertices: torch.Tensor
    joints: torch.Tensor
    silhouette: torch.Tensor
    input_mask: torch.Tensor
    input_K: torch.Tensor
    refined_vertices: torch.Tensor | None = None
    refined_joints: torch.Tensor | None = None
    locator_code: torch.Tensor | None = None

    @property
    def final_vertices(self) -> torch.Tensor:
        """Refined vertices when RefineNet ran, else the preliminary ones."""
        return self.refined_vertices if self.refined_vertices is not None else self.vertices

    @property
    def final_joints(self) -> torch.Tensor:
        return self.refined_joints if self.refined_joints is not None else self.joints


@dataclass(frozen=True)
class PreliminaryHand:
    """The hand layer's answer before RefineNet.

    params: HandParams, as in Mask2HandOutput; vertices (B,V,3) and joints (B,21,3) in
    meters, camera space.
    """

    params: HandParams
    vertices: torch.Tensor
    joints: torch.Tensor


class Mask2HandNet(nn.Module):
    """The Mask2Hand network.

    Args:
        config: a NetConfig (default: the CPU model).
        hand: an already loaded hand layer to use instead of loading
            `config.hand_model` (it must be that model, with enough pose PCs).

    The hand layer's arrays are excluded from `state_dict()`: a checkpoint holds
    the network's weights and `hand_identity`, never the (possibly licensed) model.
    """

    def __init__(self, config: NetConfig | None = None, hand: HandModel | None = None):
        super().__init__()
        config = config if config is not None else NetConfig()
        config.validate()
        self.config = config
        pose_pcs_needed = config.num_pose_pcs if config.pose_space == "pca" else 45
        if hand is None:
            hand = load_hand_model(config.hand_model, path=config.hand_model_path, num_pose_pcs=pose_pcs_needed,
                                   flat_hand_mean=config.uses_flat_hand_mean())
        elif (hand.name != config.hand_model or hand.num_pose_pcs < pose_pcs_needed
              or hand.flat_hand_mean != config.uses_flat_hand_mean()):
            raise Mask2HandError(f"the hand layer given is '{hand.name}' with {hand.num_pose_pcs} pose PCs and "
                                 f"flat_hand_mean={hand.flat_hand_mean}; the config needs '{config.hand_model}' with at "
                                 f"least {pose_pcs_needed} and flat_hand_mean={config.uses_flat_hand_mean()}")
        for name, buffer in list(hand.named_buffers(recurse=False)):
            hand.register_buffer(name, buffer, persistent=False)
        self.hand = hand
        self.encoder = Encoder(num_pose_outputs=config.num_pose_pcs,
                               rotation_dim=3 if config.rotation == "axis_angle" else 6,
                               predict_shape=config.predict_shape, backbone=config.backbone,
                               backbone_width=config.backbone_width)
        self.refine_net = RefineNet(hand.num_vertices, head=config.refine_head) if config.refine else None
        self.locator = HandLocator() if config.locator_input is not None else None
        self.inference_only = False
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    def fold_batch_norms(self) -> "Mask2HandNet":
        """Speed up inference by merging BatchNorm layers into the convolutions (in place).

        Switches to eval mode; the outputs are unchanged up to rounding. The network
        becomes inference-only: `train()` raises afterwards, and its state dict no
        longer matches a training checkpoint (fold after loading weights).
        """
        self.eval()
        for module in (self.encoder, self.refine_net, self.locator):
            if module is not None:
                fold_batch_norms(module)
        if self.config.channels_last:  # the folded convolutions are new modules
            self.to(memory_format=torch.channels_last)
        self.inference_only = True
        return self

    def train(self, mode: bool = True) -> "Mask2HandNet":
        if mode and getattr(self, "inference_only", False):
            raise Mask2HandError("this network's BatchNorm layers were folded for inference; it cannot be trained")
        return super().train(mode)

    @property
    def hand_identity(self) -> dict:
        """Name and asset hash of the hand model (what a checkpoint must match)."""
        return self.hand.identity

    @property
    def faces(self) -> torch.Tensor:
        return self.hand.faces

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters of the encoder, the RefineNet and in total."""
        def count(module: nn.Module | None) -> int:
            return 0 if module is None else sum(p.numel() for p in module.parameters())
        counts = {"encoder": count(self.encoder), "refine": count(self.refine_net), "locator": count(self.locator)}
        counts["total"] = counts["encoder"] + counts["refine"] + counts["locator"]
        return counts

    def prepare_inputs(self, mask: torch.Tensor | np.ndarray,
                       K: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks (B,H,W) / (B,1,H,W) and K (B,3,3) / (3,3) -> mask (B,1,S,S), K at S (B,3,3), S the
        model_input_size.

        Masks of another size are prepared as `predict` prepares them, by the one resampling
        rule of mask masks and cameras (mask2hand.image.masks.resample_masks: padded to a square,
        or for a cropping network cut to the square around the hand, then resampled). Both are
        cast to the network's dtype and device. Mask values are expected in [0, 1] (hand = 1).
        """
        reference = next(self.parameters())
        mask = torch.as_tensor(mask)
        K = torch.as_tensor(K)
        if mask.ndim == 3:
            mask = mask.unsqueeze(1)
        sizes = check_shape(mask, ["B", "1", "H", "W"], "mask")
        batch, _, height, width = mask.shape
        if K.shape == (3, 3):
            K = K.expand(batch, 3, 3)
        check_shape(K, ["B", "3", "3"], "K", sizes)
        size = self.config.model_input_size
        if (height, width) != (size, size):
            masks, Ks = resample_masks(mask[:, 0].detach().cpu().numpy(), K.detach().cpu().numpy(), size,
                                       self.config.input_crop)
            mask, K = torch.from_numpy(masks)[:, None], torch.from_numpy(Ks)
        return mask.to(device=reference.device, dtype=reference.dtype), K.to(device=reference.device,
                                                                             dtype=reference.dtype)

    def forward(self, mask: torch.Tensor, K: torch.Tensor, exact_silhouette: bool = False,
                hand_window: torch.Tensor | None = None) -> Mask2HandOutput:
        """Masks (B,H,W) or (B,1,H,W) in [0,1] with their intrinsics K (B,3,3) -> Mask2HandOutput.

        exact_silhouette: use the exact rasterizer's mask (0/1, no gradient, several
        times faster) instead of the soft silhouette, for inference only. At the
        default sigma the soft silhouette differs from it only within about a pixel
        of the boundary, so RefineNet sees nearly the same input.
        hand_window: with a locator, windows (B,3) (u0, v0, side) in pixels of the model input
        to cut instead of the located ones (training on ground-truth windows); the locator's
        code is returned either way.
        """
        cfg = self.config
        size = cfg.input_size
        mask, K = self.prepare_inputs(mask, K)
        mask, K, code = self.locate(mask, K, hand_window)
        hand = self.preliminary(mask, K)
        if exact_silhouette:
            exact = render.rasterize_silhouette(hand.vertices.detach(), self.hand.faces, K.detach(),
                                                image_size=(size, size))
            silhouette = torch.as_tensor(exact, device=mask.device).to(mask.dtype)
        else:
            silhouette = render.render_soft_silhouette(hand.vertices, self.hand.faces, K, image_size=(size, size),
                                                       sigma=cfg.sigma, mode=cfg.silhouette_mode)
        refined_vertices = refined_joints = None
        if self.refine_net is not None:
            refined_vertices, refined_joints = self.refine(mask, silhouette, hand.vertices)
        return Mask2HandOutput(params=hand.params, vertices=hand.vertices, joints=hand.joints,
                               silhouette=silhouette, input_mask=mask.squeeze(1), input_K=K,
                               refined_vertices=refined_vertices, refined_joints=refined_joints,
                               locator_code=code)

    def locate(self, mask: torch.Tensor, K: torch.Tensor,
               hand_window: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Prepared masks (B,1,L,L) and K at L -> the encoder's input (B,1,S,S), its K (B,3,3) and the
        locator's window code (B,3): the hand's window cut as mask2hand.nn.locator says (at
        `hand_window` when given). Without a locator: the inputs unchanged and no code."""
        if self.locator is None:
            return mask, K, None
        code = self.locator(mask)
        window = hand_window if hand_window is not None else code_to_window(code.detach(), mask.shape[-1])
        crops, K_crop = crop_windows(mask, K, window.to(mask.dtype), self.config.input_size)
        # binary like every other input the encoder sees (mask2hand.image.masks.resample_window)
        return (crops >= 0.5).to(mask.dtype), K_crop, code

    def preliminary(self, mask: torch.Tensor, K: torch.Tensor) -> PreliminaryHand:
        """The encoder and the hand layer: prepared masks (B,1,S,S) and their intrinsics at the
        input size K (B,3,3) (see `prepare_inputs`) -> PreliminaryHand."""
        cfg = self.config
        size = cfg.input_size
        image = mask.contiguous(memory_format=torch.channels_last) if cfg.channels_last else mask
        code = self.encoder(image, camera_features(K, size))

        if cfg.rotation == "axis_angle":
            rotation = axis_angle_to_matrix(code.rotation)
        else:
            rotation = rotation_6d_to_matrix(code.rotation)
        betas = code.betas if code.betas is not None else code.pose.new_zeros(mask.shape[0], NUM_BETAS)
        root = decode_root_position(code.translation, K, size)
        pose, pose_pcs = (None, code.pose) if cfg.pose_space == "pca" else (code.pose, None)
        placed = self.hand.place(rotation, root, pose, pose_pcs, betas)
        # an axis-angle head reports its own output, which may exceed pi, not its equivalent
        global_orient = code.rotation if cfg.rotation == "axis_angle" else placed.full_pose[:, 0]
        params = HandParams(global_orient=global_orient, transl=root - placed.rest_root, betas=betas, pose=pose,
                            pose_pcs=pose_pcs, flat_hand_mean=self.hand.flat_hand_mean)
        return PreliminaryHand(params=params, vertices=placed.vertices, joints=placed.joints)

    def refine(self, mask: torch.Tensor, silhouette: torch.Tensor,
               vertices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RefineNet: prepared masks (B,1,S,S), the silhouette (B,S,S) of the preliminary mesh
        and its vertices (B,V,3) -> refined vertices (B,V,3) and their joints (B,21,3), meters."""
        images = torch.cat([mask, silhouette.unsqueeze(1).to(mask.dtype)], dim=1)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        refined = vertices + self.refine_net(images)
        return refined, self.hand.joints_from_vertices(refined)
