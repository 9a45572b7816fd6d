"""The hand-layer parameters as one small dataclass, shared by data, network and prediction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable


@dataclass(frozen=True)
class HandParams:
    """Inputs of `HandModel.forward` for one hand or a batch (leading dimension B).

    global_orient (...,3) axis-angle about the root joint; transl (...,3) meters, added
    afterwards; betas (...,10); pose (...,45) finger axis-angle in MANO joint order, as
    passed to `forward(pose=...)`; pose_pcs (...,k) pose-PCA coefficients, as passed to
    `forward(pose_pcs=...)`. At least one of pose and pose_pcs is set. Values are torch
    tensors or numpy arrays.
    """

    global_orient: Any
    transl: Any
    betas: Any
    pose: Any = None
    pose_pcs: Any = None

    def map(self, fn: Callable[[Any], Any]) -> "HandParams":
        """A HandParams with `fn` applied to every value that is set."""
        return HandParams(**{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name))
                             for f in fields(self)})

    @staticmethod
    def stack(items: list["HandParams"], stack_fn: Callable[[list[Any]], Any]) -> "HandParams":
        """Stack per-sample parameters into a batch with `stack_fn` (torch.stack or np.stack)."""
        first = items[0]
        return HandParams(**{f.name: None if getattr(first, f.name) is None
                             else stack_fn([getattr(i, f.name) for i in items]) for f in fields(first)})

    def layer_inputs(self) -> dict[str, Any]:
        """Keyword arguments for `HandModel.forward` (pose_pcs preferred when both are set)."""
        pose = {"pose_pcs": self.pose_pcs} if self.pose_pcs is not None else {"pose": self.pose}
        return {"global_orient": self.global_orient, "transl": self.transl, "betas": self.betas, **pose}
