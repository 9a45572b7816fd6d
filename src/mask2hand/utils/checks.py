"""Declarative argument checks: one line per argument instead of hand-written if/raise blocks.

    sizes = check_shape(masks, ["B", "H", "W"], "masks")
    check_shape(K, ["B", "3", "3"], "K", sizes)      # B must be the masks' B

A dimension is a whole number written as a string ("3": exactly three), a name ("B": any
size, the same wherever the name appears in one `sizes`) or "*" (any size). Works on
anything with a `.shape` (numpy arrays, torch tensors).
"""

from __future__ import annotations

from typing import Any, Sequence

from mask2hand.errors import Mask2HandError


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
