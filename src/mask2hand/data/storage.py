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
A folder without a complete card is never taken for a dataset. The temporary folder
holds a note of the process filling it, so that a later write to the same target
can remove what a killed one left behind (see remove_stale_partials).

Reading trusts nothing: opening checks the card's entries and every array file's
header and byte length against the card (a truncated or foreign file is refused
before it is mapped; nothing is ever unpickled); the SHA-256 of every byte is
checked on request (verify=True), since it costs a full read.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import socket
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
OWNER_NAME = "writer.json"  # in a temporary folder: the host and pid of the process filling it
NUMBER_KINDS = "biuf"  # numpy dtype kinds a stored array may have: bool, int, uint, float


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


def reserve_disk_space(folder: Path, target: Path) -> None:
    """Reserve on disk every block of the .npy files in `folder` (the memory maps are sparse files:
    writing into a page the full disk cannot hold would kill the process with SIGBUS). Raises
    Mask2HandError naming `target` where the disk has no room."""
    if not hasattr(os, "posix_fallocate"):  # macOS and Windows: no reservation
        return
    needed = 0
    for file in folder.glob("*.npy"):
        size = file.stat().st_size
        needed += size
        descriptor = os.open(file, os.O_RDWR)
        try:
            os.posix_fallocate(descriptor, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                return  # a file system that cannot reserve blocks: no reservation
            raise Mask2HandError(f"not enough disk space for the dataset {target} (it needs "
                                 f"{needed / 1e6:,.0f} MB or more); free some or choose another folder") from None
        finally:
            os.close(descriptor)


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
        remove_stale_partials(self.path)
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
        self.tmp = self.path.parent / f"{_partial_prefix(self.path)}{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()
        try:  # the caller's `with` has not begun yet: an interrupt here must clean up itself
            (self.tmp / OWNER_NAME).write_text(json.dumps({"host": socket.gethostname(), "pid": os.getpid()}))
            self._maps = {name: np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+", dtype=spec.dtype,
                                                          shape=(self.num_samples, *spec.shape))
                          for name, spec in self.specs.items()}
            reserve_disk_space(self.tmp, self.path)
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
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
        np.save(file, np.asarray(array), allow_pickle=False)
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
        (self.path / OWNER_NAME).unlink()  # only now: a temporary folder must never lose its owner note
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Delete the temporary folder (nothing was published)."""
        self._maps.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self._finished = True


def _partial_prefix(path: Path) -> str:
    """The name of a write's temporary folders, beside `path`, before their random suffix."""
    return f".{path.name}.partial-"


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (True when that cannot be told)."""
    if os.name != "posix":
        return True  # os.kill(pid, 0) would stop the process on Windows, not probe it
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: no process has such an id
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _owner_gone(folder: Path) -> bool:
    """True if a temporary folder's owner note names a process of this machine that has ended.

    No readable note (a folder being created this instant, or a note in another format)
    or another machine's process (a shared file system) proves nothing: such folders stay.
    """
    try:
        owner = json.loads((folder / OWNER_NAME).read_text())
        host, pid = owner["host"], owner["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname() or type(pid) is not int or pid <= 0:  # pid <= 0 would probe process groups
        return False
    return not _process_alive(pid)


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary folders of earlier writes to `path` whose writing process has ended.

    A killed write (SIGKILL, power loss) cannot remove its own folder. Only folders named
    as DatasetWriter names them, not links, whose owner note names an ended process of this
    machine are removed; a write still running keeps its folder. Returns the removed folders.
    """
    path = Path(path)
    pattern = re.compile(re.escape(_partial_prefix(path)) + "[0-9a-f]{8}")
    if not path.parent.is_dir():
        return []
    removed = []
    for folder in sorted(path.parent.iterdir()):
        if (pattern.fullmatch(folder.name) and not folder.is_symlink() and folder.is_dir()
                and _owner_gone(folder)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _remedy(card: dict[str, Any], path: Path) -> str:
    """What to run to make the dataset folder at `path` again, from its card's generator."""
    generator = card.get("generator")
    if generator == "freihand":
        return f"convert FreiHAND again: mask2hand synth freihand --root FREIHAND_ROOT --out {path} --overwrite"
    kinds = {"synthetic-paper": "paper", "synthetic-broad": "broad", "synthetic-natural": "natural"}
    kind = kinds.get(generator) if isinstance(generator, str) else None
    if kind is None:
        return "write the dataset again"
    seed = card.get("seed")
    seed_option = f" --seed {seed}" if type(seed) is int else ""
    return (f"generate it again: mask2hand synth {kind} --out {path}{seed_option} --overwrite "
            "(with the options it was made with)")


def _plain_name(name: Any) -> bool:
    """Whether a file name from a card names a file directly inside the dataset folder."""
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name


def _entry_problem(entry: Any, num_samples: int) -> str | None:
    """What is wrong with a card's array entry {"file", "shape", "dtype", "sha256"}, or None."""
    if not isinstance(entry, dict):
        return "is not an object"
    file, shape, dtype = entry.get("file"), entry.get("shape"), entry.get("dtype")
    if not (_plain_name(file) and file.endswith(".npy")):
        return f"names the file {file!r}, not a .npy file inside the folder"
    if not (isinstance(shape, list) and shape and all(type(n) is int and n > 0 for n in shape)):
        return f"has the shape {shape!r}, not a list of positive whole numbers"
    if shape[0] != num_samples:
        return f"has {shape[0]} rows for {num_samples} samples"
    try:
        kind = np.dtype(dtype).kind if isinstance(dtype, str) else None
    except (TypeError, ValueError):
        kind = None
    if kind is None or kind not in NUMBER_KINDS:
        return f"has the dtype {dtype!r}, not a number type"
    return None


def _npy_problem(file: Path, shape: tuple[int, ...], dtype: np.dtype) -> str | None:
    """What keeps the .npy file `file` from being a C-ordered array of `shape` and `dtype`, or None.

    Reads the header and the file's size only, so checking a 1 GB array costs nothing;
    a short file would otherwise fail at np.load (or later, on a read past its end).
    """
    try:
        with open(file, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(fh)
            else:
                return f"is a .npy file of version {version[0]}.{version[1]}, which mask2hand never writes"
            data_offset = fh.tell()
    except (OSError, ValueError, EOFError, SyntaxError) as exc:
        return f"is not a readable .npy array ({exc})"
    stored_shape, fortran_order, stored_dtype = header
    if tuple(stored_shape) != shape or stored_dtype != dtype or fortran_order:
        order = " in Fortran order" if fortran_order else ""
        return f"has shape {tuple(stored_shape)} {stored_dtype}{order}, the card says {list(shape)} {dtype}"
    needed = data_offset + int(np.prod(shape)) * dtype.itemsize
    size = file.stat().st_size
    if size < needed:
        return f"is truncated: {size} bytes, where the card's {list(shape)} {dtype} needs {needed}"
    if size > needed:
        return f"has {size - needed} bytes more than the card's {list(shape)} {dtype} needs"
    return None


class StoredDataset:
    """A dataset folder opened for reading; arrays are memory-mapped.

    Opening checks the card and every array file's header and byte length against it;
    verify=True also checks the SHA-256 of every file (see `verify`). A problem raises
    Mask2HandError naming the file and how to make the folder again.

    Attributes: path, card (dict), num_samples, image_size (H, W), arrays
    (name -> read-only memmap, masks still packed).
    """

    def __init__(self, path: str | os.PathLike, verify: bool = False):
        self.path = Path(path)
        self.card = read_card(self.path)
        self.num_samples = int(self.card["num_samples"])
        self.image_size = (int(self.card["image_size"][0]), int(self.card["image_size"][1]))
        self.remedy = _remedy(self.card, self.path)
        self._check_masks_entry()
        self.arrays: dict[str, np.ndarray] = {name: self._open_array(name, entry)
                                              for name, entry in self.card["arrays"].items()}
        if verify:
            self.verify()

    def _damaged(self, what: str) -> Mask2HandError:
        return Mask2HandError(f"dataset {self.path}: {what}; the folder is damaged: {self.remedy}")

    def _check_masks_entry(self) -> None:
        h, w = self.image_size
        expected = [self.num_samples, h, (w + 7) // 8]
        entry = self.card["arrays"].get("masks")
        if not isinstance(entry, dict) or entry.get("shape") != expected or entry.get("dtype") != "uint8":
            raise self._damaged(f"the card's masks are not uint8 {expected}, the bit-packed masks of "
                                f"{self.num_samples} images of {h}x{w} pixels")

    def _open_array(self, name: str, entry: Any) -> np.ndarray:
        problem = _entry_problem(entry, self.num_samples)
        if problem is not None:
            raise self._damaged(f"the card's array '{name}' {problem}")
        file = self.path / entry["file"]
        if not file.is_file():
            raise self._damaged(f"array file {entry['file']} is missing")
        problem = _npy_problem(file, tuple(entry["shape"]), np.dtype(entry["dtype"]))
        if problem is not None:
            raise self._damaged(f"{entry['file']} {problem}")
        return np.load(file, mmap_mode="r", allow_pickle=False)

    def verify(self) -> None:
        """Check the SHA-256 of every array and extra file against the card (reads every byte).

        Catches what opening cannot: a file of the right size whose bytes were changed.
        """
        digests = {entry["file"]: entry.get("sha256") for entry in self.card["arrays"].values()}
        extra = self.card.get("extra_files", {})
        if not isinstance(extra, dict) or not all(_plain_name(name) for name in extra):
            raise self._damaged("the card's extra_files do not name files inside the folder")
        digests.update(extra)
        for name, digest in digests.items():
            file = self.path / name
            if not file.is_file():
                raise self._damaged(f"{name} is missing")
            if file_sha256(file) != digest:
                raise self._damaged(f"{name} does not match its SHA-256 checksum in the card (the file was "
                                    "changed or damaged after it was written)")

    def __len__(self) -> int:
        return self.num_samples

    def has(self, name: str) -> bool:
        return name in self.arrays

    def masks(self, index: int | slice | np.ndarray) -> np.ndarray:
        """Unpacked masks, uint8 0/1: (H,W) for an int index, (n,H,W) otherwise."""
        return unpack_masks(np.asarray(self.arrays["masks"][index]), self.image_size[1])

    def split_indices(self, split: str | None) -> np.ndarray:
        """Sample indices (n,) int64 of a named split (the card's "splits"), or all samples for None."""
        if split is None:
            return np.arange(self.num_samples)
        splits = self.card.get("splits")
        splits = splits if isinstance(splits, dict) else {}
        if split not in splits:
            raise Mask2HandError(f"dataset {self.path} has no split '{split}'; it has {sorted(splits) or 'none'}")
        entry = splits[split]
        if isinstance(entry, dict) and "ids_file" in entry:
            return self._split_ids(split, entry["ids_file"])
        start, stop = (entry.get("start"), entry.get("stop")) if isinstance(entry, dict) else (None, None)
        if not (type(start) is int and type(stop) is int and 0 <= start <= stop <= self.num_samples):
            raise self._damaged(f"the card's split '{split}' is not a range of sample ids in "
                                f"[0, {self.num_samples}]")
        return np.arange(start, stop)

    def _split_ids(self, split: str, name: Any) -> np.ndarray:
        """The ids (n,) int64 stored in a split's file, each a sample of this folder."""
        if not _plain_name(name) or not (self.path / name).is_file():
            raise self._damaged(f"the ids file {name!r} of split '{split}' is missing")
        try:
            ids = np.load(self.path / name, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # ValueError: pickled or not numpy
            raise self._damaged(f"{name} is not a readable .npy array ({exc})") from None
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or (len(ids) and (ids.min() < 0
                                                                         or ids.max() >= self.num_samples)):
            raise self._damaged(f"{name} does not hold sample ids in [0, {self.num_samples})")
        return ids.astype(np.int64)


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a complete dataset folder; Mask2HandError if there is none or it is malformed."""
    path = Path(path)
    if not path.is_dir():
        raise Mask2HandError(f"dataset folder not found: {path}")
    card_file = path / CARD_NAME
    if not card_file.is_file():
        raise Mask2HandError(f"{path} is not a complete mask2hand dataset (no {CARD_NAME}); it may be an "
                             "interrupted write: delete it and generate it again")
    try:
        card = json.loads(card_file.read_text())
    except RecursionError:  # nested deeper than Python's stack
        raise Mask2HandError(f"{card_file} is not a mask2hand dataset card (nested too deeply); generate the "
                             "dataset again") from None
    except (OSError, ValueError) as exc:  # ValueError: not JSON, not text
        raise Mask2HandError(f"{card_file} is not valid JSON ({exc}); generate the dataset again") from None
    if not isinstance(card, dict) or card.get("format") != DATASET_FORMAT or not isinstance(card.get("arrays"), dict):
        raise Mask2HandError(f"{card_file} is not a mask2hand dataset card")
    version = card.get("format_version", 0)
    if type(version) is not int:
        raise Mask2HandError(f"{card_file}: format_version {version!r} is not a whole number; generate the "
                             "dataset again")
    if version > FORMAT_VERSION:
        raise Mask2HandError(f"{path} was written by a newer mask2hand (format {version}); upgrade mask2hand")
    size = card.get("image_size")
    if not (type(card.get("num_samples")) is int and card["num_samples"] > 0 and isinstance(size, list)
            and len(size) == 2 and all(type(n) is int and n > 0 for n in size)):
        raise Mask2HandError(f"{card_file}: num_samples and image_size must be positive whole numbers "
                             f"(got {card.get('num_samples')!r}, {size!r}); generate the dataset again")
    return card


def open_dataset(path: str | os.PathLike, verify: bool = False) -> StoredDataset:
    """Open a dataset folder (card, array headers and sizes checked); verify=True also checks every
    file's SHA-256 against the card."""
    return StoredDataset(path, verify=verify)


def split_source(source: str) -> tuple[Path, str | None]:
    """"folder:split" -> (folder, split); a plain folder -> (folder, None)."""
    folder, sep, split = source.rpartition(":")
    if sep and split and "/" not in split:
        return Path(folder), split
    return Path(source), None
