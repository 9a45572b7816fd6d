"""The torch device a command runs on, from what a user typed (`--device`, `train.device`)."""

from __future__ import annotations

import torch

from mask2hand.errors import Mask2HandError

# device types that have a torch.<type>.is_available() to ask
_ACCELERATORS = ("cuda", "mps", "xpu")


def resolve_device(preference: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """A torch.device this machine has, or a Mask2HandError saying why not.

    preference: "auto" (CUDA when available, else the CPU), "cpu", or an accelerator
    ("cuda", "cuda:1", "mps", "xpu"). A bare "cuda" and "auto" take GPU `local_rank`
    (the process's GPU under torchrun).
    """
    if preference == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError):
        raise Mask2HandError(f"unknown device {preference!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cpu":
        return device
    if device.type not in _ACCELERATORS:
        raise Mask2HandError(f"mask2hand cannot run on device {preference!r}; use auto, cpu, cuda, cuda:N or mps")
    if device.type == "cuda" and device.index is None:
        device = torch.device(f"cuda:{local_rank}")
    _check_available(device, preference)
    return device


def _check_available(device: torch.device, preference) -> None:
    """Refuse an accelerator (and a CUDA index) this machine does not have."""
    backend = getattr(torch.backends, device.type, None) if device.type == "mps" else getattr(torch, device.type, None)
    if backend is None or not backend.is_available():
        raise Mask2HandError(f"device {preference!r} is not available on this machine; choose cpu, "
                             "or auto (a GPU when there is one)")
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        raise Mask2HandError(f"device {preference!r}: this machine has {torch.cuda.device_count()} CUDA "
                             f"device(s), numbered from 0")
