"""Synthetic mask datasets: the paper's protocol, a broad corpus, and natural views.

All render hands of a hand source (hand_source.py: the hand layer's open hand or MANO,
or Anny) with the exact rasterizer and store them with `storage.DatasetWriter`. A
sample is drawn in parts, each from its own random stream per split:

- the *pose draw* (finger pose, shape, and the optional shape variety of
  shape_variety.py), fixed per pose id;
- the *view draw* (global orientation, focal length, hand size and position in the
  image). A rejected view (hand behind the camera, partly out of the image, or too
  small) is counted under its reason in the card and redrawn with the same pose, so
  rejection never changes the pose distribution and never keeps a bad sample;
- the optional *forearm* (forearm.py), attached to the accepted, placed hand. Its
  pixels join the mask (what a network sees); the hand-only mask is stored beside it
  (`hand_mask`), and vertices and joints stay the hand's.

Options that are off (a forearm or shape-variety probability of 0) draw nothing from the
random streams, so they leave the rest of a corpus's samples unchanged.

Placement (the paper gives no camera or translation): the posed, oriented hand's
3-D bounding-box center is put on the ray through a chosen image point, at the depth
where the box's larger x/y side projects to a chosen size in pixels:
    Z = f * max(x extent, y extent) / size_px,   (X, Y) = ((u0 - cx), (v0 - cy)) * Z / f,
    transl = (X, Y, Z) - box center.
The image point (u0, v0) is the principal point plus an offset drawn uniformly within
the range where the box still fits in the image (capped by `max_offset_px`).
Perspective makes the final extent differ slightly from size_px; the exact
projection of every vertex is then checked.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mask2hand.data.corpus_cards import (broad_choices, common_choices, forearm_choice, hand_params_choice,
                                         natural_choices, paper_choices, variety_choice)
from mask2hand.data.forearm import FOREARM_FACES, ForearmSettings, build_forearms, draw_forearms
from mask2hand.data.hand_source import LayerHands, load_hand_source
from mask2hand.data.shape_variety import ShapeVariety, ShapeVarietyDraw, apply_shape_variety, draw_shape_variety
from mask2hand.data.storage import ArraySpec, DatasetWriter, pack_masks
from mask2hand.data.views import NaturalOrientation, rest_axes_of, sample_natural_orientations, view_angles
from mask2hand.errors import Mask2HandError

REJECTION_REASONS = ("behind_camera", "out_of_image", "too_small")
NEAR_Z_M = 0.05  # a hand closer than 5 cm to the camera is not a plausible view
CHUNK = 1024
MAX_ROUNDS = 200
HOPELESS_ROUNDS = 20


@dataclass(frozen=True)
class ViewSampling:
    """How a view (orientation, camera, placement) is drawn.

    image_size (H, W); focal_range (px) for fx = fy, log-uniform if focal_log_uniform;
    size_range_px: the larger side of the hand's projected box, log-uniform if
    size_log_uniform; max_offset_px: cap on the offset of the box center from the
    principal point (None: anywhere the hand fits); margin_px: the hand must stay this far
    inside the image border; min_area_fraction: masks covering less of the image are
    rejected; orientation: "axis_angle_uniform" (each component from U[-pi, pi), the
    paper's), "so3_uniform" (uniform random rotations) or "natural" (NaturalCorpus's
    `orientation` settings: views.py).
    """

    image_size: tuple[int, int] = (224, 224)
    focal_range: tuple[float, float] = (350.0, 700.0)
    focal_log_uniform: bool = False
    size_range_px: tuple[float, float] = (100.0, 170.0)
    size_log_uniform: bool = False
    max_offset_px: float | None = 24.0
    margin_px: float = 1.0
    min_area_fraction: float = 0.005
    orientation: str = "axis_angle_uniform"


@dataclass(frozen=True)
class PaperProtocol:
    """Section 4.1: 6 pose-PCA coefficients from U[-2, 2), betas 0, 5 views per pose.

    mean_pose: what the coefficients are added to. "flat": the flat hand, like the
    paper's reference code with MANO; "model": the model's mean pose (the open hand's
    PCA is centred on its pose prior, so around the flat hand half of the draws bend
    fingers backwards past their limits); "auto": "model" for the open hand, "flat"
    for MANO.
    """

    train_poses: int = 4000
    test_poses: int = 400
    views_per_pose: int = 5
    num_pose_pcs: int = 6
    pcs_range: tuple[float, float] = (-2.0, 2.0)
    mean_pose: str = "auto"
    view: ViewSampling = field(default_factory=ViewSampling)
    forearm: ForearmSettings = field(default_factory=ForearmSettings)
    shape_variety: ShapeVariety = field(default_factory=ShapeVariety)

    def adds_model_mean(self, hand: str) -> bool:
        if self.mean_pose not in ("auto", "flat", "model"):
            raise Mask2HandError(f"mean_pose must be 'auto', 'flat' or 'model', got {self.mean_pose!r}")
        return self.mean_pose == "model" or (self.mean_pose == "auto" and hand == "open")


@dataclass(frozen=True)
class BroadCorpus:
    """The default model's corpus: prior poses (45 dims), betas ~ N(0, 1) clipped to +-3,
    uniform SO(3) orientations, a wide focal range and hand sizes from small to large.
    No forearm and no extra shape variety by default."""

    train: int = 100_000
    val: int = 2_000
    test: int = 2_000
    betas_std: float = 1.0
    betas_clip: float = 3.0
    view: ViewSampling = field(default_factory=lambda: ViewSampling(
        focal_range=(300.0, 900.0), focal_log_uniform=True, size_range_px=(56.0, 200.0), size_log_uniform=True,
        max_offset_px=None, min_area_fraction=0.003, orientation="so3_uniform"))
    forearm: ForearmSettings = field(default_factory=ForearmSettings)
    shape_variety: ShapeVariety = field(default_factory=ShapeVariety)


@dataclass(frozen=True)
class NaturalCorpus:
    """Hands as people hold them in front of a camera or over a light: prior poses (45 dims),
    betas ~ N(0, 1) clipped to +-3 (Anny: its own shape draws), natural orientations (views.py:
    palm or back toward the camera within a cone, fingers up to sideways, wrist below), FreiHAND-like
    framing (224 x 224, fx = fy from U[350, 700) px, the hand's box 100-170 px near the center),
    a forearm on most samples and the extra shape variety on most hands."""

    train: int = 50_000
    val: int = 2_000
    test: int = 2_000
    betas_std: float = 1.0
    betas_clip: float = 3.0
    orientation: NaturalOrientation = field(default_factory=NaturalOrientation)
    view: ViewSampling = field(default_factory=lambda: ViewSampling(orientation="natural"))
    forearm: ForearmSettings = field(default_factory=lambda: ForearmSettings(probability=0.85, away_from_camera=True))
    shape_variety: ShapeVariety = field(default_factory=lambda: ShapeVariety(probability=0.75))


def _uniform(rng: np.random.Generator, lo: float, hi: float, n: int, log: bool) -> np.ndarray:
    if log:
        return np.exp(rng.uniform(math.log(lo), math.log(hi), size=n))
    return rng.uniform(lo, hi, size=n)


def sample_orientations(rng: np.random.Generator, n: int, kind: str) -> np.ndarray:
    """(n,3) axis-angle global orientations."""
    if kind == "axis_angle_uniform":
        return rng.uniform(-math.pi, math.pi, size=(n, 3))
    if kind == "so3_uniform":
        from scipy.spatial.transform import Rotation

        q = rng.standard_normal((n, 4))  # a normalised 4-D Gaussian is a uniform unit quaternion
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return Rotation.from_quat(q).as_rotvec()
    if kind == "natural":
        raise Mask2HandError("'natural' orientations need NaturalCorpus's settings: generate_natural draws them")
    raise Mask2HandError(f"unknown orientation sampling '{kind}'")


@dataclass
class _Views:
    """Accepted views of a chunk: arrays indexed like the chunk's slots."""

    masks: np.ndarray
    K: np.ndarray
    joints: np.ndarray
    vertices: np.ndarray
    global_orient: np.ndarray
    transl: np.ndarray


def _place(v0: np.ndarray, focal: np.ndarray, size_px: np.ndarray, rng: np.random.Generator,
           view: ViewSampling) -> np.ndarray:
    """Translations (n,3) that put each oriented hand v0 (n,V,3) at the drawn size and position."""
    h, w = view.image_size
    lo, hi = v0.min(axis=1), v0.max(axis=1)
    center = (lo + hi) / 2
    extent = hi - lo
    depth = focal * np.maximum(extent[:, 0], extent[:, 1]) / size_px
    box_w = focal * extent[:, 0] / depth
    box_h = focal * extent[:, 1] / depth
    room_x = np.maximum(w / 2 - view.margin_px - box_w / 2, 0.0)
    room_y = np.maximum(h / 2 - view.margin_px - box_h / 2, 0.0)
    if view.max_offset_px is not None:
        room_x = np.minimum(room_x, view.max_offset_px)
        room_y = np.minimum(room_y, view.max_offset_px)
    du = rng.uniform(-1.0, 1.0, size=len(v0)) * room_x
    dv = rng.uniform(-1.0, 1.0, size=len(v0)) * room_y
    target = np.stack([du * depth / focal, dv * depth / focal, depth], axis=1)
    return target - center


def _draw_views(source, pose: np.ndarray, shape: np.ndarray, variety: ShapeVarietyDraw | None,
                rng: np.random.Generator, view: ViewSampling, orient: Callable[[np.random.Generator, int], np.ndarray],
                rejections: dict[str, int]) -> _Views:
    """Draw one accepted view for every slot (pose[i] (45,), shape[i] (S,), variety row i), redrawing
    rejected ones; `orient(rng, m)` draws m global orientations (m,3)."""
    from mask2hand.render import rasterize_silhouette

    n = pose.shape[0]
    h, w = view.image_size
    cx, cy = w / 2, h / 2
    faces = source.faces
    out = _Views(masks=np.zeros((n, h, w), bool), K=np.zeros((n, 3, 3), np.float32),
                 joints=np.zeros((n, 21, 3), np.float32), vertices=np.zeros((n, source.num_vertices, 3), np.float32),
                 global_orient=np.zeros((n, 3), np.float32), transl=np.zeros((n, 3), np.float32))
    pending = np.arange(n)
    min_area = view.min_area_fraction * h * w
    for round_ in range(MAX_ROUNDS):
        if len(pending) == 0:
            return out
        if round_ == HOPELESS_ROUNDS and len(pending) == n:
            break  # nothing accepted at all: the settings are impossible, say so now
        m = len(pending)
        orientation = orient(rng, m).astype(np.float32)
        focal = _uniform(rng, *view.focal_range, m, view.focal_log_uniform).astype(np.float32)
        size_px = _uniform(rng, *view.size_range_px, m, view.size_log_uniform)
        posed = source(orientation, pose[pending], shape[pending])
        hand_v, hand_j = posed.vertices, posed.joints
        if variety is not None:  # rotation-equivariant: the same hand whatever the view
            hand_v, hand_j = apply_shape_variety(hand_v, hand_j, faces.numpy(), variety.take(pending),
                                                 source.skin_weights(), source.fingertip_vertices())
        v0 = hand_v.astype(np.float64)
        transl = _place(v0, focal.astype(np.float64), size_px, rng, view).astype(np.float32)
        # the stored float32 arrays are exactly what is rendered and checked
        vertices = hand_v + transl[:, None, :]
        joints = hand_j + transl[:, None, :]
        K = np.zeros((m, 3, 3), np.float32)
        K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = focal, focal, cx, cy, 1.0

        v64 = vertices.astype(np.float64)
        behind = v64[..., 2].min(axis=1) <= NEAR_Z_M
        z = np.where(behind[:, None], 1.0, v64[..., 2])
        u = focal[:, None] * v64[..., 0] / z + cx
        v = focal[:, None] * v64[..., 1] / z + cy
        outside = ~behind & ((u.min(1) < view.margin_px) | (u.max(1) > w - view.margin_px)
                             | (v.min(1) < view.margin_px) | (v.max(1) > h - view.margin_px))
        candidates = np.nonzero(~behind & ~outside)[0]
        small = np.zeros(m, bool)
        masks = np.zeros((0, h, w), bool)
        if len(candidates):
            masks = rasterize_silhouette(vertices[candidates], faces, K[candidates], (h, w))
            small[candidates] = masks.reshape(len(candidates), -1).sum(1) < min_area
        rejections["behind_camera"] += int(behind.sum())
        rejections["out_of_image"] += int(outside.sum())
        rejections["too_small"] += int(small.sum())
        ok = np.zeros(m, bool)
        ok[candidates] = ~small[candidates]
        accepted = pending[ok]
        mask_rows = ok[candidates]
        out.masks[accepted] = masks[mask_rows]
        out.K[accepted], out.joints[accepted], out.vertices[accepted] = K[ok], joints[ok], vertices[ok]
        out.global_orient[accepted], out.transl[accepted] = orientation[ok], transl[ok]
        pending = pending[~ok]
    raise Mask2HandError(f"{len(pending)} samples were still rejected after {round_} redraws; the view "
                         f"settings ({view}) leave almost no valid views: widen the image or shrink the hand size")


def _view_stats(views: _Views, masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample: wrist depth (m), larger side of the hand's projected box (px), area fraction of
    the stored mask (hand and arm), and the view angles of views.view_angles (degrees)."""
    v = views.vertices.astype(np.float64)
    f = views.K[:, 0, 0].astype(np.float64)[:, None]
    u, w = f * v[..., 0] / v[..., 2], f * v[..., 1] / v[..., 2]
    box = np.maximum(u.max(1) - u.min(1), w.max(1) - w.min(1))
    return {"wrist_depth_m": views.joints[:, 0, 2].astype(np.float64), "box_px": box,
            "mask_area_fraction": masks.reshape(len(v), -1).mean(1), **view_angles(views.joints, views.K)}


def _forearm_stats(arms, masks: np.ndarray, hand_masks: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample: the hand-only mask's area fraction; whether it has an arm (forearm_share, 0/1); for arms
    only (NaN otherwise): whether the mask reaches the image border (forearm_leaves_image_share), the arm's
    share of the mask's pixels, its length (m), wrist and elbow breadths (m)."""
    n = len(masks)
    present = arms.present
    border = masks[:, 0].any(1) | masks[:, -1].any(1) | masks[:, :, 0].any(1) | masks[:, :, -1].any(1)
    total = np.maximum(masks.reshape(n, -1).sum(1), 1)
    arm_pixels = (masks & ~hand_masks).reshape(n, -1).sum(1)

    def only_arms(values):
        return np.where(present, values, np.nan).astype(np.float64)

    return {"hand_area_fraction": hand_masks.reshape(n, -1).mean(1), "forearm_share": present.astype(np.float64),
            "forearm_leaves_image_share": only_arms(border), "forearm_pixel_fraction": only_arms(arm_pixels / total),
            "forearm_length_m": only_arms(arms.length),
            "forearm_wrist_breadth_m": only_arms(arms.wrist_breadth),
            "forearm_elbow_breadth_m": only_arms(arms.elbow_breadth)}


def _summarize(stats: list[dict[str, np.ndarray]]) -> dict:
    """Percentiles (min, p5, median, p95, max) of each per-sample statistic over its finite values;
    the mean of each `*_share` (a fraction of samples)."""
    out = {}
    for name in stats[0]:
        values = np.concatenate([s[name] for s in stats])
        values = values[np.isfinite(values)]
        if name.endswith("_share"):
            out[name] = round(float(values.mean()), 4) if len(values) else None
        elif len(values):
            q = np.percentile(values, [0, 5, 50, 95, 100])
            out[name] = {"min": round(float(q[0]), 4), "p5": round(float(q[1]), 4), "median": round(float(q[2]), 4),
                         "p95": round(float(q[3]), 4), "max": round(float(q[4]), 4)}
    return out


@contextmanager
def _deterministic_torch():
    """One torch thread while generating: float results of the hand layer (hence the stored
    vertices, joints and poses) then do not depend on the caller's thread setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class _Streams:
    """The independent random streams of one split: pose draws, view draws, forearms, shape variety."""

    pose: np.random.Generator
    view: np.random.Generator
    forearm: np.random.Generator
    shape: np.random.Generator


def _split_rngs(seed: int, names: list[str], view_seed: int | None = None) -> dict[str, _Streams]:
    """Independent streams per split, so one split's size never changes another's samples. A seed
    sequence's first children do not depend on how many are spawned, so the pose and view streams
    are those of the generators before forearms and shape variety existed. view_seed: the seed of
    the view streams alone (None: `seed`), so the same poses can be drawn in other views."""

    def streams(of: int) -> list[list[np.random.Generator]]:
        children = np.random.SeedSequence(of).spawn(len(names))
        return [[np.random.default_rng(s) for s in child.spawn(4)] for child in children]

    own = streams(seed)
    if view_seed is not None:
        for split, other in zip(own, streams(view_seed)):
            split[1] = other[1]
    return {name: _Streams(*split) for name, split in zip(names, own)}


def _base_specs(source) -> dict[str, ArraySpec]:
    """The arrays every synthetic set stores besides the masks; the shape is `betas` (10,) for the
    hand layer, `shape` (S,) for Anny."""
    return {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"),
            "vertices": ArraySpec((source.num_vertices, 3), "float32"), "global_orient": ArraySpec((3,), "float32"),
            "transl": ArraySpec((3,), "float32"), "pose": ArraySpec((45,), "float32"),
            source.shape_name: ArraySpec((source.num_shape,), "float32")}


@dataclass(frozen=True)
class _PoseDraws:
    """The pose draws of a run of slots: finger pose (n,45) and shape (n,S), float32, the shape-variety
    draws (None when off), plus any generator-specific arrays (name -> (n, ...)) stored as they are."""

    pose: np.ndarray
    shape: np.ndarray
    variety: ShapeVarietyDraw | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class _SplitPoses:
    """The pose draws of one split: `draw(start, stop)` gives its slots [start, stop), asked for chunk by
    chunk in order; `card` holds the generator's extra fields of the split's entry in the card."""

    draw: Callable[[int, int], _PoseDraws]
    card: dict


@dataclass(frozen=True)
class _Plan:
    """Everything a generator decides; `_write_synthetic` renders and stores the rest the same way for all.

    generator, sampling, choices: its name, settings and explanation of its own draws in the card;
    counts: samples per split, in storage order; streams: the split names that own a random stream,
    in spawn order (a superset of counts, so an empty split leaves the others' samples unchanged);
    specs: the arrays stored besides the masks; split_poses(pose_rng, shape_rng, offset, count): the
    pose draws of a split whose first sample is `offset` in the folder; orient(rng, m): m global
    orientations (m,3); forearm, variety: the forearm and shape-variety settings.
    """

    generator: str
    sampling: dict
    choices: dict
    view: ViewSampling
    counts: dict[str, int]
    streams: tuple[str, ...]
    specs: dict[str, ArraySpec]
    split_poses: Callable[[np.random.Generator, np.random.Generator, int, int], _SplitPoses]
    orient: Callable[[np.random.Generator, int], np.ndarray]
    forearm: ForearmSettings
    variety: ShapeVariety


def _uniform_orientations(view: ViewSampling) -> Callable[[np.random.Generator, int], np.ndarray]:
    return lambda rng, m: sample_orientations(rng, m, view.orientation)


def _with_forearms(views: _Views, settings: ForearmSettings, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The masks of hand and arm (n,H,W) bool of accepted views, and the forearm statistics."""
    from mask2hand.render import rasterize_silhouette

    arms = build_forearms(views.vertices, views.joints, draw_forearms(rng, len(views.K), settings), near_z=NEAR_Z_M)
    masks = views.masks.copy()
    rows = np.nonzero(arms.present)[0]
    if len(rows):  # a pixel is in the union of two meshes iff it is in either
        masks[rows] |= rasterize_silhouette(arms.vertices[rows], FOREARM_FACES, views.K[rows], masks.shape[1:])
    return masks, _forearm_stats(arms, masks, views.masks)


def _write_synthetic(out: str | Path, source, seed: int, plan: _Plan, overwrite: bool,
                     progress: Callable[[int, int], None] | None, started: float,
                     view_seed: int | None = None) -> Path:
    """Draw views for every slot of every split in chunks of CHUNK, render and store them with the card.

    started: time.perf_counter() when generation began (the card's timing); view_seed: the seed of
    the view draws (None: `seed`; see _split_rngs). Returns the dataset folder.
    """
    from mask2hand.version import __version__

    total = sum(plan.counts.values())
    rngs = _split_rngs(seed, list(plan.streams), view_seed)
    rejections = {reason: 0 for reason in REJECTION_REASONS}
    stats: list[dict[str, np.ndarray]] = []
    arms_on = plan.forearm.probability > 0
    specs = dict(plan.specs)
    if arms_on:
        h, w = plan.view.image_size
        specs["hand_mask"] = ArraySpec((h, (w + 7) // 8), "uint8")
    splits, offset = {}, 0
    with DatasetWriter(out, total, plan.view.image_size, specs, overwrite=overwrite) as writer:
        for split, count in plan.counts.items():
            streams = rngs[split]
            poses = plan.split_poses(streams.pose, streams.shape, offset, count)
            for start in range(0, count, CHUNK):
                stop = min(count, start + CHUNK)
                draws = poses.draw(start, stop)
                got = _draw_views(source, draws.pose, draws.shape, draws.variety, streams.view, plan.view,
                                  plan.orient, rejections)
                masks, arrays, chunk_stats = got.masks, {}, {}
                if arms_on:
                    masks, chunk_stats = _with_forearms(got, plan.forearm, streams.forearm)
                    arrays["hand_mask"] = pack_masks(got.masks)
                stats.append({**_view_stats(got, masks), **chunk_stats})
                writer.write(offset + start, masks=masks, K=got.K, joints=got.joints, vertices=got.vertices,
                             global_orient=got.global_orient, transl=got.transl, pose=draws.pose,
                             **{source.shape_name: draws.shape}, **arrays, **draws.extra)
                if progress is not None:
                    progress(offset + stop, total)
            splits[split] = {"start": offset, "stop": offset + count, "count": count, **poses.card}
            offset += count
        card = {
            "generator": plan.generator,
            "mask2hand_version": __version__,
            "seed": seed,
            **({} if view_seed is None else {"view_seed": view_seed}),
            "hand": source.card(),
            "sampling": {**plan.sampling, "chunk": CHUNK},
            "counts": plan.counts,
            "splits": splits,
            "rejections": rejections,
            "statistics": _summarize(stats),
            "choices": {**plan.choices, "forearm": forearm_choice(plan.forearm),
                        "shape_variety": variety_choice(plan.variety), **common_choices(),
                        "hand_params": hand_params_choice(source, plan.variety)},
            "timing": {"seconds": round(time.perf_counter() - started, 2),
                       "samples_per_second": round(total / max(time.perf_counter() - started, 1e-9), 1)},
        }
        return writer.finish(card)


def _layer_hand(hand: str, what: str) -> str:
    """The name of a hand-layer model, refusing other sources for generators that need the layer's PCA."""
    if not isinstance(hand, str) or hand not in ("open", "mano"):
        raise Mask2HandError(f"{what} decodes pose-PCA coefficients of the hand layer: use the open hand or MANO "
                             f"(--hand open|mano), not {hand!r}")
    return hand


def generate_paper(out: str | Path, hand: str = "open", hand_path: str | None = None, seed: int = 0,
                   protocol: PaperProtocol = PaperProtocol(), overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None, view_seed: int | None = None) -> Path:
    """The paper's synthetic set (sec. 4.1): 20,000 training and 2,000 test masks by default.

    Samples are pose-major: sample i is view i % views of pose i // views; `pose_id`
    holds the pose index (unique across splits) and `pose_pcs` its PCA coefficients.
    Splits "train" then "test" in one folder. hand: "open" or "mano" (hand_path: the
    MANO file, default $MANO_RIGHT_PATH). Returns the dataset folder.

    view_seed: the seed of the view draws (orientation, camera, placement) alone; None: `seed`.
    The poses depend on `seed` only, and a split of fewer poses holds the first poses of a
    larger one, so `seed=S, view_seed=V` (V != S) with train_poses=n gives the first n training
    poses of seed S in other views: the test set an image-level random split would give.
    """
    from mask2hand.hand import load_hand_model

    hand = _layer_hand(hand, "the paper protocol")
    with _deterministic_torch():
        started = time.perf_counter()
        model = load_hand_model(hand, path=hand_path, num_pose_pcs=45, flat_hand_mean=True)
        source = LayerHands(model, hand_path)
        add_mean = protocol.adds_model_mean(model.name)
        decoder = load_hand_model(hand, path=hand_path, num_pose_pcs=45, flat_hand_mean=not add_mean)
        views = protocol.views_per_pose
        plan = _Plan(
            generator="synthetic-paper", sampling={"protocol": asdict(protocol)},
            choices=paper_choices(protocol, add_mean), view=protocol.view,
            counts={"train": protocol.train_poses * views, "test": protocol.test_poses * views},
            streams=("train", "test"),
            specs={**_base_specs(source), "pose_pcs": ArraySpec((protocol.num_pose_pcs,), "float32"),
                   "pose_id": ArraySpec((), "int32")},
            split_poses=lambda rng, shape_rng, offset, count: _paper_split_poses(decoder, protocol, rng, shape_rng,
                                                                                 offset, count),
            orient=_uniform_orientations(protocol.view), forearm=protocol.forearm, variety=protocol.shape_variety)
        return _write_synthetic(out, source, seed, plan, overwrite, progress, started, view_seed)


def _variety_draws(rng: np.random.Generator, n: int, settings: ShapeVariety) -> ShapeVarietyDraw | None:
    """n hands' shape-variety draws, or None (nothing drawn) when it is off."""
    return draw_shape_variety(rng, n, settings) if settings.probability > 0 else None


def _paper_split_poses(decoder, protocol: PaperProtocol, rng: np.random.Generator, shape_rng: np.random.Generator,
                       offset: int, count: int) -> _SplitPoses:
    """Draw a split's count // views poses at once (PCA coefficients decoded by `decoder`) and repeat each
    for its views; pose ids continue from the splits before (offset // views poses, all pose-major). A
    pose's views share its hand, shape variety included."""
    views, k = protocol.views_per_pose, protocol.num_pose_pcs
    n_poses = count // views
    pcs = rng.uniform(*protocol.pcs_range, size=(n_poses, k)).astype(np.float32)
    with torch.inference_mode():
        finger = decoder.finger_pose(pose_pcs=torch.from_numpy(pcs)).numpy().astype(np.float32)
    slot_pcs = np.repeat(pcs, views, axis=0)
    slot_pose = np.repeat(finger, views, axis=0)
    slot_pose_id = np.repeat(np.arange(n_poses, dtype=np.int32) + offset // views, views)
    variety = _variety_draws(shape_rng, n_poses, protocol.shape_variety)

    def draw(start: int, stop: int) -> _PoseDraws:
        slots = slot_pose_id[start:stop] - offset // views
        return _PoseDraws(pose=slot_pose[start:stop], shape=np.zeros((stop - start, 10), np.float32),
                          variety=None if variety is None else variety.take(slots),
                          extra={"pose_pcs": slot_pcs[start:stop], "pose_id": slot_pose_id[start:stop]})

    return _SplitPoses(draw=draw, card={"poses": n_poses})


def with_probabilities(settings, forearm: float | None = None, shape_variety: float | None = None):
    """A corpus's settings (PaperProtocol, BroadCorpus, NaturalCorpus) with the share of samples that
    get a forearm and of hands that get the extra shape variety changed (None: kept)."""
    from dataclasses import replace

    if forearm is not None:
        settings = replace(settings, forearm=replace(settings.forearm, probability=float(forearm)))
    if shape_variety is not None:
        settings = replace(settings, shape_variety=replace(settings.shape_variety, probability=float(shape_variety)))
    return settings


def _split_counts(train: int, val: int, test: int, command: str) -> dict[str, int]:
    """The non-empty splits; at least one sample in all."""
    if min(train, val, test) < 0:
        raise Mask2HandError(f"sample counts must not be negative, got {train}, {val}, {test}")
    counts = {name: n for name, n in (("train", train), ("val", val), ("test", test)) if n > 0}
    if not counts:
        raise Mask2HandError(f"the {command} corpus needs at least one sample (--count, --val-count, --test-count)")
    return counts


def generate_broad(out: str | Path, hand="open", hand_path: str | None = None, seed: int = 0,
                   corpus: BroadCorpus = BroadCorpus(), overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """The broad corpus for the default model: splits "train", "val", "test" in one folder.
    hand: "open", "mano" (hand_path: the MANO file), "anny", a HandModel or an object of AnnyHand's
    interface (hand_source.py). Returns the dataset folder."""
    with _deterministic_torch():
        started = time.perf_counter()
        counts = _split_counts(corpus.train, corpus.val, corpus.test, "broad")
        source = load_hand_source(hand, hand_path, corpus.betas_std, corpus.betas_clip)
        plan = _Plan(
            generator="synthetic-broad", sampling={"corpus": asdict(corpus)}, choices=broad_choices(corpus, source),
            view=corpus.view, counts=counts, streams=("train", "val", "test"), specs=_base_specs(source),
            split_poses=lambda rng, shape_rng, offset, count: _prior_split_poses(source, corpus.shape_variety, rng,
                                                                                 shape_rng),
            orient=_uniform_orientations(corpus.view), forearm=corpus.forearm, variety=corpus.shape_variety)
        return _write_synthetic(out, source, seed, plan, overwrite, progress, started)


def _prior_split_poses(source, variety: ShapeVariety, rng: np.random.Generator,
                       shape_rng: np.random.Generator) -> _SplitPoses:
    """Prior poses and the source's shape draws, drawn chunk by chunk from the split's pose stream;
    the shape variety from its own stream."""
    from mask2hand.hand.prior import sample_pose_prior

    def draw(start: int, stop: int) -> _PoseDraws:
        n = stop - start
        pose = np.asarray(sample_pose_prior(n, rng), dtype=np.float32)
        return _PoseDraws(pose=pose, shape=source.sample_shapes(rng, n), variety=_variety_draws(shape_rng, n, variety))

    return _SplitPoses(draw=draw, card={})


def generate_natural(out: str | Path, hand="open", hand_path: str | None = None, seed: int = 0,
                     corpus: NaturalCorpus = NaturalCorpus(), overwrite: bool = False,
                     progress: Callable[[int, int], None] | None = None) -> Path:
    """The natural-view corpus (NaturalCorpus): splits "train", "val", "test" in one folder.
    hand as in generate_broad. Returns the dataset folder."""
    with _deterministic_torch():
        started = time.perf_counter()
        counts = _split_counts(corpus.train, corpus.val, corpus.test, "natural")
        source = load_hand_source(hand, hand_path, corpus.betas_std, corpus.betas_clip)
        rest_axes = rest_axes_of(source) if corpus.view.orientation == "natural" else None
        plan = _Plan(
            generator="synthetic-natural", sampling={"corpus": asdict(corpus)},
            choices=natural_choices(corpus, source), view=corpus.view, counts=counts,
            streams=("train", "val", "test"), specs=_base_specs(source),
            split_poses=lambda rng, shape_rng, offset, count: _prior_split_poses(source, corpus.shape_variety, rng,
                                                                                 shape_rng),
            orient=_natural_orientations(corpus, rest_axes),
            forearm=corpus.forearm, variety=corpus.shape_variety)
        return _write_synthetic(out, source, seed, plan, overwrite, progress, started)


def _natural_orientations(corpus: NaturalCorpus, rest_axes: np.ndarray | None
                          ) -> Callable[[np.random.Generator, int], np.ndarray]:
    """The natural corpus's orientation draws: `corpus.orientation` for view.orientation "natural",
    else the view's own (e.g. natural framing of uniform rotations)."""
    if corpus.view.orientation != "natural":
        return _uniform_orientations(corpus.view)
    return lambda rng, m: sample_natural_orientations(rng, m, corpus.orientation, rest_axes)
