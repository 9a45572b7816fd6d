"""The network stage of prediction: model inputs in, the network's answer (`NetworkResult`) out.

A runner is anything with the `Runner` attributes and call: `TorchRunner` here, or
`mask2hand.inference.onnx_runner.OnnxRunner`. `Mask2Hand` prepares inputs and finishes
predictions the same way for every runner; only test-time fitting needs the runner's torch hand
layer, `Runner.hand` (smoothing re-poses its NumPy twin, `Runner.numpy_hand`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from mask2hand.hand.numpy_layer import NumpyHand
from mask2hand.hand.params import HandParams

if TYPE_CHECKING:
    from mask2hand.hand.model import HandModel


@dataclass(frozen=True)
class NetworkResult:
    """The network's answer for a batch of B masks, numpy float32 on the CPU, in the frame the
    network saw (the mirrored picture for a left hand).

    vertices: (B,V,3) meters, camera space, the final (refined, if the network refines) mesh.
    joints: (B,21,3) meters, the final joints (FreiHAND order).
    global_orient: (B,3) axis-angle about the root joint.
    transl: (B,3) meters.
    pose: (B,45) the finger pose as the network's `HandModel.forward(hand_pose=...)` takes it.
    betas: (B,10).
    flat_hand_mean: the pose convention of pose and pose_pcs (the network's hand layer's; see HandParams).
    pose_pcs: (B,k) the pose-PCA coefficients the network regressed, or None.
    silhouette: (B,S,S) the network's silhouette of its preliminary hand at its encoder's input size
        (the hand's window for a network with a locator), or None.
    hand_window: (B,3) (u0, v0, side) the hand's window the locator found, in pixels of the model
        input, or None for a network without a locator (mask2hand.nn.locator).
    parametric: the mesh and joints are exactly the hand layer's for these parameters (a fitted
        answer), so there is nothing to rebuild (mask2hand.inference.rebuild).
    """

    vertices: np.ndarray
    joints: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray
    pose: np.ndarray
    betas: np.ndarray
    flat_hand_mean: bool
    pose_pcs: np.ndarray | None = None
    silhouette: np.ndarray | None = None
    hand_window: np.ndarray | None = None
    parametric: bool = False

    def params(self, b: int) -> HandParams:
        """The hand-layer parameters of hand b (unbatched)."""
        return HandParams(global_orient=self.global_orient[b], transl=self.transl[b], pose=self.pose[b],
                          betas=self.betas[b], pose_pcs=None if self.pose_pcs is None else self.pose_pcs[b],
                          flat_hand_mean=self.flat_hand_mean)

    def hand_params(self) -> HandParams:
        """The batch's parameters (B leading) with the finger pose as `pose` (what fitting starts from)."""
        return HandParams(global_orient=self.global_orient, transl=self.transl, pose=self.pose, betas=self.betas,
                          flat_hand_mean=self.flat_hand_mean)

    def take(self, rows: "Sequence[int] | slice") -> "NetworkResult":
        """The hands of the given rows of the batch (a slice gives views of the arrays)."""
        index = rows if isinstance(rows, slice) else list(rows)
        arrays = {f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index]
                  for f in fields(self) if f.name not in ("parametric", "flat_hand_mean")}
        return replace(self, **arrays)


class Runner(Protocol):
    """What `Mask2Hand` needs of a network runner.

    faces (F,3) int64 of the hand mesh; input_size: the network's input side S (pixels);
    input_crop: the hand-window margin of a cropping network, or None (whole image);
    hand_identity: the hand model's name and asset hash; flat_hand_mean: whether the
    parameters' zero finger pose is the flat hand; hand: the torch hand layer that can
    re-pose the answer (fitting), or None where the runtime has none (ONNX);
    numpy_hand: the same layer in NumPy, which rebuilds the answer's parameters
    (mask2hand.inference.rebuild) and re-poses smoothed answers (mask2hand.inference.hand_smoothing), or None where the runtime does not have the hand's arrays
    (an ONNX export of a MANO network). Called with model inputs (B,S,S) float32 and their
    K (B,3,3) at S.
    """

    faces: np.ndarray
    input_size: int
    input_crop: float | None
    hand_identity: dict[str, Any]
    flat_hand_mean: bool
    hand: "HandModel | None"
    numpy_hand: NumpyHand | None

    def __call__(self, masks: np.ndarray, K: np.ndarray) -> NetworkResult: ...


class TorchRunner:
    """Runs a Mask2HandNet (see `Runner`) on `device`."""

    def __init__(self, network, device):
        import torch

        self.network = network.eval()
        self.device = torch.device(device)
        self.hand = network.hand
        self.numpy_hand = NumpyHand.from_layer(self.hand)
        self.input_size = int(network.config.model_input_size)
        self.input_crop = network.config.input_crop
        self.hand_identity = dict(self.hand.identity)
        self.flat_hand_mean = bool(self.hand.flat_hand_mean)
        self.faces = self.hand.faces.detach().cpu().numpy()

    def __call__(self, masks: np.ndarray, K: np.ndarray) -> NetworkResult:
        import torch

        with torch.inference_mode():
            mask_t = torch.as_tensor(np.asarray(masks, dtype=np.float32), device=self.device)
            k_t = torch.as_tensor(np.asarray(K, dtype=np.float32), device=self.device)
            out = self.network(mask_t, k_t, exact_silhouette=True)
            params = out.params
            pose = layer_pose(self.hand, params)
            betas = params.betas if params.betas is not None else torch.zeros(pose.shape[0], 10, device=pose.device)

            def np32(x):
                return None if x is None else x.detach().float().cpu().numpy()

            window = None
            if out.locator_code is not None:
                from mask2hand.nn.locator import code_to_window

                window = code_to_window(out.locator_code, self.input_size)
            return NetworkResult(vertices=np32(out.final_vertices), joints=np32(out.final_joints),
                                 global_orient=np32(params.global_orient), transl=np32(params.transl),
                                 pose=np32(pose), betas=np32(betas), pose_pcs=np32(params.pose_pcs),
                                 flat_hand_mean=params.flat_hand_mean,
                                 silhouette=np32(out.silhouette), hand_window=np32(window))


def layer_pose(hand: "HandModel", params: HandParams):
    """The finger pose (B,45) tensor of network params as `HandModel.forward(hand_pose=...)` takes it:
    `params.pose`, or the pose of `params.pose_pcs` (HandModel.pose_from_pcs)."""
    if params.pose is not None:
        return params.pose.reshape(params.pose.shape[0], -1)
    return hand.pose_from_pcs(params.pose_pcs)
