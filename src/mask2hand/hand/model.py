"""The parametric hand layer shared by every hand model (official MANO, the open hand).

A model is a set of arrays (`HandModelData`) with MANO's layout; `HandModel` holds
them as buffers and evaluates them with the pure functions of `lbs`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from mask2hand.errors import Mask2HandError
from mask2hand.hand import lbs
from mask2hand.hand.data import MANO_TO_FREIHAND, NUM_BETAS, NUM_FINGER_JOINTS, NUM_RIG_JOINTS, HandModelData
from mask2hand.hand.params import HandParams
from mask2hand.utils.checks import check_shape


@dataclass(frozen=True)
class HandOutput:
    """What the hand layer computed for a batch of B hands (meters, radians; camera space).

    vertices (B,V,3): the posed, placed mesh.
    joints (B,21,3): FreiHAND order, rig joints from the kinematic chain plus the fingertip
        vertices; joints[:, 0] is the root joint (wrist) in camera space.
    rest_root (B,3): the root joint of the shaped rest hand, the point `global_orient`
        rotates about, before `transl` (so joints[:, 0] = rest_root + transl).
    full_pose (B,16,3): axis-angle of the 16 rig joints as applied, MANO joint order: the
        global orientation, then the 15 finger joints with the model's mean included.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    rest_root: torch.Tensor
    full_pose: torch.Tensor


class HandModel(nn.Module):
    """A MANO-compatible hand layer: parameters -> vertices and 21 joints.

    Args:
        data: the model's arrays.
        num_pose_pcs: how many pose-PCA components `pose_pcs` holds (1 to 45).
        flat_hand_mean: if False, the model's mean finger pose is added to every
            finger pose (MANO's `hands_mean`); if True the flat hand is the mean.
    """

    def __init__(self, data: HandModelData, num_pose_pcs: int = 45, flat_hand_mean: bool = True):
        super().__init__()
        data.validate()
        if not 1 <= num_pose_pcs <= 3 * NUM_FINGER_JOINTS:
            raise Mask2HandError(f"num_pose_pcs must be between 1 and 45, got {num_pose_pcs}")
        self.name = data.name
        self.asset_hash = data.asset_hash
        self.num_pose_pcs = num_pose_pcs
        self.flat_hand_mean = flat_hand_mean
        self.parents = [int(p) for p in data.parents]

        def f32(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.float32))

        self.register_buffer("v_template", f32(data.v_template))
        self.register_buffer("faces", torch.as_tensor(np.asarray(data.faces, dtype=np.int64)))
        self.register_buffer("shape_basis", lbs.flatten_basis(f32(data.shapedirs)))
        self.register_buffer("pose_basis", lbs.flatten_basis(f32(data.posedirs)))
        # a model without pose correctives (the open hand) skips that product entirely
        self.has_pose_correctives = bool(np.any(data.posedirs))
        self.register_buffer("joint_regressor", f32(data.joint_regressor))
        self.register_buffer("weights", f32(data.weights))
        self.register_buffer("pose_components", f32(data.pose_components[:num_pose_pcs]))
        mean = data.pose_mean if not flat_hand_mean else np.zeros_like(data.pose_mean)
        self.register_buffer("pose_mean", f32(mean))
        # the model's own mean whatever `pose_mean` adds: what converts between the two conventions
        self.register_buffer("model_pose_mean", f32(data.pose_mean), persistent=False)
        self.register_buffer("fingertip_ids", torch.as_tensor(np.asarray(data.fingertip_ids, dtype=np.int64)))
        self.register_buffer("freihand_order", torch.as_tensor(MANO_TO_FREIHAND, dtype=torch.int64))

    @property
    def identity(self) -> dict:
        """Name and asset hash: what checkpoints record to refuse a mismatched model."""
        return {"name": self.name, "asset_hash": self.asset_hash}

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    def finger_pose(self, pose: torch.Tensor | None = None, pose_pcs: torch.Tensor | None = None,
                    batch: int = 1, like: torch.Tensor | None = None) -> torch.Tensor:
        """Finger pose (B,45) axis-angle as applied, from either `pose` (B,45) / (B,15,3) or
        `pose_pcs` (B,k): the model's mean (if not flat) added to it.

        With neither, the mean pose (batch rows, dtype of `like`).
        """
        if pose is not None and pose_pcs is not None:
            raise Mask2HandError("give either pose (axis-angle) or pose_pcs (PCA coefficients), not both")
        ref = like if like is not None else self.v_template
        mean = self.pose_mean.to(ref.dtype)
        if pose is not None:
            pose = pose.reshape(pose.shape[0], -1)
            if pose.shape[1] != 45:
                raise Mask2HandError(f"pose must be (B,45) or (B,15,3) axis-angle, got {tuple(pose.shape)}")
            return pose + mean
        if pose_pcs is not None:
            return self.pose_from_pcs(pose_pcs) + mean
        return mean.expand(batch, -1)

    def in_convention(self, params: HandParams, flat_hand_mean: bool | None = None) -> HandParams:
        """`params` (this model's, torch or numpy values) in the pose convention `flat_hand_mean`
        (None: this layer's own, what `forward` takes; see HandParams). The values are returned
        unchanged when the convention is already that one; otherwise the finger pose (from
        pose_pcs when only they are set) gets the model's mean pose added or removed."""
        target = self.flat_hand_mean if flat_hand_mean is None else flat_hand_mean
        if params.flat_hand_mean == target:
            return params
        if params.pose is None:
            pcs = params.pose_pcs
            pose = (self.pose_from_pcs(pcs) if hasattr(pcs, "detach") else
                    self.pose_from_pcs(torch.as_tensor(pcs, device=self.pose_components.device)).cpu().numpy())
            params = replace(params, pose=pose, pose_pcs=None)
        mean = self.model_pose_mean if hasattr(params.pose, "detach") else self.model_pose_mean.cpu().numpy()
        return params.with_mean_pose(target, mean)

    def pose_from_pcs(self, pose_pcs: torch.Tensor) -> torch.Tensor:
        """The finger pose (B,45) that `forward(hand_pose=...)` takes for pose-PCA coefficients (B,k),
        k <= num_pose_pcs: `forward(hand_pose=pose_from_pcs(c))` is `forward(pose_pcs=c)` (the mean,
        which forward adds to both, is not in it)."""
        if pose_pcs.ndim != 2 or pose_pcs.shape[1] > self.num_pose_pcs:
            raise Mask2HandError(
                f"pose_pcs must be (B,k) with k <= num_pose_pcs={self.num_pose_pcs}, got {tuple(pose_pcs.shape)}")
        return pose_pcs @ self.pose_components[: pose_pcs.shape[1]].to(pose_pcs.dtype)

    def forward(self, global_orient: torch.Tensor, transl: torch.Tensor, hand_pose: torch.Tensor | None = None,
                pose_pcs: torch.Tensor | None = None, betas: torch.Tensor | None = None, *,
                pose: torch.Tensor | None = None) -> HandOutput:
        """Posed hand in camera space.

        global_orient (B,3) axis-angle about the root joint; transl (B,3) meters,
        added afterwards; hand_pose (B,45)/(B,15,3) finger axis-angle (smplx's name, and the
        files') or pose_pcs (B,k); betas (B,<=10), zero if None. `pose=` is hand_pose's former
        name, still taken with a DeprecationWarning. Returns a HandOutput.
        """
        sizes = check_shape(global_orient, ["B", "3"], "global_orient (axis-angle)")
        check_shape(transl, ["B", "3"], "transl", sizes)
        return self._pose(global_orient, lbs.axis_angle_to_matrix(global_orient), _hand_pose(hand_pose, pose, 5),
                          pose_pcs, betas, transl=transl)

    def place(self, rotation: torch.Tensor, root: torch.Tensor, hand_pose: torch.Tensor | None = None,
              pose_pcs: torch.Tensor | None = None, betas: torch.Tensor | None = None, *,
              pose: torch.Tensor | None = None) -> HandOutput:
        """The hand turned by a rotation matrix about its rest root joint, root joint at `root`.

        rotation (B,3,3); root (B,3) the root joint's camera position, meters; hand_pose (or
        `pose=`), pose_pcs and betas as in `forward`. The same hand as `forward` with global_orient = the
        axis-angle of `rotation` (reported in full_pose[:, 0]) and transl = root - rest_root,
        but the rotation enters the kinematic chain as given: no matrix -> axis-angle
        conversion lies between it and the vertices (a rotation from a 6D code, or one
        composed from an increment, keeps its gradients at every angle).
        """
        sizes = check_shape(rotation, ["B", "3", "3"], "rotation")
        check_shape(root, ["B", "3"], "root", sizes)
        return self._pose(lbs.matrix_to_axis_angle(rotation), rotation, _hand_pose(hand_pose, pose, 3), pose_pcs, betas,
                          root=root)

    def _pose(self, global_orient: torch.Tensor, root_rotation: torch.Tensor, pose: torch.Tensor | None,
              pose_pcs: torch.Tensor | None, betas: torch.Tensor | None, transl: torch.Tensor | None = None,
              root: torch.Tensor | None = None) -> HandOutput:
        """The layer for a root rotation given both as axis-angle (B,3) and as its matrix (B,3,3),
        placed by either `transl` (B,3) or the root joint's position `root` (B,3)."""
        batch, dtype = global_orient.shape[0], global_orient.dtype
        fingers = self.finger_pose(pose, pose_pcs, batch=batch, like=global_orient).expand(batch, -1)
        if betas is None:
            betas = global_orient.new_zeros(batch, NUM_BETAS)
        elif betas.ndim != 2 or betas.shape[1] > NUM_BETAS:
            raise Mask2HandError(f"betas must be (B,k) with k <= 10, got {tuple(betas.shape)}")

        v_shaped = lbs.shape_blend(self.v_template.to(dtype), self.shape_basis.to(dtype), betas)
        rest_joints = lbs.regress_joints(self.joint_regressor.to(dtype), v_shaped)
        finger_rotations = lbs.axis_angle_to_matrix(fingers.reshape(batch, NUM_FINGER_JOINTS, 3))
        rotations = torch.cat([root_rotation.unsqueeze(1), finger_rotations], dim=1)
        v_posed = v_shaped
        if self.has_pose_correctives:
            v_posed = v_shaped + lbs.pose_blend(rotations, self.pose_basis.to(dtype))
        joints, transforms = lbs.kinematic_chain(rotations, rest_joints, self.parents)
        rest_root = rest_joints[:, 0]
        offset = (transl if transl is not None else root - rest_root).unsqueeze(1)
        vertices = lbs.skin(v_posed, self.weights.to(dtype), transforms) + offset
        full_pose = torch.cat([global_orient, fingers], dim=1).reshape(batch, NUM_RIG_JOINTS, 3)
        return HandOutput(vertices=vertices, joints=self._with_fingertips(joints + offset, vertices),
                          rest_root=rest_root, full_pose=full_pose)

    def joints_from_vertices(self, vertices: torch.Tensor) -> torch.Tensor:
        """21 joints (B,21,3) of any mesh (B,V,3) with this model's topology.

        The joint regressor applied to the given vertices plus the fingertip vertices,
        so a refined mesh yields refined joints. On an unrefined posed mesh this
        differs slightly from the kinematic-chain joints of `forward` (millimeters).
        """
        rig = lbs.regress_joints(self.joint_regressor.to(vertices.dtype), vertices)
        return self._with_fingertips(rig, vertices)

    def _with_fingertips(self, rig_joints: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
        tips = vertices[:, self.fingertip_ids]
        return torch.cat([rig_joints, tips], dim=1)[:, self.freihand_order]


def _hand_pose(hand_pose: torch.Tensor | None, pose: torch.Tensor | None, stacklevel: int) -> torch.Tensor | None:
    """The finger pose given to the layer as `hand_pose`, or by its former keyword `pose` (with a
    DeprecationWarning that names the caller `stacklevel` frames up: 5 through nn.Module's call to
    forward, 3 from place); Mask2HandError when both are given."""
    if pose is None:
        return hand_pose
    if hand_pose is not None:
        raise Mask2HandError("give the finger pose once, as hand_pose (pose is its former name)")
    warnings.warn("the hand layer's pose= is now hand_pose= (smplx's name, and the files'); pose= will be removed",
                  DeprecationWarning, stacklevel=stacklevel)
    return pose
