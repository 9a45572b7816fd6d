"""Rotation representations used by the network's orientation head.

The paper regresses the global orientation as an axis-angle vector. Axis-angle is
discontinuous for a regressor (a rotation by pi about n equals one by pi about -n,
and the paper samples each component in [-pi, pi)), so a 6D head (Zhou et al.,
"On the continuity of rotation representations in neural networks", CVPR 2019)
is offered too: two 3-vectors orthonormalised by Gram-Schmidt into the first two
columns of the rotation matrix. Axis-angle <-> matrix is the hand layer's
(`lbs.axis_angle_to_matrix`, `lbs.matrix_to_axis_angle`).
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
