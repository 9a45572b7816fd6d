"""tools/gpu_paper_synthetic.sh, the GPU job of the paper's Tables 1-2, run on the CPU with its tiny budget."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from mask2hand.nn.checkpoint import load_network

REPO = Path(__file__).resolve().parents[1]


def test_the_gpu_job_runs_end_to_end_on_a_tiny_budget(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = {**os.environ, "M2H_TINY": "1", "M2H_WORKERS": "0", "M2H_WORK": str(work), "PYTHON": sys.executable,
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_paper_synthetic.sh"), str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "trained 2 of 2 epochs (finished) on cpu" in proc.stdout

    timing = json.loads((out / "timing.json").read_text())
    assert timing["epochs_done"] == timing["epochs_planned"] == 2
    assert all(timing[key] > 0 for key in ("data_seconds", "train_seconds", "eval_seconds"))
    # the paper's network and schedule, as trained
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["name"] == "paper-synthetic" and config["data"]["one_view_per_pose"]
    assert (config["train"]["lr"], config["train"]["scheduler"], config["loss"]["preset"]) == (1e-4, "plateau", "paper")
    net, _ = load_network(out / "paper-synthetic-gpu.pt")
    assert (net.config.backbone_width, net.config.input_size, net.config.refine_head) == (1.0, 224, "paper")
    with (out / "epochs.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]
    # Tables 1-2 of the pose-disjoint test split
    tables = json.loads((out / "eval_paper_test.json").read_text())
    refined = tables["results"][0]["stages"]["refined"]
    assert tables["results"][0]["num_samples"] == 10
    assert all(math.isfinite(refined[key]) and refined[key] > 0 for key in ("mpjpe_cm", "pa_mpjpe_cm"))
    assert "Procrustes aligned" in (out / "eval_paper_test.txt").read_text()
    cards = {name: json.loads((out / "cards" / f"{name}.json").read_text()) for name in ("paper", "paper-val")}
    assert cards["paper"]["counts"] == {"train": 20, "test": 10} and cards["paper-val"]["seed"] == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU the full job would start")
def test_the_full_gpu_job_refuses_a_machine_without_cuda_at_once(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "M2H_WORK": str(tmp_path / "work")}
    env.pop("M2H_TINY", None)
    proc = subprocess.run(["bash", str(REPO / "tools" / "gpu_paper_synthetic.sh"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "work" / "data").exists() and list((tmp_path / "out").iterdir()) == []
