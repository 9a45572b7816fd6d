"""Output folders that take nothing: a read-only --out or a full disk is one line and exit 2, found
before any work (the network, the synthetic masks, the export), for every command that writes."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from mask2hand.cli import main as cli_main
from mask2hand.inference.api import Mask2Hand
from tiny_model import blob_mask, save_mask_png, write_tiny_weights


def _inside(path, folder: Path) -> bool:
    path = Path(path).absolute()
    return path == folder or folder in path.parents


@pytest.fixture
def read_only(monkeypatch):
    """Make a folder read-only for this process (the suite may run as root, whom permissions do not stop)."""
    def make(folder: Path) -> Path:
        folder = folder.absolute()
        mkdir, mkstemp = Path.mkdir, tempfile.mkstemp

        def refused_mkdir(self, *args, **kwargs):
            if _inside(self, folder) and not self.is_dir():
                raise PermissionError(errno.EROFS, "Read-only file system", str(self))
            return mkdir(self, *args, **kwargs)

        def refused_mkstemp(*args, dir=None, **kwargs):
            if dir is not None and _inside(dir, folder):
                raise PermissionError(errno.EROFS, "Read-only file system", str(dir))
            return mkstemp(*args, dir=dir, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refused_mkdir)
        monkeypatch.setattr(tempfile, "mkstemp", refused_mkstemp)
        return folder
    return make


@pytest.fixture
def full_disk(monkeypatch):
    """Make a folder's disk full: every file made in it writes to /dev/full (ENOSPC)."""
    def make(folder: Path) -> Path:
        folder = folder.absolute()
        mkstemp = tempfile.mkstemp

        def full_mkstemp(*args, dir=None, **kwargs):
            fd, path = mkstemp(*args, dir=dir, **kwargs)
            if dir is not None and _inside(dir, folder):
                os.close(fd)
                return os.open("/dev/full", os.O_WRONLY), path
            return fd, path

        monkeypatch.setattr(tempfile, "mkstemp", full_mkstemp)
        return folder
    return make


def _one_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture
def masks(tmp_path) -> list[str]:
    return [str(save_mask_png(tmp_path / f"m{i}.png", blob_mask())) for i in range(3)]


@pytest.mark.parametrize("disk", ["read_only", "full_disk"])
def test_predict_checks_its_out_folder_before_running_the_network(disk, request, weights, masks, tmp_path,
                                                                   monkeypatch, capsys):
    (tmp_path / "out").mkdir()
    out = request.getfixturevalue(disk)(tmp_path / "out")
    calls = []
    monkeypatch.setattr(Mask2Hand, "run_network", lambda self, items: calls.append(items))
    capsys.readouterr()
    code = cli_main(["predict", *masks, "--out", str(out), "--checkpoint", str(weights), "--no-figure"])
    line = _one_line(capsys)
    assert code == 2 and "cannot write into --out" in line and str(out) in line
    assert calls == []


@pytest.mark.parametrize("disk", ["read_only", "full_disk"])
def test_synth_checks_its_folder_first(disk, request, tmp_path, capsys):
    (tmp_path / "datasets").mkdir()
    parent = request.getfixturevalue(disk)(tmp_path / "datasets")
    capsys.readouterr()
    code = cli_main(["synth", "natural", "--out", str(parent / "set"), "--count", "4", "--val-count", "0",
                     "--test-count", "0"])
    assert code == 2 and "cannot write into the folder of --out" in _one_line(capsys)
    assert list(parent.iterdir()) == []


def test_export_onnx_checks_its_folder_first(read_only, weights, tmp_path, capsys):
    (tmp_path / "models").mkdir()
    parent = read_only(tmp_path / "models")
    capsys.readouterr()
    code = cli_main(["export-onnx", str(weights), str(parent / "m.onnx")])
    assert code == 2 and "cannot write into the folder of --out" in _one_line(capsys)


def test_a_summary_that_cannot_be_written_is_one_line(weights, masks, tmp_path, monkeypatch, capsys):
    """The disk fills after the inputs' files: the summary is one line too (it was a traceback)."""
    from mask2hand.commands import predict

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("mask2hand.export.files.write_json", full)
    code = cli_main(["predict", masks[0], "--out", str(tmp_path / "out"), "--checkpoint", str(weights),
                     "--no-figure", "--quiet"])
    line = _one_line(capsys)
    assert code == 2 and predict.SUMMARY_NAME in line and "No space left" in line


def test_a_read_only_out_stops_a_sequence_before_the_network(read_only, weights, tmp_path, monkeypatch, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for t in range(3):
        save_mask_png(frames / f"f{t}.png", np.roll(blob_mask(), t, axis=1))
    (tmp_path / "out").mkdir()
    out = read_only(tmp_path / "out")
    calls = []
    monkeypatch.setattr(Mask2Hand, "run_network", lambda self, items: calls.append(items))
    capsys.readouterr()
    code = cli_main(["predict", str(frames), "--sequence", "--out", str(out), "--checkpoint", str(weights),
                     "--no-smoothing", "--no-figure"])
    assert code == 2 and "cannot write into --out" in _one_line(capsys) and calls == []
