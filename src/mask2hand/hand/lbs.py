"""Linear blend skinning as pure functions over batched tensors.

Shapes use B for the batch, V for vertices, J for the rig's joints (16 for a
MANO-compatible hand) and S for shape components. Every function is
differentiable and keeps the dtype and device of its inputs.
"""

from __future__ import annotations

import torch


def flatten_basis(directions: torch.Tensor) -> torch.Tensor:
    """Blend directions (V,3,K) as a (K,V*3) matrix, the layout the blend functions use."""
    return directions.permute(2, 0, 1).reshape(directions.shape[2], -1).contiguous()


def shape_blend(v_template: torch.Tensor, shape_basis: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """Rest-pose vertices for given shape coefficients.

    v_template (V,3), shape_basis (S,V*3) from `flatten_basis`, betas (B,S') with
    S' <= S -> (B,V,3).
    """
    offsets = betas @ shape_basis[: betas.shape[1]]
    return v_template.unsqueeze(0) + offsets.view(betas.shape[0], -1, 3)


def regress_joints(regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint positions as fixed linear combinations of vertices.

    regressor (J,V), vertices (B,V,3) -> (B,J,3).
    """
    return torch.einsum("jv,bvc->bjc", regressor, vertices)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, smooth at zero rotation.

    axis_angle (...,3) in radians -> rotation matrices (...,3,3). Written as
    cos(t) I + sin(t)/t [a]x + (1-cos(t))/t^2 a a^T, which needs no matrix product.
    """
    theta_sq = (axis_angle * axis_angle).sum(-1, keepdim=True)
    small = theta_sq < 1e-8
    safe_sq = torch.where(small, torch.ones_like(theta_sq), theta_sq)
    theta = torch.sqrt(safe_sq)
    # Taylor expansions near zero keep values and gradients exact there
    cos = torch.where(small, 1.0 - theta_sq / 2.0, torch.cos(theta))
    sin_over = torch.where(small, 1.0 - theta_sq / 6.0, torch.sin(theta) / theta)
    one_minus_cos_over = torch.where(small, 0.5 - theta_sq / 24.0, (1.0 - torch.cos(theta)) / safe_sq)
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1)
    outer = (axis_angle.unsqueeze(-1) * axis_angle.unsqueeze(-2)).flatten(-2)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).flatten()
    matrix = cos * eye + sin_over * skew + one_minus_cos_over * outer
    return matrix.reshape(*axis_angle.shape[:-1], 3, 3)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (...,3,3) -> axis-angle (...,3) in radians, angle in [0, pi]; the
    inverse of `axis_angle_to_matrix` up to the choice of angle.

    Through the unit quaternion q = (w, x, y, z): every entry of 4 q q^T is linear in R
    (e.g. 4 w^2 = 1 + tr R, 4 w x = R21 - R12); the row of the largest diagonal entry,
    divided by twice its square root, is q (Shepperd's choice, accurate at every angle,
    including near pi). The conversion uses only traceable operators (ONNX export).
    """
    r = matrix.reshape(*matrix.shape[:-2], 9)
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = r.unbind(-1)
    ww, xx = 1 + r00 + r11 + r22, 1 + r00 - r11 - r22
    yy, zz = 1 - r00 + r11 - r22, 1 - r00 - r11 + r22
    wx, wy, wz = r21 - r12, r02 - r20, r10 - r01
    xy, xz, yz = r10 + r01, r02 + r20, r21 + r12
    outer = torch.stack([ww, wx, wy, wz, wx, xx, xy, xz, wy, xy, yy, yz, wz, xz, yz, zz], dim=-1)
    outer = outer.reshape(*matrix.shape[:-2], 4, 4)
    diagonal = torch.stack([ww, xx, yy, zz], dim=-1)
    best = diagonal.argmax(dim=-1, keepdim=True)
    row = outer.gather(-2, best.unsqueeze(-1).expand(*best.shape, 4)).squeeze(-2)
    quat = row / (2 * diagonal.gather(-1, best).clamp_min(1e-12).sqrt())
    quat = torch.where(quat[..., :1] < 0, -quat, quat)  # w >= 0: the angle in [0, pi]
    w, xyz = quat[..., :1], quat[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    small = sin_half < 1e-6
    # angle / sin(angle/2) with angle = 2 atan2(s, w); near zero its series 2/w (1 - s^2/(3 w^2))
    # keeps the value and the gradient finite at the identity
    safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    scale = torch.where(small, 2.0 / w * (1 - sin_half**2 / (3 * w**2)), 2 * torch.atan2(sin_half, w) / safe)
    return xyz * scale


def pose_blend(rotations: torch.Tensor, pose_basis: torch.Tensor) -> torch.Tensor:
    """Pose-corrective offsets driven by the non-root joint rotations.

    rotations (B,J,3,3) of all joints (the root is ignored), pose_basis
    (9*(J-1),V*3) from `flatten_basis` of MANO's posedirs -> offsets (B,V,3).
    """
    eye = torch.eye(3, dtype=rotations.dtype, device=rotations.device)
    feature = (rotations[:, 1:] - eye).flatten(1)
    return (feature @ pose_basis).view(rotations.shape[0], -1, 3)


def tree_levels(parents: list[int]) -> list[list[int]]:
    """Joints grouped by depth in the tree (root first), so each level is one batched product."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    return [[j for j in range(len(parents)) if depth[j] == d] for d in range(max(depth) + 1)]


def kinematic_chain(
    rotations: torch.Tensor, rest_joints: torch.Tensor, parents: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compose local joint rotations along the tree.

    rotations (B,J,3,3) local rotations, rest_joints (B,J,3), parents: J ints with
    parents[0] == -1 and parents[j] < j.
    Returns posed joint positions (B,J,3) and skinning transforms (B,J,3,4) that map
    a rest-pose point to its posed position under joint j alone.
    """
    world_rot = [None] * len(parents)
    world_pos = [None] * len(parents)
    world_rot[0], world_pos[0] = rotations[:, 0], rest_joints[:, 0]
    for level in tree_levels(parents)[1:]:
        par = [parents[j] for j in level]
        par_rot = torch.stack([world_rot[p] for p in par], dim=1)
        par_pos = torch.stack([world_pos[p] for p in par], dim=1)
        bone = rest_joints[:, level] - rest_joints[:, par]
        pos = par_pos + (par_rot @ bone.unsqueeze(-1)).squeeze(-1)
        rot = par_rot @ rotations[:, level]
        for i, j in enumerate(level):
            world_rot[j], world_pos[j] = rot[:, i], pos[:, i]
    rot = torch.stack(world_rot, dim=1)
    pos = torch.stack(world_pos, dim=1)
    # x_posed = R_j (x_rest - J_j_rest) + J_j_posed
    offset = pos - (rot @ rest_joints.unsqueeze(-1)).squeeze(-1)
    return pos, torch.cat([rot, offset.unsqueeze(-1)], dim=-1)


def skin(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Blend per-joint rigid transforms by the skinning weights.

    vertices (B,V,3) rest pose, weights (V,J), transforms (B,J,3,4) -> (B,V,3).
    """
    batch, num_joints = transforms.shape[:2]
    # Coordinate-major layout (B,12,V) and (B,3,V): the blend is one batched matrix
    # product and the per-vertex affine map is three multiply-adds over long
    # contiguous rows, several times faster on CPU than per-vertex 3x4 products.
    # a batched product against the (J,V) weights measured ~2.5x faster on CPU BLAS than
    # one (B*12,J) x (J,V) product with its skinny inner dimension
    per_joint = transforms.reshape(batch, num_joints, 12).transpose(1, 2)
    blended = torch.matmul(per_joint, weights.t().contiguous()).view(batch, 3, 4, -1)
    coords = vertices.transpose(1, 2).contiguous()
    out = torch.addcmul(blended[:, :, 3], blended[:, :, 0], coords[:, 0:1])
    out = out.addcmul(blended[:, :, 1], coords[:, 1:2])
    out = out.addcmul(blended[:, :, 2], coords[:, 2:3])
    return out.transpose(1, 2)
