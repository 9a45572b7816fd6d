"""Skeleton and surface of the open hand (used by tools/build_open_hand.py).

The rest hand is the zero set of an implicit field: swept ellipsoids along every
finger bone and metacarpal (smooth-unioned), thenar and hypothenar volumes, a wrist
stub capped by a plane. Marching cubes, a little Taubin smoothing and quadric
decimation turn it into one closed triangle mesh.

Frame (same axes as MANO's right hand): wrist joint at the origin, fingers along
-x, back of the hand +y, thumb toward +z. Units: meters.

Sources of the numbers (all scaled by the hand length HL, wrist joint to middle
fingertip):
- Buchholz, Armstrong & Goldstein (1992), "Anthropometric data for describing the
  kinematics of the human hand", Ergonomics 35(3):261-273, Table 2: segment lengths
  as fractions of hand length (BUCHHOLZ_SEGMENT_RATIOS). We use them for the ratios
  between the fingers (and between the phalanges of the thumb).
- Absolute joint placement follows the keypoint convention of FreiHAND / MANO
  (Zimmermann et al. 2019; Romero et al. 2017): the MCP keypoint sits at the knuckle,
  about 0.53 HL from the wrist, so that joints predicted with this model are
  comparable with FreiHAND annotations (see docs/OPEN_HAND.md).
- Finger breadths and depths at the joints, palm breadth and thickness, wrist
  breadth: rounded means of the ANSUR hand survey (Greiner 1991, "Hand anthropometry
  of U.S. Army personnel", Natick TR-92/011), scaled to HL = 18 cm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mask2hand.hand.prior import FINGERS, finger_direction, thumb_bone_frame

HAND_LENGTH = 0.18  # m, wrist joint to middle fingertip at betas = 0

# Buchholz et al. 1992, Table 2: segment length / hand length, (metacarpal,
# proximal, middle, distal) for the fingers and (metacarpal, proximal, distal) for
# the thumb.
BUCHHOLZ_SEGMENT_RATIOS = {
    "thumb": (0.251, 0.196, 0.158),
    "index": (0.374, 0.265, 0.143, 0.097),
    "middle": (0.373, 0.277, 0.170, 0.108),
    "ring": (0.336, 0.259, 0.165, 0.107),
    "little": (0.295, 0.206, 0.117, 0.093),
}

# Middle finger phalanges (MCP->PIP, PIP->DIP, DIP->skin tip) in the keypoint
# convention, fractions of HL; the total is rescaled so the middle tip is at HL.
MIDDLE_PHALANGES = np.array([0.178, 0.132, 0.150])
# MCP keypoints (x, y, z) / HL; thumb: CMC keypoint. From the FreiHAND/MANO mean
# skeleton, rounded.
MCP_POSITIONS = {
    "index": (-0.502, -0.030, 0.118),
    "middle": (-0.539, -0.008, -0.019),
    "ring": (-0.465, -0.023, -0.152),
    "little": (-0.392, -0.056, -0.246),
    "thumb": (-0.137, -0.088, 0.147),
}
# Thumb CMC->MCP, MCP->IP, IP->skin tip as fractions of HL (Buchholz's thumb ratios
# scaled like the long fingers' keypoint lengths).
THUMB_PHALANGES = np.array([0.185, 0.150, 0.165])

# Finger cross-sections (cm at HL = 18 cm): breadth and depth at MCP, PIP, DIP and the
# pad of the distal phalanx (ANSUR means, rounded).
FINGER_SECTIONS_CM = {
    #          MCP          PIP          DIP          pad
    "index": ((2.15, 2.05), (2.00, 1.75), (1.75, 1.45), (1.62, 1.32)),
    "middle": ((2.15, 2.05), (2.05, 1.80), (1.80, 1.50), (1.68, 1.38)),
    "ring": ((2.00, 1.95), (1.90, 1.70), (1.65, 1.42), (1.56, 1.30)),
    "little": ((1.80, 1.75), (1.70, 1.50), (1.48, 1.30), (1.40, 1.18)),
    #          CMC          MCP          IP           pad
    "thumb": ((2.60, 2.40), (2.35, 2.05), (2.15, 1.75), (2.00, 1.55)),
}


@dataclass
class Skeleton:
    """Rest joints (16,3) in MANO order, fingertip points (5,3) in MANO chain order
    (index, middle, little, ring, thumb), bone directions and nail normals (15,3)."""

    joints: np.ndarray
    tips: np.ndarray
    directions: np.ndarray
    normals: np.ndarray
    hand_length: float = HAND_LENGTH
    chains: dict = field(default_factory=dict)  # finger -> (4,3) array: joint, joint, joint, tip


def finger_segment_lengths() -> dict[str, np.ndarray]:
    """Phalanx lengths (fractions of HL) of every finger, from Buchholz's ratios."""
    b = BUCHHOLZ_SEGMENT_RATIOS
    out = {}
    for f in ("index", "middle", "ring", "little"):
        ratio = np.array(b[f][1:]) / np.array(b["middle"][1:])
        out[f] = MIDDLE_PHALANGES * ratio
    out["thumb"] = THUMB_PHALANGES
    return out


def build_skeleton(hand_length: float = HAND_LENGTH) -> Skeleton:
    """The rest skeleton, scaled so the middle fingertip is `hand_length` from the wrist."""
    lengths = finger_segment_lengths()
    # rescale the middle finger so |tip| == 1 HL exactly
    mcp = np.array(MCP_POSITIONS["middle"])
    d = finger_direction("middle")
    # |mcp + L d| = 1 -> L^2 + 2 L (mcp.d) + |mcp|^2 - 1 = 0
    bq, cq = 2 * mcp @ d, mcp @ mcp - 1.0
    total = (-bq + np.sqrt(bq * bq - 4 * cq)) / 2
    gain = total / lengths["middle"].sum()
    joints = np.zeros((16, 3))
    tips, dirs, normals, chains = np.zeros((5, 3)), np.zeros((15, 3)), np.zeros((15, 3)), {}
    for fi, f in enumerate(FINGERS):
        seg = lengths[f] * (gain if f != "thumb" else 1.0)
        p = np.array(MCP_POSITIONS[f], dtype=np.float64)
        chain = [p.copy()]
        for k in range(3):
            if f == "thumb":
                dk, nk = thumb_bone_frame(k)
            else:
                dk, nk = finger_direction(f), np.array([0.0, 1.0, 0.0])
            joints[1 + 3 * fi + k] = p
            dirs[3 * fi + k], normals[3 * fi + k] = dk, nk
            p = p + seg[k] * dk
            chain.append(p.copy())
        tips[fi] = p
        chains[f] = np.array(chain) * hand_length
    return Skeleton(joints=joints * hand_length, tips=tips * hand_length, directions=dirs, normals=normals,
                    hand_length=hand_length, chains=chains)


# ----------------------------------------------------------------------------- primitives


@dataclass
class Ellipsoid:
    """An ellipsoid with different dorsal and palmar half-depths.

    center (3,); axes (3,3) columns: lateral, dorsal, axial unit vectors;
    semi = (lateral, dorsal, palmar, axial) half-lengths in meters.
    """

    center: np.ndarray
    axes: np.ndarray
    semi: np.ndarray


def ellipsoid_field(points: np.ndarray, e: Ellipsoid) -> np.ndarray:
    """Approximate signed distance (...,) of points (...,3) to the ellipsoid (negative inside)."""
    q = (points - e.center) @ e.axes
    rl, rd, rp, ra = e.semi
    rn = np.where(q[..., 1] > 0, rd, rp)
    r = np.stack([np.full_like(rn, rl), rn, np.full_like(rn, ra)], axis=-1)
    k0 = np.linalg.norm(q / r, axis=-1)
    k1 = np.linalg.norm(q / (r * r), axis=-1)
    return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)


def smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum with blend radius k (meters)."""
    h = np.clip(k - np.abs(a - b), 0.0, None) / k
    return np.minimum(a, b) - h * h * k * 0.25


def smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    return -smin(-a, -b, k)


def _frame(axial: np.ndarray, dorsal_hint: np.ndarray) -> np.ndarray:
    axial = axial / np.linalg.norm(axial)
    dorsal = dorsal_hint - (dorsal_hint @ axial) * axial
    dorsal /= np.linalg.norm(dorsal)
    lateral = np.cross(dorsal, axial)
    return np.stack([lateral, dorsal, axial], axis=1)


def sweep(points: np.ndarray, semis: np.ndarray, normals: np.ndarray, step: float = 0.002,
          axial_ratio: float = 0.8) -> list[Ellipsoid]:
    """Ellipsoids along a polyline (K,3) with per-point (lateral, dorsal, palmar) half-widths
    (K,3) and dorsal hints (K,3), interpolated linearly, one every `step` meters."""
    out = []
    seg_len = np.linalg.norm(np.diff(points, axis=0), axis=1)
    s_knots = np.concatenate([[0.0], np.cumsum(seg_len)])
    n = max(int(np.ceil(s_knots[-1] / step)), 1)
    for s in np.linspace(0.0, s_knots[-1], n + 1):
        i = min(np.searchsorted(s_knots, s, side="right") - 1, len(seg_len) - 1)
        t = (s - s_knots[i]) / seg_len[i]
        c = points[i] + t * (points[i + 1] - points[i])
        semi = (1 - t) * semis[i] + t * semis[i + 1]
        hint = (1 - t) * normals[i] + t * normals[i + 1]
        axes = _frame(points[i + 1] - points[i], hint)
        ra = axial_ratio * min(semi[0], semi[1], semi[2])
        out.append(Ellipsoid(c, axes, np.array([semi[0], semi[1], semi[2], ra])))
    return out


# ----------------------------------------------------------------------------- the hand


@dataclass
class HandShapeSpec:
    """Primitive groups of the implicit hand: name -> list of ellipsoids, plus blend radii."""

    groups: dict[str, list[Ellipsoid]]
    cap_x: float


def _finger_profile(f: str, chain: np.ndarray, normal: np.ndarray, hl: float) -> list[Ellipsoid]:
    """Swept finger from its base joint to the skin tip with knuckles, creases and a pad."""
    sec = np.array(FINGER_SECTIONS_CM[f]) * 0.01 * hl / HAND_LENGTH  # (4,2) breadth, depth
    j0, j1, j2, tip = chain
    d_last = (tip - j2) / np.linalg.norm(tip - j2)
    pts, semis, hints = [], [], []

    def add(p, breadth, depth, dorsal_frac, n):
        pts.append(p)
        semis.append([breadth / 2, depth * dorsal_frac, depth * (1 - dorsal_frac)])
        hints.append(n)

    nrm = normal
    # MCP (base) ... PIP: knuckle at the joint (fuller dorsal), shaft a bit slimmer with a
    # fuller palmar side, a palmar crease at each joint (smaller palmar half-depth).
    add(j0, *sec[0], 0.50, nrm)
    mid = 0.5 * (j0 + j1)
    add(mid, sec[0, 0] * 0.48 + sec[1, 0] * 0.47, (sec[0, 1] + sec[1, 1]) * 0.5 * 0.97, 0.44, nrm)
    add(j1, sec[1, 0], sec[1, 1], 0.52, nrm)
    mid = 0.5 * (j1 + j2)
    add(mid, (sec[1, 0] + sec[2, 0]) * 0.5 * 0.95, (sec[1, 1] + sec[2, 1]) * 0.5 * 0.97, 0.44, nrm)
    add(j2, sec[2, 0], sec[2, 1], 0.52, nrm)
    # distal phalanx: flat nail side (small dorsal half-depth), full pad bulging palmar;
    # nearly constant section up to a dome-shaped end cap that reaches the tip point
    seg = np.linalg.norm(tip - j2)
    pad_breadth, pad_depth = sec[3]
    add(j2 + 0.40 * seg * d_last, pad_breadth, pad_depth, 0.40, nrm)
    end_r = 0.50 * pad_depth
    add(tip - end_r * d_last, pad_breadth * 0.94, pad_depth * 0.92, 0.40, nrm)
    pts, semis, hints = np.array(pts), np.array(semis), np.array(hints)
    ells = sweep(pts, semis, hints, step=0.0018 * hl / HAND_LENGTH, axial_ratio=0.85)
    # the last ellipsoid is the dome of the tip: its axial half-length reaches `tip`
    last = ells[-1]
    last.semi[3] = float(np.linalg.norm(tip - last.center))
    return ells


def hand_primitives(sk: Skeleton) -> HandShapeSpec:
    """All primitive groups of the rest hand for a skeleton."""
    hl = sk.hand_length
    s = hl / HAND_LENGTH
    y = np.array([0.0, 1.0, 0.0])
    groups: dict[str, list[Ellipsoid]] = {}
    # long fingers and thumb
    for fi, f in enumerate(FINGERS):
        chain = sk.chains[f]
        groups[f] = _finger_profile(f, chain, sk.normals[3 * fi], hl)
    # metacarpal rays: base near the wrist (palm narrows to the wrist), head at MCP
    ray_semis = {  # (lateral, dorsal, palmar) at base and head, meters at HL 18 cm
        "index": ((0.0120, 0.0105, 0.0130), (0.0118, 0.0100, 0.0140)),
        "middle": ((0.0120, 0.0110, 0.0130), (0.0120, 0.0102, 0.0142)),
        "ring": ((0.0115, 0.0105, 0.0125), (0.0112, 0.0098, 0.0135)),
        "little": ((0.0110, 0.0095, 0.0120), (0.0102, 0.0090, 0.0125)),
    }
    for f in ("index", "middle", "ring", "little"):
        head = sk.chains[f][0]
        base = np.array([-0.022 * s, -0.001 * s, 0.55 * head[2] - 0.002 * s])
        # heads sit slightly proximal of the MCP keypoint so the web is at the right level
        head_in = head + np.array([0.006 * s, 0.0, 0.0])
        semis = np.array(ray_semis[f]) * s
        groups[f"ray_{f}"] = sweep(np.array([base, head_in]), semis, np.array([y, y]), step=0.0025 * s,
                                   axial_ratio=0.9)
    # thenar eminence: along the thumb metacarpal, palmar-radial, full
    cmc, tmcp = sk.chains["thumb"][0], sk.chains["thumb"][1]
    t0 = np.array([-0.008 * s, -0.006 * s, 0.010 * s])
    tmid = 0.45 * cmc + 0.55 * tmcp
    groups["thenar"] = sweep(
        np.array([t0, cmc, tmid]),
        np.array([[0.0130, 0.0110, 0.0140], [0.0150, 0.0105, 0.0150], [0.0120, 0.0095, 0.0115]]) * s,
        np.array([y, y, sk.normals[12]]), step=0.0025 * s, axial_ratio=0.9)
    # hypothenar eminence: ulnar border of the palm, palmar
    groups["hypothenar"] = sweep(
        np.array([[-0.015, -0.004, -0.026], [-0.045, -0.007, -0.037], [-0.064, -0.009, -0.041]]) * s,
        np.array([[0.0120, 0.0090, 0.0135], [0.0115, 0.0090, 0.0135], [0.0100, 0.0085, 0.0115]]) * s,
        np.array([y, y, y]), step=0.0025 * s, axial_ratio=0.9)
    # wrist stub: elliptical, capped by a plane proximal of the wrist joint
    groups["wrist"] = sweep(
        np.array([[-0.030, -0.001, -0.004], [0.000, 0.000, -0.003], [0.040, 0.000, -0.002]]) * s,
        np.array([[0.0270, 0.0140, 0.0160], [0.0285, 0.0170, 0.0185], [0.0290, 0.0180, 0.0190]]) * s,
        np.array([y, y, y]), step=0.0025 * s, axial_ratio=0.9)
    return HandShapeSpec(groups=groups, cap_x=0.016 * s)


# blend radii (m at HL 18 cm) when the palm volumes are combined, in this order
BLENDS = (("palm", "ray_middle", 0.012), ("palm", "ray_ring", 0.012), ("palm", "ray_little", 0.012),
          ("palm", "wrist", 0.014), ("palm", "hypothenar", 0.010), ("palm", "thenar", 0.012))
FINGER_BLEND = 0.006  # palm to the union of the five fingers (the webs)
CAP_BLEND = 0.004


def group_fields_at(spec: HandShapeSpec, points: np.ndarray) -> dict[str, np.ndarray]:
    """Field of every primitive group (hard min of its ellipsoids) at points (N,3)."""
    out = {}
    for name, ells in spec.groups.items():
        f = np.full(points.shape[0], np.inf)
        for e in ells:
            f = np.minimum(f, ellipsoid_field(points, e))
        out[name] = f
    return out


def combine(fields: dict[str, np.ndarray], cap: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """The hand's field from the group fields and the cap plane field (x - cap_x).

    The fingers are united by a hard minimum before they are blended into the palm:
    blending them one after another would bridge the narrow gaps between neighbors.
    """
    acc = fields["ray_index"]
    for _, other, k in BLENDS:
        acc = smin(acc, fields[other], k * scale)
    fingers = np.minimum.reduce([fields[f] for f in FINGERS])
    acc = smin(acc, fingers, FINGER_BLEND * scale)
    return smax(acc, cap, CAP_BLEND * scale)


def hand_field_on_grid(spec: HandShapeSpec, lo: np.ndarray, h: float, shape: tuple[int, int, int],
                       margin: float = 0.02) -> np.ndarray:
    """The hand's field sampled on a regular grid (shape) with corner lo and spacing h.

    Each ellipsoid is evaluated only in its bounding box plus `margin` (blend reach).
    """
    axes = [lo[i] + h * np.arange(shape[i]) for i in range(3)]
    far = 1.0
    fields = {}
    for name, ells in spec.groups.items():
        g = np.full(shape, far)
        for e in ells:
            reach = e.semi.max() + margin
            sl = []
            for i in range(3):
                a = int(np.clip(np.floor((e.center[i] - reach - lo[i]) / h), 0, shape[i]))
                b = int(np.clip(np.ceil((e.center[i] + reach - lo[i]) / h) + 1, 0, shape[i]))
                sl.append(slice(a, b))
            if any(s_.start >= s_.stop for s_ in sl):
                continue
            px, py, pz = np.meshgrid(axes[0][sl[0]], axes[1][sl[1]], axes[2][sl[2]], indexing="ij")
            pts = np.stack([px, py, pz], axis=-1)
            g[tuple(sl)] = np.minimum(g[tuple(sl)], ellipsoid_field(pts, e))
        fields[name] = g
    cap = np.broadcast_to(axes[0][:, None, None] - spec.cap_x, shape)
    return combine(fields, cap)


def hand_field_at(spec: HandShapeSpec, points: np.ndarray) -> np.ndarray:
    fields = group_fields_at(spec, points)
    return combine(fields, points[:, 0] - spec.cap_x)


def part_labels(spec: HandShapeSpec, points: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Which primitive group is nearest to each point: (group names, (N,) index)."""
    fields = group_fields_at(spec, points)
    names = list(fields)
    return names, np.argmin(np.stack([fields[n] for n in names]), axis=0)


# ----------------------------------------------------------------------------- meshing


def mesh_hand(spec: HandShapeSpec, voxel: float = 0.00125, target_vertices: int = 1200,
              smoothing_iterations: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Closed triangle mesh (vertices (V,3), faces (F,3), outward CCW) of the hand's zero set."""
    import fast_simplification
    import trimesh
    from skimage.measure import marching_cubes

    pts = np.concatenate([np.array([e.center for e in ells]) for ells in spec.groups.values()])
    reach = 0.03
    lo = pts.min(axis=0) - reach
    hi = pts.max(axis=0) + reach
    hi[0] = min(hi[0], spec.cap_x + 4 * voxel)
    shape = tuple(int(np.ceil((hi[i] - lo[i]) / voxel)) + 1 for i in range(3))
    grid = hand_field_on_grid(spec, lo, voxel, shape)
    # a closed surface needs the grid border outside the hand
    border = np.concatenate([grid[[0, -1]].ravel(), grid[:, [0, -1]].ravel(), grid[:, :, [0, -1]].ravel()])
    if border.min() <= 0:
        raise RuntimeError("the hand touches the grid border; enlarge the margin")
    # a grid value of (almost) exactly zero makes marching cubes emit coincident vertices
    # that pinch the surface when merged: push such values off the level
    grid = np.where(np.abs(grid) < 1e-3 * voxel, 1e-3 * voxel, grid)
    verts, faces, _, _ = marching_cubes(grid, level=0.0, spacing=(voxel,) * 3)
    verts = verts + lo
    mesh = trimesh.Trimesh(verts, faces, process=True)  # merges duplicate vertices
    if mesh.volume < 0:
        mesh.invert()
    trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=-0.53, iterations=smoothing_iterations)
    # Quadric decimation may rarely pinch a non-manifold edge; try nearby targets in a
    # fixed order and keep the first clean result (deterministic).
    for attempt in range(30):
        agg = (3.0, 5.0, 2.0)[attempt % 3]
        target = target_vertices + (attempt // 3) * 5
        v, f = fast_simplification.simplify(np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64),
                                            target_count=2 * target - 4, agg=agg)
        out = trimesh.Trimesh(v, f, process=False)
        out.remove_unreferenced_vertices()
        if out.volume < 0:
            out.invert()
        v, f = np.asarray(out.vertices, dtype=np.float64), np.asarray(out.faces, dtype=np.int64)
        if is_clean_closed_mesh(v, f):
            return v, f
    raise RuntimeError("decimation never produced a clean closed mesh")


def is_clean_closed_mesh(vertices: np.ndarray, faces: np.ndarray) -> bool:
    r = mesh_report(vertices, faces)
    return (r["watertight"] and r["winding_consistent"] and r["edges_shared_by_two"] and r["euler"] == 2
            and r["bodies"] == 1 and r["volume_cm3"] > 0)


def mesh_report(vertices: np.ndarray, faces: np.ndarray) -> dict:
    """Topology checks of a closed mesh: watertight, manifold edges, consistent winding, genus."""
    import trimesh

    m = trimesh.Trimesh(vertices, faces, process=False)
    edges = np.sort(m.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return {"vertices": len(vertices), "faces": len(faces), "watertight": bool(m.is_watertight),
            "winding_consistent": bool(m.is_winding_consistent), "edges_shared_by_two": bool((counts == 2).all()),
            "euler": int(m.euler_number), "volume_cm3": float(m.volume * 1e6), "bodies": len(m.split(only_watertight=False))}
