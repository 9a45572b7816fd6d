"""Temporal smoothing of per-frame signals: the One Euro filter (Casiez, Roussel, Vogel, CHI 2012).

A first-order low-pass filter whose cutoff frequency rises with the signal's speed:
slow motion is smoothed hard (little jitter), fast motion lightly (little lag). Per
dimension d and frame t, with sampling period Te = 1 / rate:

    alpha(fc)   = 1 / (1 + tau / Te),  tau = 1 / (2 pi fc)
    dx_t        = (x_t - xhat_{t-1}) / Te                   speed estimate
    dxhat_t     = dxhat_{t-1} + alpha(d_cutoff) (dx_t - dxhat_{t-1})
    fc_t        = min_cutoff + beta |dxhat_t|
    xhat_t      = xhat_{t-1} + alpha(fc_t) (x_t - xhat_{t-1})

starting from xhat_0 = x_0, dxhat_0 = 0. The filter is causal (uses past frames only):
`OneEuroFilter` and `RotationFilter` hold its state and take one sample at a time (live
streams, videos read frame by frame), and the whole-array functions step them over a sequence.
beta multiplies a speed in the signal's own units per second, so one setting behaves differently
on meters and radians; the defaults below were chosen for hand parameters at video rates (a few
cm and a fraction of a radian per second of typical motion).
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


class OneEuroFilter:
    """The One Euro filter as a state: `step(x, period)` takes one sample (any shape, each entry an
    independent dimension) and returns its filtered value, float64. The state is the last output
    and speed estimate, so memory does not grow with the number of samples."""

    def __init__(self, config: OneEuroConfig | None = None):
        self.config = (config or OneEuroConfig()).check()
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def step(self, sample: np.ndarray, period: float) -> np.ndarray:
        """The filtered value of `sample`, taken `period` seconds after the previous one (the first
        sample is passed through)."""
        if not period > 0:
            raise Mask2HandError(f"the time between samples must be positive, got {period} s")
        x = np.asarray(sample, dtype=np.float64)
        if self.value is None:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return self.value.copy()
        config = self.config
        raw_speed = (x - self.value) / period
        self.speed = self.speed + _alpha(config.d_cutoff, period) * (raw_speed - self.speed)
        alpha = _alpha(config.min_cutoff + config.beta * np.abs(self.speed), period)
        self.value = self.value + alpha * (x - self.value)
        return self.value.copy()


class RotationFilter:
    """A rotation smoothed sample by sample: `step(axis_angle (3,), period)` -> axis-angle (3,).
    The quaternion's sign is chosen to continue the previous one's (q and -q are the same
    rotation; without this the filter would average across the flip), filtered by a
    OneEuroFilter and renormalized. Raw axis-angle is not filtered because it jumps (at pi,
    where the axis flips) even when the rotation moves smoothly."""

    def __init__(self, config: OneEuroConfig | None = None):
        self.filter = OneEuroFilter(config)
        self.last: np.ndarray | None = None

    def continued(self, axis_angle: np.ndarray) -> np.ndarray:
        """The unit quaternion (x,y,z,w) of `axis_angle`, its sign continuing the previous one's."""
        q = quaternion_from_axis_angle(axis_angle)
        if self.last is not None and np.dot(q, self.last) < 0:
            q = -q
        self.last = q
        return q

    def step(self, axis_angle: np.ndarray, period: float) -> np.ndarray:
        return axis_angle_from_quaternion(self.filter.step(self.continued(axis_angle), period))


def quaternion_from_axis_angle(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) radians -> the unit quaternion (x,y,z,w) = (sin(a/2) axis, cos(a/2))."""
    a = np.asarray(axis_angle, dtype=np.float64).reshape(3)
    angle = float(np.linalg.norm(a))
    # sin(angle/2)/angle -> 1/2 - angle^2/48 near 0
    scale = 0.5 - angle * angle / 48.0 if angle < 1e-4 else math.sin(angle / 2.0) / angle
    return np.array([*(a * scale), math.cos(angle / 2.0)])


def axis_angle_from_quaternion(q: np.ndarray) -> np.ndarray:
    """A quaternion (x,y,z,w) of any norm -> axis-angle (3,) radians, the angle in [0, pi]."""
    q = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    if q[3] < 0:  # q and -q are the same rotation: the one with w >= 0 has the angle <= pi
        q = -q
    sine = float(np.linalg.norm(q[:3]))
    angle = 2.0 * math.atan2(sine, q[3])
    # angle/sin(angle/2) -> 2 + angle^2/12 near 0
    return q[:3] * (2.0 + angle * angle / 12.0 if sine < 1e-8 else angle / sine)


def _checked_period(rate: float) -> float:
    if not rate > 0:
        raise Mask2HandError(f"the frame rate must be positive, got {rate}")
    return 1.0 / rate


def one_euro_filter(signal: np.ndarray, rate: float, config: OneEuroConfig | None = None) -> np.ndarray:
    """Filter a sequence (T, ...) sampled at `rate` frames per second along its first axis;
    every other entry is an independent dimension. Returns float64 of the same shape: what a
    OneEuroFilter stepped over the samples gives."""
    state, period = OneEuroFilter(config), _checked_period(rate)
    x = np.asarray(signal, dtype=np.float64)
    out = np.empty_like(x)
    for t in range(x.shape[0]):
        out[t] = state.step(x[t], period)
    return out


def continuous_quaternions(axis_angle: np.ndarray) -> np.ndarray:
    """Axis-angle (T,3) -> unit quaternions (T,4) (x,y,z,w) with signs chosen so that
    consecutive quaternions have a non-negative dot product (RotationFilter.continued)."""
    state = RotationFilter()
    rotations = np.asarray(axis_angle, dtype=np.float64).reshape(-1, 3)
    return np.stack([state.continued(a) for a in rotations]) if len(rotations) else np.zeros((0, 4))


def smooth_rotations(axis_angle: np.ndarray, rate: float, config: OneEuroConfig | None = None) -> np.ndarray:
    """Smooth a rotation sequence (T,3) axis-angle sampled at `rate` frames per second: a
    RotationFilter stepped over it."""
    state, period = RotationFilter(config), _checked_period(rate)
    rotations = np.asarray(axis_angle, dtype=np.float64).reshape(-1, 3)
    return np.stack([state.step(a, period) for a in rotations]) if len(rotations) else rotations.copy()


def second_difference_norms(previous: np.ndarray, current: np.ndarray, following: np.ndarray) -> np.ndarray:
    """The norms of x_{t+1} - 2 x_t + x_{t-1} over the last axis (xyz), for joints (...,3)."""
    return np.linalg.norm(following - 2.0 * current + previous, axis=-1)


def mean_joint_acceleration(joints: np.ndarray) -> float:
    """Jitter of a joint trajectory (T,21,3) meters: the mean over frames and joints of the
    norm of the second difference x_{t+1} - 2 x_t + x_{t-1}, in meters per frame^2."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.shape[0] < 3:
        raise Mask2HandError("jitter needs at least 3 frames")
    return float(second_difference_norms(joints[:-2], joints[1:-1], joints[2:]).mean())


class JitterMeter:
    """`mean_joint_acceleration` of a trajectory given one frame at a time (`add(joints (21,3))`),
    keeping the last two frames and a running sum; `value` is None before 3 frames."""

    def __init__(self):
        self.last: list[np.ndarray] = []
        self.total = 0.0
        self.count = 0

    def add(self, joints: np.ndarray) -> None:
        joints = np.asarray(joints, dtype=np.float64)
        if len(self.last) == 2:
            norms = second_difference_norms(self.last[0], self.last[1], joints)
            self.total += float(norms.sum())
            self.count += norms.size
        self.last = (self.last + [joints])[-2:]

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None
