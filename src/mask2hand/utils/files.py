"""Atomic file writing (a file is either fully written or not there at all) and bounded reading of
small files given by a user."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from mask2hand.errors import Mask2HandError


TEMP_PREFIX = ".mask2hand-"
TEMP_SUFFIX = ".tmp"
"""Temporary files of `atomic_path` are named TEMP_PREFIX + random + TEMP_SUFFIX: short whatever
the target's name (a name near the file system's 255-byte limit still gets a temporary
sibling), and recognisable, so a folder's leftovers from a killed process can be found."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`.

    On any error (and on KeyboardInterrupt, which the CLI raises on SIGTERM too) the
    temporary file is removed and `path` keeps its old content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the permissions a plain open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_writable_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create `folder` if needed and write and remove a one-byte temporary file in it, as
    `atomic_path` does for every output: a read-only or full folder is found before any work. Raises
    Mask2HandError naming `what` (e.g. "--out") when that fails; returns the folder."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder)
        try:
            os.write(fd, b"\0")  # a full disk takes an empty file, not a byte
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as exc:
        raise Mask2HandError(f"cannot write into {what} {folder} ({exc.strerror or exc}); choose a writable "
                             "folder") from None
    return folder


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """The temporary files `atomic_path` left in `folder` (not recursive): a process killed
    mid-write (SIGKILL, power loss) cannot remove its own."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}") if p.is_file())


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically (see atomic_path); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_small_file(path: str | os.PathLike, max_bytes: int, what: str) -> bytes:
    """The bytes of a regular file of at most `max_bytes` bytes.

    Raises Mask2HandError naming `what` (e.g. "K file") and the path for a missing file, for
    anything but a regular file (a folder; a device such as /dev/zero, which never ends; a FIFO,
    whose opening blocks until someone writes), checked before opening, and for a larger file.
    """
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise Mask2HandError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise Mask2HandError(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise Mask2HandError(f"{what} {path} is not a regular file (a folder, device or pipe); give a file")
    too_large = f"{what} {path} is larger than {max_bytes} bytes"
    if info.st_size > max_bytes:
        raise Mask2HandError(too_large)
    try:
        with open(path, "rb") as file:
            data = file.read(max_bytes + 1)  # the file may have grown since stat
    except OSError as exc:
        raise Mask2HandError(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise Mask2HandError(too_large)
    return data
