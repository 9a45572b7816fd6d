"""Linear blend skinning as pure functions over batched tensors.

Shapes use B for the batch, V for vertices, J for the rig's joints (16 for a
MANO-compatible hand) and S for shape components. Every function is
differentiable and keeps the dtype and device of its inputs.
"""

from __future__ import annotations

import torch


def shape_blend(v_template: torch.Tensor, shapedirs: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Rest-pose vertices for given shape coefficients.

    v_template (V,3), shapedirs (V,3,S), betas (B,S') with S' <= S -> (B,V,3).
    """
    num = betas.shape[1]
    offsets = torch.einsum("bs,vcs->bvc", betas, shapedirs[:, :, :num])
    return v_template.unsqueeze(0) + offsets


def regress_joints(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint positions as fixed linear combinations of vertices.

    regressor (J,V), vertices (B,V,3) -> (B,J,3).
    """
    return torch.einsum("jv,bvc->bjc", regressor, vertices)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, smooth at zero rotation.

    axis_angle (...,3) in radians -> rotation matrices (...,3,3).
    """
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    # sqrt of (theta^2 + eps) keeps the gradient finite at exactly zero rotation;
    # the Taylor branch below is used there anyway.
    theta = torch.sqrt(theta_sq + torch.finfo(axis_angle.dtype).tiny)
    small = theta_sq < 1e-8
    sin_over = torch.where(small, 1.0 - theta_sq / 6.0, torch.sin(theta) / theta)
    one_minus_cos_over = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(theta)) / theta_sq.clamp_min(1e-8))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis_angle.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    skew_sq = skew @ skew
    return eye + sin_over.unsqueeze(-1) * skew + one_minus_cos_over.unsqueeze(-1) * skew_sq


def pose_blend(rotations: torch.Tensor, posedirs: torch.Tensor) -> torch.Tensor:
    """Pose-corrective offsets driven by the non-root joint rotations.

    rotations (B,J,3,3) of all joints (the root is ignored), posedirs (V,3,9*(J-1))
    -> offsets (B,V,3).
    """
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    feature = (rotations[:, 1:] - eye).flatten(1)
    return torch.einsum("bk,vck->bvc", feature, posedirs)


def kinematic_chain(
    rotations: torch.Tensor, rest_joints: torch.Tensor, parents: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose local joint rotations along the tree.

    rotations (B,J,3,3) local rotations, rest_joints (B,J,3), parents: J ints with
    parents[0] == -1 and parents[j] < j.
    Returns posed joint positions (B,J,3) and skinning transforms (B,J,3,4) that map
    a rest-pose point to its posed position under joint j alone.
    """
    world_rot = [rotations[:, 0]]
    world_pos = [rest_joints[:, 0]]
    for j in range(1, len(parents)):
        p = parents[j]
        bone = rest_joints[:, j] - rest_joints[:, p]
        world_pos.append(world_pos[p] + (world_rot[p] @ bone.unsqueeze(-1)).squeeze(-1))
        world_rot.append(world_rot[p] @ rotations[:, j])
    rot = torch.stack(world_rot, dim=1)
    pos = torch.stack(world_pos, dim=1)
    # x_posed = R_j (x_rest - J_j_rest) + J_j_posed
    offset = pos - (rot @ rest_joints.unsqueeze(-1)).squeeze(-1)
    return pos, torch.cat([rot, offset.unsqueeze(-1)], dim=-1)


def skin(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Blend per-joint rigid transforms by the skinning weights.

    vertices (B,V,3) rest pose, weights (V,J), transforms (B,J,3,4) -> (B,V,3).
    """
    blended = torch.einsum("vj,bjk->bvk", weights, transforms.flatten(2)).reshape(*vertices.shape[:2], 3, 4)
    return (blended[..., :3] @ vertices.unsqueeze(-1)).squeeze(-1) + blended[..., 3]
