"""Rotation representations used by the network's orientation head.

The paper regresses the global orientation as an axis-angle vector. Axis-angle is
discontinuous for a regressor (a rotation by pi about n equals one by pi about -n,
and the paper samples each component in [-pi, pi)), so a 6D head (Zhou et al.,
"On the continuity of rotation representations in neural networks", CVPR 2019)
is offered too: two 3-vectors orthonormalised by Gram-Schmidt into the first two
columns of the rotation matrix. Axis-angle -> matrix is the hand layer's
`lbs.axis_angle_to_matrix`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """6D representation (...,6) -> rotation matrices (...,3,3).

    The two 3-vectors a, b become the columns c1 = a/|a|, c2 = (b - (c1.b) c1)/|.|,
    c3 = c1 x c2. Continuous everywhere except where a is 0 or b is parallel to a.
    """
    a, b = d6[..., :3], d6[..., 3:]
    c1 = F.normalize(a, dim=-1)
    c2 = F.normalize(b - (c1 * b).sum(-1, keepdim=True) * c1, dim=-1)
    c3 = torch.cross(c1, c2, dim=-1)
    return torch.stack([c1, c2, c3], dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (...,3,3) -> the 6D representation (...,6) (first two columns)."""
    return torch.cat([matrix[..., :, 0], matrix[..., :, 1]], dim=-1)


def _outer_product_map() -> tuple[torch.Tensor, torch.Tensor]:
    """M (9,16), c (16,): vec(4 q q^T) = vec(R) @ M + c for the unit quaternion q of R.

    Every entry of 4 q q^T is linear in the entries of R (e.g. 4 w^2 = 1 + R00 + R11 + R22,
    4 w x = R21 - R12), so one matrix product gives all sixteen.
    """
    M = torch.zeros(9, 4, 4, dtype=torch.float64)
    c = torch.zeros(4, 4, dtype=torch.float64)
    r = {(i, j): 3 * i + j for i in range(3) for j in range(3)}
    signs = [(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)]  # diagonal: w, x, y, z
    for k, sign in enumerate(signs):
        c[k, k] = 1.0
        for i in range(3):
            M[r[i, i], k, k] = sign[i]
    # off-diagonal pairs (a, b): R entries with their signs
    pairs = {(0, 1): [((2, 1), 1), ((1, 2), -1)], (0, 2): [((0, 2), 1), ((2, 0), -1)],
             (0, 3): [((1, 0), 1), ((0, 1), -1)], (1, 2): [((1, 0), 1), ((0, 1), 1)],
             (1, 3): [((0, 2), 1), ((2, 0), 1)], (2, 3): [((2, 1), 1), ((1, 2), 1)]}
    for (a, b), terms in pairs.items():
        for entry, sign in terms:
            M[r[entry], a, b] = M[r[entry], b, a] = sign
    return M.reshape(9, 16), c.reshape(16)


_OUTER_MAP, _OUTER_CONST = _outer_product_map()


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (...,3,3) -> unit quaternions (...,4) as (w, x, y, z) with w >= 0.

    Row i of 4 q q^T is 4 q_i q; the row with the largest diagonal entry 4 q_i^2 is
    divided by 2|q_i| (Shepperd's choice), which is accurate for every rotation,
    including angles near pi.
    """
    M = _OUTER_MAP.to(matrix.dtype).to(matrix.device)
    c = _OUTER_CONST.to(matrix.dtype).to(matrix.device)
    outer = (matrix.reshape(*matrix.shape[:-2], 9) @ M + c).reshape(*matrix.shape[:-2], 4, 4)
    diagonal = outer.diagonal(dim1=-2, dim2=-1)
    best = diagonal.argmax(dim=-1, keepdim=True)
    row = outer.gather(-2, best.unsqueeze(-1).expand(*best.shape, 4)).squeeze(-2)
    quat = row / (2 * diagonal.gather(-1, best).clamp_min(1e-12).sqrt())
    return torch.where(quat[..., :1] < 0, -quat, quat)


def quaternion_to_axis_angle(quat: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (...,4) (w, x, y, z) -> axis-angle (...,3), angle in [0, pi]."""
    quat = torch.where(quat[..., :1] < 0, -quat, quat)
    w, xyz = quat[..., :1], quat[..., 1:]
    sin_half = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, w)
    small = sin_half < 1e-6
    # angle/|xyz| = 2 atan(t)/(t w) with t = |xyz|/w: its series 2/w (1 - t^2/3) near zero
    safe = torch.where(small, torch.ones_like(sin_half), sin_half)
    scale = torch.where(small, 2.0 / w * (1 - sin_half**2 / (3 * w**2)), angle / safe)
    return xyz * scale


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (...,3,3) -> axis-angle (...,3) with angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))
