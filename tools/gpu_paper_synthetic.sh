#!/usr/bin/env bash
# The paper's synthetic experiment (Tables 1-2) at the paper's own scale, on one GPU, in one command:
# generate the protocol's data, train the recipe paper-synthetic (full ResNet18 at 224 x 224, the
# paper's refine head and loss, Adam 1e-4, ReduceLROnPlateau, batch 32, epochs of one view per
# training pose: 150 x 4,000 samples), evaluate Tables 1-2 on the pose-disjoint test split.
#
#   tools/gpu_paper_synthetic.sh OUT
#
# Needs only the repository (its src/ is put on PYTHONPATH) and the installed packages: no download.
# The whole job is held to about 10 minutes of wall time by the training's clock (train.max_minutes,
# default 7.5); a run the clock stops keeps the best of the epochs it finished (best.pt, the paper's
# choice), and summary.json / timing.json say how many of the 150 epochs that was.
#
# OUT receives: paper-synthetic-gpu.pt (inference weights, float16), config.yaml, epochs.csv,
# steps.csv, summary.json, loss_curve.png, eval_paper_test.txt / .json (Tables 1-2), cards/ (the
# datasets' cards) and timing.json (seconds per phase, epochs done, the device).
#
# Environment:
#   M2H_TINY=1          a tiny budget (a few masks, 2 steps of 4 per epoch, 2 epochs): the CPU test's
#   M2H_TRAIN_MINUTES   the training's wall-clock budget in minutes (default 7.5)
#   M2H_WORKERS         data-loading processes (default 8)
#   M2H_WORK            folder for the data and the run's checkpoints (default: a temporary folder in
#                       /dev/shm where there is one, removed at the end; the data take 0.5 GB, and
#                       last.pt, 0.5 GB with the optimiser's state, is written after every epoch)
#   PYTHON              the interpreter (default python3)
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT" >&2
    exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
REPO=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${M2H_WORK:-}" ]; then
    WORK=$M2H_WORK
    mkdir -p "$WORK"
else
    WORK=$(mktemp -d -p "$( [ -d /dev/shm ] && [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")")
    trap 'rm -rf "$WORK"' EXIT
fi

if [ "${M2H_TINY:-0}" = 1 ]; then
    TRAIN_POSES=4; TEST_POSES=2; VAL_POSES=1; EVAL_SAMPLES=10
    BUDGET=(--set train.epochs=2 --set train.max_steps_per_epoch=2 --set train.batch_size=4 --set train.val_batches=1)
else
    TRAIN_POSES=4000; TEST_POSES=400; VAL_POSES=400; EVAL_SAMPLES=2000
    BUDGET=(--set train.val_batches=8)  # 256 validation masks per epoch: their exact masks (mIoU) are drawn on the CPU
fi
MINUTES=${M2H_TRAIN_MINUTES:-7.5}
WORKERS=${M2H_WORKERS:-8}

# what the job imports, checked before minutes of work depend on it
"$PYTHON" - "${M2H_TINY:-0}" <<'EOF'
import importlib.util
import sys

missing = [name for name in ("torch", "torchvision", "numpy", "scipy", "yaml", "matplotlib", "tqdm", "PIL")
           if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"the job needs these packages, not installed here: {', '.join(missing)}")
import torch

if sys.argv[1] != "1" and not torch.cuda.is_available():
    sys.exit("no CUDA device: the full job is a GPU job (M2H_TINY=1 runs its tiny budget anywhere)")
EOF

now() { date +%s.%N; }
t0=$(now)
"$PYTHON" -m mask2hand synth paper --out "$WORK/data/paper" --seed 0 --train-poses "$TRAIN_POSES" \
    --test-poses "$TEST_POSES" --overwrite
"$PYTHON" -m mask2hand synth paper --out "$WORK/data/paper-val" --seed 1 --train-poses 0 \
    --test-poses "$VAL_POSES" --overwrite
t1=$(now)
rm -rf "$WORK/run"
"$PYTHON" -m mask2hand train paper-synthetic --out "$WORK/run" --quiet \
    --set "data.generate={}" --set "data.train=$WORK/data/paper:train" \
    --set "data.val=$WORK/data/paper-val:test" --set "data.test=$WORK/data/paper:test" \
    --set "data.workers=$WORKERS" --set "train.max_minutes=$MINUTES" "${BUDGET[@]}"
t2=$(now)
"$PYTHON" -m mask2hand eval "$WORK/run/best.pt" "$WORK/data/paper:test" --max-samples "$EVAL_SAMPLES" \
    --json "$OUT/eval_paper_test.json" > "$OUT/eval_paper_test.txt"
t3=$(now)

for name in config.yaml epochs.csv steps.csv summary.json loss_curve.png; do
    cp "$WORK/run/$name" "$OUT/"
done
mkdir -p "$OUT/cards"
cp "$WORK/data/paper/card.json" "$OUT/cards/paper.json"
cp "$WORK/data/paper-val/card.json" "$OUT/cards/paper-val.json"
"$PYTHON" - "$WORK/run" "$OUT" "$t0" "$t1" "$t2" "$t3" <<'EOF'
import json
import sys
from pathlib import Path

import torch

from mask2hand.nn.checkpoint import export_weights, read_file

run, out = Path(sys.argv[1]), Path(sys.argv[2])
t0, t1, t2, t3 = (float(t) for t in sys.argv[3:7])
summary = json.loads((run / "summary.json").read_text())
config = read_file(run / "best.pt")["config"]
device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
export_weights(read_file(run / "best.pt"), out / "paper-synthetic-gpu.pt",
               training_summary={**summary, "device": device})
timing = {"device": device, "data_seconds": round(t1 - t0, 1), "train_seconds": round(t2 - t1, 1),
          "eval_seconds": round(t3 - t2, 1), "epochs_done": summary["epochs_done"],
          "epochs_planned": config["train"]["epochs"], "stop_reason": summary["stop_reason"],
          "samples_per_second": summary["samples_per_second_this_run"]}
(out / "timing.json").write_text(json.dumps(timing, indent=2))
print(f"trained {timing['epochs_done']} of {timing['epochs_planned']} epochs ({timing['stop_reason']}) on {device}; "
      f"data {timing['data_seconds']} s, training {timing['train_seconds']} s, evaluation {timing['eval_seconds']} s; "
      f"records in {out}")
EOF
