"""A forearm attached at the wrist of any posed hand, for silhouettes like real ones.

Real masks (FreiHAND's, a sensor's) show the forearm. It is built from the hand's 21
joints (FreiHAND order) and vertices only, after the hand is posed and placed, so it
fits any hand source:

- Axis: from the middle finger's MCP (joint 9) through the wrist (joint 0), the hand's
  `proximal` axis (hand_axes.py), turned at the wrist by a radial/ulnar deviation about
  the dorsal axis, then by a flexion about the (turned) radial axis. Flexion > 0 bends
  the hand toward the palm (so the arm leaves toward the palm side), deviation > 0 is
  ulnar (the arm leaves toward the little finger's side).
- Surface: a generalized cylinder of elliptical cross-sections (breadth across the
  radial axis, depth across the dorsal axis), closed by a dome at each end: one mesh of
  fixed topology, no seam (every ring wraps without a duplicated vertex), outward
  normals. The wrist dome lies inside the hand: its rim, where the arm's full section
  starts, is 4 mm before the hand's proximal end and at most 8 mm proximal of the wrist
  joint, its pole 8 mm distal of the rim (the wrist joint itself for the open hand).
- Size: the section at the rim is measured from the hand's own vertices in a slab
  about the rim (that is what blends the arm into the wrist with no step); it widens
  smoothly (smoothstep) to the elbow's section, reached at 3/4 of the forearm's length
  (the muscle bellies) and kept to the elbow.
- Anthropometry (adults): wrist breadth about 5.5-6.5 cm, forearm breadth near the
  elbow about 7-9 cm, wrist-to-elbow length about 23-28 cm; consistent with the wrist
  (about 15-18 cm) and forearm (about 25-30 cm) circumferences of the 2012 US Army
  anthropometric survey (ANSUR II, Gordon et al. 2014, NATICK/TR-15/007). Drawn relative
  to the measured wrist breadth, so a smaller hand gets a smaller arm: elbow breadth
  1.2-1.45 x, elbow depth 0.75-0.9 x the elbow breadth, length 3.8-4.6 wrist breadths
  (22-27 cm for the open hand's 5.8 cm wrist).
- Wrist angles within the active ranges of motion (e.g. AAOS goniometry tables):
  flexion -70..+80 degrees (extension negative), deviation -20 (radial) .. +30 (ulnar).
- Length: from none to the elbow: with `cut_probability` the arm ends before the elbow
  (a sleeve, or a segmentation that stops), at a uniform fraction of the full length.
  Near a camera an arm pointing at it is shortened so that it stays 5 cm in front;
  with `away_from_camera` (natural views) such an arm takes the mirrored flexion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, ndtri

from mask2hand.data.hand_axes import hand_axes
from mask2hand.errors import Mask2HandError

AROUND = 24  # vertices per ring
SIDE_RINGS = 18  # rings of the cylinder between the domes
CAP_STEPS = 5  # dome rings (+ the pole) per end
WRIST_DOME_M = 0.008  # depth of the wrist dome, which ends at the rim where the arm's full section starts
END_MARGIN_M = 0.004  # the rim lies this far before the hand's proximal end ...
RIM_RANGE_M = (-0.01, WRIST_DOME_M)  # ... within this range from the wrist joint (proximal > 0)
SECTION_SLAB_M = (-0.008, 0.004)  # the wrist's section is measured on the hand's vertices this near the rim
MIN_BEYOND_RIM_M = 0.004  # an arm must reach this far past the rim, else it would lie inside the hand
MIN_SLAB_VERTICES = 8
FALLBACK_VERTICES = 32  # a hand with no vertices in the slab: its most proximal vertices instead
WRIST_BREADTH_RANGE_M = (0.040, 0.090)  # measured breadths are clipped to plausible values
WRIST_DEPTH_RANGE_M = (0.024, 0.064)
BELLY = 0.75  # the cross-section reaches the elbow's at this fraction of the full length


@dataclass(frozen=True)
class ForearmSettings:
    """How forearms are drawn (angles in degrees, lengths in wrist breadths).

    probability: share of samples with an arm (0: none, the paper's and broad corpus's default).
    flexion_deg / deviation_deg: anatomical limits (extension and radial deviation negative);
    each angle is a normal (mean, std) truncated to its limits.
    length_wrist_breadths: wrist-to-elbow length, uniform. cut_probability: the arm ends
    before the elbow at a uniform fraction of that length (else it reaches the elbow).
    elbow_breadth_ratio: elbow breadth / wrist breadth, uniform; elbow_depth_ratio: elbow
    depth / elbow breadth, uniform. away_from_camera: an arm that would point toward the camera
    takes the mirrored flexion (-flexion, within the limits) when that points it farther away (the
    body is behind a hand held up to a camera).
    """

    probability: float = 0.0
    flexion_deg: tuple[float, float] = (-70.0, 80.0)
    flexion_mean_deg: float = 0.0
    flexion_std_deg: float = 30.0
    deviation_deg: tuple[float, float] = (-20.0, 30.0)
    deviation_mean_deg: float = 5.0
    deviation_std_deg: float = 10.0
    length_wrist_breadths: tuple[float, float] = (3.8, 4.6)
    cut_probability: float = 0.4
    elbow_breadth_ratio: tuple[float, float] = (1.2, 1.45)
    elbow_depth_ratio: tuple[float, float] = (0.75, 0.9)
    away_from_camera: bool = False

    def __post_init__(self):
        for name in ("probability", "cut_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise Mask2HandError(f"forearm {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("flexion_deg", "deviation_deg", "length_wrist_breadths", "elbow_breadth_ratio",
                     "elbow_depth_ratio"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise Mask2HandError(f"forearm {name} must be a range (low, high), got {[lo, hi]}")
        if not (-90.0 <= self.flexion_deg[0] and self.flexion_deg[1] <= 90.0
                and -45.0 <= self.deviation_deg[0] and self.deviation_deg[1] <= 45.0):
            raise Mask2HandError("forearm wrist limits must lie within flexion -90..90 and deviation -45..45 "
                                 f"degrees, got {list(self.flexion_deg)} and {list(self.deviation_deg)}")
        if self.flexion_std_deg <= 0 or self.deviation_std_deg <= 0 or self.length_wrist_breadths[0] <= 0:
            raise Mask2HandError("forearm angle spreads and lengths must be positive")


@dataclass(frozen=True)
class ForearmDraw:
    """Per-sample forearm draws (n,): present (bool), flexion and deviation (radians), mirrored_flexion
    (-flexion within the limits, radians), length_fraction (of the full length, 1 = to the elbow),
    full_length (wrist breadths), breadth_ratio, depth_ratio; away_from_camera as in ForearmSettings."""

    present: np.ndarray
    flexion: np.ndarray
    mirrored_flexion: np.ndarray
    deviation: np.ndarray
    length_fraction: np.ndarray
    full_length: np.ndarray
    breadth_ratio: np.ndarray
    depth_ratio: np.ndarray
    away_from_camera: bool = False


def _truncated_normal(rng: np.random.Generator, n: int, mean: float, std: float, lo: float, hi: float) -> np.ndarray:
    """n draws of N(mean, std) truncated to [lo, hi], by inverting the CDF (one uniform per draw)."""
    a, b = ndtr((lo - mean) / std), ndtr((hi - mean) / std)
    return np.clip(mean + std * ndtri(rng.uniform(a, b, size=n)), lo, hi)


def draw_forearms(rng: np.random.Generator, n: int, settings: ForearmSettings) -> ForearmDraw:
    """Draws for n samples; always the same number of draws per sample, present or not."""
    present = rng.random(n) < settings.probability
    flexion = _truncated_normal(rng, n, settings.flexion_mean_deg, settings.flexion_std_deg, *settings.flexion_deg)
    deviation = _truncated_normal(rng, n, settings.deviation_mean_deg, settings.deviation_std_deg,
                                  *settings.deviation_deg)
    cut = rng.random(n) < settings.cut_probability
    fraction = np.where(cut, rng.random(n), 1.0)
    return ForearmDraw(present=present, flexion=np.deg2rad(flexion),
                       mirrored_flexion=np.deg2rad(np.clip(-flexion, *settings.flexion_deg)),
                       deviation=np.deg2rad(deviation), length_fraction=fraction,
                       full_length=rng.uniform(*settings.length_wrist_breadths, size=n),
                       breadth_ratio=rng.uniform(*settings.elbow_breadth_ratio, size=n),
                       depth_ratio=rng.uniform(*settings.elbow_depth_ratio, size=n),
                       away_from_camera=settings.away_from_camera)


@dataclass(frozen=True)
class Forearms:
    """Forearm meshes of n samples: vertices (n,Va,3) float32 camera space (meaningful where `present`),
    faces FOREARM_FACES; present (n,) bool; direction (n,3) the arm's unit axis from the wrist; length (n,)
    meters from the wrist joint to the far pole (0 without an arm); flexion, deviation (n,) radians as
    applied; wrist_breadth, wrist_depth, elbow_breadth, elbow_depth (n,) meters (full ellipse axes)."""

    vertices: np.ndarray
    present: np.ndarray
    direction: np.ndarray
    length: np.ndarray
    flexion: np.ndarray
    deviation: np.ndarray
    wrist_breadth: np.ndarray
    wrist_depth: np.ndarray
    elbow_breadth: np.ndarray
    elbow_depth: np.ndarray


def _ring_count() -> int:
    return 2 * (CAP_STEPS - 1) + SIDE_RINGS


def forearm_faces() -> np.ndarray:
    """Faces (F,3) int64 of the forearm mesh: rings wrap (no seam), two poles, counter-clockwise
    seen from outside. Vertex 0 is the wrist pole, the last the far pole."""
    rings = _ring_count()
    ring = lambda i, k: 1 + i * AROUND + k % AROUND  # noqa: E731  (vertex of ring i, angle step k)
    faces = []
    for k in range(AROUND):
        faces.append((0, ring(0, k), ring(0, k + 1)))
    for i in range(rings - 1):
        for k in range(AROUND):
            a, b, c, d = ring(i, k), ring(i + 1, k), ring(i + 1, k + 1), ring(i, k + 1)
            faces += [(a, b, c), (a, c, d)]
    tip = 1 + rings * AROUND
    for k in range(AROUND):
        faces.append((ring(rings - 1, k), tip, ring(rings - 1, k + 1)))
    return np.asarray(faces, dtype=np.int64)


FOREARM_FACES = forearm_faces()


def _wrist_section(vertices: np.ndarray, joints: np.ndarray, axes) -> tuple[np.ndarray, ...]:
    """Where the arm's full section starts and what it is, from the hands' vertices (n,V,3): the rim
    (n,) meters along the proximal axis from the wrist joint, END_MARGIN_M before the hand's proximal
    end (at most RIM_RANGE_M[1]), so that the hand still has its full section there; half breadth,
    half depth (n,) and the section's center (n,2) (radial, dorsal offsets from the axis) of the
    vertices in the slab SECTION_SLAB_M about the rim."""
    rel = vertices.astype(np.float64) - joints[:, :1].astype(np.float64)
    s = np.einsum("nvc,nc->nv", rel, axes.proximal)
    x = np.einsum("nvc,nc->nv", rel, axes.radial)
    y = np.einsum("nvc,nc->nv", rel, axes.dorsal)
    rim = np.clip(s.max(1) - END_MARGIN_M, *RIM_RANGE_M)
    inside = (s >= rim[:, None] + SECTION_SLAB_M[0]) & (s <= rim[:, None] + SECTION_SLAB_M[1])
    k = min(FALLBACK_VERTICES, s.shape[1])
    proximal_end = s >= np.partition(s, -k, axis=1)[:, -k][:, None]
    sel = np.where(inside.sum(1, keepdims=True) >= MIN_SLAB_VERTICES, inside, proximal_end)
    lo_x, hi_x = np.where(sel, x, np.inf).min(1), np.where(sel, x, -np.inf).max(1)
    lo_y, hi_y = np.where(sel, y, np.inf).min(1), np.where(sel, y, -np.inf).max(1)
    half_b = np.clip((hi_x - lo_x) / 2, *(np.array(WRIST_BREADTH_RANGE_M) / 2))
    half_d = np.clip((hi_y - lo_y) / 2, *(np.array(WRIST_DEPTH_RANGE_M) / 2))
    center = np.clip(np.stack([(hi_x + lo_x) / 2, (hi_y + lo_y) / 2], axis=1), -0.01, 0.01)
    return rim, half_b, half_d, center


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _arm_axes(axes, flexion: np.ndarray, deviation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arm's frame (direction, dorsal, radial), each (n,3): the hand's axes turned by the deviation
    (radians, ulnar > 0: toward -radial) about the dorsal axis, then by the flexion (> 0: toward the
    palm) about the turned radial axis."""
    cf, sf = np.cos(flexion)[:, None], np.sin(flexion)[:, None]
    cd, sd = np.cos(deviation)[:, None], np.sin(deviation)[:, None]
    d1, radial = cd * axes.proximal - sd * axes.radial, cd * axes.radial + sd * axes.proximal
    return cf * d1 - sf * axes.dorsal, cf * axes.dorsal + sf * d1, radial


def build_forearms(hand_vertices: np.ndarray, joints: np.ndarray, draw: ForearmDraw,
                   near_z: float | None = 0.05) -> Forearms:
    """Forearm meshes for posed hands: vertices (n,V,3), joints (n,21,3) meters (camera space when
    near_z is set: an arm pointing at the camera is shortened to stay near_z plus its radius in front)."""
    n = len(joints)
    axes = hand_axes(joints)
    f, n_arm, r_arm = _arm_axes(axes, draw.flexion, draw.deviation)
    if draw.away_from_camera:
        f_alt, n_alt, r_alt = _arm_axes(axes, draw.mirrored_flexion, draw.deviation)
        flip = (f[:, 2] < 0) & (f_alt[:, 2] > f[:, 2])
        flexion = np.where(flip, draw.mirrored_flexion, draw.flexion)
        flip = flip[:, None]
        f, n_arm, r_arm = np.where(flip, f_alt, f), np.where(flip, n_alt, n_arm), np.where(flip, r_alt, r_arm)
    else:
        flexion = draw.flexion

    rim, half_b, half_d, center = _wrist_section(hand_vertices, joints, axes)
    elbow_b = half_b * draw.breadth_ratio
    elbow_d = elbow_b * draw.depth_ratio
    full = draw.full_length * 2 * half_b
    length = full * draw.length_fraction
    wrist = joints[:, 0].astype(np.float64)
    if near_z is not None:
        reach = np.maximum.reduce([half_b, half_d, elbow_b, elbow_d]) + np.linalg.norm(center, axis=1)
        room = wrist[:, 2] - near_z - reach
        toward = -f[:, 2]
        allowed = np.where(toward > 0, room / np.maximum(toward, 1e-12), np.inf)
        length = np.where(room > 0, np.minimum(length, allowed), 0.0)
    min_length = rim + MIN_BEYOND_RIM_M  # shorter arms would lie inside the hand
    present = draw.present & (length >= min_length)
    length = np.where(present, length, 0.0)

    # ring positions along the axis (from the wrist joint): the wrist dome (pole at rim - WRIST_DOME_M),
    # the side from the rim, the far dome ending at the far pole
    safe_len = np.maximum(length, min_length)
    tip_dome = np.minimum(half_d + (elbow_d - half_d) * _smoothstep(safe_len / (BELLY * full)),
                          0.5 * (safe_len - rim))
    beta = (math.pi / 2) * np.arange(1, CAP_STEPS) / CAP_STEPS
    side = np.linspace(0.0, 1.0, SIDE_RINGS)
    s_side = rim[:, None] + side[None] * (safe_len - tip_dome - rim)[:, None]
    s_rings = np.concatenate([rim[:, None] - WRIST_DOME_M * np.cos(beta)[None], s_side,
                              (safe_len - tip_dome)[:, None] + tip_dome[:, None] * np.sin(beta)[None]], axis=1)
    # each dome ring takes the section at its dome's rim, scaled; the side rings their own
    s_section = np.concatenate([np.repeat(s_side[:, :1], CAP_STEPS - 1, axis=1), s_side,
                                np.repeat(s_side[:, -1:], CAP_STEPS - 1, axis=1)], axis=1)
    scale = np.concatenate([np.sin(beta), np.ones(SIDE_RINGS), np.cos(beta)])[None]
    g = _smoothstep(s_section / (BELLY * full)[:, None])
    semi_b = (half_b[:, None] + (elbow_b - half_b)[:, None] * g) * scale
    semi_d = (half_d[:, None] + (elbow_d - half_d)[:, None] * g) * scale
    # the wrist dome's rings shrink their center offset toward the pole, which lies on the axis
    offset_scale = np.concatenate([np.sin(beta), np.ones(SIDE_RINGS + CAP_STEPS - 1)])[None]
    cx = center[:, :1] * (1 - g) * offset_scale
    cy = center[:, 1:] * (1 - g) * offset_scale
    phi = 2 * math.pi * np.arange(AROUND) / AROUND
    radial = cx[..., None] + semi_b[..., None] * np.cos(phi)  # (n, rings, AROUND)
    dorsal_off = cy[..., None] + semi_d[..., None] * np.sin(phi)
    rings = (wrist[:, None, None] + s_rings[..., None, None] * f[:, None, None]
             + radial[..., None] * r_arm[:, None, None] + dorsal_off[..., None] * n_arm[:, None, None])
    tip = wrist + safe_len[:, None] * f + cx[:, -1:] * r_arm + cy[:, -1:] * n_arm
    pole = wrist + (rim - WRIST_DOME_M)[:, None] * f
    vertices = np.concatenate([pole[:, None], rings.reshape(n, -1, 3), tip[:, None]], axis=1)
    return Forearms(vertices=vertices.astype(np.float32), present=present, direction=f, length=length,
                    flexion=flexion, deviation=draw.deviation,
                    wrist_breadth=2 * half_b, wrist_depth=2 * half_d, elbow_breadth=2 * elbow_b,
                    elbow_depth=2 * elbow_d)
