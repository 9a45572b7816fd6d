"""Rig of the open hand (used by tools/build_open_hand.py): skinning weights, joint
regressor, fingertip vertices and shape directions, all computed from the rest mesh
and the designed skeleton."""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from mask2hand.hand.prior import FINGERS

# Blend half-widths (meters at HL 18 cm) of the skin across each joint of a chain:
# (base joint, middle joint, distal joint). Wider at the MCP/CMC where the skin of the
# palm moves with the finger.
FINGER_BLEND = (0.011, 0.0055, 0.0045)
THUMB_BLEND = (0.016, 0.0085, 0.0055)


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def project_on_polyline(points: np.ndarray, poly: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arclength s (N,), distance r (N,) and knot arclengths (K,) of points (N,3) on a polyline (K,3).

    The first segment is extended backward so points behind the start get s < 0.
    """
    seg = np.diff(poly, axis=0)
    lens = np.linalg.norm(seg, axis=1)
    knots = np.concatenate([[0.0], np.cumsum(lens)])
    best_r = np.full(len(points), np.inf)
    best_s = np.zeros(len(points))
    for i in range(len(seg)):
        d = seg[i] / lens[i]
        t = (points - poly[i]) @ d
        lo = -np.inf if i == 0 else 0.0
        tc = np.clip(t, lo, lens[i])
        r = np.linalg.norm(points - (poly[i] + tc[:, None] * d), axis=1)
        better = r < best_r
        best_r[better], best_s[better] = r[better], knots[i] + tc[better]
    return best_s, best_r, knots


def skinning_weights(vertices: np.ndarray, faces: np.ndarray, skeleton, labels: np.ndarray,
                     label_names: list[str], smooth_iterations: int = 6) -> np.ndarray:
    """Skinning weights (V,16): rows sum to 1, non-negative, smooth across joints.

    Every vertex belongs to one finger chain (wrist -> base joint -> ... -> tip): its own
    finger if it lies on that finger's surface, else the nearest chain (thenar vertices
    the thumb's). Along the chain, weights pass from one bone to the next with a
    smoothstep centered on each joint. A few rounds of neighbor averaging in the palm
    and proximal phalanges remove the seams between chains.
    """
    s_scale = skeleton.hand_length / 0.18
    n_v = len(vertices)
    label_of = np.array(label_names)[labels]
    chain_s, chain_r, chain_knots = {}, {}, {}
    for f in FINGERS:
        poly = np.concatenate([skeleton.joints[:1], skeleton.chains[f]])
        chain_s[f], chain_r[f], chain_knots[f] = project_on_polyline(vertices, poly)
    dist = np.stack([chain_r[f] for f in FINGERS], axis=1)
    dist_fingers_only = dist.copy()
    dist_fingers_only[:, 4] = np.inf
    owner = np.argmin(dist_fingers_only, axis=1)  # palm, wrist, hypothenar: nearest long finger
    for fi, f in enumerate(FINGERS):
        owner[label_of == f] = fi
    owner[label_of == "thenar"] = 4
    weights = np.zeros((n_v, 16))
    for fi, f in enumerate(FINGERS):
        sel = owner == fi
        s = chain_s[f][sel]
        knots = chain_knots[f]
        blend = (THUMB_BLEND if f == "thumb" else FINGER_BLEND)
        steps = [smoothstep((s - (knots[k + 1] - blend[k] * s_scale)) / (2 * blend[k] * s_scale)) for k in range(3)]
        bones = [0, 1 + 3 * fi, 2 + 3 * fi, 3 + 3 * fi]
        w = [1 - steps[0], steps[0] - steps[1], steps[1] - steps[2], steps[2]]
        for b, wb in zip(bones, w):
            weights[sel, b] = wb
    # seam removal: average with neighbors where the chains meet (palm, finger bases)
    s_own = np.array([chain_s[FINGERS[o]][i] - chain_knots[FINGERS[o]][2] for i, o in enumerate(owner)])
    movable = s_own < -0.006 * s_scale  # proximal of the PIP/thumb-MCP blend
    neighbors = _vertex_neighbors(faces, n_v)
    for _ in range(smooth_iterations):
        avg = np.stack([weights[nb].mean(axis=0) for nb in neighbors])
        weights[movable] = 0.5 * weights[movable] + 0.5 * avg[movable]
    weights = np.clip(weights, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def _vertex_neighbors(faces: np.ndarray, n_v: int) -> list[np.ndarray]:
    nb: list[set] = [set() for _ in range(n_v)]
    for a, b, c in faces:
        nb[a].update((b, c))
        nb[b].update((a, c))
        nb[c].update((a, b))
    return [np.array(sorted(x)) for x in nb]


def joint_regressor(vertices: np.ndarray, skeleton, weights: np.ndarray) -> np.ndarray:
    """Sparse non-negative (16,V) regressor, rows summing to 1, that reproduces the
    designed joint centers from rings of skin vertices around each joint."""
    s_scale = skeleton.hand_length / 0.18
    reg = np.zeros((16, len(vertices)))
    for j in range(16):
        c = skeleton.joints[j]
        if j == 0:
            axis = np.array([-1.0, 0.0, 0.0])
            band, rmax = 0.004, 0.05
            cand_mask = np.ones(len(vertices), bool)
        else:
            axis = skeleton.directions[j - 1]
            band, rmax = (0.0035, 0.016) if (j - 1) % 3 else (0.005, 0.022)
            if j == 13:
                band, rmax = 0.006, 0.028
            chain = (j - 1) // 3
            bones = [0] + [1 + 3 * chain + k for k in range(3)]
            own = weights[:, bones[1:]].sum(axis=1)
            cand_mask = own > 0.02 if j not in (1, 4, 7, 10, 13) else weights[:, bones].sum(axis=1) > 0.5
        rel = vertices - c
        along = rel @ axis
        radial = np.linalg.norm(rel - along[:, None] * axis, axis=1)
        cand = np.where(cand_mask & (np.abs(along) < band * s_scale) & (radial < rmax * s_scale))[0]
        if len(cand) < 6:
            raise RuntimeError(f"joint {j}: only {len(cand)} ring vertices")
        reg[j, cand] = _convex_weights(vertices[cand], c)
    return reg


def _convex_weights(points: np.ndarray, target: np.ndarray, smooth: float = 1e-3) -> np.ndarray:
    """Non-negative weights summing to 1 with sum w_i p_i ~= target, close to uniform."""
    n = len(points)
    scale = 1000.0  # work in millimeters
    a = np.vstack([points.T * scale * 10, np.full((1, n), 1000.0), np.sqrt(smooth) * np.eye(n) * 100])
    b = np.concatenate([target * scale * 10, [1000.0], np.full(n, np.sqrt(smooth) * 100 / n)])
    w, _ = nnls(a, b, maxiter=50 * n)
    return w / w.sum()


def fingertip_vertices(vertices: np.ndarray, skeleton) -> np.ndarray:
    """Vertex ids (5,) nearest to the designed skin tips: thumb, index, middle, ring, little."""
    order = ("thumb", "index", "middle", "ring", "little")
    ids = []
    for f in order:
        tip = skeleton.chains[f][-1]
        ids.append(int(np.argmin(np.linalg.norm(vertices - tip, axis=1))))
    return np.array(ids)


# ----------------------------------------------------------------------------- shape


def bone_frames(skeleton) -> np.ndarray:
    """(16,3,3) frames, columns lateral, dorsal, axial: the world axes (z, y, -x) for the
    palm, the anatomical frames for the finger bones."""
    frames = np.zeros((16, 3, 3))
    frames[0] = np.stack([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], axis=1)
    for j in range(15):
        d, n = skeleton.directions[j], skeleton.normals[j]
        frames[j + 1] = np.stack([np.cross(n, d), n, d], axis=1)
    return frames


def deform(vertices: np.ndarray, skeleton, weights: np.ndarray, log_scales: np.ndarray,
           global_log_scale: float = 0.0) -> np.ndarray:
    """Rest vertices after scaling each bone in its frame.

    log_scales (16,3): log of the (lateral, dorsal, axial) scale of every bone about its
    joint; children joints move with their parent bone's scaling; a global scale about
    the wrist is applied last.
    """
    from mask2hand.hand.data import MANO_PARENTS

    frames = bone_frames(skeleton)
    a = np.einsum("jab,jb,jcb->jac", frames, np.exp(log_scales), frames)
    j_rest = skeleton.joints
    j_new = np.zeros_like(j_rest)
    j_new[0] = j_rest[0]
    for j in range(1, 16):
        p = MANO_PARENTS[j]
        j_new[j] = j_new[p] + a[p] @ (j_rest[j] - j_rest[p])
    moved = j_new[None] + np.einsum("jab,vjb->vja", a, vertices[:, None, :] - j_rest[None])
    out = np.einsum("vj,vja->va", weights, moved)
    return j_rest[0] + np.exp(global_log_scale) * (out - j_rest[0])


# The ten shape components: name, standard deviation (of the log scale) and the bones
# and axes they scale. SDs are rounded coefficients of variation of the hand
# dimensions in adult anthropometric surveys (Greiner 1991; Garrett 1971): hand length
# ~5%, hand breadth relative to length ~4%, finger lengths relative to the palm ~3-5%,
# girths 6-8%.
LONG = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
THUMB = (13, 14, 15)
SHAPE_COMPONENTS = (
    ("overall size", 0.050, {}),
    ("palm breadth", 0.045, {(0,): (1.0, 0.0, 0.0)}),
    ("finger length vs palm", 0.035, {LONG: (0.0, 0.0, 1.0), (14, 15): (0.0, 0.0, 1.0), (0,): (0.0, 0.0, -0.85)}),
    ("palm thickness", 0.070, {(0,): (0.0, 1.0, 0.0), (13,): (0.5, 0.5, 0.0)}),
    ("finger girth", 0.060, {LONG: (1.0, 1.0, 0.0), THUMB[1:]: (1.0, 1.0, 0.0)}),
    ("thumb length", 0.050, {THUMB: (0.0, 0.0, 1.0)}),
    ("little finger length", 0.050, {(7, 8, 9): (0.0, 0.0, 1.0), (10, 11, 12): (0.0, 0.0, 0.3)}),
    ("index vs ring length", 0.030, {(1, 2, 3): (0.0, 0.0, 1.0), (10, 11, 12): (0.0, 0.0, -1.0)}),
    ("thumb and thenar girth", 0.070, {THUMB: (1.0, 1.0, 0.0)}),
    ("palm length", 0.030, {(0,): (0.0, 0.0, 1.0)}),
)


def shape_directions(vertices: np.ndarray, skeleton, weights: np.ndarray) -> np.ndarray:
    """shapedirs (V,3,10): displacement per unit beta (one standard deviation)."""
    eps = 1e-4
    dirs = []
    for k, (_, sd, spec) in enumerate(SHAPE_COMPONENTS):
        ls = np.zeros((16, 3))
        for bones, axes in spec.items():
            ls[list(bones)] += np.array(axes)
        g = 1.0 if k == 0 else 0.0
        plus = deform(vertices, skeleton, weights, eps * ls, eps * g)
        minus = deform(vertices, skeleton, weights, -eps * ls, -eps * g)
        dirs.append((plus - minus) / (2 * eps) * sd)
    return np.stack(dirs, axis=-1)
