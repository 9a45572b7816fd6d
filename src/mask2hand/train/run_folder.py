"""A run folder held by one run at a time: `train` and `adapt` lock RUN/run.lock while they run.

The lock is an advisory `fcntl.flock` on the lock file, released by the operating system when the
process ends however it ends (SIGKILL included), so a stale lock file never blocks a later run.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from mask2hand.errors import Mask2HandError

LOCK_NAME = "run.lock"


@contextmanager
def hold_run_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Create `folder` if needed and hold its lock for the block; Mask2HandError when another run
    holds it, or when the folder cannot be created or written. A folder this call created and the
    block left empty (a run refused before it wrote anything) is removed again."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise Mask2HandError(f"the run folder {folder} is a file; choose another --out")
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise Mask2HandError(f"cannot write into the run folder {folder} ({exc.strerror or exc}); "
                             "choose a writable --out") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Mask2HandError(f"{folder} is in use by another run (it holds {folder / LOCK_NAME}); wait for "
                                 "that run to end or choose another --out") from None
        yield folder
    finally:
        if created and [path.name for path in folder.iterdir()] == [LOCK_NAME]:
            (folder / LOCK_NAME).unlink()
            folder.rmdir()
        os.close(descriptor)  # closing the file releases the lock
