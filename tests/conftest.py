import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; before torch is imported

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from device_dtype import DEVICES, DTYPES  # noqa: E402
from mano_fixture import write_mano_fixture  # noqa: E402
from tiny_model import write_tiny_weights  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mano_path(tmp_path_factory) -> Path:
    """A fake MANO_RIGHT.pkl in the official format (see mano_fixture.py)."""
    return write_mano_fixture(tmp_path_factory.mktemp("mano") / "MANO_RIGHT.pkl", seed=0)


@pytest.fixture(scope="session")
def mano_left_path(tmp_path_factory) -> Path:
    """The mirror image of mano_path's model, as MANO_LEFT.pkl is MANO_RIGHT.pkl's (mano_fixture.py)."""
    return write_mano_fixture(tmp_path_factory.mktemp("mano_left") / "MANO_LEFT.pkl", seed=0, side="left")


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> Path:
    """The tiny network's weights file (tiny_model.py): fast, deterministic, not trained."""
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


@pytest.fixture(scope="session")
def model(weights):
    """A Mask2Hand of the tiny network."""
    from mask2hand.inference.api import Mask2Hand

    return Mask2Hand.from_pretrained(weights)


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """cpu, and cuda where available: the device column of the device x dtype matrix (device_dtype.py)."""
    return torch.device(request.param)


@pytest.fixture(params=DTYPES)
def dtype(request) -> torch.dtype:
    """float32 and float64: the dtype column of the device x dtype matrix (device_dtype.py)."""
    return request.param
