"""`mask2hand predict` through the CLI: inputs, outputs, summary, and every bad input a user can give."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2hand import cli
from mask2hand.image.files import MAX_IMAGE_SIDE
from tiny_model import blob_mask, save_mask_png, write_tiny_weights

PREDICT_ENTRY = ("predict", "predict 3D hands from silhouette files")


@pytest.fixture(autouse=True)
def predict_registered(monkeypatch):
    """Run through cli.main whether or not the lead has added the table line yet."""
    monkeypatch.setitem(cli.SUBCOMMANDS, "predict", cli.SUBCOMMANDS.get("predict", PREDICT_ENTRY))


POOR_FIT = "the answer explains the mask poorly"  # the warning of an answer with a low IoU


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(["predict", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def make_bad_inputs(folder: Path) -> dict[str, str]:
    """Every bad input -> the phrase its one-line message must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / "empty.png")
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(folder / "allhand.png")
    (folder / "notimage.png").write_text("hello, I am a text file\n")
    big = folder / "whole.png"
    Image.fromarray(blob_mask(300, 300).astype(np.uint8) * 255).save(big)
    data = big.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    big.unlink()
    Image.new("1", (MAX_IMAGE_SIDE + 1, 10)).save(folder / "huge.png")
    yy, xx = np.mgrid[0:80, 0:100]
    rng = np.random.default_rng(1)
    photo = np.stack([xx * 2.2, yy * 2.5, (xx + yy) * 1.2], -1) + rng.normal(0, 12, (80, 100, 3))
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).save(folder / "photo.jpg")
    return {"empty.png": "empty", "allhand.png": "all hand", "notimage.png": "not an image",
            "truncated.png": "truncated", "huge.png": "larger than 8000", "photo.jpg": "photo"}


def test_good_inputs_from_files_folders_and_globs(weights, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    save_mask_png(src / "a.png", blob_mask(80, 80))
    np.save(src / "b.npy", blob_mask(60, 90))
    (src / "readme.txt").write_text("ignored: not a mask suffix")
    other = tmp_path / "other"
    other.mkdir()
    save_mask_png(other / "a.png", blob_mask(70, 70))  # same stem as in/a.png
    out = tmp_path / "out"
    code, stdout, stderr = run_cli([str(src), str(other / "*.png"), "--out", str(out), "--checkpoint", str(weights)],
                                   capsys)
    assert code == 0, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"inputs": 3, "ok": 3, "failed": 0}
    stems = sorted(Path(r["outputs"]["json"]).stem for r in summary["inputs"])
    assert len(set(stems)) == 3 and "b" in stems  # the two a.png got distinct names
    for record in summary["inputs"]:
        assert record["status"] == "ok" and 0 <= record["iou"] <= 1
        for name in record["outputs"].values():
            assert (out / name).is_file()
    assert "note: no --focal or --K given" in stderr
    assert "3 of 3 input(s) predicted" in stdout


def test_quiet_keeps_errors_and_the_last_line_and_verbose_names_each_input(weights, tmp_path, capsys):
    good = save_mask_png(tmp_path / "good.png", blob_mask())
    missing = str(tmp_path / "nothere.png")
    common = [str(good), missing, "--checkpoint", str(weights), "--no-figure"]
    code, stdout, stderr = run_cli([*common, "--out", str(tmp_path / "q"), "--quiet"], capsys)
    assert code == 2 and "1 of 2 input(s) predicted" in stdout
    assert [line for line in stderr.splitlines() if line.strip()] == [
        line for line in stderr.splitlines() if "error:" in line] and "nothere.png" in stderr
    code, stdout, stderr = run_cli([*common, "--out", str(tmp_path / "v"), "--verbose"], capsys)
    assert "wrote: " in stderr and "good.png" in stderr and "note: no --focal" in stderr


def test_every_bad_input_gives_one_line_and_the_others_still_run(weights, tmp_path, capsys):
    bad = make_bad_inputs(tmp_path / "in")
    good = save_mask_png(tmp_path / "in" / "good.png", blob_mask())
    out = tmp_path / "out"
    missing = str(tmp_path / "nothere.png")
    code, stdout, stderr = run_cli([str(tmp_path / "in"), missing, str(tmp_path / "none*.png"), "--out", str(out),
                                    "--checkpoint", str(weights), "--focal", "400"], capsys)
    assert code == 2
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("mask2hand predict: error: ")]
    # no other output on stderr (focal given: no note) but the random network's poor answer for good.png
    others = [line for line in lines if line not in errors]
    assert len(errors) == len(bad) + 2 and len(others) == 1 and POOR_FIT in others[0] and "good.png" in others[0]
    for name, phrase in bad.items():
        (line,) = [e for e in errors if f"{name}: " in e]
        assert phrase in line, line
    assert any(missing in e and "no such file" in e for e in errors)
    assert any("none*.png" in e and "matches no mask files" in e for e in errors)
    assert "Traceback" not in stderr
    # the good input was processed, the bad ones left nothing behind (and no temporary files)
    produced = sorted(p.name for p in out.iterdir())
    assert produced == ["good.glb", "good.json", "good.obj", "good.ply", "good.png", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] == {"inputs": len(bad) + 3, "ok": 1, "failed": len(bad) + 2}
    statuses = {Path(r["input"]).name: r["status"] for r in summary["inputs"]}
    assert statuses["good.png"] == "ok" and all(statuses[name] == "error" for name in bad)
    assert good.is_file()


@pytest.mark.slow
def test_no_traceback_in_a_real_process(weights, tmp_path):
    """The installed command's behaviour end to end: exit status 2, one line per bad input."""
    bad = make_bad_inputs(tmp_path / "in")
    save_mask_png(tmp_path / "in" / "good.png", blob_mask())
    code = ("import sys, mask2hand.cli as c; c.SUBCOMMANDS.setdefault('predict', ('predict', 'predict')); "
            "sys.exit(c.main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code, "predict", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                           "--checkpoint", str(weights), "--no-figure", "--focal", "300"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == len(bad) + 1 and sum(POOR_FIT in line for line in lines) == 1  # good.png's random answer
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.glb", "good.json", "good.obj",
                                                                     "good.ply", "summary.json"]


def test_warnings_are_one_line_each(weights, tmp_path, capsys):
    mask = blob_mask(96, 96)
    inverted = (~mask).astype(np.uint8) * 255
    inverted[2:20, 2:20] = 0  # after flipping: a second blob, 18% of the hand
    Image.fromarray(inverted).save(tmp_path / "inv.png")
    code, _, stderr = run_cli([str(tmp_path / "inv.png"), "--out", str(tmp_path / "out"), "--checkpoint",
                               str(weights), "--no-figure", "--focal", "300"], capsys)
    assert code == 0
    warnings = [line for line in stderr.splitlines() if line.startswith("mask2hand predict: warning: ")]
    assert len(warnings) == 3 and "inverted" in warnings[0] and "largest region" in warnings[1]
    assert POOR_FIT in warnings[2]  # the tiny random network's answer
    data = json.loads((tmp_path / "out" / "inv.json").read_text())
    assert len(data["warnings"]) == 3


def test_k_file_per_image_freihand_style(weights, tmp_path, capsys):
    for i in (0, 1):
        save_mask_png(tmp_path / f"{i:08d}.png", blob_mask())
    Ks = [[[500.0 + 100 * i, 0, 48], [0, 500.0 + 100 * i, 48], [0, 0, 1]] for i in range(2)]
    (tmp_path / "K.json").write_text(json.dumps(Ks))
    out = tmp_path / "out"
    code, _, stderr = run_cli([str(tmp_path / "0000000*.png"), "--K", str(tmp_path / "K.json"), "--out", str(out),
                               "--checkpoint", str(weights), "--no-figure"], capsys)
    assert code == 0, stderr
    for i in (0, 1):
        data = json.loads((out / f"{i:08d}.json").read_text())
        assert data["K"][0][0] == 500.0 + 100 * i and data["camera"] == "K" and data["notes"] == []


def test_fatal_errors_are_one_line(weights, tmp_path, capsys):
    save_mask_png(tmp_path / "a.png", blob_mask())
    code, _, stderr = run_cli([str(tmp_path / "a.png"), "--out", str(tmp_path / "o"), "--checkpoint",
                               str(tmp_path / "missing.pt")], capsys)
    assert code == 2 and stderr.strip().count("\n") == 0 and "checkpoint not found" in stderr
    (tmp_path / "K.json").write_text("{not json")
    code, _, stderr = run_cli([str(tmp_path / "a.png"), "--K", str(tmp_path / "K.json"), "--checkpoint",
                               str(weights), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and stderr.strip().count("\n") == 0 and "not valid JSON" in stderr


def test_every_json_written_carries_the_schema_version(weights, tmp_path, capsys):
    from mask2hand.version import JSON_SCHEMA_VERSION

    save_mask_png(tmp_path / "a.png", blob_mask())
    code, _, _ = run_cli([str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--checkpoint", str(weights),
                          "--no-figure", "--focal", "300"], capsys)
    assert code == 0
    for name in ("a.json", "summary.json"):
        assert json.loads((tmp_path / "out" / name).read_text())["schema_version"] == JSON_SCHEMA_VERSION


def test_side_auto_and_confidence_are_written_to_the_json(weights, tmp_path, capsys):
    src = save_mask_png(tmp_path / "hand.png", blob_mask())
    out = tmp_path / "out"
    code, _, stderr = run_cli([str(src), "--out", str(out), "--checkpoint", str(weights), "--no-figure",
                               "--focal", "300", "--side", "auto", "--confidence"], capsys)
    assert code == 0, stderr
    answer = json.loads((out / "hand.json").read_text())
    assert answer["side"] in ("right", "left") and 0.0 <= answer["side_margin"] <= 1.0
    assert isinstance(answer["side_ambiguous"], bool)
    assert len(answer["joint_confidence"]) == 21 and all(0 < c <= 1 for c in answer["joint_confidence"])
    plain = tmp_path / "plain"
    run_cli([str(src), "--out", str(plain), "--checkpoint", str(weights), "--no-figure", "--focal", "300"], capsys)
    assert not {"side_margin", "joint_confidence"} & set(json.loads((plain / "hand.json").read_text()))
