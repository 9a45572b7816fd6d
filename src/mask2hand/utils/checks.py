"""Declarative argument checks: one line per argument instead of hand-written if/raise blocks.

    sizes = check_shape(masks, ["B", "H", "W"], "masks")
    check_shape(K, ["B", "3", "3"], "K", sizes)      # B must be the masks' B

A dimension is a whole number written as a string ("3": exactly three), a name ("B": any
size, the same wherever the name appears in one `sizes`) or "*" (any size). Works on
anything with a `.shape` (numpy arrays, torch tensors).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mask2hand.errors import CameraError, Mask2HandError


def _layout(dims: Sequence[str]) -> str:
    return "(" + ",".join(dims) + ")"


def check_shape(value: Any, dims: Sequence[str], name: str, sizes: dict[str, int] | None = None) -> dict[str, int]:
    """Raise Mask2HandError unless `value.shape` matches `dims` (see the module docstring).

    sizes: names already bound (e.g. by a previous argument's check); it is updated with the
    names this shape binds, and returned (a new dict when none is given).
    """
    sizes = {} if sizes is None else sizes
    shape = tuple(int(s) for s in getattr(value, "shape", ()))
    bound = {k: v for k, v in sizes.items() if k in dims}
    expected = _layout(dims) + ("" if not bound else " with " + ", ".join(f"{k}={v}" for k, v in bound.items()))
    if len(shape) != len(dims):
        raise Mask2HandError(f"{name} must be {expected}, got shape {shape}")
    new: dict[str, int] = {}
    for dim, size in zip(dims, shape):
        if dim == "*":
            continue
        if dim.isdigit():
            if size != int(dim):
                raise Mask2HandError(f"{name} must be {expected}, got shape {shape}")
            continue
        known = sizes.get(dim, new.get(dim))
        if known is not None and known != size:
            raise Mask2HandError(f"{name} must be {expected}, got shape {shape}")
        new[dim] = size
    sizes.update(new)
    return sizes


MAX_SKEW_DEGREES = 30.0
"""How far from square the pixel axes of a camera may be, atan(|s| / fx) for the skew s of K: a
real camera's skew is 0 or nearly, and far beyond this angle a K is a mistake (a skew of 1e6 px
leaves nothing of the hand's picture; 1e300 overflows the projection)."""


def check_K(K: Any, what: str = "K", ids: Sequence[int] | None = None) -> np.ndarray:
    """Validated pixel intrinsics, float64: one (3,3) matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]]
    or a stack (N,3,3) of them.

    Raises CameraError naming `what` (for a stack also the sample: ids[i], or i without ids)
    for an array of another shape, for the first matrix of another form, with NaN or infinite values, focal lengths <= 0 or a
    skew beyond MAX_SKEW_DEGREES.
    """
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError):
        raise CameraError(f"{what} must be a 3x3 matrix of numbers") from None
    single = K.ndim == 2
    try:
        check_shape(K, ["3", "3"] if single else ["N", "3", "3"], what)
    except Mask2HandError as exc:
        raise CameraError(str(exc)) from None
    stack = K.reshape(-1, 3, 3)
    fx, skew, fy = stack[:, 0, 0], stack[:, 0, 1], stack[:, 1, 1]
    with np.errstate(invalid="ignore"):
        skew_degrees = np.degrees(np.arctan2(np.abs(skew), fx))
        rules = [
            (np.isfinite(stack).all(axis=(1, 2)), lambda i: "holds NaN or infinite values"),
            (np.isclose(stack[:, 2], [0.0, 0.0, 1.0]).all(axis=1) & (stack[:, 1, 0] == 0.0),
             lambda i: "must have the form [[fx, s, cx], [0, fy, cy], [0, 0, 1]]"),
            ((fx > 0) & (fy > 0),
             lambda i: f"must have positive focal lengths, got fx={fx[i]:g}, fy={fy[i]:g}"),
            (skew_degrees <= MAX_SKEW_DEGREES,
             lambda i: f"has a skew of {skew[i]:.3g} px against fx={fx[i]:.4g} px: its pixel axes are "
                       f"{skew_degrees[i]:.3g} degrees from square (at most {MAX_SKEW_DEGREES:g}); K[0][1] is "
                       "the skew, 0 for nearly every camera"),
        ]
    ok = np.logical_and.reduce([passed for passed, _ in rules])
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        name = what if single else f"{what} of sample {int(ids[i]) if ids is not None else i}"
        reason = next(message for passed, message in rules if not passed[i])
        raise CameraError(f"{name} {reason(i)}")
    return K
