"""Sequences of masks read one frame at a time: folders of frames, videos, animated GIFs, TIFF stacks.

    from mask2hand.inference.video import read_frames

    frames = read_frames("masks.mp4")      # nothing decoded yet
    for name, image in frames:             # one (H,W) uint8 frame at a time
        ...

A `Frames` holds how to read its frames, not the frames: iterating it decodes them one by one,
so reading a sequence takes the memory of one frame whatever its length. Videos are read with
imageio and its ffmpeg plugin (the imageio-ffmpeg package, which bundles an ffmpeg binary) and
turned grey as they arrive; GIFs and multi-page TIFFs need only Pillow. Each frame is checked
against the image size limit of mask2hand.image.files before it is used.
"""

from __future__ import annotations

import math
import os
import re
from itertools import count as count_from, islice
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from mask2hand.errors import InputError, Mask2HandError
from mask2hand.image.files import MASK_SUFFIXES, check_image_size

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
STACK_SUFFIXES = (".gif", ".tif", ".tiff")
"""Files read as sequences: videos (ffmpeg) and image stacks (Pillow)."""

NAME_DIGITS = 5
"""Digits of a video or stack frame's number in its name (<stem>_00042): more where the frames need them."""


@dataclass(frozen=True)
class Frames:
    """An ordered sequence of masks, read as it is iterated: `for name, image in frames`, image a
    path or an (H,W) / (H,W,3) array, name its output stem.

    source: what is read (a path, or a description); fps: the file's frame rate (None if it has
    none); count: the number of frames, known or estimated from the file's duration (None where
    only reading tells); read: makes the iterator of (name, image), each call from the start.
    """

    source: str
    fps: float | None
    count: int | None
    read: Callable[[], Iterator[tuple[str, Any]]]

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return self.read()

    @classmethod
    def from_images(cls, images: Sequence[Any], names: Sequence[str] | None = None, fps: float | None = None,
                    source: str = "<arrays>") -> "Frames":
        """Frames of images already at hand (paths or arrays); names default to frame_00000, ..."""
        images = list(images)
        names = list(names) if names is not None else list(islice(frame_names("frame", len(images)), len(images)))
        if len(names) != len(images):
            raise Mask2HandError(f"{len(names)} names for {len(images)} frames")
        return cls(source=source, fps=fps, count=len(images), read=lambda: iter(zip(names, images)))

    def label(self, name: str, image: Any) -> str:
        """How messages name one frame: its file, or '<source> frame <name>'."""
        return str(image) if isinstance(image, (str, os.PathLike)) else f"{self.source} frame {name}"


def frame_names(stem: str, count: int | None) -> Iterator[str]:
    """<stem>_00000, <stem>_00001, ... without end, with the digits `count` frames need (count: known
    or estimated; a video may hold more frames than its duration says)."""
    width = max(NAME_DIGITS, len(str(count - 1))) if count else NAME_DIGITS
    return (f"{stem}_{t:0{width}d}" for t in count_from(0))


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def is_sequence_file(path: str | os.PathLike) -> bool:
    """True for files `mask2hand predict` reads as sequences without --sequence (videos, GIFs)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES + (".gif",)


def read_frames(path: str | os.PathLike) -> Frames:
    """A folder of mask files (sorted naturally by name), a video file, an animated GIF or a
    multi-page TIFF -> Frames. Opens the file to read its frame rate and size; the frames are
    decoded as the Frames is iterated. Raises InputError when it cannot be read or holds no frame
    (a frame that fails later raises InputError while iterating)."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MASK_SUFFIXES),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise InputError(f"{path} holds no mask files ({', '.join(MASK_SUFFIXES)})")
        return Frames.from_images(files, [p.stem for p in files], source=str(path))
    if not path.is_file():
        raise InputError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        fps, count = _video_header(path)
        read = lambda: _video_frames(path)  # noqa: E731
    elif suffix in STACK_SUFFIXES:
        fps, count = _stack_header(path)
        read = lambda: _stack_frames(path)  # noqa: E731
    else:
        raise InputError(f"{path}: not a sequence; give a folder of frames, a video "
                         f"({', '.join(VIDEO_SUFFIXES)}), a GIF or a multi-page TIFF")
    if count == 0:
        raise InputError(f"{path}: the file holds no frames")

    def named() -> Iterator[tuple[str, np.ndarray]]:
        any_frame = False
        for name, image in zip(frame_names(path.stem, count), read()):
            any_frame = True
            yield name, image
        if not any_frame:
            raise InputError(f"{path}: the file holds no frames")

    return Frames(source=str(path), fps=fps, count=count, read=named)


def _grey(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    frame = np.asarray(frame)
    return np.asarray(Image.fromarray(frame).convert("L")) if frame.ndim == 3 else frame


def _ffmpeg():
    import imageio.v3 as iio

    try:
        import imageio_ffmpeg  # noqa: F401  (imageio's ffmpeg plugin needs it)
    except ImportError:
        raise InputError("reading videos needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                         "or give a folder of frames, a GIF or a multi-page TIFF") from None
    return iio


def _video_header(path: Path) -> tuple[float | None, int | None]:
    """(frame rate, frame count estimated from the duration) from a video's metadata."""
    iio = _ffmpeg()
    try:
        meta = iio.immeta(path, plugin="FFMPEG")
    except Exception as exc:
        raise InputError(f"{path}: cannot read the video ({type(exc).__name__}: {exc})") from None
    fps, duration = meta.get("fps"), meta.get("duration")
    fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else None
    count = round(duration * fps) if fps and duration and math.isfinite(duration) else None
    return fps, count


def _video_frames(path: Path) -> Iterator[np.ndarray]:
    iio = _ffmpeg()
    frames = iio.imiter(path, plugin="FFMPEG")
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except Exception as exc:
            raise InputError(f"{path}: cannot read the video ({type(exc).__name__}: {exc})") from None
        check_image_size(*frame.shape[:2], f"{path}: a frame")
        # grey at once: a mask video's channels are equal
        yield _grey(frame)


def _stack_header(path: Path) -> tuple[float | None, int]:
    """(frame rate from the frame durations, frame count) of a GIF or TIFF stack; its frame size is
    checked here, before any frame is decoded."""
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as image:
            width, height = image.size
            check_image_size(height, width, f"{path}: a frame")
            count = getattr(image, "n_frames", 1)
            durations = [frame.info.get("duration") for frame in ImageSequence.Iterator(image)] \
                if path.suffix.lower() == ".gif" else []
    except Mask2HandError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read the image stack ({type(exc).__name__}: {exc})") from None
    known = [d for d in durations if d]
    fps = 1000.0 / float(np.median(known)) if known else None  # GIF frame durations are in milliseconds
    return fps, count


def _stack_frames(path: Path) -> Iterator[np.ndarray]:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as image:
            for frame in ImageSequence.Iterator(image):
                yield np.asarray(frame.convert("L"))
    except Mask2HandError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read the image stack ({type(exc).__name__}: {exc})") from None
