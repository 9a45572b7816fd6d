"""Shape variety beyond a hand model's shape space, applied to posed hands.

A hand layer's 10 betas span only the shapes of its training scans. For training on
real silhouettes each drawn hand can also get, on the posed mesh (vertices) and its 21
joints (FreiHAND order) together:

- per-finger length: the finger's bones (thumb: from its CMC; long fingers: from the
  MCP) scaled along themselves, each bone's far joint moving with it;
- per-finger width: the finger's surface scaled across its bones;
- palm width (across the radial axis) and thickness (along the dorsal axis), about the
  wrist; the fingers ride along with their base joints;
- a smooth random offset of the surface along its normals: a sum of plane waves of
  3-7 cm wavelength over the hand's own frame (hand_axes.py), scaled so that its
  largest value is the drawn amplitude (a few millimeters).

Each bone's map is affine, T_j(x) = J'_j + S_j (x - J_j), and the joints are mapped by
the bones they sit on (J'_{j+1} = T_j(J_{j+1})), so joints and mesh stay consistent.
Vertices blend the maps with bone weights: the hand layer's skinning weights when the
source has them (open hand, MANO), else weights falling off with the distance to each
bone (Gaussian, 1 cm). The rig joints do not move with the surface offset; fingertip
joints that are surface vertices of the source (the hand layer's) do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mask2hand.data.hand_axes import hand_axes
from mask2hand.errors import Mask2HandError

FINGER_BASES = (1, 5, 9, 13, 17)  # FreiHAND: thumb CMC, index, middle, ring, little MCP
TIPS = (4, 8, 12, 16, 20)
BONE_SIGMA_M = 0.01  # fall-off of the distance-based bone weights
BLOCK = 128


@dataclass(frozen=True)
class ShapeVariety:
    """How the extra shape variety is drawn: with `probability` per hand (0: never, the paper's and
    broad corpus's default), each factor uniform in its range, per finger (thumb, index, middle, ring,
    little) for the finger's; offset_mm: the surface offset's largest value, uniform;
    offset_wavelength_m: of each of `offset_waves` plane waves, uniform."""

    probability: float = 0.0
    finger_length: tuple[float, float] = (0.9, 1.1)
    finger_width: tuple[float, float] = (0.9, 1.1)
    palm_width: tuple[float, float] = (0.92, 1.08)
    palm_thickness: tuple[float, float] = (0.88, 1.12)
    offset_mm: tuple[float, float] = (0.0, 3.0)
    offset_wavelength_m: tuple[float, float] = (0.03, 0.07)
    offset_waves: int = 8

    def __post_init__(self):
        if not 0.0 <= self.probability <= 1.0:
            raise Mask2HandError(f"shape variety probability must be in [0, 1], got {self.probability}")
        for name in ("finger_length", "finger_width", "palm_width", "palm_thickness", "offset_mm",
                     "offset_wavelength_m"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi or (name != "offset_mm" and lo <= 0):
                raise Mask2HandError(f"shape variety {name} must be a positive range (low, high), got {[lo, hi]}")
        if self.offset_waves < 1:
            raise Mask2HandError(f"shape variety offset_waves must be at least 1, got {self.offset_waves}")


@dataclass(frozen=True)
class ShapeVarietyDraw:
    """Per-hand draws: present (n,) bool; finger_length, finger_width (n,5) factors (thumb .. little);
    palm_width, palm_thickness (n,) factors; amplitude (n,) meters; waves (n,K,3) wave vectors (1/m);
    phases (n,K) radians."""

    present: np.ndarray
    finger_length: np.ndarray
    finger_width: np.ndarray
    palm_width: np.ndarray
    palm_thickness: np.ndarray
    amplitude: np.ndarray
    waves: np.ndarray
    phases: np.ndarray

    def take(self, index: np.ndarray) -> "ShapeVarietyDraw":
        """The draws of the hands `index` (e.g. to repeat a pose's hand for its views)."""
        return ShapeVarietyDraw(**{name: getattr(self, name)[index] for name in self.__dataclass_fields__})


def draw_shape_variety(rng: np.random.Generator, n: int, settings: ShapeVariety) -> ShapeVarietyDraw:
    """Draws for n hands; always the same number of draws per hand, varied or not."""
    k = settings.offset_waves
    present = rng.random(n) < settings.probability
    direction = rng.standard_normal((n, k, 3))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    wavelength = rng.uniform(*settings.offset_wavelength_m, size=(n, k, 1))
    return ShapeVarietyDraw(
        present=present, finger_length=rng.uniform(*settings.finger_length, size=(n, 5)),
        finger_width=rng.uniform(*settings.finger_width, size=(n, 5)),
        palm_width=rng.uniform(*settings.palm_width, size=n),
        palm_thickness=rng.uniform(*settings.palm_thickness, size=n),
        amplitude=rng.uniform(*settings.offset_mm, size=n) / 1000.0, waves=direction / wavelength,
        phases=rng.uniform(0.0, 2 * math.pi, size=(n, k)))


def _bones() -> list[tuple[int, int, int]]:
    """(joint j, its child, finger index) of every finger bone, FreiHAND order, base to tip."""
    return [(b + i, b + i + 1, f) for f, b in enumerate(FINGER_BASES) for i in range(3)]


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (n,V) of points (n,V,3) to the segments a-b (n,3)."""
    ab = b - a
    t = np.clip(np.einsum("nvc,nc->nv", points - a[:, None], ab) / np.maximum((ab * ab).sum(-1), 1e-12)[:, None],
                0.0, 1.0)
    return np.linalg.norm(points - a[:, None] - t[..., None] * ab[:, None], axis=-1)


def bone_weights(vertices: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Weights (n,V,21) of each vertex on the bone starting at each joint, from distances alone:
    the palm (joint 0: the segments from the wrist to the five finger bases) and the finger bones;
    Gaussian in the distance to the nearest segment of each, normalised. Tips start no bone."""
    dist = np.full(vertices.shape[:2] + (21,), np.inf)
    dist[..., 0] = np.min([_segment_distance(vertices, joints[:, 0], joints[:, b]) for b in FINGER_BASES], axis=0)
    for j, child, _ in _bones():
        dist[..., j] = _segment_distance(vertices, joints[:, j], joints[:, child])
    logits = -(dist / BONE_SIGMA_M) ** 2
    w = np.exp(logits - logits.max(-1, keepdims=True))  # softmax: stable for vertices far from every bone
    return w / w.sum(-1, keepdims=True)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (n,V,3) of meshes (n,V,3) with counter-clockwise faces (F,3)."""
    from scipy.sparse import csr_matrix

    n, v_count = vertices.shape[:2]
    face_n = np.cross(vertices[:, faces[:, 1]] - vertices[:, faces[:, 0]],
                      vertices[:, faces[:, 2]] - vertices[:, faces[:, 0]])
    # each vertex sums the normals of its faces: one sparse (V,F) incidence product for all meshes
    incidence = csr_matrix((np.ones(faces.size), (faces.ravel(), np.repeat(np.arange(len(faces)), 3))),
                           shape=(v_count, len(faces)))
    normals = (incidence @ face_n.transpose(1, 0, 2).reshape(len(faces), -1)).reshape(v_count, n, 3).transpose(1, 0, 2)
    return normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)


def _bone_maps(joints: np.ndarray, draw: ShapeVarietyDraw, axes) -> tuple[np.ndarray, np.ndarray]:
    """The affine maps of the 21 joints' bones, x -> new_j + S_j (x - joints_j): linear parts S
    (n,21,3,3) and the new joints (n,21,3). Tips carry the identity."""
    n = len(joints)
    eye = np.eye(3)
    S = np.broadcast_to(eye, (n, 21, 3, 3)).copy()
    r, dorsal = axes.radial, axes.dorsal
    S[:, 0] = (eye + (draw.palm_width - 1)[:, None, None] * np.einsum("ni,nj->nij", r, r)
               + (draw.palm_thickness - 1)[:, None, None] * np.einsum("ni,nj->nij", dorsal, dorsal))
    new = joints.copy()
    for b in FINGER_BASES:
        new[:, b] = joints[:, 0] + np.einsum("nij,nj->ni", S[:, 0], joints[:, b] - joints[:, 0])
    for j, child, f in _bones():
        u = joints[:, child] - joints[:, j]
        u /= np.maximum(np.linalg.norm(u, axis=-1, keepdims=True), 1e-12)
        uu = np.einsum("ni,nj->nij", u, u)
        length, width = draw.finger_length[:, f, None, None], draw.finger_width[:, f, None, None]
        S[:, j] = width * eye + (length - width) * uu
        new[:, child] = new[:, j] + np.einsum("nij,nj->ni", S[:, j], joints[:, child] - joints[:, j])
    return S, new


def _surface_field(vertices: np.ndarray, joints: np.ndarray, draw: ShapeVarietyDraw, axes) -> np.ndarray:
    """The offset (n,V) meters of every vertex: plane waves over the hand's own frame, peak = amplitude."""
    local = np.einsum("nvc,ncd->nvd", vertices - joints[:, :1], axes.matrix())
    field = np.cos(2 * math.pi * np.einsum("nvd,nkd->nvk", local, draw.waves) + draw.phases[:, None]).sum(-1)
    return draw.amplitude[:, None] * field / np.maximum(np.abs(field).max(1, keepdims=True), 1e-12)


def apply_shape_variety(vertices: np.ndarray, joints: np.ndarray, faces: np.ndarray, draw: ShapeVarietyDraw,
                        skin_weights: np.ndarray | None = None,
                        tip_vertices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Varied (vertices (n,V,3), joints (n,21,3)) float32 of posed hands (meters, any frame).

    faces (F,3); skin_weights (V,21) per-joint bone weights (None: bone_weights from the joints);
    tip_vertices (5,) the vertices that are the fingertip joints 4, 8, 12, 16, 20, if any. Hands
    whose draw is not `present` are returned unchanged, bit for bit.
    """
    out_v, out_j = np.array(vertices, dtype=np.float32), np.array(joints, dtype=np.float32)
    rows = np.nonzero(draw.present)[0]
    for start in range(0, len(rows), BLOCK):  # blocks bound the (hands, V, 21) weight arrays' memory
        block = rows[start:start + BLOCK]
        out_v[block], out_j[block] = _vary(vertices[block].astype(np.float64), joints[block].astype(np.float64),
                                           np.asarray(faces), draw.take(block), skin_weights, tip_vertices)
    return out_v, out_j


def _vary(v: np.ndarray, j: np.ndarray, faces: np.ndarray, draw: ShapeVarietyDraw, skin_weights: np.ndarray | None,
          tip_vertices: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """apply_shape_variety for hands that all vary: float64 vertices (n,V,3) and joints (n,21,3)."""
    n = len(v)
    axes = hand_axes(j)
    S, new = _bone_maps(j, draw, axes)
    weights = bone_weights(v, j) if skin_weights is None else skin_weights[None]
    weights = weights / np.maximum(weights.sum(-1, keepdims=True), 1e-12)
    # v' = sum_j w_j (new_j + S_j (v - j_j)) = (sum_j w_j S_j) v + sum_j w_j (new_j - S_j j_j)
    linear = (weights @ S.reshape(n, 21, 9)).reshape(n, -1, 3, 3)
    shift = weights @ (new - np.einsum("njab,njb->nja", S, j))
    mapped = np.einsum("nvab,nvb->nva", linear, v) + shift
    mapped += _surface_field(v, j, draw, axes)[..., None] * _vertex_normals(mapped, faces)
    if tip_vertices is not None:
        new[:, list(TIPS)] = mapped[:, np.asarray(tip_vertices)]
    return mapped, new
