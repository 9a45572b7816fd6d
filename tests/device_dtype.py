"""The device x dtype matrix of the renderer and hand-layer tests: devices, dtypes, per-dtype
tolerances and the checks every entry point of the matrix shares.

The `device` and `dtype` fixtures (tests/conftest.py) run a test once per pair of DEVICES x
DTYPES: cpu, and cuda where torch sees a CUDA device (skipped otherwise); float32 and float64.
A test builds its inputs in float64 on the cpu, moves them with `on(...)`, and compares with
`assert_close`, whose tolerance is that of the coarser dtype of the two values compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

NO_CUDA = "no CUDA device: the cuda column of the device x dtype matrix runs where torch.cuda.is_available()"

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_CUDA))]
DTYPES = [pytest.param(torch.float32, id="float32"), pytest.param(torch.float64, id="float64")]


@dataclass(frozen=True)
class Tolerance:
    """|actual - expected| <= atol + rtol * |expected|, as torch.testing.assert_close."""

    rtol: float
    atol: float


TOLERANCES = {
    # float32 keeps about 7 digits; a hand layer or a projection chains a few dozen operations
    torch.float32: Tolerance(rtol=1e-4, atol=1e-5),
    # float64 keeps about 16; the same chains leave about 1e-13 of it
    torch.float64: Tolerance(rtol=1e-9, atol=1e-11),
}


def tolerance(*dtypes: torch.dtype) -> Tolerance:
    """The tolerance of the coarsest of the dtypes (float32 when a float32 value is compared)."""
    return TOLERANCES[torch.float32] if torch.float32 in dtypes else TOLERANCES[torch.float64]


def on(device: str | torch.device, dtype: torch.dtype, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Copies of the tensors on device, floating-point ones in dtype (integer ones keep theirs),
    cut from any graph: each is a leaf that a test may mark requires_grad."""
    return tuple(t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype, copy=True)
                 for t in tensors)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, *, atol: float = 0.0, rtol: float = 0.0,
                 msg: str = "") -> None:
    """actual == expected within the tolerance of the coarser dtype of the two (or the larger
    atol/rtol given, for a quantity whose error is known to be larger), compared on the cpu in float64."""
    tol = tolerance(actual.dtype, expected.dtype)
    torch.testing.assert_close(actual.detach().cpu().double(), expected.detach().cpu().double(),
                               rtol=max(rtol, tol.rtol), atol=max(atol, tol.atol), msg=msg or None)


def assert_kept(output: torch.Tensor, device: str | torch.device, dtype: torch.dtype | None) -> None:
    """output lies on device (its type: cuda:0 counts as cuda) and, unless dtype is None, has dtype."""
    assert output.device.type == torch.device(device).type, (output.device, device)
    if dtype is not None:
        assert output.dtype == dtype, (output.dtype, dtype)


def assert_finite_gradients(*tensors: torch.Tensor) -> None:
    """Every tensor has a gradient, finite and not all zero."""
    for t in tensors:
        assert t.grad is not None, "no gradient reached an input"
        assert bool(torch.isfinite(t.grad).all()), "a gradient holds NaN or inf"
        assert bool((t.grad != 0).any()), "a gradient is zero everywhere"
