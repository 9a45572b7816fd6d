"""Memory budgets of hypotheses, fitting and sequences, measured as the peak RSS of a subprocess.

The budgets (mask2hand.render.exact.BAND_PIXELS, mask2hand.inference.stream): hypotheses and
fits hold one full-resolution silhouette band at a time, whatever their count; a sequence keeps
about 100 kB per small frame.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tiny_model import blob_mask, save_mask_png


def _peak_extra_mb(code: str, *args: str) -> float:
    """Run `code` (which prints its peak RSS growth in kB last) in a fresh interpreter; MB."""
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_hypotheses_on_a_large_mask_stay_within_budget(tmp_path):
    """Hypotheses for a 4000 x 3000 mask: 4 hypotheses (13 starts) took 1.5 GB more than a small mask
    when every start's silhouette was rasterized at full resolution at once (20 hypotheses: 5.7 GB
    in all); now one band of one start at a time."""
    big = np.zeros((3000, 4000), dtype=bool)
    big[:, 500:3500] = np.asarray(Image.fromarray(blob_mask(96, 96)).resize((3000, 3000), Image.NEAREST))
    save_mask_png(tmp_path / "big.png", big)
    save_mask_png(tmp_path / "small.png", blob_mask())
    code = """
import resource, sys
from mask2hand import Mask2Hand
from mask2hand.fit import FitConfig
model = Mask2Hand.from_pretrained()
config = FitConfig(steps=2, detail_steps=1)
model.predict(sys.argv[1], fit=config, hypotheses=4)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = model.predict(sys.argv[2], fit=config, hypotheses=4)
assert len(result.hypotheses) >= 1
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    extra_mb = _peak_extra_mb(code, str(tmp_path / "small.png"), str(tmp_path / "big.png"))
    assert extra_mb < 500, extra_mb


@pytest.mark.slow
def test_a_long_sequence_keeps_little_per_frame(tmp_path):
    """300 frames of 64 x 64 cost about 8.8 MB each (2.6 GB) when stage 3 ran over the whole
    sequence at once; now a batch at a time, and a frame keeps well under 0.5 MB."""
    frame = np.asarray(Image.fromarray(blob_mask(96, 96)).resize((64, 64), Image.NEAREST))
    np.save(tmp_path / "frame.npy", frame)
    code = """
import resource, sys
import numpy as np
import pytest
from mask2hand import Mask2Hand
from mask2hand.inference.sequence import predict_sequence
from mask2hand.inference.video import Frames
model = Mask2Hand.from_pretrained()
frame = np.load(sys.argv[1])
def frames(n):
    images = [np.roll(frame, t % 3, axis=1) for t in range(n)]
    return Frames.from_images(images, fps=30.0, source="test")
predict_sequence(model, frames(8))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = predict_sequence(model, frames(300))
assert len(result.predictions) == 300
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    extra_mb = _peak_extra_mb(code, str(tmp_path / "frame.npy"))
    assert extra_mb < 150, extra_mb
