"""The training loop behind `mask2hand train`: one process or many under torchrun.

Files in the run folder (rank 0 writes them all):
  config.yaml   the fully resolved recipe
  last.pt       checkpoint after every epoch and on interruption (resumable)
  best.pt       the checkpoint with the lowest validation loss (the paper's choice)
  epochs.csv    per epoch: every loss term, learning rate, validation loss and metrics; a sitting
                that ends inside an epoch (its time budget) adds a row for that part, numbered
                by the epochs done (e.g. 0.4)
  steps.csv     per optimiser step: total loss (for curves and the resume test)
  loss_curve.png, summary.json  at the end; TensorBoard events if tensorboard is installed
The logs are written by mask2hand.train.run_log, the generators' states saved by
mask2hand.train.rng_state.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from mask2hand.data.dataset import HandBatch, collate_samples
from mask2hand.nn.checkpoint import (check_hand_identity, float32_state, network_config_of,
                                  read_file, save_checkpoint)
from mask2hand.errors import Mask2HandError
from mask2hand.losses.objective import LossTerms, mask2hand_loss
from mask2hand.nn.pretrained import resolve_weights
from mask2hand.utils.files import write_text_atomic
from mask2hand.utils.interrupts import sigterm_as_keyboard_interrupt
from mask2hand.train.config import TrainConfig, check_values, dump_config, loss_weights, network_config
from mask2hand.train.data_setup import make_dataset, make_training_set
from mask2hand.train.distributed import DistInfo, broadcast_flag, init_distributed, reduce_sums, shutdown
from mask2hand.train.mixture import MixedBatchSampler
from mask2hand.train.sampler import EpochSampler
from mask2hand.train.val_metrics import batch_metric_sums
from mask2hand.train.rng_state import rng_state, set_rng_state
from mask2hand.train.run_log import RunLog, RunResult, remove_stale_temp_files, trim_csv


LOG_EVERY_STEPS = 100
"""With --verbose and no progress bar (not a terminal), a log line every this many steps."""


class Trainer:
    """Builds model, data and optimiser from a TrainConfig and trains, resumably.

    out_dir: the run folder. resume: continue from out_dir/last.pt (refused if the
    recipe's network or hand model differ from the checkpoint's).
    """

    def __init__(self, config: TrainConfig, out_dir: str | Path, resume: bool = False, quiet: bool = False,
                 verbose: bool = False):
        from mask2hand.nn import Mask2HandNet

        check_values(config)
        self.config = config
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise Mask2HandError(f"the run folder {self.out_dir} is a file; choose another --out")
        self.dist: DistInfo = init_distributed(config.train.device)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        # a progress bar only on a terminal; elsewhere (nohup, schedulers, `> log`) one line per epoch,
        # and with verbose one every LOG_EVERY_STEPS steps; quiet prints nothing
        self.quiet, self.verbose = quiet, verbose
        self.show_bar = not quiet and sys.stderr.isatty()

        self.net_config = network_config(config)
        self.loss_weights = loss_weights(config)
        self.net = Mask2HandNet(self.net_config).to(self.dist.device)
        self.model = self.net
        if self.dist.enabled:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.dist.device.index] if self.dist.device.type == "cuda" else None)

        if not resume and config.train.init_from:  # checked before any data is generated
            self._start_from(config.train.init_from)
        self._make_data()
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=config.train.lr,
                                          weight_decay=config.train.weight_decay)
        self.scheduler = self._make_scheduler()
        self.epoch, self.position, self.step, self.best_val = 0, 0, 0, math.inf
        self.partial_sums: dict[str, float] = {}
        self.train_seconds = 0.0
        if resume:
            self._resume()
        if not resume and self.dist.is_main:
            self._start_run_folder()

    # ----------------------------------------------------------------- set-up
    def _make_data(self) -> None:
        """Training and validation sets, their per-process samplers and loaders, and steps_per_epoch."""
        config = self.config
        size, crop = self.net_config.model_input_size, self.net_config.input_crop
        # the contour term is the distance field's only reader: a batch without it skips a transform per mask
        contour = self.loss_weights.contour > 0
        self.train_set, shares = make_training_set(config, resolution=size, hand=self.net.hand, crop_margin=crop,
                                                   quiet=self.quiet, distance_field=contour)
        self.val_set = make_dataset(config, "val", resolution=size, hand=self.net.hand, crop_margin=crop,
                                    quiet=self.quiet, distance_field=contour)
        self.sampler = MixedBatchSampler(self.train_set.sizes, shares, config.train.batch_size, seed=config.seed,
                                         rank=self.dist.rank, world_size=self.dist.world_size)
        self.val_sampler = EpochSampler(len(self.val_set), seed=config.seed, shuffle=False, rank=self.dist.rank,
                                        world_size=self.dist.world_size)
        loader_args = dict(num_workers=config.data.workers, collate_fn=collate_samples, persistent_workers=False,
                           pin_memory=self.dist.device.type == "cuda")
        self.train_loader = DataLoader(self.train_set, batch_sampler=self.sampler, **loader_args)
        self.val_loader = DataLoader(self.val_set, sampler=self.val_sampler, batch_size=config.train.batch_size,
                                     **loader_args)
        self.steps_per_epoch = len(self.sampler)
        if config.train.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, config.train.max_steps_per_epoch)
        if self.steps_per_epoch == 0:
            raise Mask2HandError(f"the training set has {len(self.train_set)} samples, fewer than one batch of "
                                 f"{config.train.batch_size} per process; lower train.batch_size")

    def _start_run_folder(self) -> None:
        """Create out_dir for a new run (refusing one that holds a run) with its config.yaml and no old logs."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if (self.out_dir / "last.pt").exists():
            raise Mask2HandError(f"{self.out_dir} already holds a run; pass --resume to continue it "
                                 "or choose another --out")
        remove_stale_temp_files(self.out_dir)
        write_text_atomic(self.out_dir / "config.yaml", dump_config(self.config))
        for name in ("epochs.csv", "steps.csv"):
            (self.out_dir / name).unlink(missing_ok=True)

    def _make_scheduler(self):
        kind = self.config.train.scheduler
        if kind == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=self.config.train.plateau_factor,
                patience=self.config.train.plateau_patience)
        total = max(1, self.config.train.epochs * self.steps_per_epoch)
        warmup = self.config.train.warmup_steps

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if kind == "cosine":
                return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
            return 1.0

        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)

    def _start_from(self, source: str) -> None:
        """Load the model weights of train.init_from (see TrainSection), checking they fit."""
        path = resolve_weights(source)
        payload = read_file(path)
        # a network that only adds a locator starts from the other's encoder and RefineNet
        adds_locator = (network_config_of(payload).get("locator_input") is None
                        and self.net_config.locator_input is not None)
        self._check_same_network(payload, f"train.init_from: {source}",
                                 "fine-tuning needs the same network (or the same one with a locator added)",
                                 without_locator=adds_locator)
        missing, unexpected = self.net.load_state_dict(float32_state(payload), strict=not adds_locator)
        if unexpected or any(not key.startswith("locator.") for key in missing):
            raise Mask2HandError(f"train.init_from: {path} does not fit this network "
                                 f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    def _check_same_network(self, payload: dict, source: str, advice: str, without_locator: bool = False) -> None:
        """Refuse a checkpoint or weights payload of another hand model or other network settings.

        Where the MANO file lies is no network setting (files do not keep it; the asset hash
        identifies the model), so it is left out of the comparison.
        """
        check_hand_identity(payload, self.net.hand.identity, source)
        stored = network_config_of(payload)
        ours = replace(self.net_config, hand_model_path=None)
        if without_locator:  # compared as the network it grows from
            ours = replace(ours, locator_input=None)
        theirs = network_config(TrainConfig(network=stored))
        if theirs != ours:
            differ = [f.name for f in fields(ours) if getattr(theirs, f.name) != getattr(ours, f.name)]
            settings = ", ".join(f"{name} {getattr(theirs, name)} (the recipe: {getattr(ours, name)})"
                                 for name in differ)
            to_match = " ".join(f"--set network.{name}={_yaml_value(getattr(theirs, name))}" for name in differ)
            raise Mask2HandError(f"{source} has other network settings: {settings}; {advice}: match them with "
                                 f"{to_match}")

    def _resume(self) -> None:
        path = self.out_dir / "last.pt"
        payload = read_file(path)
        if payload.get("format") != "mask2hand-checkpoint":
            raise Mask2HandError(f"{path} is a weights file, not a training checkpoint; it cannot be resumed")
        self._check_same_network(payload, str(path), "resume with the run's own config.yaml")
        try:
            self._restore(payload)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise Mask2HandError(f"{path} is incomplete or damaged ({type(exc).__name__}: {exc}); "
                                 "start a new run in another --out") from None
        if self.dist.is_main:
            self.best_val = self._saved_best_val()
            remove_stale_temp_files(self.out_dir)
            # drop rows logged after the checkpoint (a crash between checkpoints); epoch rows are
            # numbered by epochs done (a sitting's last part by its share: `progress`)
            trim_csv(self.out_dir / "steps.csv", self.step)
            trim_csv(self.out_dir / "epochs.csv", self.progress())

    def _restore(self, payload: dict) -> None:
        """Model, optimiser, schedule, generators and counters from a checkpoint payload."""
        self.net.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        set_rng_state(payload["rng"])
        self.epoch, self.position, self.step = int(payload["epoch"]), int(payload["position"]), int(payload["step"])
        self.best_val = float(payload["best_val"])
        self.partial_sums = dict(payload.get("partial_sums", {}))
        self.train_seconds = float(payload.get("train_seconds", 0.0))

    def _saved_best_val(self) -> float:
        """The validation loss of the run's best.pt (inf without one): what a new best must beat.

        Read from best.pt itself rather than trusted from last.pt, so that a run stopped
        between the two writes still replaces best.pt
        only with a better network.
        """
        path = self.out_dir / "best.pt"
        return float(read_file(path)["best_val"]) if path.is_file() else math.inf

    def _checkpoint_state(self) -> dict:
        return {
            "config": self.config.to_dict(), "hand": self.net.hand.identity, "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch, "position": self.position, "step": self.step, "best_val": self.best_val,
            "partial_sums": self.partial_sums, "rng": rng_state(), "train_seconds": self.train_seconds,
        }

    def _save(self, name: str, **changes) -> None:
        """Write checkpoint `name` of the run folder (rank 0), with `changes` to the current state."""
        if self.dist.is_main:
            save_checkpoint(self.out_dir / name, {**self._checkpoint_state(), **changes})

    # ----------------------------------------------------------------- steps
    def _train_step(self, batch: HandBatch) -> dict[str, float]:
        """One optimiser step on `batch`; its sample count and loss terms x count (see term_sums)."""
        batch = batch.to(self.dist.device, non_blocking=True)
        terms = self._loss_terms(batch)
        self.optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        if self.config.train.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.config.train.grad_clip)
        self.optimizer.step()
        if not isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step()
        if not torch.isfinite(terms.total):
            raise Mask2HandError(f"the loss became {terms.total.item()} at step {self.step}; lower train.lr "
                                 "or set train.grad_clip, then resume from last.pt")
        self._after_step()
        return term_sums(terms, len(batch))

    def _loss_terms(self, batch: HandBatch):
        """The loss of a training batch (on the device): LossTerms (or any object with `total` and
        `as_dict()`)."""
        output = self.model(batch.mask, batch.K, exact_silhouette=not self.loss_weights.needs_silhouette(),
                            hand_window=self._teacher_windows(batch))
        return mask2hand_loss(output, batch, self.loss_weights)

    def _after_step(self) -> None:
        """Called after every optimiser step (nothing here; see mask2hand.train.adapt)."""

    def _validation_sums(self, batch: HandBatch) -> dict[str, float]:
        """Loss terms and metrics of a validation batch (on the device), as sums over its samples."""
        output = self.net(batch.mask, batch.K, exact_silhouette=not self.loss_weights.needs_silhouette())
        sums = term_sums(mask2hand_loss(output, batch, self.loss_weights), len(batch))
        add_into(sums, batch_metric_sums(output, batch, self.net.hand.faces))
        return sums

    def _teacher_windows(self, batch: HandBatch) -> torch.Tensor | None:
        """For a network with a locator: the windows (B,3) its encoder trains on, the hands' own
        windows jittered by data.crop_jitter_shift / crop_jitter_scale (the located ones are never
        exact either; validation uses the located ones). None otherwise."""
        if self.net.locator is None or batch.hand_window is None:
            return None
        windows = batch.hand_window
        data = self.config.data
        n = windows.shape[0]
        low, high = data.crop_jitter_scale
        side = windows[:, 2:3] * (low + (high - low) * torch.rand(n, 1)).to(windows)
        shift = data.crop_jitter_shift * (2 * torch.rand(n, 2) - 1).to(windows) * side
        center = windows[:, :2] + 0.5 * windows[:, 2:3] + shift
        return torch.cat([center - 0.5 * side, side], dim=1)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Validation loss terms and point/mask metrics (means over the validation set)."""
        self.net.eval()
        sums: dict[str, float] = {}
        for i, batch in enumerate(self.val_loader):
            if self.config.train.val_batches and i >= self.config.train.val_batches:
                break
            add_into(sums, self._validation_sums(batch.to(self.dist.device)))
        self.net.train()
        return _means(sums, self.dist)[0]

    # ----------------------------------------------------------------- loop
    def run(self) -> RunResult:
        """Train until train.epochs are done, the time budget (train.max_minutes) is spent or the
        process is interrupted (Ctrl-C, SIGTERM); last.pt is saved in every case."""
        max_minutes = self.config.train.max_minutes
        clock = _RunClock(time.perf_counter(), max_minutes * 60 if max_minutes else None)
        logger = RunLog(self.out_dir, self.dist.is_main)
        self.net.train()
        sigterm_as_keyboard_interrupt()  # schedulers and `kill` stop a run with TERM: save last.pt on it
        stop_reason = self._train_epochs(clock, logger)
        if stop_reason != "finished":
            self._save("last.pt")
        result = RunResult(self.out_dir, self.epoch, self.step, self.best_val, stop_reason,
                           clock.samples_per_second())
        if self.dist.is_main:
            logger.finish(result, self.config)
        shutdown(self.dist)
        return result

    def _train_epochs(self, clock: _RunClock, logger: RunLog) -> str:
        """Train the remaining epochs; the RunResult.stop_reason."""
        try:
            while self.epoch < self.config.train.epochs:
                epoch_start = time.perf_counter()
                if not self._train_epoch(clock, logger):
                    self._log_partial_epoch(clock, logger)
                    return "time budget"
                self._end_epoch(time.perf_counter() - epoch_start, logger)
        except KeyboardInterrupt:
            if self.dist.is_main:
                print(f"\ninterrupted: saving {self.out_dir / 'last.pt'} (resume with --resume)", file=sys.stderr)
            return "interrupted"
        return "finished"

    def _train_epoch(self, clock: _RunClock, logger: RunLog) -> bool:
        """Train the current epoch from self.position on; False when the time budget stopped it."""
        cfg = self.config.train
        self.train_set.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch, start=self.position)
        progress = _progress(self.steps_per_epoch, self.position, f"epoch {self.epoch + 1}/{cfg.epochs}",
                             not self.show_bar or not self.dist.is_main)
        try:
            for batch in self.train_loader:
                if self.position >= self.steps_per_epoch:
                    break
                t0 = time.perf_counter()
                values = self._train_step(batch)
                self.train_seconds += time.perf_counter() - t0
                self._record_step(values, clock, logger, progress)
                # every process takes part in the flag's collective, so all stop after the same step
                if broadcast_flag(clock.over_budget(), self.dist):
                    return False
        finally:
            progress.close()
        return True

    def _record_step(self, values: dict[str, float], clock: _RunClock, logger: RunLog, progress) -> None:
        """Count a finished step: position, the epoch's partial sums (kept for resuming), steps.csv, progress."""
        self.step += 1
        self.position += 1
        add_into(self.partial_sums, values)
        clock.samples += int(values["count"]) * self.dist.world_size
        loss = values["total"] / values["count"]
        logger.step(self.step, self.epoch, loss)
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4g}", samples_s=f"{clock.samples_per_second():.0f}")
        if self.verbose and not self.show_bar and self.dist.is_main and self.step % LOG_EVERY_STEPS == 0:
            print(f"step {self.step} (epoch {self.epoch + 1}, {self.position}/{self.steps_per_epoch}): loss {loss:.4g}, "
                  f"{clock.samples_per_second():.0f} samples/s", file=sys.stderr, flush=True)

    def progress(self) -> float:
        """Epochs done, the current one's finished share included (1.25: a quarter into the second)."""
        return self.epoch + self.position / self.steps_per_epoch

    def _log_partial_epoch(self, clock: _RunClock, logger: RunLog) -> None:
        """A sitting that ends inside an epoch (its time budget) validates and logs that part of the
        epoch as a row of epochs.csv numbered by `progress` (a sitting shorter than an epoch leaves
        its losses too)."""
        if not 0 < self.position < self.steps_per_epoch:
            return
        train_means, _ = _means(self.partial_sums, self.dist)
        logger.epoch(self.progress(), self.optimizer.param_groups[0]["lr"], train_means, self.validate(),
                     clock.samples_per_second())

    def _end_epoch(self, epoch_seconds: float, logger: RunLog) -> None:
        """Validate, step a plateau scheduler, log the epoch and save last.pt (and best.pt when the
        validation loss improved)."""
        train_means, samples = _means(self.partial_sums, self.dist)
        val = self.validate()
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(val["total"])
        self.epoch += 1
        self.position = 0
        self.partial_sums = {}
        lr = self.optimizer.param_groups[0]["lr"]
        logger.epoch(self.epoch, lr, train_means, val, samples / max(epoch_seconds, 1e-9))
        if not self.quiet and self.dist.is_main:
            print(f"epoch {self.epoch}/{self.config.train.epochs}: train loss {train_means.get('total', float('nan')):.4g}, "
                  f"validation loss {val['total']:.4g}, lr {lr:.3g}, {samples / max(epoch_seconds, 1e-9):.0f} samples/s, "
                  f"{epoch_seconds / 60:.1f} min", file=sys.stderr, flush=True)
        if val["total"] < self.best_val:
            # best.pt first, and best_val only once it is written: an interruption in between
            # leaves a state that names the best.pt on disk, never one that is not there
            self._save("best.pt", best_val=val["total"])
            self.best_val = val["total"]
        self._save("last.pt")


@dataclass
class _RunClock:
    """Wall clock and sample count of this process's run (not of the resumed run as a whole).

    started: time.perf_counter() at the start; budget_s: seconds allowed (None: no limit);
    samples: training samples seen by all processes together.
    """

    started: float
    budget_s: float | None
    samples: int = 0

    def over_budget(self) -> bool:
        return self.budget_s is not None and time.perf_counter() - self.started > self.budget_s

    def samples_per_second(self) -> float:
        return self.samples / max(time.perf_counter() - self.started, 1e-9)


def term_sums(terms: LossTerms, n: int) -> dict[str, float]:
    """`count` n and every computed loss term x n: sums over samples, which add up across batches and ranks."""
    return {"count": float(n), **{name: value * n for name, value in terms.as_dict().items()}}


def add_into(sums: dict[str, float], values: dict[str, float]) -> None:
    """Add `values` into `sums` key by key (missing keys start at 0)."""
    for key, value in values.items():
        sums[key] = sums.get(key, 0.0) + value


def _means(sums: dict[str, float], dist: DistInfo) -> tuple[dict[str, float], float]:
    """Per-sample means of sums over samples (see term_sums), summed over all processes first,
    and the summed sample count (at least 1)."""
    totals = reduce_sums(sums, dist)
    count = max(totals.pop("count", 0.0), 1.0)
    return {k: v / count for k, v in totals.items()}, count


def _progress(total: int, initial: int, desc: str, disable: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=disable, leave=False, dynamic_ncols=True)


def _yaml_value(value) -> str:
    """A network setting as `--set` spells it (None as null, booleans in lower case)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
