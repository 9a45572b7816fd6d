"""The datasets of an adaptation run (mask2hand.train.adapt): the user's masks prepared as the
network's inputs, and pseudo-labels fitted to some of them."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mask2hand.data.dataset import MaskDataset
from mask2hand.data.storage import ArraySpec, DatasetWriter
from mask2hand.errors import Mask2HandError
from mask2hand.fit.core import FitConfig, fit_to_silhouette
from mask2hand.version import __version__

USER_MASKS_GENERATOR = "user-masks"
PSEUDO_LABELS_GENERATOR = "pseudo-labels"
HELD_OUT_SPLIT = "held_out"


def held_out_count(count: int, held_out: float) -> int:
    """How many of `count` masks (at least 2) `write_user_masks` holds out for a share `held_out`:
    at least one, and at least one left to train on."""
    if not 0.0 < held_out < 1.0:
        raise Mask2HandError(f"the held-out share must be between 0 and 1, got {held_out}")
    return min(count - 1, max(1, round(held_out * count)))


def write_user_masks(folder: str | Path, masks: np.ndarray, K: np.ndarray, sources: list[str], held_out: float,
                     seed: int, crop_margin: float | None, keypoints: np.ndarray | None = None,
                     world_keypoints: np.ndarray | None = None) -> Path:
    """A dataset folder of a user's masks prepared as a network's inputs: masks (N,S,S) 0/1 and
    their intrinsics at S (N,3,3), `sources` the N input names, and optionally 2-D weak labels
    keypoints (N,21,3) (u, v pixels at S, confidence; all 0 for a mask without them) and 3-D weak
    labels world_keypoints (N,21,3) (meters, any frame; all 0 for a mask without them). A random
    share `held_out` (at least one mask, and at least one left to train on) forms the "held_out"
    split, the rest "train"; `source_index` maps each sample back to its input."""
    masks, K = np.asarray(masks), np.asarray(K, dtype=np.float32)
    count = len(masks)
    if count < 2:
        raise Mask2HandError(f"adapting needs at least 2 masks (one to hold out), got {count}")
    kept = held_out_count(count, held_out)
    order = np.random.default_rng(seed).permutation(count)
    order = np.concatenate([np.sort(order[kept:]), np.sort(order[:kept])])  # training share, then held-out
    size = masks.shape[1]
    specs = {"K": ArraySpec((3, 3), "float32"), "source_index": ArraySpec((), "int64")}
    arrays = {"masks": masks[order] > 0.5, "K": K[order], "source_index": order.astype(np.int64)}
    if keypoints is not None:
        specs["keypoints"] = ArraySpec((21, 3), "float32")
        arrays["keypoints"] = np.asarray(keypoints, dtype=np.float32)[order]
    if world_keypoints is not None:
        specs["world_keypoints"] = ArraySpec((21, 3), "float32")
        arrays["world_keypoints"] = np.asarray(world_keypoints, dtype=np.float32)[order]
    with DatasetWriter(folder, count, (size, size), specs) as writer:
        writer.write(0, **arrays)
        return writer.finish({
            "generator": USER_MASKS_GENERATOR, "mask2hand_version": __version__, "seed": int(seed),
            "model_input": {"size": int(size), "crop_margin": crop_margin},
            "splits": {"train": {"start": 0, "stop": count - kept}, HELD_OUT_SPLIT: {"start": count - kept,
                                                                                     "stop": count}},
            "counts": {"train": count - kept, HELD_OUT_SPLIT: kept},
            "sources": list(sources),
        })


@dataclass(frozen=True)
class PseudoLabelReport:
    """What `write_pseudo_labels` did: masks fitted, fits kept (IoU >= min_iou), the kept fits'
    mean IoU and the mean IoU of the network's answers for the same masks, seconds taken."""

    fitted: int
    kept: int
    min_iou: float
    kept_iou: float
    network_iou: float
    seconds: float

    def as_dict(self) -> dict:
        return {"fitted": self.fitted, "kept": self.kept, "min_iou": self.min_iou, "kept_iou": self.kept_iou,
                "network_iou": self.network_iou, "seconds": round(self.seconds, 1)}


def write_pseudo_labels(folder: str | Path, masks_folder: str | Path, net, count: int, min_iou: float,
                        seed: int, fit: FitConfig | None = None, batch_size: int = 32
                        ) -> tuple[Path | None, PseudoLabelReport]:
    """Pseudo-labels for up to `count` masks of the training share of `masks_folder` (from
    `write_user_masks`), drawn at random: the network `net` (a Mask2HandNet, on the CPU or a
    GPU) answers each, test-time fitting (FitConfig `fit`; default: the default fit in at most
    the hand's pose components) fits its parametric hand to the mask,
    and the fits with IoU >= min_iou are written to `folder` as a labelled dataset (masks, K,
    joints (21,3) and vertices (V,3) in meters, source_index). Returns (the folder, or None when
    no fit was kept, and a PseudoLabelReport)."""
    if count < 1:
        raise Mask2HandError(f"the number of masks to pseudo-label must be at least 1, got {count}")
    if not 0.0 < min_iou <= 1.0:
        raise Mask2HandError(f"the pseudo-labels' IoU threshold must be in (0, 1], got {min_iou}")
    if fit is None:  # the default fit, in as many pose components as the network's hand has
        fit = FitConfig()
        fit = replace(fit, num_pcs=min(fit.num_pcs, net.hand.num_pose_pcs))
    started = time.perf_counter()
    dataset = MaskDataset(masks_folder, split="train", distance_field=False)
    picked = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:count])
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("masks", "K", "joints", "vertices", "iou", "iou_before")}
    try:
        for start in range(0, len(picked), batch_size):
            batch = dataset.load_batch(picked[start:start + batch_size].tolist())
            with torch.no_grad():  # the fit starts from the network's parametric hand (pose or pose PCs)
                params = net(batch.mask.to(device), batch.K.to(device), exact_silhouette=True).params
            masks, K = batch.mask.numpy() > 0.5, batch.K.numpy()
            result = fit_to_silhouette(params, masks, K, net.hand, fit)
            for name, values in (("masks", masks), ("K", K), ("joints", result.joints), ("vertices", result.vertices),
                                 ("iou", result.iou), ("iou_before", result.iou_before)):
                parts[name].append(np.asarray(values))
    finally:
        net.train(was_training)
    arrays = {name: np.concatenate(values) for name, values in parts.items()}
    fitted_iou = arrays.pop("iou")
    good = fitted_iou >= min_iou
    report = PseudoLabelReport(fitted=len(picked), kept=int(good.sum()), min_iou=float(min_iou),
                               kept_iou=float(fitted_iou[good].mean()) if good.any() else float("nan"),
                               network_iou=float(arrays.pop("iou_before").mean()),
                               seconds=time.perf_counter() - started)
    if not good.any():
        return None, report
    arrays = {name: values[good] for name, values in arrays.items()}
    arrays["source_index"] = dataset.stored_values("source_index", picked[good]).astype(np.int64)
    specs = {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"),
             "vertices": ArraySpec(arrays["vertices"].shape[1:], "float32"), "source_index": ArraySpec((), "int64")}
    with DatasetWriter(folder, report.kept, dataset.image_size, specs, overwrite=True) as writer:
        writer.write(0, **arrays)
        path = writer.finish({
            "generator": PSEUDO_LABELS_GENERATOR, "mask2hand_version": __version__, "seed": int(seed),
            "hand": net.hand.identity,
            "model_input": dataset.card.get("model_input"), "pseudo_labels": report.as_dict(),
            "splits": {"train": {"start": 0, "stop": report.kept}}, "counts": {"train": report.kept},
        })
    return path, report
