"""Make a training run's checkpoint a shipped model: src/mask2hand/weights/<its file> (default.pt
for --model default, the shipped default; see mask2hand.nn.pretrained.SHIPPED_MODELS).

Writes the inference-only weights (float16) of RUN/best.pt (or --checkpoint), with the
run's summary, the time it trained and the machine in the file's "training" record, and
copies the run's small records (config.yaml, epochs.csv, summary.json, loss_curve.png)
to docs/runs/<name>/ so the card can cite them. The evaluation tables are made
afterwards with `mask2hand eval default ...` and pasted into docs/MODEL_CARD.md (earlier
models' into docs/runs/HISTORY.md). The package's
ONNX twin of the weights (weights/default.onnx, for the torch-free install) is exported afresh
(tools/export_shipped_onnx.py).

Run: python tools/release_model.py RUN_DIR --name cpu-default-v3 [--checkpoint best.pt] [--model default]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

import torch

from mask2hand.nn.checkpoint import export_weights, read_file
from mask2hand.nn.pretrained import SHIPPED_MODELS
from mask2hand.utils.files import file_sha256

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling tools import
from export_shipped_onnx import export_shipped  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "mask2hand" / "weights"
RECORDS = ("config.yaml", "epochs.csv", "summary.json", "loss_curve.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the training run's folder")
    parser.add_argument("--checkpoint", default="best.pt", help="checkpoint in the run folder (default best.pt)")
    parser.add_argument("--name", required=True, help="release name, the records folder docs/runs/NAME")
    parser.add_argument("--model", default="default", choices=sorted(SHIPPED_MODELS),
                        help="the shipped model it becomes (default: default)")
    args = parser.parse_args()
    target = WEIGHTS / SHIPPED_MODELS[args.model].file

    payload = read_file(args.run / args.checkpoint)
    summary = json.loads((args.run / "summary.json").read_text()) if (args.run / "summary.json").is_file() else {}
    record = {
        "release": args.name, "checkpoint": args.checkpoint, "epoch": payload.get("epoch"),
        "step": payload.get("step"), "train_seconds": payload.get("train_seconds"), "run_summary": summary,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__},
    }
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    export_weights(payload, target, half=True, training_summary=record)
    records = ROOT / "docs" / "runs" / args.name
    records.mkdir(parents=True, exist_ok=True)
    for name in RECORDS:
        if (args.run / name).is_file():
            shutil.copyfile(args.run / name, records / name)
    size_mb = target.stat().st_size / 1e6
    print(f"wrote {target} ({size_mb:.1f} MB, sha256 {file_sha256(target)[:16]}...) from "
          f"{args.run / args.checkpoint} (step {payload.get('step')}); records in {records}")
    if export_shipped([args.model]):
        raise SystemExit("the ONNX export of the new weights failed its check; the ONNX file is the old one")


if __name__ == "__main__":
    main()
