"""Synthetic mask datasets: the paper's protocol and a broad corpus for the default model.

Both render hands of the hand layer with the exact rasterizer and store them with
`storage.DatasetWriter`. A sample is drawn in two parts:

- the *pose draw* (finger pose, shape), fixed per pose id;
- the *view draw* (global orientation, focal length, hand size and position in the
  image). A rejected view (hand behind the camera, partly out of the image, or too
  small) is counted under its reason in the card and redrawn with the same pose, so
  rejection never changes the pose distribution and never keeps a bad sample.

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

from mask2hand.data.storage import ArraySpec, DatasetWriter
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
    paper's) or "so3_uniform" (uniform random rotations).
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

    def adds_model_mean(self, hand: str) -> bool:
        if self.mean_pose not in ("auto", "flat", "model"):
            raise Mask2HandError(f"mean_pose must be 'auto', 'flat' or 'model', got {self.mean_pose!r}")
        return self.mean_pose == "model" or (self.mean_pose == "auto" and hand == "open")


@dataclass(frozen=True)
class BroadCorpus:
    """The default model's corpus: prior poses (45 dims), betas ~ N(0, 1) clipped to +-3,
    uniform SO(3) orientations, a wide focal range and hand sizes from small to large."""

    train: int = 100_000
    val: int = 2_000
    test: int = 2_000
    betas_std: float = 1.0
    betas_clip: float = 3.0
    view: ViewSampling = field(default_factory=lambda: ViewSampling(
        focal_range=(300.0, 900.0), focal_log_uniform=True, size_range_px=(56.0, 200.0), size_log_uniform=True,
        max_offset_px=None, min_area_fraction=0.003, orientation="so3_uniform"))


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


def _draw_views(model, pose: torch.Tensor, betas: torch.Tensor, rng: np.random.Generator,
                view: ViewSampling, rejections: dict[str, int]) -> _Views:
    """Draw one accepted view for every slot (pose[i], betas[i]), redrawing rejected ones."""
    from mask2hand.render import rasterize_silhouette

    n = pose.shape[0]
    h, w = view.image_size
    cx, cy = w / 2, h / 2
    faces = model.faces
    out = _Views(masks=np.zeros((n, h, w), bool), K=np.zeros((n, 3, 3), np.float32),
                 joints=np.zeros((n, 21, 3), np.float32), vertices=np.zeros((n, model.num_vertices, 3), np.float32),
                 global_orient=np.zeros((n, 3), np.float32), transl=np.zeros((n, 3), np.float32))
    pending = np.arange(n)
    min_area = view.min_area_fraction * h * w
    for round_ in range(MAX_ROUNDS):
        if len(pending) == 0:
            return out
        if round_ == HOPELESS_ROUNDS and len(pending) == n:
            break  # nothing accepted at all: the settings are impossible, say so now
        m = len(pending)
        orient = sample_orientations(rng, m, view.orientation).astype(np.float32)
        focal = _uniform(rng, *view.focal_range, m, view.focal_log_uniform).astype(np.float32)
        size_px = _uniform(rng, *view.size_range_px, m, view.size_log_uniform)
        with torch.inference_mode():
            posed = model(torch.from_numpy(orient), torch.zeros(m, 3), pose=pose[pending], betas=betas[pending])
        v0 = posed.vertices.numpy().astype(np.float64)
        transl = _place(v0, focal.astype(np.float64), size_px, rng, view).astype(np.float32)
        # the stored float32 arrays are exactly what is rendered and checked
        vertices = posed.vertices.numpy() + transl[:, None, :]
        joints = posed.joints.numpy() + transl[:, None, :]
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
        out.global_orient[accepted], out.transl[accepted] = orient[ok], transl[ok]
        pending = pending[~ok]
    raise Mask2HandError(f"{len(pending)} samples were still rejected after {round_} redraws; the view "
                         f"settings ({view}) leave almost no valid views: widen the image or shrink the hand size")


def _view_stats(views: _Views) -> np.ndarray:
    """Per sample: wrist depth (m), larger side of the projected box (px), mask area fraction."""
    v = views.vertices.astype(np.float64)
    f = views.K[:, 0, 0].astype(np.float64)[:, None]
    u, w = f * v[..., 0] / v[..., 2], f * v[..., 1] / v[..., 2]
    box = np.maximum(u.max(1) - u.min(1), w.max(1) - w.min(1))
    area = views.masks.reshape(len(v), -1).mean(1)
    return np.stack([views.joints[:, 0, 2], box, area], axis=1)


def _summarize(stats: list[np.ndarray]) -> dict:
    table = np.concatenate(stats)
    out = {}
    for k, name in enumerate(("wrist_depth_m", "box_px", "mask_area_fraction")):
        q = np.percentile(table[:, k], [0, 5, 50, 95, 100])
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


def _split_rngs(seed: int, names: list[str]) -> dict[str, tuple[np.random.Generator, np.random.Generator]]:
    """Independent (pose, view) generators per split, so one split's size never changes another's samples."""
    children = np.random.SeedSequence(seed).spawn(len(names))
    out = {}
    for name, child in zip(names, children):
        pose_seq, view_seq = child.spawn(2)
        out[name] = (np.random.default_rng(pose_seq), np.random.default_rng(view_seq))
    return out


def _hand_card(model, hand_path: str | None) -> dict:
    return {"name": model.name, "asset_hash": model.asset_hash, "path": hand_path, "num_vertices": model.num_vertices,
            "flat_hand_mean": model.flat_hand_mean}


def _base_specs(num_vertices: int) -> dict[str, ArraySpec]:
    return {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"),
            "vertices": ArraySpec((num_vertices, 3), "float32"), "global_orient": ArraySpec((3,), "float32"),
            "transl": ArraySpec((3,), "float32"), "pose": ArraySpec((45,), "float32"),
            "betas": ArraySpec((10,), "float32")}


_COMMON_CHOICES = {
    "rasterization": "exact: a pixel (row i, col j) is hand iff its center (j+0.5, i+0.5) lies inside a projected "
                     "triangle (mask2hand.render.rasterize_silhouette)",
    "placement": "the oriented hand's 3-D box center is put on the ray through the principal point plus a uniform "
                 "offset (within the room where the box fits, capped by max_offset_px), at the depth "
                 "Z = f * max(x extent, y extent) / size_px; the exact projection is then checked",
    "rejection": "a view with a vertex at z <= 5 cm (behind_camera), a projected vertex closer than margin_px to "
                 "the image border (out_of_image), or a mask smaller than min_area_fraction of the image "
                 "(too_small) is counted and redrawn (orientation and camera; the pose draw is kept)",
    "hand_params": "global_orient (axis-angle about the root joint), transl (m), pose (45 finger axis-angle, the "
                   "hand layer's `pose` input with flat_hand_mean=True: no mean pose added), betas (10)",
    "units": "meters, camera space +x right +y down +z forward; K in pixels with pixel centers at +0.5",
    "precision": "all arrays float32; the stored vertices and K are exactly those rendered",
}


@dataclass(frozen=True)
class _PoseDraws:
    """The pose draws of a run of slots: finger pose (n,45) and betas (n,10), float32, plus any
    generator-specific arrays (name -> (n, ...)) stored as they are."""

    pose: np.ndarray
    betas: np.ndarray
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
    specs: the arrays stored besides the masks; split_poses(pose_rng, offset, count): the pose draws
    of a split whose first sample is `offset` in the folder.
    """

    generator: str
    sampling: dict
    choices: dict
    view: ViewSampling
    counts: dict[str, int]
    streams: tuple[str, ...]
    specs: dict[str, ArraySpec]
    split_poses: Callable[[np.random.Generator, int, int], _SplitPoses]


def _write_synthetic(out: str | Path, model, hand_path: str | None, seed: int, plan: _Plan, overwrite: bool,
                     progress: Callable[[int, int], None] | None, started: float) -> Path:
    """Draw views for every slot of every split in chunks of CHUNK, render and store them with the card.

    started: time.perf_counter() when generation began (the card's timing). Returns the dataset folder.
    """
    from mask2hand.version import __version__

    total = sum(plan.counts.values())
    rngs = _split_rngs(seed, list(plan.streams))
    rejections = {reason: 0 for reason in REJECTION_REASONS}
    stats: list[np.ndarray] = []
    splits, offset = {}, 0
    with DatasetWriter(out, total, plan.view.image_size, plan.specs, overwrite=overwrite) as writer:
        for split, count in plan.counts.items():
            pose_rng, view_rng = rngs[split]
            poses = plan.split_poses(pose_rng, offset, count)
            for start in range(0, count, CHUNK):
                stop = min(count, start + CHUNK)
                draws = poses.draw(start, stop)
                got = _draw_views(model, torch.from_numpy(draws.pose), torch.from_numpy(draws.betas), view_rng,
                                  plan.view, rejections)
                stats.append(_view_stats(got))
                writer.write(offset + start, masks=got.masks, K=got.K, joints=got.joints, vertices=got.vertices,
                             global_orient=got.global_orient, transl=got.transl, pose=draws.pose, betas=draws.betas,
                             **draws.extra)
                if progress is not None:
                    progress(offset + stop, total)
            splits[split] = {"start": offset, "stop": offset + count, "count": count, **poses.card}
            offset += count
        card = {
            "generator": plan.generator,
            "mask2hand_version": __version__,
            "seed": seed,
            "hand": _hand_card(model, hand_path),
            "sampling": {**plan.sampling, "chunk": CHUNK},
            "counts": plan.counts,
            "splits": splits,
            "rejections": rejections,
            "statistics": _summarize(stats),
            "choices": {**plan.choices, **_COMMON_CHOICES},
            "timing": {"seconds": round(time.perf_counter() - started, 2)},
        }
        return writer.finish(card)


def generate_paper(out: str | Path, hand: str = "open", hand_path: str | None = None, seed: int = 0,
                   protocol: PaperProtocol = PaperProtocol(), overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """The paper's synthetic set (sec. 4.1): 20,000 training and 2,000 test masks by default.

    Samples are pose-major: sample i is view i % views of pose i // views; `pose_id`
    holds the pose index (unique across splits) and `pose_pcs` its PCA coefficients.
    Splits "train" then "test" in one folder. hand: "open" or "mano" (hand_path: the
    MANO file, default $MANO_RIGHT_PATH). Returns the dataset folder.
    """
    from mask2hand.hand import load_hand_model

    with _deterministic_torch():
        started = time.perf_counter()
        model = load_hand_model(hand, path=hand_path, num_pose_pcs=45, flat_hand_mean=True)
        add_mean = protocol.adds_model_mean(model.name)
        decoder = load_hand_model(hand, path=hand_path, num_pose_pcs=45, flat_hand_mean=not add_mean)
        views = protocol.views_per_pose
        plan = _Plan(
            generator="synthetic-paper", sampling={"protocol": asdict(protocol)},
            choices=_paper_choices(protocol, add_mean), view=protocol.view,
            counts={"train": protocol.train_poses * views, "test": protocol.test_poses * views},
            streams=("train", "test"),
            specs={**_base_specs(model.num_vertices), "pose_pcs": ArraySpec((protocol.num_pose_pcs,), "float32"),
                   "pose_id": ArraySpec((), "int32")},
            split_poses=lambda rng, offset, count: _paper_split_poses(decoder, protocol, rng, offset, count))
        return _write_synthetic(out, model, hand_path, seed, plan, overwrite, progress, started)


def _paper_split_poses(decoder, protocol: PaperProtocol, rng: np.random.Generator, offset: int,
                       count: int) -> _SplitPoses:
    """Draw a split's count // views poses at once (PCA coefficients decoded by `decoder`) and repeat each
    for its views; pose ids continue from the splits before (offset // views poses, all pose-major)."""
    views, k = protocol.views_per_pose, protocol.num_pose_pcs
    n_poses = count // views
    pcs = rng.uniform(*protocol.pcs_range, size=(n_poses, k)).astype(np.float32)
    with torch.inference_mode():
        finger = decoder.finger_pose(pose_pcs=torch.from_numpy(pcs)).numpy().astype(np.float32)
    slot_pcs = np.repeat(pcs, views, axis=0)
    slot_pose = np.repeat(finger, views, axis=0)
    slot_pose_id = np.repeat(np.arange(n_poses, dtype=np.int32) + offset // views, views)

    def draw(start: int, stop: int) -> _PoseDraws:
        return _PoseDraws(pose=slot_pose[start:stop], betas=np.zeros((stop - start, 10), np.float32),
                          extra={"pose_pcs": slot_pcs[start:stop], "pose_id": slot_pose_id[start:stop]})

    return _SplitPoses(draw=draw, card={"poses": n_poses})


def _paper_choices(protocol: PaperProtocol, add_mean: bool) -> dict[str, str]:
    """The card's account of the paper protocol's own draws."""
    view = protocol.view
    return {
        "source": "Mask2Hand paper sec. 4.1 and 4.4 (synthetic dataset)",
        "pose": f"first {protocol.num_pose_pcs} pose-PCA coefficients from "
                f"U[{protocol.pcs_range[0]}, {protocol.pcs_range[1]}) per pose; finger pose = coefficients x "
                "components + "
                + ("the model's mean pose (the open hand's PCA is centred on its pose prior)" if add_mean
                   else "nothing (the flat hand, like the paper's reference code with MANO)")
                + "; stored `pose` is that full finger pose",
        "betas": "0 (mean shape)",
        "views": f"{protocol.views_per_pose} views per pose; a view draws its own global orientation (each "
                 "axis-angle component from U[-pi, pi), as in the paper) and its own camera and placement",
        "camera": f"{view.image_size[1]}x{view.image_size[0]}, fx = fy from U{list(view.focal_range)} px "
                  "(FreiHAND's range for 224x224 crops), principal point at the image center, no skew",
        "size": f"the hand's projected box (larger side) from U{list(view.size_range_px)} px, its center within "
                f"{view.max_offset_px} px of the image center (FreiHAND crops center the hand)",
        "test_split": "drawn from an independent random stream of the same seed; pose ids continue after "
                      "the training poses",
    }


def generate_broad(out: str | Path, hand: str = "open", hand_path: str | None = None, seed: int = 0,
                   corpus: BroadCorpus = BroadCorpus(), overwrite: bool = False,
                   progress: Callable[[int, int], None] | None = None) -> Path:
    """The broad corpus for the default model: splits "train", "val", "test" in one folder.
    Returns the dataset folder."""
    from mask2hand.hand import load_hand_model

    with _deterministic_torch():
        started = time.perf_counter()
        model = load_hand_model(hand, path=hand_path, num_pose_pcs=45, flat_hand_mean=True)
        counts = {name: n for name, n in (("train", corpus.train), ("val", corpus.val), ("test", corpus.test))
                  if n > 0}
        if sum(counts.values()) <= 0:
            raise Mask2HandError("the broad corpus needs at least one sample (--count)")
        plan = _Plan(
            generator="synthetic-broad", sampling={"corpus": asdict(corpus)}, choices=_broad_choices(corpus),
            view=corpus.view, counts=counts, streams=("train", "val", "test"),
            specs=_base_specs(model.num_vertices),
            split_poses=lambda rng, offset, count: _broad_split_poses(corpus, rng))
        return _write_synthetic(out, model, hand_path, seed, plan, overwrite, progress, started)


def _broad_split_poses(corpus: BroadCorpus, rng: np.random.Generator) -> _SplitPoses:
    """Prior poses and clipped normal betas, drawn chunk by chunk from the split's pose stream."""
    from mask2hand.hand.prior import sample_pose_prior

    def draw(start: int, stop: int) -> _PoseDraws:
        n = stop - start
        pose = np.asarray(sample_pose_prior(n, rng), dtype=np.float32)
        betas = np.clip(rng.normal(0.0, corpus.betas_std, size=(n, 10)),
                        -corpus.betas_clip, corpus.betas_clip).astype(np.float32)
        return _PoseDraws(pose=pose, betas=betas)

    return _SplitPoses(draw=draw, card={})


def _broad_choices(corpus: BroadCorpus) -> dict[str, str]:
    """The card's account of the broad corpus's own draws."""
    return {
        "pose": "all 45 finger dimensions from the open hand's pose prior "
                "(mask2hand.hand.prior.sample_pose_prior; for MANO the same axis-angle poses, whose "
                "rest-frame axes match MANO's)",
        "betas": f"N(0, {corpus.betas_std}) per component, clipped to +-{corpus.betas_clip}",
        "orientation": "uniform on SO(3) (normalised 4-D Gaussian quaternions)",
        "camera": f"fx = fy log-uniform in {list(corpus.view.focal_range)} px, principal point at the "
                  "image center",
        "size": f"the hand's projected box (larger side) log-uniform in {list(corpus.view.size_range_px)} "
                "px, anywhere in the image where it fits",
    }
