"""Silhouette sequences: frames in, temporally smoothed hands out.

    from mask2hand import Mask2Hand
    from mask2hand.inference.sequence import read_frames, predict_sequence

    frames = read_frames("masks.mp4")          # a video, an animated GIF, a multi-page TIFF or a folder
    result = predict_sequence(Mask2Hand.from_pretrained(), frames)
    result.predictions[t].joints               # (21,3) per frame, smoothed
    result.raw[t].joints                       # the same without smoothing

The network runs on every frame independently (stages 1 and 2 of mask2hand.inference.api);
the smoothing acts on its answers before stage 3, so the per-frame outputs (2-D
joints, exact silhouette, IoU) are those of the smoothed hand. What is smoothed, with a
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
from mask2hand.image.masks import DEFAULT_THRESHOLD, MASK_SUFFIXES
from mask2hand.inference.smoothing import OneEuroConfig, one_euro_filter, smooth_rotations

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
STACK_SUFFIXES = (".gif", ".tif", ".tiff")
"""Files read as sequences: videos (ffmpeg) and image stacks (Pillow)."""

DEFAULT_FPS = 30.0
"""Frame rate assumed when neither the file nor the user gives one (folders of frames)."""


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
        images = [_grey(frame) for frame in iio.imiter(path, plugin="FFMPEG")]
    except Exception as exc:
        raise Mask2HandError(f"{path}: cannot read the video ({type(exc).__name__}: {exc})") from None
    return images, float(fps) if fps else None


def _grey(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    frame = np.asarray(frame)
    return np.asarray(Image.fromarray(frame).convert("L")) if frame.ndim == 3 else frame


def _read_stack(path: Path) -> tuple[list[np.ndarray], float | None]:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as image:
            durations, images = [], []
            for frame in ImageSequence.Iterator(image):
                durations.append(frame.info.get("duration"))
                images.append(np.asarray(frame.convert("L")))
    except Exception as exc:
        raise Mask2HandError(f"{path}: cannot read the image stack ({type(exc).__name__}: {exc})") from None
    known = [d for d in durations if d]
    fps = 1000.0 / float(np.median(known)) if known else None  # GIF frame durations are in milliseconds
    return images, fps


# ---------------------------------------------------------------------- smoothing

def smooth_network_result(raw, hand, fps: float, config: OneEuroConfig | None = None):
    """A NetworkResult of T consecutive frames -> the same with smoothed parameters and the
    mesh recomputed by `hand` (the network's HandModel). See the module docstring."""
    import torch

    from mask2hand.inference.api import NetworkResult

    device = hand.faces.device
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64, device=device)  # noqa: E731

    def layer(global_orient, transl, pose, betas):
        return hand(as_t(global_orient), as_t(transl), pose=as_t(pose), betas=as_t(betas)).vertices

    with torch.inference_mode():
        original = layer(raw.global_orient, raw.transl, raw.pose, raw.betas).cpu().numpy()
        offsets = raw.vertices.astype(np.float64) - original  # RefineNet's per-vertex offsets (0 without it)
        global_orient = smooth_rotations(raw.global_orient, fps, config)
        transl = one_euro_filter(raw.transl, fps, config)
        pose = one_euro_filter(raw.pose, fps, config)
        betas = one_euro_filter(raw.betas, fps, config)
        vertices = layer(global_orient, transl, pose, betas) + as_t(one_euro_filter(offsets, fps, config))
        joints = hand.joints_from_vertices(vertices)
        vertices, joints = vertices.cpu().numpy(), joints.cpu().numpy()
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return NetworkResult(vertices=f32(vertices), joints=f32(joints), global_orient=f32(global_orient),
                         transl=f32(transl), pose=f32(pose), betas=f32(betas), pose_pcs=None,
                         silhouette=raw.silhouette)


def concat_results(results: list):
    """Concatenate NetworkResults along the batch."""
    from mask2hand.inference.api import NetworkResult

    def cat(name):
        values = [getattr(r, name) for r in results]
        return None if any(v is None for v in values) else np.concatenate(values)

    return NetworkResult(**{name: cat(name) for name in ("vertices", "joints", "global_orient", "transl", "pose",
                                                          "betas", "pose_pcs", "silhouette")})


@dataclass
class SequencePrediction:
    """predictions: one Prediction per frame (smoothed unless smoothing was off); raw: the
    per-frame predictions without smoothing; fps: the frame rate used; smoothing: the
    filter settings (None: off)."""

    predictions: list
    raw: list
    fps: float
    smoothing: OneEuroConfig | None


def predict_sequence(model, frames: Frames, K=None, focal: float | None = None,
                     threshold: float = DEFAULT_THRESHOLD, side: str = "right", fps: float | None = None,
                     smoothing: OneEuroConfig | None = OneEuroConfig(), batch_size: int = 64) -> SequencePrediction:
    """Predict every frame with `model` (a Mask2Hand) and smooth over time.

    K / focal: one camera for all frames (as in Mask2Hand.predict). fps: overrides the
    file's frame rate (default: the file's, else DEFAULT_FPS). smoothing=None turns the
    filter off. A bad frame raises Mask2HandError naming it (a sequence needs every frame).
    """
    rate = float(fps or frames.fps or DEFAULT_FPS)
    if not rate > 0:
        raise Mask2HandError(f"the frame rate must be positive, got {rate}")
    if smoothing is not None and getattr(model.runner, "hand", None) is None:
        raise Mask2HandError("smoothing re-poses the hand layer, which this model's runtime (ONNX) does not have: "
                             "load the PyTorch weights (Mask2Hand.from_pretrained) or pass smoothing=None")
    items = []
    for image, name in zip(frames.images, frames.names):
        label = str(image) if isinstance(image, (str, os.PathLike)) else f"{frames.source} frame {name}"
        try:
            items.append(model.prepare(image, K=K, focal=focal, threshold=threshold, name=label, side=side))
        except Mask2HandError as exc:
            raise Mask2HandError(f"{label}: {exc}") from None
    raw = concat_results([model.run_network(items[s:s + batch_size]) for s in range(0, len(items), batch_size)])
    raw_predictions = model.finish(items, raw)
    if smoothing is None:
        return SequencePrediction(predictions=raw_predictions, raw=raw_predictions, fps=rate, smoothing=None)
    smoothed = model.finish(items, smooth_network_result(raw, model.runner.hand, rate, smoothing))
    note = (f"parameters smoothed over time (One Euro filter, min_cutoff {smoothing.min_cutoff:g} Hz, "
            f"beta {smoothing.beta:g}, d_cutoff {smoothing.d_cutoff:g} Hz, {rate:g} fps)")
    smoothed = [replace(p, notes=p.notes + [note]) for p in smoothed]
    return SequencePrediction(predictions=smoothed, raw=raw_predictions, fps=rate, smoothing=smoothing)


def synthetic_sequence(hand, num_frames: int = 24, image_size: tuple[int, int] = (96, 96), focal: float = 220.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A hand moving smoothly through poses, for tests and benchmarks: parameters eased
    (cosine) from an open hand, fingers up, to a random half-closed pose turned and moved
    a little, rendered with the exact rasterizer. Returns (masks (T,H,W) bool, joints
    (T,21,3) meters, K (3,3)); principal point at the image center."""
    import torch

    from mask2hand.inference.cameras import intrinsics
    from mask2hand.render import rasterize_silhouette

    rng = np.random.default_rng(seed)
    K = intrinsics(image_size, focal)
    s = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, num_frames))[:, None]  # 0 -> 1, zero speed at both ends
    start_orient, end_orient = np.array([0.0, 0.0, np.pi / 2]), np.array([0.35, -0.4, np.pi / 2 + 0.3])
    start_transl, end_transl = np.array([0.0, 0.09, 0.6]), np.array([0.02, 0.07, 0.62])
    end_pose = np.abs(rng.normal(0.0, 0.35, 45)) * np.tile([0.2, 0.2, 1.0], 15)  # mostly flexion (about z)
    to_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    with torch.inference_mode():
        out = hand(to_t((1 - s) * start_orient + s * end_orient), to_t((1 - s) * start_transl + s * end_transl),
                   pose=to_t(s * end_pose), betas=torch.zeros(num_frames, 10, dtype=torch.float64))
    masks = rasterize_silhouette(out.vertices, hand.faces, np.repeat(K[None], num_frames, 0), image_size=image_size)
    return masks, out.joints.numpy(), K


# ---------------------------------------------------------------------- animation

def _hex_rgb(color: str) -> tuple[int, int, int]:
    return tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))


def skeleton_panel(prediction, max_side: int = 320) -> np.ndarray:
    """A light animation frame (H',W',3) uint8: the input mask in grey, the predicted
    silhouette's contour in amber and the 2-D skeleton coloured per finger (cv2, no
    matplotlib, so it costs about a millisecond)."""
    import cv2

    from mask2hand.export.figures import CONTOUR_COLOR, FREIHAND_BONES, bone_colors, joint_colors

    mask = np.asarray(prediction.mask, dtype=bool)
    scale = max_side / max(mask.shape)
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    image = cv2.resize(np.where(mask, 110, 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    image = np.repeat(image[:, :, None], 3, axis=2)
    rendered = cv2.resize(np.asarray(prediction.rendered_mask, dtype=np.uint8), size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(rendered, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, _hex_rgb(CONTOUR_COLOR), 1, lineType=cv2.LINE_AA)
    # continuous pixel coordinates (centers at +0.5) -> cv2's integer pixel indices, with 4 bits of subpixel
    uv = np.nan_to_num(np.asarray(prediction.joints_2d, dtype=np.float64), nan=-1e6, posinf=1e6, neginf=-1e6)
    points = np.round(np.clip((uv * scale - 0.5) * 16, -(2 ** 20), 2 ** 20)).astype(np.int64)
    for (a, b), color in zip(FREIHAND_BONES, bone_colors()):
        cv2.line(image, tuple(map(int, points[a])), tuple(map(int, points[b])), _hex_rgb(color), 2, cv2.LINE_AA, 4)
    for point, color in zip(points, joint_colors()):
        cv2.circle(image, tuple(map(int, point)), 3 * 16, _hex_rgb(color), -1, cv2.LINE_AA, 4)
    return image


def write_gif(path: str | os.PathLike, images: list[np.ndarray], fps: float) -> Path:
    """An animated GIF (looping) of equally sized RGB frames (H,W,3) uint8, written atomically."""
    import imageio.v3 as iio

    from mask2hand.utils.files import atomic_path

    path = Path(path)
    # GIF stores durations in hundredths of a second: round to what survives
    duration = max(20, round(100.0 / fps) * 10)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(images), extension=".gif", duration=duration, loop=0)
    return path
