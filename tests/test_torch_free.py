"""The torch-free install (`pip install mask2hand`): the CLI predicts with the shipped ONNX file
while every package outside the base dependencies is hidden from imports, and the shipped ONNX
file gives the shipped PyTorch weights' answers (so the two cannot drift apart)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import trimesh

from mask2hand import cli
from mask2hand.inference.api import Mask2Hand
from mask2hand.inference.onnx_runner import OnnxRunner
from mask2hand.nn.pretrained import shipped_onnx_path, shipped_weights_path
from mask2hand.utils.files import file_sha256

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PREDICTED = ("open_palm.png", "fist.png")

HIDDEN = ("torch", "torchvision", "matplotlib", "yaml", "tqdm", "scipy", "onnx")
"""Every module of an extra that the predict path could reach (pyproject.toml): absent, as in a
fresh `pip install mask2hand`."""

SITECUSTOMIZE = textwrap.dedent(f"""
    import importlib.abc, sys

    class HideOptional(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in {HIDDEN!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

    sys.meta_path.insert(0, HideOptional())
""")


def run_torch_free(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m mask2hand ARGS` in a fresh process with HIDDEN unimportable (a sitecustomize
    module on PYTHONPATH installs the import hook before anything runs)."""
    hook = tmp_path / "hide_optional"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "mask2hand", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def torch_answers() -> dict[str, np.ndarray]:
    """The PyTorch runtime's joints (21,3) for PREDICTED, by file name."""
    model = Mask2Hand.from_pretrained(runtime="torch")
    return {name: model.predict(str(EXAMPLES / name)).joints for name in PREDICTED}


@pytest.mark.slow
def test_predict_without_torch_writes_the_answers(tmp_path, torch_answers):
    out = tmp_path / "out"
    proc = run_torch_free(tmp_path, "predict", *(str(EXAMPLES / n) for n in PREDICTED), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    figure_lines = [line for line in proc.stderr.splitlines() if "matplotlib" in line]
    assert len(figure_lines) == 1 and "pip install 'mask2hand[figures]'" in figure_lines[0]
    faces = Mask2Hand.from_pretrained(runtime="onnx").faces
    for name in PREDICTED:
        stem = Path(name).stem
        result = json.loads((out / f"{stem}.json").read_text())
        assert result["model"]["onnx"] == "default (shipped)"
        joints = np.asarray(result["joints"])
        assert joints.shape == (21, 3) and np.abs(joints - torch_answers[name]).max() < 1e-4
        # the parameters are rebuilt without torch too, as closely as the torch runtime rebuilds them
        assert result["hand"]["flat_hand_mean"] is True
        assert result["params_residual_mm"]["joints"] < 2.0 and result["params_residual_mm"]["vertices"] < 3.0
        for suffix in ("obj", "ply", "glb"):
            mesh = trimesh.load(out / f"{stem}.{suffix}", process=False, force="mesh")
            assert np.array_equal(mesh.faces, faces) and len(mesh.vertices) == faces.max() + 1
        assert not (out / f"{stem}.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"inputs": 2, "ok": 2, "failed": 0}


def test_a_sequence_is_smoothed_without_torch(tmp_path):
    """The smoother re-poses the NumPy hand layer: the torch-free install smooths a GIF's frames."""
    from PIL import Image

    frames = [Image.open(EXAMPLES / name).convert("L") for name in ("fist.png", "open_palm.png", "point.png")]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=40)
    out = tmp_path / "out"
    proc = run_torch_free(tmp_path, "predict", str(tmp_path / "clip.gif"), "--out", str(out), "--no-gif")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["smoothing"]["filter"] == "one_euro" and summary["frames"] == 3 and summary["failed"] == 0
    notes = json.loads((out / "clip_00002.json").read_text())["notes"]
    assert any("One Euro" in note for note in notes)


@pytest.mark.parametrize("option", [["--fit"], ["--hypotheses", "2"], ["--mano-export", "MANO_RIGHT.pkl"],
                                    ["--runtime", "torch"], ["--checkpoint", "runs/x/best.pt"]])
def test_what_needs_torch_says_so_in_one_line(tmp_path, option):
    proc = run_torch_free(tmp_path, "predict", str(EXAMPLES / "fist.png"), "--out", str(tmp_path / "o"), *option)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "pip install 'mask2hand[torch]'" in lines[0]


def test_commands_that_need_torch_say_so_in_one_line(tmp_path):
    proc = run_torch_free(tmp_path, "export-onnx", "default", str(tmp_path / "x.onnx"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "pip install 'mask2hand[torch]'" in lines[0], proc.stderr


def test_the_shipped_onnx_file_is_the_shipped_weights(tmp_path):
    """Same answers on every example; exported from the very file shipped beside it. Replaced weights
    need a new export: python tools/export_shipped_onnx.py."""
    onnx_path = shipped_onnx_path()
    source = OnnxRunner(onnx_path).metadata["source"]
    assert source["sha256"] == file_sha256(shipped_weights_path()), "re-export: python tools/export_shipped_onnx.py"
    files = sorted(str(p) for p in EXAMPLES.glob("*.png"))
    by_torch = Mask2Hand.from_pretrained(runtime="torch").predict(files)
    by_onnx = Mask2Hand.from_pretrained(runtime="onnx").predict(files)
    for a, b in zip(by_torch, by_onnx):
        assert np.abs(a.joints - b.joints).max() < 1e-4 and np.abs(a.vertices - b.vertices).max() < 1e-4
        assert a.iou == pytest.approx(b.iou, abs=0.01)
        assert np.abs(a.params.pose - b.params.pose).max() < 1e-2


def test_models_lists_both_files(capsys):
    assert cli.main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "default.pt" in listed and "default.onnx" in listed and "missing" not in listed


def test_the_fit_error_docs_quote_is_the_printed_line(tmp_path):
    """docs/INSTALL.md quotes what --fit prints on the torch-free install, word for word."""
    install = (EXAMPLES.parent / "docs" / "INSTALL.md").read_text()
    quoted = [line for line in install.splitlines() if line.startswith("mask2hand predict: error:")]
    proc = run_torch_free(tmp_path, "predict", str(EXAMPLES / "fist.png"), "--out", str(tmp_path / "o"), "--fit")
    assert len(quoted) == 1 and proc.stderr.strip() == quoted[0]
