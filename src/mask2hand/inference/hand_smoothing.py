"""The network's answers smoothed over time, one frame after another: `HandSmoother`.

What is smoothed, with a One Euro filter (mask2hand.inference.smoothing) per dimension: the
translation, the global rotation (as a sign-continuous quaternion, not axis-angle), the 45
finger angles and the betas; the mesh is then recomputed with the hand layer. When the network
refines its mesh with per-vertex offsets, those offsets are smoothed with the same filter and
added back, and the joints are regressed from the smoothed mesh as the network does.

The layer is the runner's NumPy hand (mask2hand.hand.numpy_layer), which both runtimes have for
the open hand, so smoothing needs no torch. The filters are causal and hold only the last
frame's state: memory does not grow with the number of frames, and smoothing a batch of
consecutive frames gives what smoothing them one by one gives.
"""

from __future__ import annotations

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.hand.numpy_layer import NumpyHand
from mask2hand.inference.runner import NetworkResult
from mask2hand.inference.smoothing import OneEuroConfig, OneEuroFilter, RotationFilter


def smoothing_layer(model) -> NumpyHand:
    """The NumPy hand layer of a Mask2Hand's runner, which the smoother re-poses; Mask2HandError for
    a runner without one (an ONNX export of a hand whose arrays this installation lacks)."""
    layer = model.runner.numpy_hand
    if layer is None:
        raise Mask2HandError("smoothing re-poses the hand layer, and this model's hand ships no arrays with "
                             "mask2hand; run its PyTorch weights (Mask2Hand.from_pretrained), or turn smoothing off")
    return layer


class HandSmoother:
    """`smooth(raw)`: a NetworkResult of B consecutive frames (B >= 1, the frames after those given
    before) -> the same with smoothed parameters, mesh and joints.

    layer: the network's hand layer in NumPy (`smoothing_layer(model)`); rate: frames per second;
    config: the One Euro settings. `smooth(raw, periods=...)` takes each frame's time since the
    previous one in seconds instead of 1 / rate (a live camera's frames come when they come).
    """

    def __init__(self, layer: NumpyHand, rate: float, config: OneEuroConfig | None = None):
        if not rate > 0:
            raise Mask2HandError(f"the frame rate must be positive, got {rate}")
        self.layer = layer
        self.period = 1.0 / rate
        self.config = (config or OneEuroConfig()).check()
        self.rotation = RotationFilter(self.config)
        self.filters = {name: OneEuroFilter(self.config) for name in ("transl", "pose", "betas", "offsets")}

    def smooth(self, raw: NetworkResult, periods: list[float] | None = None) -> NetworkResult:
        if raw.flat_hand_mean != self.layer.flat_hand_mean:
            raise Mask2HandError("the network's pose convention is not its hand layer's; this model cannot be "
                                 "smoothed")
        periods = [self.period] * len(raw.transl) if periods is None else list(periods)
        original, _ = self.layer.forward(raw.global_orient, raw.transl, raw.pose, raw.betas)
        offsets = raw.vertices.astype(np.float64) - original  # RefineNet's per-vertex offsets (0 without it)
        step = lambda name, values: np.stack([self.filters[name].step(v, dt)  # noqa: E731
                                              for v, dt in zip(values, periods)])
        global_orient = np.stack([self.rotation.step(a, dt) for a, dt in zip(raw.global_orient, periods)])
        transl, pose, betas = step("transl", raw.transl), step("pose", raw.pose), step("betas", raw.betas)
        vertices = self.layer.forward(global_orient, transl, pose, betas)[0] + step("offsets", offsets)
        joints = self.layer.joints_from_vertices(vertices)
        f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
        return NetworkResult(vertices=f32(vertices), joints=f32(joints), global_orient=f32(global_orient),
                             transl=f32(transl), pose=f32(pose), betas=f32(betas), flat_hand_mean=raw.flat_hand_mean,
                             pose_pcs=None, silhouette=raw.silhouette, hand_window=raw.hand_window)
