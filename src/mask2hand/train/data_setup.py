"""Datasets of a training recipe: parse "folder:split", synthesise missing folders, open them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch.distributed as dist

from mask2hand.errors import Mask2HandError
from mask2hand.train.config import GenerateSpec, TrainConfig

ROLE_SEED_OFFSET = {"train": 0, "val": 1, "test": 2}


def split_source(source: str) -> tuple[Path, str | None]:
    """"folder:split" -> (folder, split); a plain folder -> (folder, None)."""
    folder, sep, split = source.rpartition(":")
    if sep and split and "/" not in split:
        return Path(folder), split
    return Path(source), None


def ensure_generated(folder: Path, spec: GenerateSpec, hand_model: str, mano_path: str | None) -> None:
    """Synthesise `folder` as `spec` says (nothing if it is already a complete dataset)."""
    from mask2hand.data.storage import CARD_NAME
    from mask2hand.data.synthetic import BroadCorpus, PaperProtocol, generate_broad, generate_paper

    if (folder / CARD_NAME).is_file():
        return
    print(f"generating the {spec.corpus} corpus in {folder} (seed {spec.seed}) ...", flush=True)
    if spec.corpus == "paper":
        if spec.val:
            raise Mask2HandError(f"data.generate.{folder}: the paper protocol has no val split; "
                                 "generate a second folder with another seed for validation")
        protocol = replace(PaperProtocol(), train_poses=spec.train, test_poses=spec.test)
        generate_paper(folder, hand=hand_model, hand_path=mano_path, seed=spec.seed, protocol=protocol)
    else:
        corpus = replace(BroadCorpus(), train=spec.train, val=spec.val, test=spec.test)
        generate_broad(folder, hand=hand_model, hand_path=mano_path, seed=spec.seed, corpus=corpus)


def make_dataset(config: TrainConfig, role: str, resolution: int, hand, noise=None, crop_margin: float | None = None):
    """The MaskDataset of a recipe's "train", "val" or "test" entry, at the network's input size,
    cut around the hand for a cropping network (`crop_margin`: its NetConfig.input_crop;
    the training set's crops are jittered as data.crop_jitter_shift / crop_jitter_scale say,
    and taken at low resolutions as data.sensor says).

    Missing synthetic folders named in data.generate are created first (by rank 0 only,
    the other processes wait). Ground truth made with another hand model is refused.
    """
    from mask2hand.data.dataset import CropConfig, MaskDataset

    source = getattr(config.data, role)
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
    if crop_margin is not None:
        crop = CropConfig(margin=crop_margin) if not training else CropConfig(
            margin=crop_margin, jitter_shift=config.data.crop_jitter_shift,
            jitter_scale=tuple(config.data.crop_jitter_scale))
    dataset = MaskDataset(folder, split=split, augment=config.data.augment and training,
                          noise=config.data.noise if training else noise, resolution=resolution,
                          one_view_per_pose=config.data.one_view_per_pose and training,
                          seed=config.seed + ROLE_SEED_OFFSET[role], crop=crop,
                          sensor=config.data.sensor if training else None, verify=config.data.verify)
    check_ground_truth_matches(dataset, hand, source)
    return dataset


def check_ground_truth_matches(dataset, hand, source: str) -> None:
    """Refuse a synthetic set made with another hand model than the network's."""
    card = getattr(getattr(dataset.source, "stored", None), "card", None)
    if card is None:  # FreiHAND: MANO ground truth
        if hand.name != "mano":
            raise Mask2HandError(f"{source} is FreiHAND, whose meshes are MANO's; train on it with "
                                 "network.hand_model: mano (and the MANO file)")
        return
    made_with = card.get("hand", {})
    if made_with.get("asset_hash") and made_with.get("asset_hash") != hand.asset_hash:
        raise Mask2HandError(f"{source} was generated with the '{made_with.get('name')}' hand model "
                             f"(asset {str(made_with.get('asset_hash'))[:12]}...), the network uses "
                             f"'{hand.name}' ({hand.asset_hash[:12]}...); regenerate the data or change the network")
