"""The torch Dataset of masks with 3D ground truth, read from a dataset folder or FreiHAND.

Each item is a `HandSample`. A DataLoader fetches whole batches through
`__getitems__` (vectorised: one memory-map read per array, one tensor per field) and
needs `collate_fn=collate_samples`, which passes those `HandBatch`es through (and
stacks lists of HandSample):

    ds = MaskDataset("data/paper", split="train", augment=True, resolution=128)
    loader = DataLoader(ds, batch_size=32, shuffle=True, num_workers=2, collate_fn=collate_samples)

Per sample, in this order: read the mask; augmentation (rotation about the
principal point, scaling through the focal length) and a change of resolution, both
as one camera change applied to mask, K, joints, vertices and parameters (see
augment.py); optional silhouette noise on the mask (noise.py); the contour distance
field of the final mask (the contour loss's target), computed here in the data
pipeline, once per sample, so the training step never does it.

A dataset with a forearm on its masks (`mask2hand synth natural`, or any corpus with
`forearm`) also stores the hand-only mask: `hand_mask` goes through the same camera
change (and crop) as the mask, without noise, so that metrics can say how much of the
input the hand explains. The mask, and its distance field, keep hand and arm: that is
what a network sees.

With a crop (cropping networks) the mask goes the way `predict` takes a sensor's
mask: augmented at the source's resolution, noise there (so a noise model has the
size relative to the hand that it has at test time), the window found from the
(noisy) mask's largest region, then cut and resampled (mask2hand.image.masks). The crop's
camera change is applied to K and the 3-D targets as above.

Randomness: the draws for item i in epoch e come from numpy's Generator seeded
with (seed, e, i), so results do not depend on worker count or order; call
`set_epoch(e)` before each epoch (DataLoader workers must not be persistent).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mask2hand.data.augment import (ANGLE_RANGE, SCALE_RANGE, CameraChange, camera_change, crop_change,
                                    transform_hand_params, transform_points, warp_mask)
from mask2hand.image.camera import project_points
from mask2hand.image.crop import box_of_mask, box_of_points, integer_window, square_window
from mask2hand.data.noise import NoiseConfig
from mask2hand.data.storage import CARD_NAME, StoredDataset, unpack_masks
from mask2hand.errors import Mask2HandError
from mask2hand.image.masks import largest_component, resample_window
from mask2hand.hand.params import HandParams
from mask2hand.utils.checks import check_K

# the stored hand-layer parameters, in the order the sources hold them
PARAM_NAMES = ("global_orient", "transl", "pose", "betas")


@dataclass(frozen=True)
class AugmentConfig:
    """The paper's FreiHAND augmentation by default: angle from [-pi, pi), scale from [0.9, 1.1)."""

    angle_range: tuple[float, float] = ANGLE_RANGE
    scale_range: tuple[float, float] = SCALE_RANGE


@dataclass(frozen=True)
class CropConfig:
    """Cut each mask to the square around its hand (mask2hand.image.crop), for cropping networks.

    margin: window side / larger side of the hand's box. jitter_shift: the window's center
    moves by up to this fraction of its side in u and v; jitter_scale: its side is
    multiplied by a factor from [lo, hi) (training only: crops found from real masks are
    never exact). The box is that of the mask's largest region, as in `predict` (of the
    projected ground-truth vertices if the mask is empty).
    """

    margin: float = 1.25
    jitter_shift: float = 0.0
    jitter_scale: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True)
class SensorConfig:
    """Low-resolution sensors in training (cropping networks only): with `probability`, a
    sample's image is taken at N x N pixels, N drawn uniformly from `sizes`, the way
    `mask2hand eval --sensor-size N` takes it (a change of resolution of the whole image,
    augment.warp_mask), before noise and the crop; the rest keep the source's resolution."""

    sizes: tuple[int, ...] = (32,)
    probability: float = 1.0

    def __post_init__(self):
        if not self.sizes or any(int(n) < 8 for n in self.sizes):
            raise Mask2HandError(f"sensor sizes must be at least 8 pixels, got {list(self.sizes)}")
        if not 0.0 <= self.probability <= 1.0:
            raise Mask2HandError(f"the sensor probability must be in [0, 1], got {self.probability}")


@dataclass
class HandSample:
    """One training sample. mask (H,W) float32 0/1; K (3,3) float32 pixels; joints (21,3)
    and vertices (V,3) float32 meters in camera space (None for an unlabelled mask);
    distance_field (H,W) float32 pixels (None if disabled); params when the source has
    hand-layer parameters; index: the sample's id in its source; hand_mask (H,W) float32 0/1 the
    hand alone, without the forearm or noise (None when the source stores none: then the mask
    is the hand's); hand_window (3,) float32 (u0, v0, side) pixels: the hand's own window in a
    crop (cropping only, else None; see MaskDataset._hand_windows); keypoints (21,3) float32 2-D
    weak labels (u, v pixels of the mask, confidence in [0, 1], 0 for a missing point), None where
    the source has none; world_keypoints (21,3) float32 3-D weak labels (meters, any frame; zeros
    where a sample has none), None where the source has none."""

    mask: torch.Tensor
    K: torch.Tensor
    joints: torch.Tensor | None
    vertices: torch.Tensor | None
    distance_field: torch.Tensor | None
    params: HandParams | None
    index: int
    hand_mask: torch.Tensor | None = None
    hand_window: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    world_keypoints: torch.Tensor | None = None


@dataclass
class HandBatch:
    """A batch of HandSample: every tensor with a leading batch dimension B; index (B,) long.
    joints and vertices are None for unlabelled masks (the losses that need them say so);
    hand_mask (B,H,W) is None when the source has no hand-only masks; hand_window (B,3) None
    without a crop."""

    mask: torch.Tensor
    K: torch.Tensor
    joints: torch.Tensor | None
    vertices: torch.Tensor | None
    distance_field: torch.Tensor | None
    params: HandParams | None
    index: torch.Tensor
    hand_mask: torch.Tensor | None = None
    hand_window: torch.Tensor | None = None
    keypoints: torch.Tensor | None = None
    world_keypoints: torch.Tensor | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "HandBatch":
        def move(x):
            return None if x is None else x.to(device, non_blocking=non_blocking)

        params = None
        if self.params is not None:
            params = self.params.map(move)
        return HandBatch(mask=move(self.mask), K=move(self.K), joints=move(self.joints),
                         vertices=move(self.vertices), distance_field=move(self.distance_field), params=params,
                         index=move(self.index), hand_mask=move(self.hand_mask),
                         hand_window=move(self.hand_window), keypoints=move(self.keypoints),
                         world_keypoints=move(self.world_keypoints))

    def sample(self, i: int) -> HandSample:
        """Sample i of the batch (views of the batch tensors)."""
        params = None
        if self.params is not None:
            params = self.params.map(lambda value: value[i])
        return HandSample(mask=self.mask[i], K=self.K[i], joints=None if self.joints is None else self.joints[i],
                          vertices=None if self.vertices is None else self.vertices[i],
                          distance_field=None if self.distance_field is None else self.distance_field[i],
                          params=params, index=int(self.index[i]),
                          hand_mask=None if self.hand_mask is None else self.hand_mask[i],
                          hand_window=None if self.hand_window is None else self.hand_window[i],
                          keypoints=None if self.keypoints is None else self.keypoints[i],
                          world_keypoints=None if self.world_keypoints is None else self.world_keypoints[i])

    def __len__(self) -> int:
        return int(self.mask.shape[0])


def collate_samples(samples: list[HandSample] | HandBatch) -> HandBatch:
    """Stack HandSamples into a HandBatch (the DataLoader's collate_fn).

    MaskDataset loads whole batches itself (`__getitems__`), which arrive here already
    as a HandBatch and pass through unchanged.
    """
    if isinstance(samples, HandBatch):
        return samples

    def stack(name):
        values = [getattr(s, name) for s in samples]
        return None if values[0] is None else torch.stack(values)

    params = None
    if samples[0].params is not None:
        params = HandParams.stack([s.params for s in samples], torch.stack)
    return HandBatch(mask=stack("mask"), K=stack("K"), joints=stack("joints"), vertices=stack("vertices"),
                     distance_field=stack("distance_field"), params=params,
                     index=torch.as_tensor([s.index for s in samples], dtype=torch.long), hand_mask=stack("hand_mask"),
                     hand_window=stack("hand_window"), keypoints=stack("keypoints"),
                     world_keypoints=stack("world_keypoints"))


# FreiHAND's meshes are MANO's; its files record no hash of the model
FREIHAND_HAND = {"name": "mano", "asset_hash": None}


class _FreiHandSource:
    """FreiHAND read straight from its official layout (slow to open; see convert_freihand)."""

    def __init__(self, root: Path, split: str | None, split_file: str | os.PathLike | None, split_seed: int):
        from mask2hand.data.freihand import FreiHand, load_split_file, paper_split

        self.data = FreiHand(root, load_mano=False)
        self.image_size = (224, 224)
        n = len(self.data)
        if split is None:
            self.ids = np.arange(n)
        else:
            splits = load_split_file(split_file, n) if split_file is not None else paper_split(n, seed=split_seed)
            if split not in splits:
                raise Mask2HandError(f"FreiHAND has no split '{split}'; choose one of {sorted(splits)}")
            self.ids = splits[split]
        self.K, self.joints, self.vertices = self.data.K, self.data.joints, self.data.vertices
        self.keypoints = self.world_keypoints = None
        self.params = None
        self.pose_id = None
        self.card = {"hand": dict(FREIHAND_HAND)}

    def values(self, name: str, indices: np.ndarray) -> np.ndarray:
        raise Mask2HandError(f"FreiHAND's own layout has no '{name}' array; convert it "
                             "(mask2hand synth freihand) to read stored arrays")

    def masks(self, indices: np.ndarray) -> np.ndarray:
        return np.stack([self.data.mask(int(i)) for i in indices])

    def hand_masks(self, indices: np.ndarray) -> None:
        """None: FreiHAND's masks are the hand's (no arm is rendered apart)."""
        return None


# per-sample shapes (without N) of the arrays MaskDataset reads; None: any size (the vertex count)
_STORED_SHAPES = {"K": (3, 3), "joints": (21, 3), "vertices": (None, 3), "global_orient": (3,), "transl": (3,),
                  "pose": (45,), "betas": (10,), "pose_id": (), "keypoints": (21, 3),
                  "world_keypoints": (21, 3)}
_REQUIRED = ("K",)
_LABELS = ("joints", "vertices")  # both or neither: a folder of unlabelled masks has neither


def _check_stored_arrays(stored: StoredDataset) -> None:
    """Refuse a dataset folder lacking an array MaskDataset needs, or holding one of another shape."""
    for name in _REQUIRED:
        if not stored.has(name):
            raise Mask2HandError(f"dataset {stored.path} has no '{name}' array, which training and evaluation "
                                 f"need; {stored.remedy}")
    present = [name for name in _LABELS if stored.has(name)]
    if len(present) == 1:
        missing = ({"joints", "vertices"} - set(present)).pop()
        raise Mask2HandError(f"dataset {stored.path} has '{present[0]}' but no '{missing}' array; {stored.remedy}")
    for name, expected in _STORED_SHAPES.items():
        if not stored.has(name):
            continue
        shape = stored.arrays[name].shape[1:]
        if len(shape) != len(expected) or any(e is not None and n != e for n, e in zip(shape, expected)):
            raise Mask2HandError(f"dataset {stored.path}: '{name}' has per-sample shape {tuple(shape)}, "
                                 f"expected {tuple(expected)}; {stored.remedy}")
    if stored.has("hand_mask"):  # bit-packed like the masks
        got, want = stored.arrays["hand_mask"], stored.arrays["masks"]
        if got.shape != want.shape or got.dtype != np.uint8:
            raise Mask2HandError(f"dataset {stored.path}: 'hand_mask' is {got.dtype} {tuple(got.shape)}, expected "
                                 f"uint8 {tuple(want.shape)} like the masks; {stored.remedy}")


class _StoredSource:
    def __init__(self, stored: StoredDataset, split: str | None):
        _check_stored_arrays(stored)
        self.stored = stored
        self.image_size = stored.image_size
        self.ids = stored.split_indices(split)
        a = stored.arrays
        self.K, self.joints, self.vertices = a["K"], a.get("joints"), a.get("vertices")
        self.keypoints, self.world_keypoints = a.get("keypoints"), a.get("world_keypoints")
        names = PARAM_NAMES
        self.params = tuple(a[n] for n in names) if all(n in a for n in names) else None
        self.pose_id = a.get("pose_id")
        self.card = stored.card

    def values(self, name: str, indices: np.ndarray) -> np.ndarray:
        if not self.stored.has(name):
            raise Mask2HandError(f"dataset {self.stored.path} has no '{name}' array; {self.stored.remedy}")
        return np.asarray(self.stored.arrays[name][indices])

    def masks(self, indices: np.ndarray) -> np.ndarray:
        return self.stored.masks(indices)

    def hand_masks(self, indices: np.ndarray) -> np.ndarray | None:
        """Hand-only masks (n,H,W) uint8 0/1, or None if the folder has none."""
        if not self.stored.has("hand_mask"):
            return None
        return unpack_masks(np.asarray(self.stored.arrays["hand_mask"][indices]), self.image_size[1])


def _size_pair(resolution: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if resolution is None:
        return None
    if isinstance(resolution, int):
        return (resolution, resolution)
    return (int(resolution[0]), int(resolution[1]))


class MaskDataset(Dataset):
    """Masks with 3D ground truth, as HandSample items.

    Args:
        source: a dataset folder (written by `mask2hand synth` or convert_freihand), an
            open StoredDataset, or a FreiHAND v2 folder (official layout).
        split: a split name ("train", "val", "test") or None for all samples.
        augment: True for the paper's rotation/scale augmentation, an AugmentConfig, or False.
        noise: silhouette noise applied to the input mask (its distance field follows it,
            as in the paper's appendix C), or None.
        resolution: output size (int or (H, W)); K is scaled to match. None keeps the source's.
        crop: a CropConfig to cut each mask to the square around its hand before resampling
            to `resolution` (which must then be square), or None for the whole image.
        sensor: a SensorConfig (with a crop only): some images taken at a low resolution first.
        one_view_per_pose: for datasets with several views per pose (the paper's synthetic
            set), an item is a pose and each epoch draws one of its views (paper sec. 4.4).
        distance_field: compute the contour distance field (needed by the contour loss).
        seed: base seed of the random draws.
        split_file, split_seed: FreiHAND folders only (see freihand.py).
        verify: also check the SHA-256 of every file of a dataset folder against its card
            (a full read; opening always checks the files' sizes). FreiHAND's own files have no
            checksums: convert them (`mask2hand synth freihand`) to verify them.
        network_hand: the identity ({"name", "asset_hash"}) of the hand model a network
            predicts. A set made with another hand model gives batches without vertices (the
            meshes have other vertices); None: vertices always.
    """

    def __init__(self, source: str | os.PathLike | StoredDataset, split: str | None = None,
                 augment: bool | AugmentConfig = False, noise: NoiseConfig | None = None,
                 resolution: int | tuple[int, int] | None = None, one_view_per_pose: bool = False,
                 distance_field: bool = True, seed: int = 0, split_file: str | os.PathLike | None = None,
                 split_seed: int | None = None, crop: CropConfig | None = None,
                 sensor: SensorConfig | None = None, verify: bool = False, network_hand: dict | None = None):
        if isinstance(source, StoredDataset):
            if verify:
                source.verify()
            self.source = _StoredSource(source, split)
        else:
            path = Path(source)
            looks_like_freihand = (path / "training_K.json").is_file() or (path / "FreiHAND_pub_v2").is_dir()
            if (path / CARD_NAME).is_file() or not looks_like_freihand:
                self.source = _StoredSource(StoredDataset(path, verify=verify), split)
            else:
                if verify:  # saying nothing would pass unchecked files off as verified
                    raise Mask2HandError(f"{path} is FreiHAND's own layout, which has no checksums to verify; "
                                         "convert it once (mask2hand synth freihand --root ... --out DIR) and "
                                         "read DIR, or leave out verification")
                from mask2hand.data.freihand import PAPER_SPLIT_SEED

                seed_ = PAPER_SPLIT_SEED if split_seed is None else split_seed
                self.source = _FreiHandSource(path, split, split_file, seed_)
        where = source.path if isinstance(source, StoredDataset) else Path(source)
        ids = np.asarray(self.source.ids)
        check_K(np.asarray(self.source.K)[ids], f"dataset {where}: K", ids=ids)
        self.augment = AugmentConfig() if augment is True else (augment or None)
        self.noise = noise
        self.image_size = self.source.image_size
        self.out_size = _size_pair(resolution) or self.image_size
        self.crop = crop
        if crop is not None and self.out_size[0] != self.out_size[1]:
            raise Mask2HandError(f"a crop is resampled to a square: give a square resolution, not {self.out_size}")
        if sensor is not None and crop is None:
            raise Mask2HandError("sensor sizes need a cropping network (network.input_crop): "
                                 "a whole-image network sees one resolution only")
        self.sensor = sensor
        self.with_vertices = network_hand is None or self.made_by(network_hand)
        self.compute_distance_field = distance_field
        self.seed = int(seed)
        self.epoch = 0
        self.groups = None
        if one_view_per_pose:
            if self.source.pose_id is None:
                raise Mask2HandError("one_view_per_pose needs a dataset with several views per pose "
                                     "(the paper protocol's 'pose_id' array)")
            pose_ids = np.asarray(self.source.pose_id)[self.source.ids]
            order = np.argsort(pose_ids, kind="stable")
            _, starts = np.unique(pose_ids[order], return_index=True)
            self.groups = np.split(self.source.ids[order], starts[1:])

    def __len__(self) -> int:
        return len(self.groups) if self.groups is not None else len(self.source.ids)

    @property
    def labelled(self) -> bool:
        """Whether the samples have 3-D ground truth (joints and vertices); a folder of a user's
        masks (`mask2hand adapt`) has none."""
        return self.source.joints is not None

    @property
    def card(self) -> dict:
        """The dataset folder's card (mask2hand.data.storage); FreiHAND's own layout: its hand only."""
        return self.source.card

    @property
    def made_with(self) -> dict:
        """Name and asset hash of the hand model whose meshes the samples hold ({} if not recorded)."""
        return dict(self.source.card.get("hand") or {})

    def made_by(self, hand: dict) -> bool:
        """Whether the samples' meshes are those of the hand model with identity `hand` (a set
        that records no hand, or no asset hash, is taken at its word)."""
        made_with = self.made_with
        if not made_with.get("name"):
            return True
        return made_with["name"] == hand.get("name") and made_with.get("asset_hash") in (None, hand.get("asset_hash"))

    def stored_values(self, name: str, items: np.ndarray) -> np.ndarray:
        """A stored per-sample array (e.g. "source_index") for dataset items (positions in this split)."""
        return self.source.values(name, np.asarray(self.source.ids)[np.asarray(items)])

    def set_epoch(self, epoch: int) -> None:
        """Select the random draws of an epoch (call before iterating)."""
        self.epoch = int(epoch)

    def __getitem__(self, item: int) -> HandSample:
        if not 0 <= item < len(self):
            raise IndexError(item)
        return self.load_batch([item]).sample(0)

    def __getitems__(self, items: list[int]) -> HandBatch:
        """A whole batch at once (the DataLoader calls this; collate_samples passes it through)."""
        return self.load_batch(items)

    def _warp_masks(self, masks: np.ndarray, K: np.ndarray, angle: np.ndarray, scale: np.ndarray,
                    out_size: tuple[int, int]) -> tuple[np.ndarray, CameraChange]:
        """Masks (B,H,W) -> (warped uint8 (B,oh,ow), CameraChange) by augmentation and resizing.

        A hand near a corner can rotate out of the image entirely: such a sample is kept
        unrotated (its angle and scale in the returned change are reset)."""
        angle, scale = angle.copy(), scale.copy()
        change = camera_change(K, self.image_size, angle, scale, out_size)
        warped = np.stack([warp_mask(m, change[k]) for k, m in enumerate(masks)])
        lost = ~warped.reshape(len(masks), -1).any(1)
        if lost.any():
            angle[lost], scale[lost] = 0.0, 1.0
            change = camera_change(K, self.image_size, angle, scale, out_size)
            for k in np.nonzero(lost)[0]:
                warped[k] = warp_mask(masks[k], change[k])
        return warped, change

    def _crop_windows(self, masks: np.ndarray, vertices: np.ndarray, change: CameraChange,
                      shift: np.ndarray, crop_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer windows (B,3) around the hands of masks (B,H,W) in the frame `change` maps to,
        found as `predict` finds them (the largest region's box; the projected vertices' box if
        the mask is empty), then jittered; and those boxes (B,4)."""
        windows, boxes = np.empty((len(masks), 3)), np.empty((len(masks), 4))
        for k, mask in enumerate(masks):
            region = largest_component(mask)
            if region.any():
                boxes[k] = box_of_mask(region)
            elif vertices is None:  # an empty unlabelled mask: nothing to cut around but the image
                boxes[k] = [0.0, 0.0, mask.shape[1], mask.shape[0]]
            else:
                points = transform_points(vertices[k].astype(np.float64), change[k]) @ change.K[k].T
                boxes[k] = box_of_points(points[:, :2] / points[:, 2:])
            windows[k] = integer_window(square_window(boxes[k], self.crop.margin, shift[k], crop_scale[k]))
        return windows, boxes

    def _hand_windows(self, hand: np.ndarray | None, boxes: np.ndarray, windows: np.ndarray) -> np.ndarray:
        """The hand's own windows (B,3) (u0, v0, side) in pixels of the crops: the square of the crop
        margin around the box of the hand-only mask (B,H,W), or around `boxes` (B,4) (the whole
        mask's) where there is none, mapped into the crop windows (B,3) resampled to the output size
        (what a locator must find; mask2hand.nn.locator)."""
        own = boxes.copy()
        if hand is not None:
            for k, region in enumerate(hand):
                if region.any():
                    own[k] = box_of_mask(region)
        inner = square_window(own, self.crop.margin)
        scale = self.out_size[0] / windows[:, 2:3]
        return np.concatenate([(inner[:, :2] - windows[:, :2]) * scale, inner[:, 2:] * scale], axis=1)

    @staticmethod
    def _warp_like(masks: np.ndarray, change: CameraChange) -> np.ndarray:
        """Masks (B,H,W) -> uint8 (B,oh,ow) through a batched camera change (e.g. the hand-only masks
        through the change that `_warp_masks` chose for the masks)."""
        return np.stack([warp_mask(m, change[k]) for k, m in enumerate(masks)])

    def _crop_batch(self, masks: np.ndarray, hand: np.ndarray | None, K: np.ndarray, vertices: np.ndarray,
                    draws: dict, rngs: list) -> tuple[np.ndarray, np.ndarray | None, CameraChange, np.ndarray]:
        """Masks (B,H,W) and hand-only masks (B,H,W) or None -> (crops (B,S,S) uint8, hand crops (B,S,S)
        float32 or None, CameraChange from the source to the crops, the hands' own windows (B,3) in
        the crops, see `_hand_windows`).

        As `predict` takes a sensor's mask: each sample's image is augmented at the source's
        resolution or, for a drawn sensor size N, taken at N x N; noise acts in that frame;
        the window is found from the (noisy) mask and resampled to S (mask2hand.image.masks).
        The hand-only masks follow the same change and window, without noise."""
        n, size = len(masks), self.out_size[0]
        crops = np.empty((n, size, size), np.uint8)
        hand_crops = None if hand is None else np.empty((n, size, size), np.float32)
        rotation, K_crop, warp = np.empty((n, 3, 3)), np.empty((n, 3, 3)), np.empty((n, 2, 3))
        hand_windows = np.empty((n, 3))
        for side in np.unique(draws["sensor"]):
            idx = np.nonzero(draws["sensor"] == side)[0]
            frame = self.image_size if side == 0 else (int(side), int(side))
            warped = not (self.augment is None and frame == self.image_size)
            if warped:
                framed, change = self._warp_masks(masks[idx], K[idx], draws["angle"][idx], draws["scale"][idx], frame)
            else:
                framed, change = masks[idx], camera_change(K[idx], self.image_size)
            framed = self._apply_noise(framed, [rngs[i] for i in idx])
            windows, boxes = self._crop_windows(framed, None if vertices is None else vertices[idx], change,
                                                draws["shift"][idx],
                                                draws["crop_scale"][idx])
            crops[idx] = [resample_window(m, w, size) for m, w in zip(framed, windows)]
            hand_framed = None
            if hand is not None:
                hand_framed = self._warp_like(hand[idx], change) if warped else hand[idx]
                hand_crops[idx] = [resample_window(m, w, size) for m, w in zip(hand_framed, windows)]
            hand_windows[idx] = self._hand_windows(hand_framed, boxes, windows)
            part = crop_change(change, windows, size)
            rotation[idx], K_crop[idx], warp[idx] = part.rotation, part.K, part.warp
        return (crops, hand_crops, CameraChange(rotation=rotation, K=K_crop, image_size=(size, size), warp=warp),
                hand_windows)

    def _apply_noise(self, masks: np.ndarray, rngs: list) -> np.ndarray:
        if self.noise is None:
            return masks
        return np.stack([self.noise.apply(m, rng) for m, rng in zip(masks, rngs)])

    def load_batch(self, items: list[int]) -> HandBatch:
        """Items -> HandBatch, vectorised over the batch (the per-item draws are as in __getitem__)."""
        src = self.source
        n = len(items)
        index = np.empty(n, np.int64)
        angle, scale = np.zeros(n), np.ones(n)
        shift, crop_scale = np.zeros((n, 2)), np.ones(n)
        sensor = np.zeros(n, np.int64)  # 0: the source's resolution
        rngs = []
        for k, item in enumerate(items):
            rng = np.random.default_rng((self.seed, self.epoch, int(item)))
            if self.groups is not None:
                views = self.groups[item]
                index[k] = views[rng.integers(len(views))]
            else:
                index[k] = src.ids[item]
            if self.augment is not None:
                angle[k] = rng.uniform(*self.augment.angle_range)
                scale[k] = rng.uniform(*self.augment.scale_range)
            if self.crop is not None:
                shift[k] = rng.uniform(-self.crop.jitter_shift, self.crop.jitter_shift, size=2)
                crop_scale[k] = rng.uniform(*self.crop.jitter_scale)
            if self.sensor is not None and rng.random() < self.sensor.probability:
                sensor[k] = self.sensor.sizes[int(rng.integers(len(self.sensor.sizes)))]
            rngs.append(rng)
        masks = src.masks(index)
        hand = src.hand_masks(index)
        K = np.asarray(src.K[index], dtype=np.float64)
        joints = None if src.joints is None else np.asarray(src.joints[index], dtype=np.float32)
        vertices = None if src.vertices is None else np.asarray(src.vertices[index], dtype=np.float32)
        params = None if src.params is None else [np.asarray(p[index], dtype=np.float32) for p in src.params]
        keypoints = None if src.keypoints is None else np.asarray(src.keypoints[index], dtype=np.float64)
        world = None if src.world_keypoints is None else np.asarray(src.world_keypoints[index], dtype=np.float32)

        change = hand_windows = None
        if self.crop is not None:
            draws = {"angle": angle, "scale": scale, "shift": shift, "crop_scale": crop_scale, "sensor": sensor}
            masks, hand, change, hand_windows = self._crop_batch(masks, hand, K, vertices, draws, rngs)
        else:
            if self.augment is not None or self.out_size != self.image_size:
                masks, change = self._warp_masks(masks, K, angle, scale, self.out_size)
                if hand is not None:
                    hand = self._warp_like(hand, change)
            masks = self._apply_noise(masks, rngs)
        if change is not None:
            if keypoints is not None:
                keypoints = move_keypoints(keypoints, K, change)
            K = change.K
            if self.augment is not None and joints is not None:
                if params is not None:
                    params[0], params[1] = transform_hand_params(params[0], params[1], joints[:, 0], change)
                joints = transform_points(joints, change)
                vertices = transform_points(vertices, change)

        dist = None
        if self.compute_distance_field:
            from mask2hand.render.contour import contour_distance_field

            dist = torch.from_numpy(np.ascontiguousarray(contour_distance_field(masks), dtype=np.float32))
        return HandBatch(
            mask=torch.from_numpy(masks.astype(np.float32)),
            K=torch.from_numpy(K.astype(np.float32)),
            joints=None if joints is None else torch.from_numpy(np.ascontiguousarray(joints, dtype=np.float32)),
            vertices=(torch.from_numpy(np.ascontiguousarray(vertices, dtype=np.float32))
                      if self.with_vertices and vertices is not None else None),
            distance_field=dist,
            params=None if params is None else HandParams(
                **{name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in zip(PARAM_NAMES, params)},
                flat_hand_mean=True),
            index=torch.from_numpy(index),
            hand_mask=None if hand is None else torch.from_numpy(hand.astype(np.float32)),
            hand_window=None if hand_windows is None else torch.from_numpy(hand_windows.astype(np.float32)),
            keypoints=None if keypoints is None else torch.from_numpy(keypoints.astype(np.float32)),
            world_keypoints=None if world is None else torch.from_numpy(world),
        )


def move_keypoints(keypoints: np.ndarray, K: np.ndarray, change: CameraChange) -> np.ndarray:
    """2-D keypoints (B,21,3) (u, v pixels, confidence) seen through intrinsics K (B,3,3) -> the same
    points after a batched camera change (rotation about the camera centre, new K), confidence kept."""
    rays = np.concatenate([keypoints[..., :2], np.ones_like(keypoints[..., :1])], axis=-1) @ \
        np.swapaxes(np.linalg.inv(K), -1, -2)
    seen = project_points(transform_points(rays, change), change.K)
    return np.concatenate([seen, keypoints[..., 2:]], axis=-1)
