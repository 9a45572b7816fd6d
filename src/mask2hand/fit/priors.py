"""Plausibility terms of the fit, in torch: joint limits and the shape prior.

Joint limits are the boxes of `mask2hand.hand.prior.JOINT_LIMITS` on each finger joint's
anatomical (flex, abd, twist) axis-angle (`pose_to_local`); the penalty is the squared
excess outside the box in radians^2, summed over the 15 joints, zero inside the limits.
It acts on the *absolute* finger pose (the flat_hand_mean=True convention of
mask2hand.hand.params.HandParams), the pose the limits are defined for.
"""

from __future__ import annotations

import torch

from mask2hand.hand.params import HandParams
from mask2hand.hand.prior import JOINT_FRAMES, JOINT_LIMITS


def absolute_pose(hand, pose: torch.Tensor) -> torch.Tensor:
    """Absolute finger pose (B,45) from the hand layer's `pose` input (B,45) (HandModel.in_convention)."""
    layer_params = HandParams(global_orient=None, transl=None, betas=None, pose=pose,
                              flat_hand_mean=hand.flat_hand_mean)
    return hand.in_convention(layer_params, flat_hand_mean=True).pose


def local_pose(pose_abs: torch.Tensor) -> torch.Tensor:
    """Anatomical (flex, abd, twist) (B,15,3) of absolute finger poses (B,45), radians."""
    frames = torch.as_tensor(JOINT_FRAMES, dtype=pose_abs.dtype, device=pose_abs.device)
    return torch.einsum("jba,njb->nja", frames, pose_abs.reshape(-1, 15, 3))


def limit_penalty(pose_abs: torch.Tensor) -> torch.Tensor:
    """Squared excess (B,) in radians^2 of absolute finger poses (B,45) outside JOINT_LIMITS."""
    limits = torch.as_tensor(JOINT_LIMITS, dtype=pose_abs.dtype, device=pose_abs.device)
    local = local_pose(pose_abs)
    excess = torch.relu(limits[..., 0] - local) + torch.relu(local - limits[..., 1])
    return (excess * excess).sum(dim=(1, 2))


def shape_penalty(betas: torch.Tensor) -> torch.Tensor:
    """||betas||^2 (B,): the shape prior (betas are unit-variance shape coefficients)."""
    return (betas * betas).sum(dim=1)


def prior_penalty(hand, pose: torch.Tensor, betas: torch.Tensor, limit_weight: float,
                  shape_weight: float) -> torch.Tensor:
    """The fit's weighted plausibility penalty (B,): limit_weight x `limit_penalty` of the absolute
    finger pose + shape_weight x `shape_penalty`. pose (B,45) the hand layer's `pose` input,
    betas (B,10); hand: the HandModel they belong to."""
    return limit_weight * limit_penalty(absolute_pose(hand, pose)) + shape_weight * shape_penalty(betas)
