"""Inputs that gave a traceback or a flood of lines now give one line that names them: a PNG
named .npy, a checkpoint of another architecture; a TIFF stack whose pages differ in size is
predicted with its animation and summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask2hand.cli import main as cli_main
from tiny_model import blob_mask, save_mask_png, write_tiny_weights


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt")


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line]


def test_a_png_named_npy_is_not_advised_to_be_unpickled(weights, tmp_path, capsys):
    save_mask_png(tmp_path / "png.png", blob_mask())
    (tmp_path / "picture.npy").write_bytes((tmp_path / "png.png").read_bytes())
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    code = cli_main(["predict", str(tmp_path / "picture.npy"), str(tmp_path / "objects.npy"), "--out",
                     str(tmp_path / "out"), "--checkpoint", str(weights), "--no-figure"])
    lines = _error_lines(capsys)
    assert code == 2 and len(lines) == 2
    assert "picture.npy" in lines[0] and "header" in lines[0]
    assert "objects.npy" in lines[1] and "Python objects" in lines[1]
    assert not any("allow_pickle" in line or "pickle.load" in line for line in lines)


def test_a_checkpoint_of_another_architecture_is_one_short_line(weights, tmp_path, capsys):
    payload = torch.load(weights, weights_only=False)
    payload["network"]["backbone_width"] = 0.25  # the file says one network, holds another's weights
    torch.save(payload, tmp_path / "other.pt")
    save_mask_png(tmp_path / "m.png", blob_mask())
    code = cli_main(["predict", str(tmp_path / "m.png"), "--out", str(tmp_path / "out"), "--checkpoint",
                     str(tmp_path / "other.pt"), "--no-figure"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and len(err) < 500, err[:2000]
    assert "other.pt" in lines[0] and "another architecture" in lines[0] and "of another shape" in lines[0]


def test_a_tiff_stack_of_different_page_sizes_gets_its_animation_and_summary(weights, tmp_path, capsys):
    pages = [Image.fromarray(blob_mask(96, 96).astype(np.uint8) * 255),
             Image.fromarray(blob_mask(80, 120).astype(np.uint8) * 255),
             Image.fromarray(blob_mask(96, 96).astype(np.uint8) * 255)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    code = cli_main(["predict", str(tmp_path / "stack.tif"), "--sequence", "--out", str(tmp_path / "out"),
                     "--checkpoint", str(weights), "--no-figure", "--focal", "200", "--no-smoothing"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 3 and (tmp_path / "out" / summary["animation"]).is_file()
    with Image.open(tmp_path / "out" / summary["animation"]) as gif:
        assert gif.n_frames == 3
