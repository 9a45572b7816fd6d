"""tools/paper_gap.py: the Tables 1-2 comparison's driver and error parts, on a tiny budget of tiny data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import yaml

from mask2hand.data.synthetic import PaperProtocol, generate_paper

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "paper_gap.py"


def _tool(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=600, env=env)


def test_an_arm_is_trained_at_the_budget_evaluated_skipped_when_done_and_reported(tmp_path):
    data, runs = tmp_path / "data", tmp_path / "runs"
    generate_paper(data / "paper", seed=0, protocol=replace(PaperProtocol(), train_poses=8, test_poses=1))
    generate_paper(data / "paper-val", seed=1, protocol=replace(PaperProtocol(), train_poses=0, test_poses=1))
    run = ["run", "--runs", str(runs), "--data", str(data), "--arms", "paper-optimizer", "--budget-samples", "64",
           "--epoch-samples", "32", "--val-samples", "5", "--eval-samples", "5"]
    first = _tool(*run)
    assert first.returncode == 0, first.stdout + first.stderr
    arm = runs / "paper-optimizer"
    config = yaml.safe_load((arm / "config.yaml").read_text())
    train = config["train"]
    # the arm's own settings, the budget as whole epochs of whole batches, one thread, data under --data
    assert (train["lr"], train["scheduler"], train["batch_size"]) == (1e-4, "plateau", 32)
    assert (train["epochs"], train["max_steps_per_epoch"], train["threads"]) == (2, 1, 1)
    assert config["data"]["train"] == f"{data}/paper:train" and config["network"]["backbone_width"] == 0.375
    steps = (arm / "steps.csv").read_text()
    assert len(steps.splitlines()) == 3  # header and 2 steps
    assert json.loads((arm / "eval_test.json").read_text())["results"][0]["num_samples"] == 5

    # run again: a finished arm is neither trained nor evaluated again; one that did not finish is resumed
    assert _tool(*run).returncode == 0
    assert (arm / "train.log").read_text().count("$ mask2hand") == 2
    (arm / "summary.json").unlink()
    assert _tool(*run).returncode == 0
    log = (arm / "train.log").read_text()
    assert log.count("--resume") == 1 and (arm / "steps.csv").read_text() == steps

    report = _tool("report", "--runs", str(runs), "--out", str(tmp_path / "report" / "gap"),
                   "--arms", "paper-optimizer")
    assert report.returncode == 0, report.stderr
    row = json.loads((tmp_path / "report" / "gap.json").read_text())["arms"][0]
    assert row["arm"] == "paper-optimizer" and row["finished"] and row["samples_seen"] == 64
    assert row["curve"]["samples"] == [32.0, 64.0] and row["test_samples"] == 5
    assert "| paper-optimizer |" in (tmp_path / "report" / "gap.md").read_text()
    assert (tmp_path / "report" / "gap.png").stat().st_size > 10_000

    # --earlier: an arm whose run folder is gone keeps its row from the earlier report; one with a folder
    # is read from the folder
    earlier = tmp_path / "earlier.json"
    edited = {**row, "arm": "full-128", "test_mpjpe_cm": 99.0}
    earlier.write_text(json.dumps({"arms": [edited, {**row, "test_mpjpe_cm": 99.0}]}))
    again = _tool("report", "--runs", str(runs), "--out", str(tmp_path / "report" / "both"),
                  "--arms", "paper-optimizer,full-128,compact-128", "--earlier", str(earlier))
    assert again.returncode == 0, again.stderr
    rows = json.loads((tmp_path / "report" / "both.json").read_text())["arms"]
    assert [r["arm"] for r in rows] == ["paper-optimizer", "full-128"]
    assert rows[0] == row and rows[1] == edited

    # the error parts of the same weights on the same masks start at eval's MPJPE and end at its PA-MPJPE
    parts = _tool("errors", str(arm / "best.pt"), "--data", f"{data}/paper:test", "--max-samples", "5",
                  "--out", str(tmp_path / "report" / "parts"), "--labels", "tiny arm")
    assert parts.returncode == 0, parts.stderr
    row = json.loads((tmp_path / "report" / "parts.json").read_text())["rows"][0]
    refined = json.loads((arm / "eval_test.json").read_text())["results"][0]["stages"]["refined"]
    assert row["count"] == 5
    assert abs(row["mpjpe"] - refined["mpjpe_cm"]) < 1e-3 and abs(row["after_scale"] - refined["pa_mpjpe_cm"]) < 1e-3
    assert row["centroid_offset_xy"] <= row["centroid_offset"] + 1e-9
    assert row["label"] == "tiny arm" and row["weights"] == str(arm / "best.pt")
    assert "| tiny arm | 5 |" in (tmp_path / "report" / "parts.md").read_text()
    mismatched = _tool("errors", str(arm / "best.pt"), "--data", f"{data}/paper:test", "--out",
                       str(tmp_path / "report" / "none"), "--labels", "a,b")
    assert mismatched.returncode == 2 and "--labels names 2 weights; 1 were given" in mismatched.stderr
