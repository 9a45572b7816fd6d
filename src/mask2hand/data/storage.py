"""One dataset = one folder: a JSON card plus .npy arrays that load memory-mapped.

Layout of a dataset folder:

    card.json        what the data is and how it was made (written last)
    masks.npy        uint8 (N, H, ceil(W/8)): each mask row bit-packed with np.packbits
                     (big bit order), hand = 1
    K.npy            float32 (N, 3, 3) pixel intrinsics
    joints.npy       float32 (N, 21, 3) meters, camera space, FreiHAND order
    vertices.npy     float32 (N, V, 3) meters, camera space
    <other>.npy      optional per-sample arrays listed in the card (hand parameters,
                     pose ids, ...)

Bit-packed masks decode in microseconds (PNG takes hundreds; see
benchmarks/data.py) and, like every array here, are read through a memory map,
so opening a 100,000-sample dataset costs nothing and a sample is a few small
reads.

Writing is atomic: arrays are filled in a hidden temporary folder next to the
target, the card is written last, and the folder is then renamed into place.
A folder without a complete card is never taken for a dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.utils.files import file_sha256

CARD_NAME = "card.json"
DATASET_FORMAT = "mask2hand-dataset"
FORMAT_VERSION = 1
MASK_ENCODING = "packbits-rows"


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """Bit-pack masks (N,H,W) (bool or 0/1) to uint8 (N,H,ceil(W/8))."""
    return np.packbits(np.asarray(masks, dtype=bool), axis=-1)


def unpack_masks(packed: np.ndarray, width: int) -> np.ndarray:
    """Inverse of pack_masks: uint8 (...,H,ceil(W/8)) -> uint8 0/1 (...,H,W)."""
    return np.unpackbits(packed, axis=-1, count=width)


@dataclass(frozen=True)
class ArraySpec:
    """Per-sample shape (without the leading N) and dtype of one stored array."""

    shape: tuple[int, ...]
    dtype: str


class DatasetWriter:
    """Fills a dataset folder sample by sample, then publishes it atomically.

    Use as a context manager; on any exception the temporary folder is deleted
    and nothing appears at `path`:

        with DatasetWriter(path, n, (H, W), {"K": ArraySpec((3, 3), "float32"), ...}) as w:
            w.write(0, masks=m, K=k, ...)
            w.finish(card)

    Args:
        path: the dataset folder to create.
        num_samples: N, fixed in advance (generators resample rejected samples).
        image_size: (H, W) of the masks.
        arrays: name -> ArraySpec of every array besides the masks.
        overwrite: replace an existing dataset at `path` (only once the new one is complete).
    """

    def __init__(self, path: str | os.PathLike, num_samples: int, image_size: tuple[int, int],
                 arrays: dict[str, ArraySpec], overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise Mask2HandError(f"{self.path} already exists; choose another folder or allow overwriting "
                                 "(--overwrite)")
        if num_samples <= 0:
            raise Mask2HandError(f"a dataset needs at least one sample, got {num_samples}")
        self.num_samples = int(num_samples)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.overwrite = overwrite
        self.specs = {"masks": ArraySpec((self.image_size[0], (self.image_size[1] + 7) // 8), "uint8"), **arrays}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.parent / f".{self.path.name}.partial-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        self._maps = {name: np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+", dtype=spec.dtype,
                                                      shape=(self.num_samples, *spec.shape))
                      for name, spec in self.specs.items()}
        self._extras: list[str] = []
        self._finished = False

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._finished:
            self.abort()

    def write(self, start: int, masks: np.ndarray, **arrays: np.ndarray) -> None:
        """Store samples [start, start+n): masks (n,H,W) bool/0-1 and every declared array."""
        masks = np.asarray(masks)
        n = masks.shape[0]
        if start < 0 or start + n > self.num_samples:
            raise ValueError(f"samples [{start}, {start + n}) outside the dataset of {self.num_samples}")
        if masks.shape[1:] != self.image_size:
            raise ValueError(f"masks have size {masks.shape[1:]}, the dataset {self.image_size}")
        missing = set(self.specs) - {"masks"} - set(arrays)
        if missing:
            raise ValueError(f"write() is missing arrays {sorted(missing)}")
        self._maps["masks"][start:start + n] = pack_masks(masks)
        for name, value in arrays.items():
            if name not in self.specs:
                raise ValueError(f"array '{name}' was not declared")
            self._maps[name][start:start + n] = value

    def write_extra(self, name: str, array: np.ndarray) -> str:
        """Store a non-per-sample array (e.g. a split's ids) as <name>.npy; returns the file name."""
        if name in self.specs:
            raise ValueError(f"'{name}' is a per-sample array")
        file = self.tmp / f"{name}.npy"
        np.save(file, np.asarray(array))
        self._extras.append(file.name)
        return file.name

    def finish(self, card: dict[str, Any]) -> Path:
        """Flush the arrays, write the card (last), and move the folder into place."""
        for mm in self._maps.values():
            mm.flush()
        self._maps.clear()
        entries = {}
        for name, spec in self.specs.items():
            file = self.tmp / f"{name}.npy"
            entries[name] = {"file": file.name, "shape": [self.num_samples, *spec.shape], "dtype": spec.dtype,
                             "sha256": file_sha256(file)}
        full_card = {"format": DATASET_FORMAT, "format_version": FORMAT_VERSION, "num_samples": self.num_samples,
                     "image_size": list(self.image_size), "mask_encoding": MASK_ENCODING, **card,
                     "arrays": entries,
                     "extra_files": {name: file_sha256(self.tmp / name) for name in self._extras}}
        tmp_card = self.tmp / (CARD_NAME + ".tmp")
        with open(tmp_card, "w") as fh:
            json.dump(full_card, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        tmp_card.replace(self.tmp / CARD_NAME)
        old = None
        if self.path.exists():
            old = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex[:8]}"
            self.path.rename(old)
        self.tmp.rename(self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Delete the temporary folder (nothing was published)."""
        self._maps.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._finished = True


class StoredDataset:
    """A dataset folder opened for reading; arrays are memory-mapped.

    Attributes: path, card (dict), num_samples, image_size (H, W), arrays
    (name -> read-only memmap, masks still packed).
    """

    def __init__(self, path: str | os.PathLike, verify: bool = False):
        self.path = Path(path)
        self.card = read_card(self.path)
        self.num_samples = int(self.card["num_samples"])
        self.image_size = (int(self.card["image_size"][0]), int(self.card["image_size"][1]))
        self.arrays: dict[str, np.ndarray] = {}
        for name, entry in self.card["arrays"].items():
            file = self.path / entry["file"]
            if not file.is_file():
                raise Mask2HandError(f"dataset {self.path}: array file {entry['file']} is missing; "
                                     "the folder is damaged, generate it again")
            if verify and file_sha256(file) != entry["sha256"]:
                raise Mask2HandError(f"dataset {self.path}: {entry['file']} does not match its checksum in the "
                                     "card; the file is damaged, generate the dataset again")
            array = np.load(file, mmap_mode="r")
            if list(array.shape) != list(entry["shape"]) or str(array.dtype) != entry["dtype"]:
                raise Mask2HandError(f"dataset {self.path}: {entry['file']} has shape {array.shape} "
                                     f"{array.dtype}, the card says {entry['shape']} {entry['dtype']}")
            self.arrays[name] = array

    def __len__(self) -> int:
        return self.num_samples

    def has(self, name: str) -> bool:
        return name in self.arrays

    def masks(self, index: int | slice | np.ndarray) -> np.ndarray:
        """Unpacked masks, uint8 0/1: (H,W) for an int index, (n,H,W) otherwise."""
        return unpack_masks(np.asarray(self.arrays["masks"][index]), self.image_size[1])

    def split_indices(self, split: str | None) -> np.ndarray:
        """Sample indices of a named split (the card's "splits"), or all samples for None."""
        if split is None:
            return np.arange(self.num_samples)
        splits = self.card.get("splits", {})
        if split not in splits:
            raise Mask2HandError(f"dataset {self.path} has no split '{split}'; it has {sorted(splits) or 'none'}")
        entry = splits[split]
        if "ids_file" in entry:
            return np.load(self.path / entry["ids_file"])
        return np.arange(int(entry["start"]), int(entry["stop"]))


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a complete dataset folder; Mask2HandError if there is none."""
    path = Path(path)
    if not path.is_dir():
        raise Mask2HandError(f"dataset folder not found: {path}")
    card_file = path / CARD_NAME
    if not card_file.is_file():
        raise Mask2HandError(f"{path} is not a complete mask2hand dataset (no {CARD_NAME}); it may be an "
                             "interrupted write: delete it and generate it again")
    try:
        card = json.loads(card_file.read_text())
    except json.JSONDecodeError as exc:
        raise Mask2HandError(f"{card_file} is not valid JSON ({exc}); generate the dataset again") from None
    if card.get("format") != DATASET_FORMAT or "arrays" not in card or "num_samples" not in card:
        raise Mask2HandError(f"{card_file} is not a mask2hand dataset card")
    if card.get("format_version", 0) > FORMAT_VERSION:
        raise Mask2HandError(f"{path} was written by a newer mask2hand (format {card['format_version']}); "
                             "upgrade mask2hand")
    return card


def open_dataset(path: str | os.PathLike, verify: bool = False) -> StoredDataset:
    """Open a dataset folder; verify=True also checks every array's SHA-256 against the card."""
    return StoredDataset(path, verify=verify)
