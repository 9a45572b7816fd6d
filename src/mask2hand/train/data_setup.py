"""Datasets of a training recipe: parse "folder:split", synthesise missing folders, open them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch.distributed as dist

from mask2hand.data.storage import split_source
from mask2hand.errors import Mask2HandError
from mask2hand.train.config import GenerateSpec, TrainConfig

ROLE_SEED_OFFSET = {"train": 0, "val": 1, "test": 2}


def ensure_generated(folder: Path, spec: GenerateSpec, hand_model: str, mano_path: str | None) -> None:
    """Synthesise `folder` as `spec` says (nothing if it is already a complete dataset); hand_model
    is the network's, used when the spec names no hand of its own."""
    from mask2hand.data.storage import CARD_NAME
    from mask2hand.data.synthetic import (BroadCorpus, NaturalCorpus, PaperProtocol, generate_broad,
                                          generate_natural, generate_paper, with_probabilities)

    if (folder / CARD_NAME).is_file():
        return
    hand = spec.hand or hand_model
    print(f"generating the {spec.corpus} corpus of the {hand} hand in {folder} (seed {spec.seed}) ...", flush=True)
    if spec.corpus == "paper":
        if spec.val:
            raise Mask2HandError(f"data.generate.{folder}: the paper protocol has no val split; "
                                 "generate a second folder with another seed for validation")
        protocol = replace(PaperProtocol(), train_poses=spec.train, test_poses=spec.test)
        generate_paper(folder, hand=hand, hand_path=mano_path, seed=spec.seed,
                       protocol=with_probabilities(protocol, spec.forearm, spec.shape_variety))
        return
    corpus, generate = {"broad": (BroadCorpus(), generate_broad), "natural": (NaturalCorpus(), generate_natural)}[
        spec.corpus]
    corpus = replace(corpus, train=spec.train, val=spec.val, test=spec.test)
    generate(folder, hand=hand, hand_path=mano_path, seed=spec.seed,
             corpus=with_probabilities(corpus, spec.forearm, spec.shape_variety))


def training_sources(config: TrainConfig) -> dict[str, float]:
    """data.train as a mixture: source -> share of the training batches (one source: share 1)."""
    train = config.data.train
    return dict(train) if isinstance(train, dict) else {train: 1.0}


def make_training_set(config: TrainConfig, resolution: int, hand, crop_margin: float | None = None,
                      quiet: bool = False, distance_field: bool = True):
    """The MixedDataset of data.train (one part per source) and the parts' shares, in order
    (`distance_field` as in `make_dataset`)."""
    from mask2hand.train.mixture import MixedDataset

    sources = training_sources(config)
    parts = [make_dataset(config, "train", resolution, hand, crop_margin=crop_margin, source=source, quiet=quiet,
                          distance_field=distance_field)
             for source in sources]
    return MixedDataset(parts, list(sources)), list(sources.values())


def make_dataset(config: TrainConfig, role: str, resolution: int, hand, noise=None, crop_margin: float | None = None,
                 source: str | None = None, quiet: bool = False, distance_field: bool = True):
    """The MaskDataset of a recipe's "train", "val" or "test" entry (or, with `source`, of that one
    source of the role), at the network's input size, cut around the hand for a cropping network
    (`crop_margin`: its NetConfig.input_crop; the training set's crops are jittered as
    data.crop_jitter_shift / crop_jitter_scale say, and taken at low resolutions as data.sensor says).

    Missing synthetic folders named in data.generate are created first (by rank 0 only,
    the other processes wait). A set made with another hand model than the network's gives
    no vertices (see `MaskDataset.made_by`), and says so unless quiet. distance_field: compute each
    batch's contour distance field (only the contour loss reads it).
    """
    from mask2hand.data.dataset import CropConfig, MaskDataset

    if source is None:
        source = getattr(config.data, role)
        if isinstance(source, dict):
            raise Mask2HandError(f"data.{role} is a mixture; open its sources one by one")
    if source is None:
        raise Mask2HandError(f"the recipe has no data.{role} set")
    folder, split = split_source(source)
    spec = config.data.generate.get(str(folder))
    if spec is not None:
        if not dist.is_initialized() or dist.get_rank() == 0:
            ensure_generated(folder, spec, config.network.get("hand_model", "open"), config.network.get("hand_model_path"))
        if dist.is_initialized():
            dist.barrier()
    if not folder.exists():
        raise Mask2HandError(f"data.{role}: {folder} does not exist; generate it with `mask2hand synth` "
                             "or add it to data.generate")
    training = role == "train"
    crop = None
    prepared = _prepared_size(folder)
    if prepared is not None:  # the network's own inputs already (a user's masks, mask2hand adapt): not cut again
        if prepared != resolution:
            raise Mask2HandError(f"data.{role}: {folder} holds masks prepared at {prepared} x {prepared} pixels, "
                                 f"the network takes {resolution} x {resolution}; prepare them again for it")
        crop_margin = None
    if crop_margin is not None:
        crop = CropConfig(margin=crop_margin) if not training else CropConfig(
            margin=crop_margin, jitter_shift=config.data.crop_jitter_shift,
            jitter_scale=tuple(config.data.crop_jitter_scale))
    dataset = MaskDataset(folder, split=split, augment=config.data.augment and training,
                          noise=config.data.noise if training else noise, resolution=resolution,
                          one_view_per_pose=config.data.one_view_per_pose and training,
                          seed=config.seed + ROLE_SEED_OFFSET[role], crop=crop,
                          sensor=config.data.sensor if training else None, verify=config.data.verify,
                          distance_field=distance_field, network_hand=hand.identity)
    if not dataset.with_vertices and not quiet and (not dist.is_initialized() or dist.get_rank() == 0):
        print(f"data.{role}: {source} was made with the {dataset.made_with['name']} hand model, the network uses "
              f"the {hand.name} hand: its samples supervise the joints (3-D and 2-D), not the vertices", flush=True)
    return dataset


def _prepared_size(folder: Path) -> int | None:
    """The input side of the network whose inputs a dataset folder holds (its card's "model_input"),
    or None for a folder of whole images (or one that is no dataset folder: its reader says why)."""
    from mask2hand.data.storage import CARD_NAME, open_dataset

    if not (folder / CARD_NAME).is_file():
        return None
    model_input = open_dataset(folder).card.get("model_input")
    size = model_input.get("size") if isinstance(model_input, dict) else None
    return int(size) if isinstance(size, int) else None
