"""A chumpy-free copy of the user's MANO model file that smplx opens: `mask2hand mano convert`.

MANO's official pickle holds chumpy objects, so `pickle.load` (what smplx does for a `.pkl`) needs
chumpy, which no longer installs on current Pythons. The copy is a NumPy `.npz` of plain arrays,
read by smplx with `smplx.MANO(model_path=..., ext="npz")` (`np.load`, then the same attributes
its pickle path reads): MANO_KEYS, each in the file's own dtype, with the sparse `J_regressor`
written dense, read here by mask2hand's restricted unpickler (nothing in the file runs).

smplx takes the side from the file name when `model_path` is a file ('RIGHT' in the name: right)
and looks for `MANO_RIGHT.npz` / `MANO_LEFT.npz` when it is a folder, so the copy keeps the
official names. The copy is the user's, written on their machine; MANO's licence covers it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.export.files import write_files
from mask2hand.hand.mano import read_mano_file


def mano_npz_bytes(source: str | os.PathLike) -> bytes:
    """The `.npz` copy (module docstring) of a MANO model file, as bytes; ModelFileError (one line)
    for a missing or unreadable file or one that is not MANO's."""
    arrays = read_mano_file(source).arrays
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def convert_mano(source: str | os.PathLike, out: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write the `.npz` copy of the MANO file `source` (the file itself, not its folder) to `out`,
    atomically; returns `out`. Mask2HandError if `out` does not end in `.npz`, or exists and
    `overwrite` is False."""
    source, out = Path(source), Path(out)
    if out.suffix != ".npz":
        raise Mask2HandError(f"{out}: the copy must be a .npz file (smplx reads it with ext='npz'); name it "
                             "MANO_RIGHT.npz or MANO_LEFT.npz")
    if out.exists() and not overwrite:
        raise Mask2HandError(f"{out} already exists; choose another file or allow overwriting (--overwrite)")
    if source.is_dir():
        raise Mask2HandError(f"{source} is a folder; name the MANO file itself (MANO_RIGHT.pkl or MANO_LEFT.pkl)")
    data = mano_npz_bytes(source)
    return write_files({out: lambda: data})[0]
