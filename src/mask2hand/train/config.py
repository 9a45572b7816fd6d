"""Training recipes: dataclasses loaded from the YAML files in configs/ plus overrides.

A recipe has five sections:
  network  the NetConfig of mask2hand.nn (hand model, PCs, refine, input size, ...)
  data     where the training / validation / test sets are and how they are read
  loss     a LossWeights preset plus per-term overrides
  train    optimiser, schedule, batch size, epochs, time budget
  seed     the one seed everything random derives from
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from mask2hand.data.dataset import SensorConfig
from mask2hand.data.noise import NoiseConfig
from mask2hand.train.recipes import resolve_recipe
from mask2hand.utils.dataclass_config import apply_overrides, dataclass_from_dict, to_dict
from mask2hand.errors import Mask2HandError


@dataclass
class GenerateSpec:
    """How to synthesise a dataset folder that does not exist yet (as `mask2hand synth` would).

    corpus "broad": train / val / test are sample counts. corpus "paper": train / test
    are numbers of poses (5 views each, the paper's 4,000 / 400); val must be 0.
    """

    corpus: Literal["paper", "broad"] = "broad"
    seed: int = 0
    train: int = 100_000
    val: int = 2_000
    test: int = 2_000


@dataclass
class DataSection:
    """Dataset folders (written by `mask2hand synth` / convert_freihand) or a FreiHAND root.

    train / val / test: a dataset folder and the split after a colon ("data/broad:train"),
    or a FreiHAND v2 root with a split of the paper's partition ("/data/FreiHAND:val").
    generate: folder -> how to create it when it does not exist yet. one_view_per_pose: the paper's synthetic protocol (one of
    the 5 views of each pose per epoch). augment: the paper's FreiHAND augmentation
    (rotation [-pi, pi), scale [0.9, 1.1)). noise: silhouette noise applied to training
    masks (kinds, severities, probability; see mask2hand.data.noise), null for none.
    crop_jitter_shift / crop_jitter_scale: for a cropping network (network.input_crop), the
    training crops' random shift (fraction of the window) and size factor range.
    sensor: for a cropping network, low-resolution sensors (sizes, probability; see
    mask2hand.data.dataset.SensorConfig), null for none.
    """

    train: str = "data/broad:train"
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
class TrainConfig:
    name: str = "run"
    seed: int = 0
    network: dict[str, Any] = field(default_factory=dict)
    data: DataSection = field(default_factory=DataSection)
    loss: LossSection = field(default_factory=LossSection)
    train: TrainSection = field(default_factory=TrainSection)

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
            raise Mask2HandError(f"{path}: not valid YAML ({exc})") from None
    values = apply_overrides(values, overrides or [])
    config = dataclass_from_dict(TrainConfig, values, where="config")
    network_config(config)
    loss_weights(config)
    return config


def network_config(config: TrainConfig):
    from mask2hand.nn import NetConfig

    return dataclass_from_dict(NetConfig, config.network, where="config.network")


def loss_weights(config: TrainConfig):
    from dataclasses import replace

    from mask2hand.losses.objective import LossWeights

    base = getattr(LossWeights, config.loss.preset)()
    valid = set(LossWeights.__dataclass_fields__)
    unknown = sorted(set(config.loss.overrides) - valid)
    if unknown:
        raise Mask2HandError(f"config.loss.overrides: unknown key(s) {unknown}; valid keys are {sorted(valid)}")
    return replace(base, **config.loss.overrides)


def dump_config(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
