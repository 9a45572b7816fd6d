"""The hand-layer parameters as one small dataclass, shared by data, network and prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from mask2hand.errors import Mask2HandError

ARRAY_FIELDS = ("global_orient", "transl", "betas", "pose", "pose_pcs")


@dataclass(frozen=True)
class HandParams:
    """Inputs of `HandModel.forward` for one hand or a batch (leading dimension B), and the pose
    convention they are in.

    global_orient (...,3) axis-angle about the root joint; transl (...,3) meters, added
    afterwards; betas (...,10); pose (...,45) finger axis-angle in MANO joint order (the layer's
    `hand_pose`, and the files'); pose_pcs
    (...,k) pose-PCA coefficients (their pose is `HandModel.pose_from_pcs(pose_pcs)`). At least
    one of pose and pose_pcs is set. Values are torch tensors or numpy arrays.

    flat_hand_mean: the convention of the finger pose. True: the whole finger pose, the model's
    mean pose included (what a layer with flat_hand_mean=True takes); False: relative to the
    model's mean pose (what a layer with flat_hand_mean=False takes, as MANO's `hands_mean`).
    `HandModel.in_convention` converts between them.
    """

    global_orient: Any
    transl: Any
    betas: Any
    pose: Any = None
    pose_pcs: Any = None
    flat_hand_mean: bool = field(kw_only=True)

    def map(self, fn: Callable[[Any], Any]) -> "HandParams":
        """A HandParams with `fn` applied to every value that is set (the convention kept)."""
        return HandParams(**{name: None if getattr(self, name) is None else fn(getattr(self, name))
                             for name in ARRAY_FIELDS}, flat_hand_mean=self.flat_hand_mean)

    @staticmethod
    def stack(items: list["HandParams"], stack_fn: Callable[[list[Any]], Any]) -> "HandParams":
        """Stack per-sample parameters of one convention into a batch with `stack_fn` (torch.stack
        or np.stack)."""
        first = items[0]
        if any(i.flat_hand_mean != first.flat_hand_mean for i in items):
            raise Mask2HandError("cannot stack hand parameters of both pose conventions (flat_hand_mean True and "
                                 "False); convert them with HandModel.in_convention first")
        return HandParams(**{name: None if getattr(first, name) is None
                             else stack_fn([getattr(i, name) for i in items]) for name in ARRAY_FIELDS},
                          flat_hand_mean=first.flat_hand_mean)

    def with_mean_pose(self, flat_hand_mean: bool, model_pose_mean: Any) -> "HandParams":
        """These parameters in the convention `flat_hand_mean`, for a model whose mean finger pose is
        `model_pose_mean` (45,) (numpy, or torch for torch values): the mean is added to `pose` going
        to the flat convention and subtracted going from it. Needs `pose` when the convention
        changes (`HandModel.in_convention` supplies it from pose_pcs); pose_pcs is dropped then."""
        if flat_hand_mean == self.flat_hand_mean:
            return self
        if self.pose is None:
            raise Mask2HandError("converting hand parameters to the other pose convention needs their 'pose'")
        pose = self.pose
        mean = model_pose_mean.to(pose) if hasattr(pose, "detach") else model_pose_mean.astype(pose.dtype)
        if pose.shape[-1] != mean.shape[-1]:  # (...,15,3)
            mean = mean.reshape(15, 3)
        return HandParams(global_orient=self.global_orient, transl=self.transl, betas=self.betas,
                          pose=pose + mean if flat_hand_mean else pose - mean, flat_hand_mean=flat_hand_mean)

    def layer_inputs(self, hand: Any) -> dict[str, Any]:
        """Keyword arguments for `hand.forward` (a HandModel), in that layer's convention (pose_pcs
        preferred when both are set and no conversion is needed)."""
        params = hand.in_convention(self)
        pose = {"pose_pcs": params.pose_pcs} if params.pose_pcs is not None else {"hand_pose": params.pose}
        return {"global_orient": params.global_orient, "transl": params.transl, "betas": params.betas, **pose}
