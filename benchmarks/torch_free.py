"""The torch-free install against the full one: venv size, and a cold `mask2hand predict` of one mask.

A fresh venv gets the base install only (`python3 -m venv VENV && VENV/bin/pip install .`:
NumPy, Pillow, OpenCV, imageio, onnxruntime, no torch); it is checked to hold no torch. Rows:

- size: the fresh venv's files against this interpreter's venv (the full install: torch and
  its CUDA libraries, the extras, the test tools), in MB;
- cold one-mask predict: `mask2hand predict examples/open_palm.png --out DIR` in a new process,
  by the fresh venv (shipped ONNX model on onnxruntime) and by this venv (shipped PyTorch
  weights), --runs times each in turns so that both see the machine's load alike: median and
  best wall seconds, and the median CPU seconds (user + system), which the load disturbs less;
- imports: `python -c "import torch"` and `"import torch, torchvision"` in this venv, what the
  torch path saved by building ResNet's BasicBlock itself (mask2hand.nn.backbone);
- the 12 examples predicted by the fresh venv: the rebuilt parameters' residual
  (params_residual_mm, NumPy Levenberg-Marquardt) and the joints' largest difference from the
  torch path's.

Goal: the torch-free cold one-mask run under 1 s (wall, median).

Usage: python benchmarks/torch_free.py [--venv /tmp/tf-venv] [--runs 5] [--quick]
(--venv: reused if it exists, else made there; --quick: two runs, no JSON written.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import print_table, write_json

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "open_palm.png"
GOAL_COLD_S = 1.0


def folder_mb(folder: Path) -> float:
    """Total size of the files under `folder` (links not followed), MB."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            path = Path(parent) / name
            if not path.is_symlink():
                total += path.stat().st_size
    return total / 1e6


def make_base_venv(venv: Path) -> None:
    """A venv with `pip install ROOT` (base dependencies only), unless one is already there."""
    if not (venv / "bin" / "mask2hand").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(ROOT)], check=True)
    probe = "import importlib.util as u; print(u.find_spec('torch') is None and u.find_spec('matplotlib') is None)"
    if subprocess.run([str(venv / "bin" / "python"), "-c", probe], capture_output=True, text=True,
                      check=True).stdout.strip() != "True":
        raise SystemExit(f"{venv} has torch or matplotlib: not a base install")


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of one run of `command`, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=Path("/tmp/tf-venv"), help="the base-install venv")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="two runs, no JSON: checks that it runs")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    make_base_venv(args.venv)
    full_venv = Path(sys.prefix)
    base_packages = json.loads(subprocess.run([str(args.venv / "bin" / "pip"), "list", "--format", "json"],
                                              capture_output=True, text=True, check=True).stdout)

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        commands = {"torch-free (base install, ONNX)": [str(args.venv / "bin" / "mask2hand"), "predict", str(EXAMPLE),
                                                        "--out", str(out / "onnx")],
                    "torch (full install, PyTorch)": [str(full_venv / "bin" / "mask2hand"), "predict", str(EXAMPLE),
                                                      "--out", str(out / "torch")]}
        imports = {"python -c 'import torch'": [sys.executable, "-c", "import torch"],
                   "python -c 'import torch, torchvision'": [sys.executable, "-c", "import torch, torchvision"]}
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in (*commands, *imports)}
        for _ in range(runs):  # in turns: every command sees the same stretch of the machine's load
            for name, command in {**commands, **imports}.items():
                samples[name].append(timed(command))

        # the 12 examples through the torch-free install, against the torch path's joints
        examples = sorted((ROOT / "examples").glob("*.png"))
        for name, venv in (("onnx", args.venv), ("torch", full_venv)):
            subprocess.run([str(venv / "bin" / "mask2hand"), "predict", *map(str, examples), "--out",
                            str(out / f"all-{name}"), "--no-figure"], check=True, capture_output=True, cwd=ROOT)
        answers = {name: [json.loads((out / f"all-{name}" / f"{p.stem}.json").read_text()) for p in examples]
                   for name in ("onnx", "torch")}

    rows = [{"run": name, "wall_median_s": statistics.median(w for w, _ in s), "wall_best_s": min(w for w, _ in s),
             "cpu_median_s": statistics.median(c for _, c in s)} for name, s in samples.items()]
    residual = {key: [a["params_residual_mm"][key] for a in answers["onnx"]] for key in ("joints", "vertices")}
    joints_diff_mm = max(float(np.abs(np.subtract(a["joints"], b["joints"])).max()) * 1000
                         for a, b in zip(answers["onnx"], answers["torch"]))
    sizes = {"base_venv_mb": folder_mb(args.venv), "full_venv_mb": folder_mb(full_venv)}
    cold = rows[0]["wall_median_s"]

    print(f"venv sizes: base install {sizes['base_venv_mb']:,.0f} MB ({len(base_packages)} packages), "
          f"this venv {sizes['full_venv_mb']:,.0f} MB")
    print(f"{runs} run(s) each, in turns{' (quick)' if args.quick else ''}")
    print_table(rows, ["run", "wall_median_s", "wall_best_s", "cpu_median_s"])
    print(f"torch-free rebuild over {len(examples)} examples: params residual joints mean "
          f"{np.mean(residual['joints']):.2f} mm (max {max(residual['joints']):.2f}), vertices mean "
          f"{np.mean(residual['vertices']):.2f} mm (max {max(residual['vertices']):.2f}); joints vs the torch "
          f"path: max {joints_diff_mm:.4f} mm")
    print(f"goal: torch-free cold one-mask predict < {GOAL_COLD_S} s: {cold:.2f} s "
          f"({'met' if cold < GOAL_COLD_S else 'missed'})")
    if args.quick:
        return
    write_json("torch_free", {"runs": runs, "example": EXAMPLE.name, **sizes,
                              "base_packages": sorted(f"{p['name']}=={p['version']}" for p in base_packages),
                              "rows": rows, "goal_cold_s": GOAL_COLD_S, "cold_goal_met": cold < GOAL_COLD_S,
                              "examples": len(examples),
                              "params_residual_mm": {k: {"mean": float(np.mean(v)), "max": float(max(v))}
                                                     for k, v in residual.items()},
                              "max_joint_diff_vs_torch_mm": joints_diff_mm})


if __name__ == "__main__":
    main()
