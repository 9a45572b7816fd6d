"""One `POST /api/predict` request -> the library's inputs: its options and its prepared mask.

The form's text fields are checked by the library's own checks (`check_focal`, `check_K`,
`resolve_fit`, `resolve_hypotheses`, `check_side`), so a bad value is refused with the message
`mask2hand predict` gives for it. The mask file is copied to a temporary file (`saved_upload`)
that the service predicts through `Mask2Hand.predict_each`, the pipeline `mask2hand predict`
uses: the same reader, formats, checks, pixel limit (MAX_IMAGE_SIDE a side) and messages,
prefixed with the upload's name as the CLI prefixes the path.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Iterator

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.image.files import ARRAY_SUFFIXES, IMAGE_SUFFIXES
from mask2hand.image.camera import check_focal
from mask2hand.utils.checks import check_K
from mask2hand.inference.fitting import resolve_fit, resolve_hypotheses
from mask2hand.inference.prepare import check_side

if TYPE_CHECKING:
    from mask2hand.fit.core import FitConfig

NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of a .npy file: an array is recognised by them whatever the upload is called."""

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")  # "" is what an HTML form sends for an empty field

MAX_NAME_LENGTH = 100
"""Longest upload name kept (it appears in messages, the JSON's "source" and download names)."""


@dataclass(frozen=True)
class PredictOptions:
    """The checked options of one request.

    focal: focal length in pixels (principal point at the image center) or None; K: (3,3)
    float64 pixel intrinsics or None (at most one of them); fit: the test-time fit's settings
    or None (the network's answer); hypotheses: how many ranked hands to add, or None;
    side: "right", "left" or "auto".
    """

    focal: float | None = None
    K: np.ndarray | None = None
    fit: FitConfig | None = None
    hypotheses: int | None = None
    side: str = "right"


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def parse_bool(value: str | None, field: str) -> bool:
    """A form checkbox or flag: 1/true/yes/on or 0/false/no/off/empty (any case)."""
    word = (value or "").strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise Mask2HandError(f"{field} must be true or false, got {value!r}")


def parse_focal(value: str | None) -> float | None:
    """The `focal` field: a positive number of pixels, or None when empty."""
    if _blank(value):
        return None
    try:
        number = float(value)
    except ValueError:
        raise Mask2HandError(f"the focal length must be a positive number of pixels, got {value!r}") from None
    return check_focal(number)


def parse_K(value: str | None) -> np.ndarray | None:
    """The `K` field: a JSON 3x3 matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] in pixels, or None when empty."""
    if _blank(value):
        return None
    example = "give a 3x3 matrix such as [[490, 0, 112], [0, 490, 112], [0, 0, 1]]"
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise Mask2HandError(f"K is not valid JSON ({exc}); {example}") from None
    except RecursionError:
        raise Mask2HandError(f"K is nested too deeply to read; {example}") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise Mask2HandError(f"K holds a number with too many digits; {example}") from None
    try:
        return check_K(data)
    except OverflowError:  # an integer too large for a float
        raise Mask2HandError(f"K holds a number too large for a float; {example}") from None


def parse_hypotheses(value: str | None) -> int | None:
    """The `hypotheses` field: a count from 1 to MAX_HYPOTHESES, or None when empty or 0."""
    if _blank(value):
        return None
    try:
        count = int(value)
    except ValueError:
        raise Mask2HandError(f"hypotheses must be a whole number of hands, got {value!r}") from None
    return None if count == 0 else resolve_hypotheses(count)


def parse_options(focal: str | None = None, K: str | None = None, fit: str | None = None,
                  hypotheses: str | None = None, side: str | None = None) -> PredictOptions:
    """The form's text fields (None or "" where absent) -> PredictOptions; raises Mask2HandError
    naming the first bad field."""
    options = PredictOptions(focal=parse_focal(focal), K=parse_K(K),
                             fit=resolve_fit(True) if parse_bool(fit, "fit") else None,
                             hypotheses=parse_hypotheses(hypotheses),
                             side=check_side("right" if _blank(side) else side.strip().lower(), allow_auto=True))
    if options.focal is not None and options.K is not None:
        raise Mask2HandError("give either K or a focal length, not both")
    return options


def upload_name(filename: str | None) -> str:
    """A safe display name for an uploaded file: its last path part, printable, at most
    MAX_NAME_LENGTH characters ("upload" when the client sent none)."""
    name = re.split(r"[\\/]", filename or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[-MAX_NAME_LENGTH:] or "upload"


def _suffix(name: str, head: bytes) -> str:
    """The suffix the temporary copy gets: the library reads .npy as an array and anything else
    with Pillow, which recognises images by their content."""
    suffix = Path(name).suffix.lower()
    if head.startswith(NPY_MAGIC) or suffix in ARRAY_SUFFIXES:
        return ".npy"
    return suffix if suffix in IMAGE_SUFFIXES else ".img"


@contextmanager
def saved_upload(file: BinaryIO, name: str) -> Iterator[Path]:
    """A temporary copy of an uploaded file (a binary file object at its start), named so that the
    library's reader reads it as what it is (see `_suffix`); removed on leaving the block."""
    head = file.read(len(NPY_MAGIC))
    file.seek(0)
    with tempfile.TemporaryDirectory(prefix="mask2hand-serve-") as folder:
        path = Path(folder) / f"upload{_suffix(name, head)}"
        with path.open("wb") as copy:
            shutil.copyfileobj(file, copy)
        yield path
