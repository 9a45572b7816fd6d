"""The unknowns of hands fitted by gradient steps, shared by the silhouette fit (mask2hand.fit.core)
and the MANO export (mask2hand.export.mano).

For B hands, what is optimised:
- rotation (B,3): an axis-angle increment applied to the start's root rotation R0
  (R = exp(rotation) R0), so that no axis-angle singularity (at pi) lies on the way;
- shift (B,3): the root joint's move from its start position, in units of `scale` (B,1)
  meters. The root joint's position is optimised rather than transl, so that turning the hand
  does not move it; the scale keeps a shift as well conditioned as an angle (the silhouette
  fit: the start's depth; the MANO export: a millimetre);
- pose: the finger pose (B,45), or with pose components (k,45) coefficients (B,k) added along
  them to the start's pose;
- betas (B,10), optimised or held.
"""

from __future__ import annotations

import torch

from mask2hand.hand.lbs import axis_angle_to_matrix
from mask2hand.hand.model import HandModel, HandOutput


class HandUnknowns:
    """Unknowns of B hands of the layer `hand` (see the module docstring), starting at root
    rotations rotation0 (B,3,3), root joints root0 (B,3) meters, finger poses pose0 (B,45) (as
    the layer's `pose` input) and betas0 (B,10); scale (B,1) meters per unit of shift;
    components (k,45) or None (the pose itself is optimised); optimize_shape: whether the betas
    are unknowns. Zero unknowns give the start back."""

    def __init__(self, hand: HandModel, rotation0: torch.Tensor, root0: torch.Tensor, pose0: torch.Tensor,
                 betas0: torch.Tensor, scale: torch.Tensor, components: torch.Tensor | None = None,
                 optimize_shape: bool = True):
        batch, device, dtype = pose0.shape[0], pose0.device, pose0.dtype
        self.hand = hand
        self.rotation0, self.root0, self.pose0, self.scale = rotation0, root0, pose0, scale
        self.components = components
        self.rotation = torch.zeros(batch, 3, device=device, dtype=dtype, requires_grad=True)
        self.shift = torch.zeros(batch, 3, device=device, dtype=dtype, requires_grad=True)
        if components is None:
            self.pose_var = pose0.detach().clone().requires_grad_(True)
        else:
            self.pose_var = torch.zeros(batch, components.shape[0], device=device, dtype=dtype, requires_grad=True)
        self.betas = betas0.detach().clone().requires_grad_(optimize_shape)

    def tensors(self) -> list[torch.Tensor]:
        """The optimised tensors."""
        return [t for t in (self.pose_var, self.rotation, self.shift, self.betas) if t.requires_grad]

    def pose(self) -> torch.Tensor:
        """The layer's `pose` input (B,45)."""
        if self.components is None:
            return self.pose_var
        return self.pose0 + self.pose_var @ self.components

    def rotation_matrix(self) -> torch.Tensor:
        """The root rotations (B,3,3)."""
        return axis_angle_to_matrix(self.rotation) @ self.rotation0

    def root(self) -> torch.Tensor:
        """The root joints' camera positions (B,3), meters."""
        return self.root0 + self.shift * self.scale

    def posed(self) -> HandOutput:
        """The layer's hands for the current unknowns: vertices (B,V,3), joints (B,21,3) in camera
        space, rest_root (B,3) and full_pose (B,16,3)."""
        return self.hand.place(self.rotation_matrix(), self.root(), hand_pose=self.pose(), betas=self.betas)

    def answer(self) -> tuple[dict[str, torch.Tensor], HandOutput]:
        """The current state, detached: the layer's inputs (global_orient (B,3), transl (B,3),
        pose (B,45), betas (B,10)) and the hands they give (`posed`)."""
        with torch.no_grad():
            placed = self.posed()
            params = {"global_orient": placed.full_pose[:, 0].clone(), "transl": self.root() - placed.rest_root,
                      "pose": self.pose().clone(), "betas": self.betas.detach().clone()}
        return params, placed

    def snapshot(self) -> dict[str, torch.Tensor]:
        """A copy of the unknowns' values, for `restore`."""
        return {"pose_var": self.pose_var.detach().clone(), "rotation": self.rotation.detach().clone(),
                "shift": self.shift.detach().clone(), "betas": self.betas.detach().clone()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        """Set the unknowns to a `snapshot`."""
        with torch.no_grad():
            for name, value in state.items():
                getattr(self, name).copy_(value)
