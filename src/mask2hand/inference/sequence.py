"""Silhouette sequences: frames in, temporally smoothed hands out.

    from mask2hand import Mask2Hand
    from mask2hand.inference.sequence import read_frames, predict_sequence

    frames = read_frames("masks.mp4")          # a video, an animated GIF, a multi-page TIFF or a folder
    result = predict_sequence(Mask2Hand.from_pretrained(), frames)
    result.predictions[t].joints               # (21,3) per frame, smoothed
    result.raw_joints[t]                       # the same without smoothing

The network runs on every frame independently (stages 1 and 2 of mask2hand.inference.api),
batch by batch as the frames are prepared; the smoothing acts on its answers before stage 3,
so the per-frame outputs (2-D joints, exact silhouette, IoU) are those of the smoothed hand.
Stage 3 runs once per frame, batch by batch too: what a frame keeps is its cleaned mask, its
network answer and its Prediction, about 100 kB for a small frame. What is smoothed, with a
One Euro filter (mask2hand.inference.smoothing) per dimension: the translation, the global
rotation (as a sign-continuous quaternion, not axis-angle), the 45 finger angles and the
betas; the mesh is then recomputed with the hand layer. When the network refines its
mesh with per-vertex offsets, those offsets are smoothed with the same filter and added
back, and the joints are regressed from the smoothed mesh as the network does.

Videos are read with imageio and its ffmpeg plugin (the imageio-ffmpeg package, which
bundles an ffmpeg binary); GIFs and multi-page TIFFs need only Pillow.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.image.files import MASK_SUFFIXES, check_image_size
from mask2hand.image.masks import DEFAULT_THRESHOLD
from mask2hand.inference.mirror import mirror_points
from mask2hand.inference.prepare import PreparedInput
from mask2hand.inference.runner import NetworkResult
from mask2hand.inference.smoothing import OneEuroConfig, one_euro_filter, smooth_rotations

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
STACK_SUFFIXES = (".gif", ".tif", ".tiff")
"""Files read as sequences: videos (ffmpeg) and image stacks (Pillow)."""

DEFAULT_FPS = 30.0
"""Frame rate assumed when neither the file nor the user gives one (folders of frames)."""

MAX_SEQUENCE_PIXELS = 1_000_000_000
"""Most pixels (frames x height x width) a video or image stack may hold: its frames are kept in
memory as 8-bit grey, so this bounds a sequence to about 1 GB. Checked before decoding where the
file says its size (GIF, TIFF), and frame by frame otherwise."""


@dataclass
class Frames:
    """An ordered sequence of masks: images (each a path or an (H,W)/(H,W,3) array), names
    (one output stem per frame), fps (None if unknown), source (what was read)."""

    images: list[Any]
    names: list[str]
    fps: float | None
    source: str


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def is_sequence_file(path: str | os.PathLike) -> bool:
    """True for files `mask2hand predict` reads as sequences without --sequence (videos, GIFs)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES + (".gif",)


def read_frames(path: str | os.PathLike) -> Frames:
    """A folder of mask files (sorted naturally by name), a video file, an animated GIF or a
    multi-page TIFF -> Frames. Raises Mask2HandError when it cannot be read or holds no frame."""
    path = Path(path)
    if path.is_dir():
        files = sorted((p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MASK_SUFFIXES),
                       key=lambda p: natural_key(p.name))
        if not files:
            raise Mask2HandError(f"{path} holds no mask files ({', '.join(MASK_SUFFIXES)})")
        return Frames(images=list(files), names=[p.stem for p in files], fps=None, source=str(path))
    if not path.is_file():
        raise Mask2HandError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        images, fps = _read_video(path)
    elif suffix in STACK_SUFFIXES:
        images, fps = _read_stack(path)
    else:
        raise Mask2HandError(f"{path}: not a sequence; give a folder of frames, a video "
                             f"({', '.join(VIDEO_SUFFIXES)}), a GIF or a multi-page TIFF")
    if not images:
        raise Mask2HandError(f"{path}: the file holds no frames")
    width = max(5, len(str(len(images) - 1)))
    return Frames(images=images, names=[f"{path.stem}_{t:0{width}d}" for t in range(len(images))], fps=fps,
                  source=str(path))


def _read_video(path: Path) -> tuple[list[np.ndarray], float | None]:
    import imageio.v3 as iio

    try:
        import imageio_ffmpeg  # noqa: F401  (imageio's ffmpeg plugin needs it)
    except ImportError:
        raise Mask2HandError("reading videos needs the imageio-ffmpeg package (pip install imageio-ffmpeg); "
                             "or give a folder of frames, a GIF or a multi-page TIFF") from None
    try:
        fps = iio.immeta(path, plugin="FFMPEG").get("fps")
        # grey at once: a mask video's channels are equal, and a long RGB video would cost 3x the memory
        images = []
        for frame in iio.imiter(path, plugin="FFMPEG"):  # a video's size is known only frame by frame
            images.append(_grey(frame))
            _check_sequence_size(path, len(images), *images[-1].shape)
    except Mask2HandError:
        raise
    except Exception as exc:
        raise Mask2HandError(f"{path}: cannot read the video ({type(exc).__name__}: {exc})") from None
    return images, float(fps) if fps else None


def _grey(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    frame = np.asarray(frame)
    return np.asarray(Image.fromarray(frame).convert("L")) if frame.ndim == 3 else frame


def _check_sequence_size(path: Path, frames: int, height: int, width: int) -> None:
    check_image_size(height, width, f"{path}: a frame")
    if frames * height * width > MAX_SEQUENCE_PIXELS:
        raise Mask2HandError(f"{path}: {frames} frames of {width}x{height} pixels are more than mask2hand holds at "
                             f"once ({MAX_SEQUENCE_PIXELS:,} pixels); split the sequence or downscale it")


def _read_stack(path: Path) -> tuple[list[np.ndarray], float | None]:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as image:
            width, height = image.size
            _check_sequence_size(path, getattr(image, "n_frames", 1), height, width)  # before decoding any frame
            durations, images = [], []
            for frame in ImageSequence.Iterator(image):
                durations.append(frame.info.get("duration"))
                images.append(np.asarray(frame.convert("L")))
    except Mask2HandError:
        raise
    except Exception as exc:
        raise Mask2HandError(f"{path}: cannot read the image stack ({type(exc).__name__}: {exc})") from None
    known = [d for d in durations if d]
    fps = 1000.0 / float(np.median(known)) if known else None  # GIF frame durations are in milliseconds
    return images, fps


# ---------------------------------------------------------------------- smoothing

LAYER_FRAMES = 64
"""Frames posed by the hand layer at once when smoothing a sequence."""

def smooth_network_result(raw: NetworkResult, hand, fps: float, config: OneEuroConfig | None = None
                          ) -> NetworkResult:
    """A NetworkResult of T consecutive frames -> the same with smoothed parameters and the
    mesh recomputed by `hand` (the network's HandModel). See the module docstring."""
    import torch

    device = hand.faces.device
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)  # noqa: E731

    def layer(global_orient, transl, pose, betas) -> np.ndarray:
        # LAYER_FRAMES at a time: the layer's per-vertex transforms cost kilobytes per vertex and frame
        return np.concatenate([hand(as_t(global_orient[s:s + LAYER_FRAMES]), as_t(transl[s:s + LAYER_FRAMES]),
                                    hand_pose=as_t(pose[s:s + LAYER_FRAMES]),
                                    betas=as_t(betas[s:s + LAYER_FRAMES])).vertices.cpu().numpy()
                               for s in range(0, len(transl), LAYER_FRAMES)])

    with torch.inference_mode():
        original = layer(raw.global_orient, raw.transl, raw.pose, raw.betas)
        offsets = raw.vertices.astype(np.float64) - original  # RefineNet's per-vertex offsets (0 without it)
        global_orient = smooth_rotations(raw.global_orient, fps, config)
        transl = one_euro_filter(raw.transl, fps, config)
        pose = one_euro_filter(raw.pose, fps, config)
        betas = one_euro_filter(raw.betas, fps, config)
        vertices = layer(global_orient, transl, pose, betas) + one_euro_filter(offsets, fps, config)
        joints = hand.joints_from_vertices(as_t(vertices)).cpu().numpy()
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return NetworkResult(vertices=f32(vertices), joints=f32(joints), global_orient=f32(global_orient),
                         transl=f32(transl), pose=f32(pose), betas=f32(betas), flat_hand_mean=raw.flat_hand_mean,
                         pose_pcs=None,
                         silhouette=raw.silhouette, hand_window=raw.hand_window)


@dataclass(frozen=True)
class SequencePrediction:
    """predictions: one Prediction per predicted frame (smoothed unless smoothing was off);
    raw_joints: (T,21,3) meters, the same frames' joints without smoothing, in each frame's camera
    (what the jitter without smoothing is measured on); frames: their indices in the Frames; fps:
    the frame rate used; smoothing: the filter settings (None: off); failed: (frame name, one-line
    reason) of the frames left out (only with skip_bad_frames)."""

    predictions: list
    raw_joints: np.ndarray
    frames: list[int]
    fps: float
    smoothing: OneEuroConfig | None
    failed: list[tuple[str, str]]


def predict_sequence(model, frames: Frames, K=None, focal: float | None = None,
                     threshold: float = DEFAULT_THRESHOLD, side: str = "right", fps: float | None = None,
                     smoothing: OneEuroConfig | None = OneEuroConfig(), batch_size: int = 64,
                     skip_bad_frames: bool = False) -> SequencePrediction:
    """Predict every frame with `model` (a Mask2Hand) and smooth over time.

    K / focal: one camera for all frames (as in Mask2Hand.predict). fps: overrides the
    file's frame rate (default: the file's, else DEFAULT_FPS). smoothing=None turns the
    filter off. A bad frame raises Mask2HandError naming it, or with skip_bad_frames is left
    out and listed in `failed` (the filter then treats its neighbours as consecutive);
    Mask2HandError if no frame is left.
    """
    rate = float(fps or frames.fps or DEFAULT_FPS)
    if not rate > 0:
        raise Mask2HandError(f"the frame rate must be positive, got {rate}")
    hand = model.hand_layer("smoothing a sequence (pass smoothing=None to turn it off)") if smoothing is not None else None
    items, kept, failed, answers, pending = [], [], [], [], []

    def run_pending() -> None:
        if pending:
            answers.append(model.run_network(pending))
            items.extend(without_model_input(item) for item in pending)
            pending.clear()

    for t, (image, name) in enumerate(zip(frames.images, frames.names)):
        label = str(image) if isinstance(image, (str, os.PathLike)) else f"{frames.source} frame {name}"
        try:
            pending.append(model.prepare(image, K=K, focal=focal, threshold=threshold, name=label, side=side))
            kept.append(t)
        except Mask2HandError as exc:
            if not skip_bad_frames:
                raise Mask2HandError(f"{label}: {exc}") from None
            failed.append((name, str(exc)))
        if len(pending) == batch_size:
            run_pending()
    run_pending()
    if not items:
        raise Mask2HandError(f"{frames.source}: no frame could be predicted")
    raw = NetworkResult.concat(answers)
    answers.clear()
    raw_joints = mirror_points(raw.joints) if side == "left" else raw.joints
    if smoothing is None:
        return SequencePrediction(predictions=finish_in_chunks(model, items, raw, batch_size), raw_joints=raw_joints,
                                  frames=kept, fps=rate, smoothing=None, failed=failed)
    smoothed = finish_in_chunks(model, items, smooth_network_result(raw, hand, rate, smoothing), batch_size)
    note = (f"parameters smoothed over time (One Euro filter, min_cutoff {smoothing.min_cutoff:g} Hz, "
            f"beta {smoothing.beta:g}, d_cutoff {smoothing.d_cutoff:g} Hz, {rate:g} fps)")
    smoothed = [replace(p, notes=p.notes + [note]) for p in smoothed]
    return SequencePrediction(predictions=smoothed, raw_joints=raw_joints, frames=kept, fps=rate,
                              smoothing=smoothing, failed=failed)


def without_model_input(item: PreparedInput) -> PreparedInput:
    """A prepared frame after the network has run on it: what `finish` reads (the cleaned mask, its
    transform and camera), without the network's (S,S) input, which would cost more than a small frame."""
    return replace(item, mask=replace(item.mask, model_input=None))


def finish_in_chunks(model, items: list[PreparedInput], raw: NetworkResult, batch_size: int) -> list:
    """`model.finish` of a sequence, batch_size frames at a time: its working memory (the rebuilt
    parameters' Jacobians, megabytes per frame) is a batch's, not the sequence's."""
    return [prediction for start in range(0, len(items), batch_size)
            for prediction in model.finish(items[start:start + batch_size], raw.take(slice(start, start + batch_size)))]
