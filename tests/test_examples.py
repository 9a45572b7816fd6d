"""The example masks are what their tools make, and the forearm examples are their hands plus an arm."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_forearm_examples_are_up_to_date():
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "make_forearm_examples.py"), "--check"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_forearm_example_is_its_hand_plus_an_arm():
    truth = json.loads((REPO / "examples" / "forearm" / "ground_truth.json").read_text())["examples"]
    assert len(truth) == 6
    for name, entry in truth.items():
        with_arm = np.asarray(Image.open(REPO / "examples" / "forearm" / name)) > 127
        hand = np.asarray(Image.open(REPO / "examples" / name)) > 127
        assert (with_arm | hand).sum() == with_arm.sum()  # the hand is inside the mask with its arm
        assert with_arm.sum() == entry["mask_pixels"] > hand.sum() == entry["hand_pixels"]
        assert -70 <= entry["forearm"]["flexion_deg"] <= 80 and -20 <= entry["forearm"]["deviation_deg"] <= 30
