"""`mask2hand eval`: the paper's tables (section 4.1 metrics) for a checkpoint on a dataset.

Layout follows the paper: Tables 1-4 (not aligned: MPJPE, AUC of PCK, MPVPE, AUC of
PCV, mIoU, Dice; Procrustes aligned: PA-MPJPE, AUC, PA-MPVPE, AUC), one row per
output stage (preliminary, refined), and with noise the rows of Tables C1-C2 (one
per input condition). A third block goes beyond the paper: root-relative MPJPE and the
palm/back flip rate (mask2hand.evaluation.metrics).

A dataset made with another hand model than the network's (Anny, or MANO's FreiHAND for
an open-hand network) is scored on what both share: joints and masks; its vertices are
another mesh and are not compared (the result's notes say so). Where the dataset stores
the hand-only mask beside the full one (masks with a forearm), the network gets the full mask
(with the arm and any noise, as a user would give it) and mIoU and Dice compare the answer
with the hand-only mask: the network is asked for the hand, not the arm.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from mask2hand.errors import Mask2HandError
from mask2hand.utils.files import write_text_atomic
from mask2hand.version import JSON_SCHEMA_VERSION

UNALIGNED_COLUMNS = [("mpjpe_cm", "MPJPE (cm)"), ("auc_pck", "AUC of PCK"), ("mpvpe_cm", "MPVPE (cm)"),
                     ("auc_pcv", "AUC of PCV"), ("miou", "mIoU"), ("dice", "Dice")]
ALIGNED_COLUMNS = [("pa_mpjpe_cm", "PA-MPJPE (cm)"), ("pa_auc_pck", "AUC of PCK"), ("pa_mpvpe_cm", "PA-MPVPE (cm)"),
                   ("pa_auc_pcv", "AUC of PCV")]
BEYOND_COLUMNS = [("rr_mpjpe_cm", "root-relative MPJPE (cm)"), ("flip_rate", "palm/back flips"),
                  ("flips_judged", "masks judged")]
MIN_SENSOR_SIZE = 8  # pixels: the smallest simulated sensor side `evaluate` accepts


@dataclass
class ConditionResult:
    """Metrics of one input condition ("clean" or "kind:level"): stage -> summary dict."""

    condition: str
    stages: dict[str, dict[str, float]]
    num_samples: int
    notes: list[str] = field(default_factory=list)


def parse_noise(spec: str):
    """"kind:level" -> NoiseConfig applying exactly that noise to every mask."""
    from mask2hand.data.noise import NoiseConfig

    kind, sep, level = spec.partition(":")
    if not sep or not level.isdigit():
        raise Mask2HandError(f"--noise must look like KIND:LEVEL (e.g. merge:2), got '{spec}'")
    return NoiseConfig(kinds=(kind,), severities=(int(level),), probability=1.0)


def network_inputs(masks: torch.Tensor, K: torch.Tensor, size: int,
                   crop_margin: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks (B,H,W) and K (B,3,3) -> the network's inputs (B,S,S) and intrinsics (B,3,3),
    prepared exactly as `Mask2Hand.predict` prepares a mask (mask2hand.image.masks.resample_masks)."""
    from mask2hand.image.masks import resample_masks

    inputs, K_model = resample_masks(masks.cpu().numpy(), K.cpu().numpy(), size, crop_margin)
    return torch.from_numpy(inputs), torch.from_numpy(K_model.astype(np.float32))


def evaluate(net, source: str, noise: str | None = None, batch_size: int = 64, max_samples: int | None = None,
             device: str | torch.device = "cpu", seed: int = 0, sensor_size: int | None = None,
             verify: bool = False) -> ConditionResult:
    """Run `net` over a dataset ("folder:split" or a FreiHAND root:split) and measure every metric.

    What the network is given and what it is scored against: `network_outputs`. mIoU and Dice
    compare the final mesh's exact mask with the input mask (the hand-only mask where the
    dataset has one) at the resolution the dataset delivers it (the sensor's, or the source's).
    """
    from mask2hand.evaluation.metrics import EvaluationAccumulator

    run = network_outputs(net, source, noise=noise, batch_size=batch_size, max_samples=max_samples, device=device,
                          seed=seed, sensor_size=sensor_size, verify=verify)
    accumulator = EvaluationAccumulator()
    faces = net.hand.faces
    for output, scored in run.batches:
        accumulator.update(output, scored, K=scored.K, faces=faces)
    result = accumulator.result()
    stages = {"preliminary": result.preliminary.summary()}
    if result.refined is not None:
        stages["refined"] = result.refined.summary()
    condition = noise or "clean"
    if sensor_size is not None:
        condition += f" @{sensor_size}px"
    return ConditionResult(condition=condition, stages=stages, num_samples=result.num_samples,
                           notes=run.notes + result.notes)


@dataclass
class NetworkOutputs:
    """The network's answers over a dataset. batches: an iterator of (Mask2HandOutput, HandBatch)
    pairs, the batch being what the answer is scored against (its mask the hand-only one where
    the dataset has one); notes: what the dataset lets be compared (see `evaluate`)."""

    batches: Iterator[tuple[Any, Any]]
    notes: list[str]


def network_outputs(net, source: str, noise: str | None = None, batch_size: int = 64,
                    max_samples: int | None = None, device: str | torch.device = "cpu", seed: int = 0,
                    sensor_size: int | None = None, verify: bool = False) -> NetworkOutputs:
    """`net`'s answers for the first max_samples masks of a dataset ("folder:split" or a FreiHAND
    root:split), with `noise` ("kind:level") applied to every mask.

    The masks reach the network the way `mask2hand predict` would give them, when that
    differs from training: a cropping network (NetConfig.input_crop) gets the square around
    the hand found from the (possibly noisy) mask itself, and with `sensor_size` the masks are
    first resampled to sensor_size x sensor_size (a low-resolution sensor's picture), then
    prepared. Otherwise the dataset is read at the network's input size, as in training.
    verify: check the dataset files' SHA-256 first (mask2hand.data.storage). The dataset is
    checked here; the batches are computed as they are read, without gradients, in eval mode.
    """
    from mask2hand.data.dataset import MaskDataset, collate_samples
    from mask2hand.data.storage import split_source

    folder, split = split_source(source)
    if not folder.exists():
        raise Mask2HandError(f"dataset not found: {folder}")
    if sensor_size is not None and sensor_size < MIN_SENSOR_SIZE:
        raise Mask2HandError(f"the sensor size must be at least {MIN_SENSOR_SIZE} pixels, got {sensor_size}")
    noise_config = parse_noise(noise) if noise else None
    size = net.config.model_input_size
    prepared = net.config.input_crop is not None or sensor_size is not None
    dataset = MaskDataset(folder, split=split, noise=noise_config, resolution=sensor_size if prepared else size,
                          distance_field=False, seed=seed, verify=verify, network_hand=net.hand.identity)
    if not dataset.labelled:
        raise Mask2HandError(f"{folder} holds unlabelled masks (no joints or vertices): there is nothing to "
                             "evaluate against")
    notes = [] if dataset.with_vertices else [f"the dataset's hands are '{dataset.made_with['name']}', the network's "
                                  f"'{net.hand.name}': joints and masks are compared, vertices are not"]
    indices = range(len(dataset)) if max_samples is None else range(min(max_samples, len(dataset)))
    loader = DataLoader(torch.utils.data.Subset(dataset, list(indices)), batch_size=batch_size,
                        collate_fn=collate_samples)

    def batches() -> Iterator[tuple[Any, Any]]:
        net.eval()
        with torch.no_grad():
            for batch in loader:
                batch = batch.to(device)
                # the network gets the full mask, arm and noise included, as a user gives it
                if prepared:
                    masks, K = network_inputs(batch.mask, batch.K, size, net.config.input_crop)
                    output = net(masks.to(device), K.to(device))
                else:
                    output = net(batch.mask, batch.K)
                yield output, (batch if batch.hand_mask is None else replace(batch, mask=batch.hand_mask))

    return NetworkOutputs(batches=batches(), notes=notes)


def format_tables(results: list[ConditionResult], align: str = "both") -> str:
    """The paper's table layout as text: one block for unaligned and/or aligned metrics."""
    blocks = []
    groups = {"none": [("Not aligned", UNALIGNED_COLUMNS)], "procrustes": [("Procrustes aligned", ALIGNED_COLUMNS)]}
    groups["both"] = groups["none"] + groups["procrustes"]
    for title, columns in groups[align] + [("Beyond the paper", BEYOND_COLUMNS)]:
        header = ["input", "output"] + [label for _, label in columns]
        rows = []
        for res in results:
            for stage, summary in res.stages.items():
                rows.append([res.condition, stage] + [_fmt(summary.get(key)) for key, _ in columns])
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        lines = [f"{title} ({results[0].num_samples} samples)",
                 "  ".join(h.ljust(w) for h, w in zip(header, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
        blocks.append("\n".join(lines))
    notes = list(dict.fromkeys(note for res in results for note in res.notes))
    if notes:
        blocks.append("\n".join(f"note: {note}" for note in notes))
    return "\n\n".join(blocks)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"


def check_writable(path: str | Path, name: str) -> None:
    """Raise Mask2HandError unless a file can be written at `path` (as write_results does:
    missing folders are created), trying a temporary file in its nearest existing folder.

    name: how the user gave the path (e.g. "--json"), for the message.
    """
    path = Path(path)
    if path.is_dir():
        raise Mask2HandError(f"{name} {path} is a folder; give a file name, e.g. {path / 'eval.json'}")
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise Mask2HandError(f"{name} {path} cannot be written ({exc.strerror or exc}); choose another path") from None


def write_results(results: list[ConditionResult], path: str | Path, extra: dict | None = None) -> Path:
    payload = {"schema_version": JSON_SCHEMA_VERSION, **(extra or {}),
               "results": [{"condition": r.condition, "num_samples": r.num_samples, "stages": r.stages,
                            "notes": r.notes} for r in results]}
    return write_text_atomic(path, json.dumps(payload, indent=2))
