"""Hand parameters that rebuild the answer: the network's final mesh is its parametric hand plus
RefineNet's per-vertex offsets, which no parameters reproduce exactly. So the parameters
written out are fitted to the final mesh (L-BFGS on the hand layer, starting from the
network's own parameters), and the residual is reported beside them.

The parameters are given in one convention everywhere (datasets, predictions, the README's
hand-layer call): flat_hand_mean=True, i.e. `pose` is the whole finger pose, the model's mean
included, so `load_hand_model(name)(global_orient, transl, pose=pose, betas=betas)` rebuilds
the hand whatever convention the network was trained in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mask2hand.hand.params import HandParams

if TYPE_CHECKING:
    from mask2hand.hand.model import HandModel

LBFGS_ITERATIONS = 100
"""L-BFGS evaluations of the hand layer per batch: on the shipped model's 12 examples the fit then
rebuilds the final joints within 1.6 mm and the mesh within 1.9 mm (the worst example; 1.2 and
1.4 mm on average), at about 20 ms per mask in a batch of 12 on 2 cores."""

BETAS_WEIGHT = 1e-3
"""Shape regularisation (per unit ||betas||^2, against squared millimetres): keeps betas in the
model's range where the offsets would pull them out of it."""


@dataclass(frozen=True)
class RebuiltParams:
    """Parameters fitted to a batch of final meshes, numpy float32, flat_hand_mean=True.

    params: HandParams (global_orient (B,3), transl (B,3), pose (B,45) the whole finger pose,
    betas (B,10)). joints_mm, vertices_mm: (B,) mean distance of the rebuilt joints (kinematic
    chain) and vertices from the final ones, in millimetres. offsets: (B,V,3) meters, the final
    mesh minus the rebuilt one.
    """

    params: HandParams
    joints_mm: np.ndarray
    vertices_mm: np.ndarray
    offsets: np.ndarray


def rebuild_params(hand: "HandModel", start: HandParams, vertices: np.ndarray, joints: np.ndarray) -> RebuiltParams:
    """Fit hand-layer parameters to final meshes.

    hand: the network's HandModel (its own flat_hand_mean); start: batched parameters in that
    layer's convention (pose as `forward(pose=...)` takes it); vertices (B,V,3) and joints
    (B,21,3): the final answer, meters.
    """
    import torch

    device = hand.faces.device

    def tensor(a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=torch.float32, device=device)

    # the translation is optimised in millimetres: a millimetre of it moves the mesh about as much
    # as a hundredth of a radian of a finger joint, which keeps the problem well conditioned
    variables = [tensor(v).clone().requires_grad_(True) for v in (start.global_orient, np.asarray(start.transl) * 1000,
                                                                   start.pose, start.betas)]
    target, target_joints = tensor(vertices), tensor(joints)
    optimizer = torch.optim.LBFGS(variables, lr=1.0, max_iter=LBFGS_ITERATIONS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        out = hand(variables[0], variables[1] / 1000, pose=variables[2], betas=variables[3])
        # both the mesh and the joints: the answer's joints are regressed from its refined mesh, the
        # layer's come from its kinematic chain, and the two differ by millimetres
        per_hand = (((out.vertices - target) ** 2).sum(-1).mean(-1) + ((out.joints - target_joints) ** 2).sum(-1).mean(-1)
                    ) * 1e6 + BETAS_WEIGHT * (variables[3] ** 2).sum(-1)
        loss = per_hand.sum()  # hands are independent: the sum's gradient is each hand's own
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        out = hand(variables[0], variables[1] / 1000, pose=variables[2], betas=variables[3])
        rebuilt_vertices, rebuilt_joints = out.vertices.cpu().numpy(), out.joints.cpu().numpy()
        whole_pose = variables[2] + hand.pose_mean.to(variables[2])
    f32 = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
    params = HandParams(global_orient=f32(variables[0]), transl=f32(variables[1] / 1000), pose=f32(whole_pose),
                        betas=f32(variables[3]))
    return RebuiltParams(params=params,
                         joints_mm=np.linalg.norm(rebuilt_joints - joints, axis=-1).mean(-1) * 1000,
                         vertices_mm=np.linalg.norm(rebuilt_vertices - vertices, axis=-1).mean(-1) * 1000,
                         offsets=(np.asarray(vertices) - rebuilt_vertices).astype(np.float32))


def parametric_params(hand: "HandModel", params: HandParams, vertices: np.ndarray) -> RebuiltParams:
    """The RebuiltParams of answers that already are the hand layer's for `params` (a fitted
    answer): the parameters in the flat convention, no residual, no offsets. vertices (B,V,3)."""
    pose_mean = hand.pose_mean.detach().cpu().numpy()
    batch = len(vertices)
    return RebuiltParams(params=to_flat_convention(params, pose_mean), joints_mm=np.zeros(batch),
                         vertices_mm=np.zeros(batch), offsets=np.zeros_like(vertices, dtype=np.float32))


def to_flat_convention(params: HandParams, pose_mean: np.ndarray) -> HandParams:
    """Parameters of a layer with flat_hand_mean=False (pose relative to the mean `pose_mean` (45,))
    in the flat_hand_mean=True convention (the whole finger pose)."""
    return HandParams(global_orient=params.global_orient, transl=params.transl, betas=params.betas,
                      pose=np.asarray(params.pose) + np.asarray(pose_mean, dtype=np.float32))
