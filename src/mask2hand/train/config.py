"""Training recipes: dataclasses loaded from the YAML files in configs/ plus overrides.

A recipe has five sections (six for an adaptation run):
  network  the NetConfig of mask2hand.nn (hand model, PCs, refine, input size, ...)
  data     where the training / validation / test sets are and how they are read
  loss     a LossWeights preset plus per-term overrides
  train    optimiser, schedule, batch size, epochs, time budget
  seed     the one seed everything random derives from
  adapt    (`mask2hand adapt` only) the self-supervised objective and its teacher
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from mask2hand.data.dataset import SensorConfig
from mask2hand.data.noise import NoiseConfig
from mask2hand.losses.self_supervised import AdaptWeights
from mask2hand.train.recipes import resolve_recipe
from mask2hand.utils.dataclass_config import apply_overrides, dataclass_from_dict, shown, to_dict
from mask2hand.errors import Mask2HandError


@dataclass
class GenerateSpec:
    """How to synthesise a dataset folder that does not exist yet (as `mask2hand synth` would).

    corpus "broad" and "natural": train / val / test are sample counts. corpus "paper": train /
    test are numbers of poses (5 views each, the paper's 4,000 / 400); val must be 0.
    hand: the hand model that makes the masks ("open", "mano", "anny"; None: the network's own).
    forearm / shape_variety: the share of samples with a forearm / of hands with the extra shape
    variety (None: the corpus's default, see mask2hand.data.synthetic).
    """

    corpus: Literal["paper", "broad", "natural"] = "broad"
    seed: int = 0
    train: int = 100_000
    val: int = 2_000
    test: int = 2_000
    hand: Literal["open", "mano", "anny"] | None = None
    forearm: float | None = None
    shape_variety: float | None = None


@dataclass
class DataSection:
    """Dataset folders (written by `mask2hand synth` / convert_freihand) or a FreiHAND root.

    train / val / test: a dataset folder and the split after a colon ("data/broad:train"),
    or a FreiHAND v2 root with a split of the paper's partition ("/data/FreiHAND:val").
    train may also be a mixture: a mapping of such sources to their shares of the training
    batches (each batch is drawn from one source; see mask2hand.train.mixture). A source made
    with another hand model than the network's supervises what the two share: the 3-D joints
    (aligned and not) and their 2-D projections, not the vertices.
    generate: folder -> how to create it when it does not exist yet. one_view_per_pose: the paper's synthetic protocol (one of
    the 5 views of each pose per epoch). augment: the paper's FreiHAND augmentation
    (rotation [-pi, pi), scale [0.9, 1.1)). noise: silhouette noise applied to training
    masks (kinds, severities, probability; see mask2hand.data.noise), null for none.
    crop_jitter_shift / crop_jitter_scale: for a cropping network (network.input_crop), the
    training crops' random shift (fraction of the window) and size factor range.
    sensor: for a cropping network, low-resolution sensors (sizes, probability; see
    mask2hand.data.dataset.SensorConfig), null for none. verify: check the SHA-256 of every
    dataset file against its card before training (sizes are always checked).
    """

    train: str | dict[str, float] = "data/broad:train"
    val: str = "data/broad:val"
    test: str | None = None
    generate: dict[str, GenerateSpec] = field(default_factory=dict)
    one_view_per_pose: bool = False
    augment: bool = False
    noise: NoiseConfig | None = None
    workers: int = 1
    crop_jitter_shift: float = 0.0
    crop_jitter_scale: tuple[float, float] = (1.0, 1.0)
    sensor: SensorConfig | None = None
    verify: bool = False


@dataclass
class LossSection:
    """A LossWeights preset name and overrides of its fields."""

    preset: Literal["paper", "paper_ablation_bce", "paper_aligned_refined_only", "reference_code",
                    "cpu", "self_supervised"] = "paper"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSection:
    """Optimisation. scheduler "plateau" is the paper's ReduceLROnPlateau on the validation
    loss; "cosine" anneals to zero over the epochs. max_minutes stops a run (after a
    checkpoint) when its wall-clock budget is spent; null means no budget. init_from:
    fine-tune, starting from the weights of a checkpoint, a weights file or "default" (the
    shipped model) made with the same network settings and hand model; the optimiser,
    schedule and epoch count start afresh (a resumed run ignores it: its last.pt wins).
    """

    epochs: int = 150
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.0
    scheduler: Literal["plateau", "cosine", "none"] = "plateau"
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    warmup_steps: int = 0
    grad_clip: float | None = None
    max_minutes: float | None = None
    max_steps_per_epoch: int | None = None
    val_batches: int | None = None
    device: str = "auto"
    threads: int | None = None
    init_from: str | None = None


@dataclass
class AdaptSection:
    """Adapting to unlabelled masks (`mask2hand adapt`, mask2hand.train.adapt): the weights of the
    self-supervised objective (mask2hand.losses.self_supervised.AdaptWeights, used on batches
    without labels; labelled batches keep the `loss` section), and the teacher: "start" (the
    starting network, frozen), "ema" (a moving average of the student, decay `ema_decay` per
    step) or "none"."""

    weights: AdaptWeights = field(default_factory=AdaptWeights)
    teacher: Literal["start", "ema", "none"] = "ema"
    ema_decay: float = 0.998


@dataclass
class TrainConfig:
    name: str = "run"
    seed: int = 0
    network: dict[str, Any] = field(default_factory=dict)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)
    adapt: AdaptSection | None = None

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


def load_config(source: str | os.PathLike | dict, overrides: list[str] | None = None) -> TrainConfig:
    """A TrainConfig from a YAML file (a path, or a recipe name of mask2hand/configs) or a dict,
    with `section.key=value` overrides applied. The network section is checked against
    NetConfig and the loss section against LossWeights here, so errors surface before training."""
    if isinstance(source, dict):
        values = dict(source)
    else:
        path = resolve_recipe(source)
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise Mask2HandError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:300]})") from None
        except RecursionError:  # the YAML parser recurses per level of nesting
            raise Mask2HandError(f"{path}: nested too deeply to be a recipe") from None
        except ValueError as exc:  # e.g. an integer of more digits than Python converts
            raise Mask2HandError(f"{path}: a value cannot be read ({' '.join(str(exc).split())[:120]})") from None
    values = apply_overrides(values, overrides or [])
    config = dataclass_from_dict(TrainConfig, values, where="config")
    network_config(config).validate()
    loss_weights(config)
    check_values(config)
    return config


def check_values(config: TrainConfig) -> None:
    """Raise Mask2HandError for a number no run can mean (a negative or NaN learning rate, no
    epochs, an empty batch, ...), before any data is made or any step is taken.

    Optional limits (grad_clip, max_minutes, max_steps_per_epoch, val_batches, threads) may be
    null or 0, which the loop reads as "no limit".
    """
    train, data = config.train, config.data
    _check_range("seed", config.seed, low=0)
    _check_range("train.epochs", train.epochs, low=1)
    _check_range("train.batch_size", train.batch_size, low=1)
    _check_range("train.lr", train.lr, low=0, open_low=True)
    _check_range("train.weight_decay", train.weight_decay, low=0)
    _check_range("train.plateau_factor", train.plateau_factor, low=0, high=1, open_low=True, open_high=True)
    _check_range("train.plateau_patience", train.plateau_patience, low=0)
    _check_range("train.warmup_steps", train.warmup_steps, low=0)
    for name in ("grad_clip", "max_minutes", "max_steps_per_epoch", "val_batches", "threads"):
        _check_range(f"train.{name}", getattr(train, name), low=0)
    _check_range("data.workers", data.workers, low=0)
    _check_range("data.crop_jitter_shift", data.crop_jitter_shift, low=0, high=1)
    if len(data.crop_jitter_scale) != 2:
        raise Mask2HandError(f"config.data.crop_jitter_scale must be [low, high], got {list(data.crop_jitter_scale)}")
    low, high = data.crop_jitter_scale
    _check_range("data.crop_jitter_scale[0]", low, low=0, open_low=True)
    _check_range("data.crop_jitter_scale[1]", high, low=low)
    for folder, spec in data.generate.items():
        for name in ("seed", "train", "val", "test"):
            _check_range(f"data.generate.{folder}.{name}", getattr(spec, name), low=0)
        for name in ("forearm", "shape_variety"):
            _check_range(f"data.generate.{folder}.{name}", getattr(spec, name), low=0, high=1)
    if config.adapt is not None:
        _check_range("adapt.ema_decay", config.adapt.ema_decay, low=0, high=1, open_high=True)
    if isinstance(data.train, dict):
        if not data.train:
            raise Mask2HandError("config.data.train: a mixture needs at least one source")
        for source, share in data.train.items():
            _check_range(f"data.train.{source}", share, low=0, open_low=True)


def _check_range(where: str, value: float | int | None, low: float, high: float | None = None,
                 open_low: bool = False, open_high: bool = False) -> None:
    """Raise unless `value` is None or a finite number within the bounds (open ends excluded)."""
    if value is None:
        return
    inside = math.isfinite(value) and (value > low if open_low else value >= low)
    bounds = [f"{'>' if open_low else '>='} {low}"]
    if high is not None:
        inside = inside and (value < high if open_high else value <= high)
        bounds.append(f"{'<' if open_high else '<='} {high}")
    if not inside:
        raise Mask2HandError(f"config.{where} must be a number {' and '.join(bounds)}, got {shown(value)}")


def network_config(config: TrainConfig):
    from mask2hand.nn import NetConfig

    return dataclass_from_dict(NetConfig, config.network, where="config.network")


def loss_weights(config: TrainConfig):
    from dataclasses import replace

    from mask2hand.losses.objective import LossWeights

    base = getattr(LossWeights, config.loss.preset)()
    # typed like the rest of the recipe (unknown keys and wrong types are refused there)
    overrides = dataclass_from_dict(LossWeights, config.loss.overrides, where="config.loss.overrides")
    weights = replace(base, **{name: getattr(overrides, name) for name in config.loss.overrides})
    for name, value in to_dict(weights).items():
        if not isinstance(value, bool):
            _check_range(f"loss.{name}", value, low=0, open_low=name == "units_per_meter")
    return weights


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
