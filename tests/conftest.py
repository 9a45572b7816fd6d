import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; before torch is imported

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from mano_fixture import write_mano_fixture  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mano_path(tmp_path_factory) -> Path:
    """A fake MANO_RIGHT.pkl in the official format (see mano_fixture.py)."""
    return write_mano_fixture(tmp_path_factory.mktemp("mano") / "MANO_RIGHT.pkl", seed=0)
