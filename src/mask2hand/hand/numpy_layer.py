"""The hand layer in NumPy: the same linear blend skinning as `HandModel.forward(hand_pose=...)`,
without torch, in float64.

It serves what works on plain arrays (rebuilding the answer's parameters,
mask2hand.inference.rebuild) on every runtime, the torch-free ONNX one included. The
batched forward is cheap enough to differentiate by finite differences: one call on
B x (P+1) parameter sets gives a Jacobian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mask2hand.hand.data import MANO_TO_FREIHAND, NUM_BETAS, HandModelData
from mask2hand.hand.params import HandParams


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """Rodrigues' formula: axis-angle (...,3) radians -> rotation matrices (...,3,3), float64.
    Near zero the Taylor series keeps it exact (as mask2hand.hand.lbs.axis_angle_to_matrix)."""
    a = np.asarray(axis_angle, dtype=np.float64)
    theta_sq = (a * a).sum(-1)[..., None, None]
    small = theta_sq < 1e-8
    safe_sq = np.where(small, 1.0, theta_sq)
    theta = np.sqrt(safe_sq)
    cos = np.where(small, 1.0 - theta_sq / 2.0, np.cos(theta))
    sin_over = np.where(small, 1.0 - theta_sq / 6.0, np.sin(theta) / theta)
    one_minus_cos_over = np.where(small, 0.5 - theta_sq / 24.0, (1.0 - np.cos(theta)) / safe_sq)
    outer = a[..., :, None] * a[..., None, :]
    return cos * np.eye(3) + sin_over * _skew(a) + one_minus_cos_over * outer


@dataclass(frozen=True)
class NumpyHand:
    """A hand model's arrays (float64) and the layer's forward over them.

    v_template (V,3) meters; shapedirs (V,3,10); posedirs (V,3,135), or None for a model
    without pose correctives (the open hand); joint_regressor (16,V); weights (V,16);
    parents: 16 ints, parents[0] = -1 and parents[j] < j; model_pose_mean (45,) the model's
    mean finger pose; flat_hand_mean: the layer's pose convention (see HandParams; False: the
    layer adds model_pose_mean to every pose); fingertip_ids (5,) vertex indices.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray | None
    joint_regressor: np.ndarray
    weights: np.ndarray
    parents: tuple[int, ...]
    model_pose_mean: np.ndarray
    flat_hand_mean: bool
    fingertip_ids: np.ndarray

    @classmethod
    def from_data(cls, data: HandModelData, flat_hand_mean: bool = True) -> "NumpyHand":
        """The layer of `load_hand_model(data.name, flat_hand_mean=...)`, from the model's arrays."""
        f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        return cls(v_template=f64(data.v_template), shapedirs=f64(data.shapedirs),
                   posedirs=f64(data.posedirs) if np.any(data.posedirs) else None,
                   joint_regressor=f64(data.joint_regressor), weights=f64(data.weights),
                   parents=tuple(int(p) for p in data.parents),
                   model_pose_mean=f64(data.pose_mean), flat_hand_mean=flat_hand_mean,
                   fingertip_ids=np.asarray(data.fingertip_ids, dtype=np.int64))

    @classmethod
    def from_layer(cls, hand: Any) -> "NumpyHand":
        """The same layer as a torch `HandModel` (read from its buffers, on any device)."""
        arrays = {name: getattr(hand, name).detach().cpu().double().numpy()
                  for name in ("v_template", "shape_basis", "pose_basis", "joint_regressor", "weights",
                              "model_pose_mean")}
        num_vertices = arrays["v_template"].shape[0]

        def unflatten(basis: np.ndarray) -> np.ndarray:  # (K,V*3) -> (V,3,K), inverting lbs.flatten_basis
            return basis.reshape(basis.shape[0], num_vertices, 3).transpose(1, 2, 0)

        return cls(v_template=arrays["v_template"], shapedirs=unflatten(arrays["shape_basis"]),
                   posedirs=unflatten(arrays["pose_basis"]) if hand.has_pose_correctives else None,
                   joint_regressor=arrays["joint_regressor"], weights=arrays["weights"], parents=tuple(hand.parents),
                   model_pose_mean=arrays["model_pose_mean"], flat_hand_mean=bool(hand.flat_hand_mean),
                   fingertip_ids=hand.fingertip_ids.detach().cpu().numpy())

    def in_convention(self, params: HandParams, flat_hand_mean: bool | None = None) -> HandParams:
        """`HandModel.in_convention` for numpy parameters with `pose` set."""
        return params.with_mean_pose(self.flat_hand_mean if flat_hand_mean is None else flat_hand_mean,
                                     self.model_pose_mean)

    def forward(self, global_orient: np.ndarray, transl: np.ndarray, pose: np.ndarray,
                betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(vertices (B,V,3), joints (B,21,3) FreiHAND order) in meters, float64, for
        global_orient (B,3) axis-angle about the root joint, transl (B,3) meters, pose (B,45)
        finger axis-angle in the layer's convention (flat_hand_mean, as in HandModel.forward) and
        betas (B,k), k <= 10: `HandModel.forward(global_orient, transl, hand_pose=pose, betas=betas)`.
        """
        posed = self._pose(global_orient, transl, pose, betas)
        return posed.vertices, posed.joints

    def joints_from_vertices(self, vertices: np.ndarray) -> np.ndarray:
        """21 joints (B,21,3) FreiHAND order of any mesh (B,V,3) with this model's topology: the
        joint regressor on the vertices plus the fingertip vertices (`HandModel.joints_from_vertices`)."""
        vertices = np.asarray(vertices, dtype=np.float64)
        rig = np.einsum("jv,bvc->bjc", self.joint_regressor, vertices)
        return np.concatenate([rig, vertices[:, self.fingertip_ids]], axis=1)[:, list(MANO_TO_FREIHAND)]

    def jacobian(self, global_orient: np.ndarray, transl: np.ndarray, pose: np.ndarray,
                 betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The forward and its exact derivatives: (vertices (B,V,3), joints (B,21,3), d_vertices
        (B,P,3,V), d_joints (B,P,3,21)), where d_vertices[b, p, i, v] is the derivative of
        vertices[b, v, i] by parameter p (coordinate-major, with the long vertex axis innermost:
        the layout NumPy computes fast). P = 3 + 3 + 45 + k parameters in the order
        global_orient, transl, pose, betas; meters per radian / per meter / per unit of beta.

        A joint's rotation turns everything skinned to its subtree about the joint: with the
        world angular velocity w of a change of its axis-angle, a vertex moves by w x u, u the
        subtree's weighted lever arm (the sum of w_vj (x_vj - P_k) over the subtree's joints j).
        The shape enters linearly (rest vertices and rest joints are affine in betas).
        """
        posed = self._pose(global_orient, transl, pose, betas)
        batch, num_joints = posed.world_rot.shape[:2]
        num_vertices, num_betas = self.v_template.shape[0], posed.betas.shape[1]
        weights_t = self.weights.T  # (J,V)
        # subtree[j, k]: joint j is k or below it
        subtree = np.eye(num_joints)
        for j in range(1, num_joints):
            subtree[j] = subtree[self.parents[j]]
            subtree[j, j] = 1.0
        # angular velocities (B,K,c,3) for the c-th axis-angle component of joint k:
        # w = W_parent vee(dR_k/dc R_k^T), the root's parent frame being the camera's
        local = _rodrigues_derivative(posed.axis_angles) @ np.swapaxes(posed.rotations, -1, -2)[:, :, None]
        vee = np.stack([local[..., 2, 1], local[..., 0, 2], local[..., 1, 0]], axis=-1)  # (B,K,c,3)
        parent_rot = np.concatenate([np.broadcast_to(np.eye(3), (batch, 1, 3, 3)),
                                     posed.world_rot[:, list(self.parents[1:])]], axis=1)
        omega = vee @ np.swapaxes(parent_rot, -1, -2)
        # lever arms (B,K,3,V) of each vertex about each joint k over k's subtree: the sum over j of
        # w_vj subtree[j,k] (x_vj - P_k), x_vj = W_j x_v + offset_j the vertex under joint j alone
        rest_t = np.swapaxes(posed.v_posed, 1, 2)[:, None]  # (B,1,3,V)
        under_joint = posed.world_rot @ rest_t + posed.offset[..., None]  # (B,J,3,V)
        weighted = (under_joint * weights_t[None, :, None, :]).reshape(batch, num_joints, -1)
        lever = ((subtree.T @ weighted).reshape(batch, num_joints, 3, num_vertices)
                 - (self.weights @ subtree).T[None, :, None, :] * posed.world_pos[..., None])
        d_rotation = _cross(omega, lever)  # (B,K,c,3,V)
        # each vertex's blended rotation sum_j w_vj W_j, coordinate-major (B,3,3,V)
        blend_rot = np.swapaxes(posed.world_rot.reshape(batch, num_joints, 9), 1, 2) @ weights_t
        blend_rot = blend_rot.reshape(batch, 3, 3, num_vertices)
        if self.posedirs is not None:  # the correctives move the rest vertices, which the blend then carries
            num_fingers = num_joints - 1
            directions = self.posedirs.reshape(num_vertices, 3, num_fingers, 9).transpose(2, 3, 1, 0)  # (K,9,3,V)
            d_matrix = _rodrigues_derivative(posed.axis_angles[:, 1:]).reshape(batch, num_fingers, 3, 9)
            d_rest = (np.swapaxes(d_matrix, 0, 1).reshape(num_fingers, batch * 3, 9)
                      @ directions.reshape(num_fingers, 9, -1)).reshape(num_fingers, batch, 3, 3, num_vertices)
            d_rest = d_rest.transpose(1, 0, 2, 3, 4)  # (B,K,c,3,V)
            d_rotation[:, 1:] += sum(blend_rot[:, None, None, :, j] * d_rest[:, :, :, None, j] for j in range(3))
        d_rotation = d_rotation.reshape(batch, 3 * num_joints, 3, num_vertices)
        arms = (posed.world_pos[:, :, None] - posed.world_pos[:, None]).transpose(0, 2, 3, 1)  # (B,k,3,j): P_j - P_k
        d_rig_rotation = (_cross(omega, arms) * subtree.T[None, :, None, None, :]).reshape(batch, -1, 3, num_joints)
        # shape: rest vertices S_n, rest joints DJ_n, posed joints DP_n along the chain
        shape_dirs = self.shapedirs[..., :num_betas]
        d_rest_joints = np.einsum("jv,vck->jck", self.joint_regressor, shape_dirs)  # (J,3,n)
        d_world_pos = np.empty((batch, num_joints, 3, num_betas))
        d_world_pos[:, 0] = d_rest_joints[0]
        for j in range(1, num_joints):
            p = self.parents[j]
            d_world_pos[:, j] = d_world_pos[:, p] + posed.world_rot[:, p] @ (d_rest_joints[j] - d_rest_joints[p])
        d_offset = d_world_pos - posed.world_rot @ d_rest_joints  # (B,J,3,n)
        shape_t = shape_dirs.transpose(2, 1, 0)  # (n,3,V)
        d_shape = (sum(blend_rot[:, None, :, k] * shape_t[None, :, None, k] for k in range(3))
                   + (d_offset.transpose(0, 3, 2, 1) @ weights_t))  # (B,n,3,V)
        pose_end = 3 + 3 * num_joints  # global_orient 0:3, transl 3:6, pose 6:pose_end, betas after
        d_vertices = np.empty((batch, pose_end + num_betas, 3, num_vertices))
        d_vertices[:, :3], d_vertices[:, 6:pose_end], d_vertices[:, pose_end:] = (
            d_rotation[:, :3], d_rotation[:, 3:], d_shape)
        d_vertices[:, 3:6] = np.eye(3)[None, :, :, None]
        d_rig = np.empty((batch, pose_end + num_betas, 3, num_joints))
        d_rig[:, :3], d_rig[:, 6:pose_end] = d_rig_rotation[:, :3], d_rig_rotation[:, 3:]
        d_rig[:, 3:6] = np.eye(3)[None, :, :, None]
        d_rig[:, pose_end:] = d_world_pos.transpose(0, 3, 2, 1)
        d_joints = np.concatenate([d_rig, d_vertices[..., self.fingertip_ids]], axis=-1)[..., list(MANO_TO_FREIHAND)]
        return posed.vertices, posed.joints, d_vertices, d_joints

    def _pose(self, global_orient, transl, pose, betas) -> _Posed:
        """The forward with what the Jacobian reuses (arguments as in `forward`)."""
        global_orient = np.asarray(global_orient, dtype=np.float64)
        batch = global_orient.shape[0]
        betas = np.asarray(betas, dtype=np.float64)[:, :NUM_BETAS]
        fingers = np.asarray(pose, dtype=np.float64).reshape(batch, -1)
        if not self.flat_hand_mean:
            fingers = fingers + self.model_pose_mean
        num_vertices = self.v_template.shape[0]
        shape_basis = self.shapedirs[..., :betas.shape[1]].reshape(num_vertices * 3, -1)
        v_shaped = self.v_template + (betas @ shape_basis.T).reshape(batch, num_vertices, 3)
        rest_joints = np.einsum("jv,bvc->bjc", self.joint_regressor, v_shaped)
        axis_angles = np.concatenate([global_orient, fingers], axis=1).reshape(batch, -1, 3)
        rotations = axis_angle_to_matrix(axis_angles)
        v_posed = v_shaped
        if self.posedirs is not None:
            feature = (rotations[:, 1:] - np.eye(3)).reshape(batch, -1)
            v_posed = v_shaped + (feature @ self.posedirs.reshape(num_vertices * 3, -1).T).reshape(batch, -1, 3)
        world_rot = np.empty_like(rotations)
        world_pos = np.empty_like(rest_joints)
        world_rot[:, 0], world_pos[:, 0] = rotations[:, 0], rest_joints[:, 0]
        for j in range(1, len(self.parents)):  # parents[j] < j: each parent is placed before its child
            p = self.parents[j]
            world_pos[:, j] = world_pos[:, p] + np.einsum("bij,bj->bi", world_rot[:, p], rest_joints[:, j] - rest_joints[:, p])
            world_rot[:, j] = world_rot[:, p] @ rotations[:, j]
        # x_posed = sum_j w_vj (R_j x_rest + offset_j), offset_j = J_j_posed - R_j J_j_rest; transl is added
        # after the blend, as HandModel does (the float32 weights sum to 1 only within 1e-7)
        offset = world_pos - np.einsum("bjik,bjk->bji", world_rot, rest_joints)
        transforms = np.concatenate([world_rot, offset[..., None]], axis=-1).reshape(batch, len(self.parents), 12)
        blended = (self.weights @ transforms).reshape(batch, num_vertices, 3, 4)
        placement = np.asarray(transl, dtype=np.float64)[:, None]
        vertices = np.einsum("bvik,bvk->bvi", blended[..., :3], v_posed) + blended[..., 3] + placement
        joints = np.concatenate([world_pos + placement, vertices[:, self.fingertip_ids]], axis=1)
        joints = joints[:, list(MANO_TO_FREIHAND)]
        return _Posed(vertices=vertices, joints=joints, betas=betas, axis_angles=axis_angles, rotations=rotations,
                      v_posed=v_posed, world_rot=world_rot, world_pos=world_pos, offset=offset)


@dataclass(frozen=True)
class _Posed:
    """What the forward computed, float64, B hands, J rig joints: vertices (B,V,3) and joints
    (B,21,3) placed; betas (B,k); axis_angles and rotations (B,J,3) / (B,J,3,3) local;
    v_posed (B,V,3) rest vertices with correctives; world_rot (B,J,3,3) and world_pos (B,J,3)
    of each joint before transl; offset (B,J,3): joint j's rigid map is world_rot x + offset,
    before transl."""

    vertices: np.ndarray
    joints: np.ndarray
    betas: np.ndarray
    axis_angles: np.ndarray
    rotations: np.ndarray
    v_posed: np.ndarray
    world_rot: np.ndarray
    world_pos: np.ndarray
    offset: np.ndarray


def _rodrigues_derivative(axis_angle: np.ndarray) -> np.ndarray:
    """dR/da_c (...,3,3,3), c the leading of the last three axes, of R = axis_angle_to_matrix(a)
    for axis-angles (...,3): (a_c [a]x + [a x (I - R) e_c]x) R / |a|^2 (Gallego and Yezzi,
    "A compact formula for the derivative of a 3-D rotation in exponential coordinates"), and
    [e_c]x at zero, where that formula's limit is."""
    a = np.asarray(axis_angle, dtype=np.float64)
    rotation = axis_angle_to_matrix(a)
    theta_sq = (a * a).sum(-1)
    small = theta_sq < 1e-12
    eye = np.eye(3)
    # (I - R) e_c is column c of I - R: a x column c, for each c
    columns = np.swapaxes(eye - rotation, -1, -2)  # (...,c,3)
    crossed = np.cross(a[..., None, :], columns)
    numerator = a[..., :, None, None] * _skew(a)[..., None, :, :] + _skew(crossed)
    safe_sq = np.where(small, 1.0, theta_sq)[..., None, None, None]
    derivative = numerator @ rotation[..., None, :, :] / safe_sq
    return np.where(small[..., None, None, None], _skew(np.broadcast_to(eye, (*a.shape[:-1], 3, 3))), derivative)


def _cross(omega: np.ndarray, arm: np.ndarray) -> np.ndarray:
    """omega x arm for each pair: omega (B,K,c,3) vectors, arm (B,K,3,N) vectors by columns ->
    (B,K,c,3,N). Written per component so that NumPy's inner loops run along N."""
    w = omega[..., None]  # (B,K,c,3,1)
    a = arm[:, :, None]  # (B,K,1,3,N)
    return np.stack([w[..., 1, :] * a[..., 2, :] - w[..., 2, :] * a[..., 1, :],
                     w[..., 2, :] * a[..., 0, :] - w[..., 0, :] * a[..., 2, :],
                     w[..., 0, :] * a[..., 1, :] - w[..., 1, :] * a[..., 0, :]], axis=-2)


def _skew(v: np.ndarray) -> np.ndarray:
    """[v]x (...,3,3) of vectors (...,3): [v]x w = v x w."""
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    zero = np.zeros_like(x)
    return np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(*v.shape[:-1], 3, 3)
