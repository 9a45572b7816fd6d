"""The global random generators' states (torch, numpy, python) as checkpoint values, and back."""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    """The global torch / numpy / python generators' states as tensors and plain values (what a
    weights_only load reads): numpy's MT19937 key (624 uint32 words) is kept as an int64 tensor."""
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = {"kind": str(kind), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}
    return {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    """Restore what rng_state returned, bit for bit."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], numpy_state["key"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    random.setstate(state["python"])
