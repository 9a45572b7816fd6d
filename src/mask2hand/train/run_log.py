"""What a training run writes into its folder besides checkpoints: steps.csv and epochs.csv, the
optional TensorBoard events, the loss curve and summary.json at the end; and the tidying a
resumed run does (rows logged after its checkpoint, temporary files of a killed run)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from mask2hand.utils.files import stale_temp_files, write_text_atomic
from mask2hand.version import JSON_SCHEMA_VERSION


@dataclass
class RunResult:
    out_dir: Path
    epochs_done: int
    steps_done: int
    best_val_loss: float
    stop_reason: str  # "finished", "time budget" or "interrupted" (Ctrl-C)
    samples_per_second: float


def remove_stale_temp_files(out_dir: Path) -> None:
    """Delete the temporary files a killed run left in its folder (a checkpoint's is ~26 MB): only
    atomic_path's, nothing else in the folder. Only this run writes into its folder."""
    for stale in stale_temp_files(out_dir):
        stale.unlink(missing_ok=True)


def trim_csv(path: Path, last: float) -> None:
    """Keep the header and the rows of a log whose first column (a step or epoch count) is at most `last`."""
    if not path.exists():
        return
    rows = path.read_text().splitlines()
    kept = [rows[0]] + [r for r in rows[1:] if float(r.split(",")[0]) <= last]
    write_text_atomic(path, "\n".join(kept) + "\n")


class RunLog:
    """CSV logs, optional TensorBoard, and the end-of-run curve and summary (rank 0 only)."""

    def __init__(self, out_dir: Path, active: bool):
        self.out_dir, self.active = out_dir, active
        self.tensorboard = None
        if not active:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional
            self.tensorboard = None
        self.steps_file = out_dir / "steps.csv"
        if not self.steps_file.exists():
            self.steps_file.write_text("step,epoch,loss\n")

    def step(self, step: int, epoch: int, loss: float) -> None:
        if not self.active:
            return
        with self.steps_file.open("a") as f:
            f.write(f"{step},{epoch},{loss:.9g}\n")
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("train/loss_step", loss, step)

    def epoch(self, epoch: float, lr: float, train: dict, val: dict, samples_per_s: float) -> None:
        """A row of epochs.csv: `epoch` epochs done (a fraction for a sitting's last part)."""
        if not self.active:
            return
        row = {"epoch": epoch, "lr": lr, "samples_per_s": samples_per_s}
        row.update({f"train_{k}": v for k, v in train.items()})
        row.update({f"val_{k}": v for k, v in val.items()})
        path = self.out_dir / "epochs.csv"
        exists = path.exists()
        header = list(row)
        if exists:
            with path.open() as f:
                header = next(csv.reader(f))
        with path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow(row)
        if self.tensorboard is not None and float(epoch).is_integer():  # its steps are whole epochs
            for key, value in row.items():
                if key != "epoch":
                    self.tensorboard.add_scalar(key.replace("_", "/", 1), value, int(epoch))

    def finish(self, result: RunResult, config) -> None:
        from mask2hand.train.curves import plot_loss_curves

        if self.tensorboard is not None:
            self.tensorboard.close()
        plot_loss_curves(self.out_dir)
        summary = {"schema_version": JSON_SCHEMA_VERSION, "name": config.name, "epochs_done": result.epochs_done,
                   "steps_done": result.steps_done,
                   "best_val_loss": result.best_val_loss, "stop_reason": result.stop_reason,
                   "samples_per_second_this_run": result.samples_per_second}
        write_text_atomic(self.out_dir / "summary.json", json.dumps(summary, indent=2))
