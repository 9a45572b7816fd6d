"""Temporal smoothing of per-frame signals: the One Euro filter (Casiez, Roussel, Vogel, CHI 2012).

A first-order low-pass filter whose cutoff frequency rises with the signal's speed:
slow motion is smoothed hard (little jitter), fast motion lightly (little lag). Per
dimension d and frame t, with sampling period Te = 1 / rate:

    alpha(fc)   = 1 / (1 + tau / Te),  tau = 1 / (2 pi fc)
    dx_t        = (x_t - xhat_{t-1}) / Te                   speed estimate
    dxhat_t     = dxhat_{t-1} + alpha(d_cutoff) (dx_t - dxhat_{t-1})
    fc_t        = min_cutoff + beta |dxhat_t|
    xhat_t      = xhat_{t-1} + alpha(fc_t) (x_t - xhat_{t-1})

starting from xhat_0 = x_0, dxhat_0 = 0. The filter is causal (uses past frames only), so
the same code serves live streams. beta multiplies a speed in the signal's own units per
second, so one setting behaves differently on meters and radians; the defaults below were
chosen for hand parameters at video rates (a few cm and a fraction of a radian per second
of typical motion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mask2hand.errors import Mask2HandError


@dataclass
class OneEuroConfig:
    """One Euro filter settings.

    min_cutoff: cutoff frequency (Hz) at rest; lower = smoother still frames, more lag.
    beta: cutoff increase per unit of speed (1/units); higher = less lag in fast motion.
    d_cutoff: cutoff frequency (Hz) of the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0

    def check(self) -> "OneEuroConfig":
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise Mask2HandError("One Euro filter: min_cutoff and d_cutoff must be > 0 and beta >= 0 "
                                 f"(got {self.min_cutoff}, {self.d_cutoff}, {self.beta})")
        return self


def _alpha(cutoff: np.ndarray | float, period: float) -> np.ndarray | float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / period)


def one_euro_filter(signal: np.ndarray, rate: float, config: OneEuroConfig | None = None) -> np.ndarray:
    """Filter a sequence (T, ...) sampled at `rate` frames per second along its first axis;
    every other entry is an independent dimension. Returns float64 of the same shape."""
    config = (config or OneEuroConfig()).check()
    if not rate > 0:
        raise Mask2HandError(f"the frame rate must be positive, got {rate}")
    x = np.asarray(signal, dtype=np.float64)
    if x.shape[0] == 0:
        return x.copy()
    period = 1.0 / rate
    out = np.empty_like(x)
    out[0] = x[0]
    speed = np.zeros_like(x[0])
    alpha_d = _alpha(config.d_cutoff, period)
    for t in range(1, x.shape[0]):
        raw_speed = (x[t] - out[t - 1]) / period
        speed = speed + alpha_d * (raw_speed - speed)
        alpha = _alpha(config.min_cutoff + config.beta * np.abs(speed), period)
        out[t] = out[t - 1] + alpha * (x[t] - out[t - 1])
    return out


def continuous_quaternions(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle (T,3) -> unit quaternions (T,4) (x,y,z,w) with signs chosen so that
    consecutive quaternions have a non-negative dot product (q and -q are the same rotation;
    without this, a filter would average across the sign flip)."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_rotvec(np.asarray(axis_angle, dtype=np.float64).reshape(-1, 3)).as_quat()
    for t in range(1, len(q)):
        if np.dot(q[t], q[t - 1]) < 0:
            q[t] = -q[t]
    return q


def smooth_rotations(axis_angle: np.ndarray, rate: float, config: OneEuroConfig | None = None) -> np.ndarray:
    """Smooth a rotation sequence (T,3) axis-angle: filter the sign-continuous quaternion,
    renormalize, convert back. Raw axis-angle is not filtered because it jumps (at pi,
    where the axis flips) even when the rotation moves smoothly."""
    from scipy.spatial.transform import Rotation

    q = one_euro_filter(continuous_quaternions(axis_angle), rate, config)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return Rotation.from_quat(q).as_rotvec()


def mean_joint_acceleration(joints: np.ndarray) -> float:
    """Jitter of a joint trajectory (T,21,3) meters: the mean over frames and joints of the
    norm of the second difference x_{t+1} - 2 x_t + x_{t-1}, in meters per frame^2."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape[0] < 3:
        raise Mask2HandError("jitter needs at least 3 frames")
    accel = joints[2:] - 2.0 * joints[1:-1] + joints[:-2]
    return float(np.linalg.norm(accel, axis=-1).mean())
