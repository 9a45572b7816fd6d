"""Reader for the FreiHAND v2 training set in its official layout, and the paper's split.

Expected layout (the `FreiHAND_pub_v2` folder as downloaded):

    training/mask/00000000.jpg ...   224x224 JPEG masks, hand white (32,560 files)
    training/rgb/...                 130,240 images: 4 versions of each sample (not used)
    training_K.json                  32,560 x 3x3 intrinsics (pixels)
    training_xyz.json                32,560 x 21x3 joints (meters, camera space, FreiHAND order)
    training_verts.json              32,560 x 778x3 MANO vertices (meters, camera space)
    training_mano.json               32,560 x 1x61 MANO parameters: 48 pose (3 global + 45
                                     fingers, axis-angle), 10 shape, 2 root uv, 1 scale

Only the first 32,560 samples have masks (the rgb folder repeats them with other
backgrounds), so sample id i refers to mask i and annotation entry i. Masks are
binarized at 127 (value > 127 is hand), as in the reference code.

The paper splits these 32,560 samples at random into 26,000 training, 3,280
validation and 3,280 test samples; the ids it used are in the reference code's
`FreiHand_split_ids.json` ({"train_ids": [...], "val_ids": [...], "test_ids": [...]}),
which `load_split_file` reads. Without that file, `paper_split` draws such a
partition with a fixed seed.

Parsing the 1.3 GB vertex file takes about a minute, so `convert_freihand` writes
the whole set once into a mask2hand dataset folder (see storage.py) that training
then memory-maps.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from mask2hand.errors import Mask2HandError

NUM_TRAINING = 32_560
PAPER_SPLIT_SIZES = {"train": 26_000, "val": 3_280, "test": 3_280}
PAPER_SPLIT_SEED = 0
MASK_THRESHOLD = 127
IMAGE_SIZE = (224, 224)
MANO_PARAM_LAYOUT = {"global_orient": (0, 3), "finger_pose": (3, 48), "betas": (48, 58), "uv_root": (58, 60),
                     "scale": (60, 61)}
_CHUNK = 1 << 26
_WHITESPACE = b" \n\r\t"
_NOT_STRUCTURE = bytes(sorted(set(range(256)) - set(b"[],")))  # every byte but brackets and commas
_REDOWNLOAD = "download and unpack FreiHAND_pub_v2 again"


def _broken(path: Path, what: str) -> Mask2HandError:
    return Mask2HandError(f"{path} is not an intact FreiHAND annotation file: {what}; {_REDOWNLOAD}")


def _entry_template(shape: tuple[int, ...]) -> bytes:
    """The brackets and commas of one entry with the numbers left out: (2, 3) -> b"[[,,],[,,]]"."""
    template = b""
    for size in reversed(shape):
        template = b"[" + b",".join([template] * size) + b"]"
    return template


def _entry_runs(fh, path: Path, depth: int) -> Iterator[bytes]:
    """The file's text without whitespace and without the outer list's brackets, in pieces that
    each hold whole entries separated by commas.

    An entry nested `depth` deep ends in `depth` closing brackets; followed by a comma, that
    run occurs only between two entries, so a block is cut there and the rest carried over.
    """
    boundary = b"]" * depth + b","
    carry, opened = b"", False
    while True:
        block = fh.read(_CHUNK)
        text = carry + block.translate(None, _WHITESPACE)
        if not opened and text:
            if not text.startswith(b"["):
                raise _broken(path, "it does not start with '['")
            text, opened = text[1:], True
        if not block:
            break
        cut = text.rfind(boundary)
        if cut < 0:
            carry = text
            continue
        yield text[:cut + depth]
        carry = text[cut + depth + 1:]
    if not opened:
        raise _broken(path, "it is empty")
    # the rest holds whole entries and the outer list's ']' unless the file was cut short
    if text.count(b"]") <= text.count(b"["):
        raise _broken(path, "it ends early (truncated)")
    if not text.endswith(b"]"):
        raise _broken(path, "it has more after its last ']'")
    if len(text) > 1:
        yield text[:-1]


def _parse_entries(text: bytes, path: Path, shape: tuple[int, ...], template: bytes, dtype) -> np.ndarray:
    """Entries separated by commas (whitespace-free text) -> (m, *shape) of `dtype`."""
    structure = text.translate(None, _NOT_STRUCTURE)
    count = (len(structure) + 1) // (len(template) + 1)
    if structure != b",".join([template] * count):
        raise _broken(path, f"its entries are not nested lists of shape {list(shape)}")
    numbers = text.translate(None, b"[]")
    try:
        values = np.fromstring(numbers.decode("ascii"), dtype=np.float64, sep=",")
    except (ValueError, UnicodeDecodeError):
        values = None
    # a missing value ("[1,,3]") or an unparsable one (older numpy stops quietly) leaves fewer numbers
    if values is None or values.size != count * int(np.prod(shape)):
        raise _broken(path, "it holds something other than numbers")
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
        values = values.astype(dtype)
    if not np.isfinite(values).all():  # after the cast, so that 1e300 in a float32 array counts too
        raise _broken(path, f"it holds NaN, infinite or out-of-range ({np.dtype(dtype)}) values")
    return values.reshape(count, *shape)


def read_number_array(path: str | os.PathLike, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    """A JSON file holding a list of entries, each a regular nested list of `shape` -> (N, *shape) of `dtype`.

    Streams the file in chunks (numbers parsed by numpy), so the 1.3 GB vertex file needs
    neither Python floats nor a second copy of the text. Anything but a complete list of
    such entries with finite numbers (a truncated file, a ragged or wrongly sized entry, a
    string, null, NaN, a number beyond `dtype`'s range) raises Mask2HandError.
    """
    path = Path(path)
    template = _entry_template(shape)
    try:
        with open(path, "rb") as fh:
            parts = [_parse_entries(text, path, shape, template, dtype)
                     for text in _entry_runs(fh, path, len(shape))]
    except OSError as exc:
        raise Mask2HandError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not parts:
        raise _broken(path, "it holds no entries")
    return np.concatenate(parts)


def _find_root(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    for candidate in (root, root / "FreiHAND_pub_v2"):
        if (candidate / "training_K.json").is_file() and (candidate / "training" / "mask").is_dir():
            return candidate
    raise Mask2HandError(f"{root} does not look like FreiHAND v2: expected training_K.json and training/mask/ "
                         "in it (the unpacked FreiHAND_pub_v2 folder)")


class FreiHand:
    """The FreiHAND training set (masks + annotations) read from the official layout.

    Attributes: root, K (N,3,3) float32, joints (N,21,3) float32 meters, vertices
    (N,778,3) float32 or None (load_vertices=False), mano (N,61) float32 or None.
    """

    def __init__(self, root: str | os.PathLike, load_vertices: bool = True, load_mano: bool = True):
        self.root = _find_root(root)
        self.K = read_number_array(self.root / "training_K.json", (3, 3), np.float32)
        self.joints = read_number_array(self.root / "training_xyz.json", (21, 3), np.float32)
        n = len(self.K)
        if len(self.joints) != n:
            raise Mask2HandError(f"FreiHAND at {self.root}: {n} intrinsics but {len(self.joints)} joint entries; "
                                 f"{_REDOWNLOAD}")
        self.vertices = None
        if load_vertices:
            self.vertices = self._optional("training_verts.json", (778, 3), n)
        self.mano = None
        if load_mano:
            self.mano = self._optional("training_mano.json", (1, 61), n)[:, 0]  # each entry is [[61 numbers]]

    def _optional(self, name: str, shape: tuple[int, ...], n: int) -> np.ndarray:
        file = self.root / name
        if not file.is_file():
            raise Mask2HandError(f"FreiHAND at {self.root}: {name} is missing; {_REDOWNLOAD}")
        array = read_number_array(file, shape, np.float32)
        if len(array) != n:
            raise Mask2HandError(f"FreiHAND at {self.root}: {name} has {len(array)} entries, training_K.json {n}; "
                                 f"{_REDOWNLOAD}")
        return array

    def __len__(self) -> int:
        return len(self.K)

    def mask_path(self, index: int) -> Path:
        return self.root / "training" / "mask" / f"{index:08d}.jpg"

    def mask(self, index: int) -> np.ndarray:
        """Mask of sample `index` as uint8 0/1 (H,W): JPEG value > 127 is hand."""
        if not 0 <= index < len(self):
            raise IndexError(f"FreiHAND sample {index} out of range [0, {len(self)})")
        path = self.mask_path(index)
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise Mask2HandError(f"cannot read FreiHAND mask {path}; {_REDOWNLOAD}")
        if image.shape != IMAGE_SIZE:
            raise Mask2HandError(f"FreiHAND mask {path} is {image.shape[1]}x{image.shape[0]} pixels, not "
                                 f"{IMAGE_SIZE[1]}x{IMAGE_SIZE[0]}; {_REDOWNLOAD}")
        return (image > MASK_THRESHOLD).astype(np.uint8)


def paper_split(num_samples: int = NUM_TRAINING, seed: int = PAPER_SPLIT_SEED,
                sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """A random partition of ids 0..num_samples-1 into train/val/test (sorted id arrays).

    Default sizes are the paper's 26,000 / 3,280 / 3,280; for another num_samples
    they are scaled proportionally (test and val rounded, train takes the rest).
    """
    if sizes is None:
        if num_samples == NUM_TRAINING:
            sizes = dict(PAPER_SPLIT_SIZES)
        else:
            held = round(num_samples * PAPER_SPLIT_SIZES["val"] / NUM_TRAINING)
            sizes = {"train": num_samples - 2 * held, "val": held, "test": held}
    if sum(sizes.values()) > num_samples:
        raise Mask2HandError(f"split sizes {sizes} exceed the {num_samples} samples")
    order = np.random.default_rng(seed).permutation(num_samples)
    out, start = {}, 0
    for name, size in sizes.items():
        out[name] = np.sort(order[start:start + size]).astype(np.int64)
        start += size
    return out


def load_split_file(path: str | os.PathLike, num_samples: int | None = None) -> dict[str, np.ndarray]:
    """Read a split in the reference code's FreiHand_split_ids.json format."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, not text
        raise Mask2HandError(f"cannot read split file {path}: {exc}") from None
    expected = f"{path}: expected {{\"train_ids\": [...], \"val_ids\": [...], \"test_ids\": [...]}}"
    if not isinstance(raw, dict) or not any(k.endswith("_ids") for k in raw):
        raise Mask2HandError(expected)
    split = {}
    for key, ids in raw.items():
        if not key.endswith("_ids"):
            continue
        # bool is an int to Python, and a float id would be truncated silently by the cast
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise Mask2HandError(f"{expected}, with whole numbers as ids; {key} is not a list of them")
        try:
            split[key[: -len("_ids")]] = np.asarray(ids, dtype=np.int64)
        except OverflowError:
            raise Mask2HandError(f"{path}: {key} holds ids beyond 64 bits") from None
    seen = np.concatenate(list(split.values()))
    if len(np.unique(seen)) != len(seen):
        raise Mask2HandError(f"{path}: the splits share ids")
    if num_samples is not None and len(seen) and (seen.min() < 0 or seen.max() >= num_samples):
        raise Mask2HandError(f"{path}: ids must lie in [0, {num_samples})")
    return split


def save_split_file(split: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """Write a split in the FreiHand_split_ids.json format."""
    path = Path(path)
    path.write_text(json.dumps({f"{name}_ids": [int(i) for i in ids] for name, ids in split.items()}))
    return path


def convert_freihand(root: str | os.PathLike, out: str | os.PathLike, split_file: str | os.PathLike | None = None,
                     split_seed: int = PAPER_SPLIT_SEED, overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """Write FreiHAND's 32,560 training samples as a mask2hand dataset folder with splits.

    split_file: the reference code's FreiHand_split_ids.json; without it, the paper's
    26,000/3,280/3,280 partition drawn with `split_seed`.
    """
    from mask2hand.version import __version__
    from mask2hand.data.storage import ArraySpec, DatasetWriter

    start_time = time.perf_counter()
    data = FreiHand(root)
    n = len(data)
    if split_file is not None:
        split = load_split_file(split_file, n)
        split_info = {"source": "file", "file": str(split_file)}
    else:
        split = paper_split(n, seed=split_seed)
        split_info = {"source": "random partition (paper section 4.1)", "seed": split_seed}
    specs = {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"),
             "vertices": ArraySpec((778, 3), "float32"), "freihand_mano": ArraySpec((61,), "float32")}
    chunk = 512
    with DatasetWriter(out, n, IMAGE_SIZE, specs, overwrite=overwrite) as writer:
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            masks = np.stack([data.mask(i) for i in range(start, stop)])
            writer.write(start, masks=masks, K=data.K[start:stop], joints=data.joints[start:stop],
                         vertices=data.vertices[start:stop], freihand_mano=data.mano[start:stop])
            if progress is not None:
                progress(stop, n)
        splits = {}
        for name, ids in split.items():
            splits[name] = {"ids_file": writer.write_extra(f"split_{name}", ids), "count": int(len(ids))}
        card = {
            "generator": "freihand",
            "mask2hand_version": __version__,
            "source": {"dataset": "FreiHAND v2 training set", "root": str(data.root), "num_samples": n},
            "hand": {"name": "mano", "note": "vertices and joints are FreiHAND's annotations (MANO topology)"},
            "mask_threshold": MASK_THRESHOLD,
            "splits": splits,
            "split": split_info,
            "params": None,
            "freihand_mano_layout": {k: list(v) for k, v in MANO_PARAM_LAYOUT.items()},
            "counts": {name: int(len(ids)) for name, ids in split.items()},
            "timing": {"seconds": round(time.perf_counter() - start_time, 2)},
        }
        return writer.finish(card)
