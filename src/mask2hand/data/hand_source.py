"""Hand sources of the synthetic generators: the hand layer (open, MANO) or Anny.

A source poses B right hands at the origin (transl 0) from a global orientation (B,3)
axis-angle, a finger pose (B,45) in the open hand's convention (what
`hand.prior.sample_pose_prior` returns; MANO shares its axes) and a shape vector
(B,S), and gives vertices (B,V,3) and joints (B,21,3) in FreiHAND order, meters.

- `LayerHands`: a `HandModel`; shape = its 10 betas, drawn N(0, std) clipped to
  +-clip. The stored (global_orient, transl, pose, betas) are the network's hand-layer
  parameters.
- `AnnyHands`: `mask2hand.data.anny.AnnyHand` or any object of its interface; shape =
  its own vector, drawn by its `sample_shapes`. Datasets store it as `shape`, and no
  `betas`: they have no hand-layer parameters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from mask2hand.errors import Mask2HandError

HAND_SOURCES = ("open", "mano", "anny")


@dataclass(frozen=True)
class PosedHands:
    """Posed hands at the origin: vertices (B,V,3) and joints (B,21,3) float32, meters."""

    vertices: np.ndarray
    joints: np.ndarray


class LayerHands:
    """The hand layer (a HandModel called as `model(orient, transl, hand_pose=..., betas=...)`)."""

    shape_name = "betas"
    has_layer_params = True

    def __init__(self, model, path: str | None = None, betas_std: float = 1.0, betas_clip: float = 3.0):
        self.model = model
        self.path = path
        self.betas_std = betas_std
        self.betas_clip = betas_clip
        self.name = model.name
        self.faces = model.faces
        self.num_vertices = model.num_vertices
        self.num_shape = 10

    def sample_shapes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Betas (n,10) float32: N(0, betas_std) per component, clipped to +-betas_clip."""
        return np.clip(rng.normal(0.0, self.betas_std, size=(n, 10)),
                       -self.betas_clip, self.betas_clip).astype(np.float32)

    def reference_shape(self) -> np.ndarray:
        """(10,) float32: the mean shape, betas 0."""
        return np.zeros(10, np.float32)

    def __call__(self, orient: np.ndarray, pose: np.ndarray, shape: np.ndarray) -> PosedHands:
        with torch.inference_mode():
            out = self.model(torch.from_numpy(orient), torch.zeros(len(orient), 3), hand_pose=torch.from_numpy(pose),
                             betas=torch.from_numpy(shape))
        return PosedHands(vertices=out.vertices.numpy(), joints=out.joints.numpy())

    def skin_weights(self) -> np.ndarray:
        """(V,21) float64: each vertex's skinning weight on the bone starting at each FreiHAND joint
        (the wrist's is the palm; fingertips start no bone and have none)."""
        from mask2hand.hand.model import MANO_TO_FREIHAND, NUM_RIG_JOINTS

        rig = self.model.weights.numpy().astype(np.float64)
        out = np.zeros((rig.shape[0], 21))
        for freihand, joint in enumerate(MANO_TO_FREIHAND):
            if joint < NUM_RIG_JOINTS:
                out[:, freihand] = rig[:, joint]
        return out

    def fingertip_vertices(self) -> np.ndarray:
        """(5,) the vertices that are the fingertip joints 4, 8, 12, 16, 20."""
        return self.model.fingertip_ids.numpy()

    def card(self) -> dict:
        m = self.model
        return {"name": m.name, "source": "mask2hand.hand.HandModel", "asset_hash": m.asset_hash, "path": self.path,
                "num_vertices": m.num_vertices, "flat_hand_mean": m.flat_hand_mean}


class AnnyHands:
    """A hand of AnnyHand's interface (`hand(global_orient, transl, pose, shape)` -> vertices, joints;
    `sample_shapes(rng, n)`; `shape_card()`)."""

    shape_name = "shape"
    has_layer_params = False

    def __init__(self, hand):
        self.hand = hand
        self.name = hand.name
        self.faces = hand.faces
        self.num_vertices = int(hand.num_vertices)
        self.num_shape = int(hand.num_shape)

    def sample_shapes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.asarray(self.hand.sample_shapes(rng, n), dtype=np.float32).reshape(n, self.num_shape)

    def reference_shape(self) -> np.ndarray:
        """(S,) float32: the mean of 64 shape draws of a fixed seed (the zero vector need not be a
        typical hand of every source)."""
        return self.sample_shapes(np.random.default_rng(0), 64).mean(0)

    def __call__(self, orient: np.ndarray, pose: np.ndarray, shape: np.ndarray) -> PosedHands:
        with torch.inference_mode():
            out = self.hand(torch.from_numpy(orient), torch.zeros(len(orient), 3), torch.from_numpy(pose),
                            torch.from_numpy(shape))
        return PosedHands(vertices=out.vertices.detach().cpu().numpy().astype(np.float32),
                          joints=out.joints.detach().cpu().numpy().astype(np.float32))

    def skin_weights(self) -> None:
        """None: the shape variety finds bone weights from the joints (shape_variety.bone_weights)."""
        return None

    def fingertip_vertices(self) -> None:
        """None: the interface does not say which vertices the fingertip joints are."""
        return None

    def card(self) -> dict:
        h = self.hand
        return {"name": h.name, "source": f"{type(h).__module__}.{type(h).__name__}", "asset_hash": h.asset_hash,
                "num_vertices": self.num_vertices, "flat_hand_mean": bool(h.flat_hand_mean),
                "num_shape": self.num_shape, "shape": h.shape_card()}


def load_hand_source(hand, path: str | os.PathLike | None = None, betas_std: float = 1.0,
                     betas_clip: float = 3.0) -> LayerHands | AnnyHands:
    """A hand source from a name ("open", "mano": the hand layer, `path` its MANO file; "anny"),
    a HandModel, or an object of AnnyHand's interface. betas_std, betas_clip: the layer's shape draws."""
    from mask2hand.hand.model import HandModel

    if isinstance(hand, (LayerHands, AnnyHands)):
        return hand
    if isinstance(hand, HandModel):
        return LayerHands(hand, None if path is None else str(path), betas_std, betas_clip)
    if not isinstance(hand, str):
        return AnnyHands(hand)
    if hand == "anny":
        try:
            from mask2hand.data.anny import AnnyHand
        except ModuleNotFoundError as exc:
            raise Mask2HandError(f"--hand anny needs the Anny body model ({exc}); install it "
                                 "(pip install anny) or choose --hand open") from None
        return AnnyHands(AnnyHand())
    if hand not in HAND_SOURCES:
        raise Mask2HandError(f"unknown hand '{hand}'; choose one of {HAND_SOURCES}")
    from mask2hand.hand import load_hand_model

    model = load_hand_model(hand, path=path, num_pose_pcs=45, flat_hand_mean=True)
    return LayerHands(model, None if path is None else str(path), betas_std, betas_clip)
