"""Writes a small fake `MANO_RIGHT.pkl` in the official file's format, for tests.

The arrays are random but structurally valid (778 vertices, MANO's kinematic
tree, a sparse joint regressor, normalised skinning weights, orthonormal pose
components), so loading and the skinning pipeline can be tested without the
licensed file. The chumpy objects are written the way chumpy pickles them: a
`chumpy.ch.Ch` whose state holds the array `x`, and `shapedirs` as a
`chumpy.reordering.Select` whose state holds `a`, `idxs` and `preferred_shape`.

A left fixture (`side="left"`) is the right one's mirror image, as MANO_LEFT is MANO_RIGHT's: x
negated (template, joints, shape and pose correctives), the faces' winding reversed, the pose
components and mean mirrored as axis-angle rotations ((x, y, z) -> (x, -y, -z) per joint).
Unlike this fixture, the official MANO_LEFT.pkl leaves `shapedirs` unmirrored (smplx issue 48).
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

NUM_VERTICES = 778
KINTREE_PARENTS = [4294967295, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14]


class Ch:
    """Pickles like chumpy.ch.Ch: state {'x': array, ...}."""

    def __init__(self, x):
        self.x = np.asarray(x)
        self._dirty_vars = set()


class Select:
    """Pickles like chumpy.reordering.Select: a flat selection of another object's values."""

    def __init__(self, a, idxs, preferred_shape):
        self.a = a
        self.idxs = np.asarray(idxs)
        self.preferred_shape = tuple(preferred_shape)


def _as_chumpy_modules():
    """Temporarily make Ch and Select importable as chumpy classes so pickle records those names."""
    ch_mod, reorder_mod, root = types.ModuleType("chumpy.ch"), types.ModuleType("chumpy.reordering"), types.ModuleType("chumpy")
    Ch.__module__, Select.__module__ = "chumpy.ch", "chumpy.reordering"
    ch_mod.Ch, reorder_mod.Select = Ch, Select
    return {"chumpy": root, "chumpy.ch": ch_mod, "chumpy.reordering": reorder_mod}


def fake_mano_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """The plain arrays of a fake MANO model (the values the loader must recover)."""
    rng = np.random.default_rng(seed)
    v = NUM_VERTICES
    v_template = rng.uniform(-0.05, 0.05, size=(v, 3)) + np.array([0.05, 0.0, 0.0])
    faces = np.stack([rng.permutation(v)[:3] for _ in range(1538)]).astype(np.uint32)
    weights = rng.uniform(0, 1, size=(v, 16)) ** 4
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((16, v))
    for j in range(16):
        idx = rng.choice(v, size=8, replace=False)
        w = rng.uniform(0.1, 1, size=8)
        regressor[j, idx] = w / w.sum()
    components, _ = np.linalg.qr(rng.normal(size=(45, 45)))
    return {
        "v_template": v_template,
        "f": faces,
        "weights": weights,
        "posedirs": rng.normal(scale=1e-3, size=(v, 3, 135)),
        "shapedirs": rng.normal(scale=5e-3, size=(v, 3, 10)),
        "J_regressor": regressor,
        "kintree_table": np.array([KINTREE_PARENTS, list(range(16))], dtype=np.int64),
        "J": regressor @ v_template,
        "hands_components": components.T,
        "hands_mean": rng.normal(scale=0.2, size=45),
        "hands_coeffs": rng.normal(size=(1554, 45)),
    }


X_SIGN = np.array([-1.0, 1.0, 1.0])
AXIS_ANGLE_MIRROR = np.tile([1.0, -1.0, -1.0], 15)


def mirrored_mano_arrays(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The left hand of a right hand's arrays (module docstring). A pose corrective is driven by
    the entries (a, b) of R - I, and mirroring turns R into S R S (S = diag(-1, 1, 1)), so entry
    (a, b) changes sign with S_a S_b, and the offset's x with it."""
    ab_sign = np.outer(X_SIGN, X_SIGN).ravel()
    posedirs_sign = X_SIGN[:, None] * np.tile(ab_sign, 15)[None, :]
    mirror = {"v_template": lambda a: a * X_SIGN,
              "J": lambda a: a * X_SIGN,
              "f": lambda a: np.ascontiguousarray(a[:, ::-1]),
              "posedirs": lambda a: a * posedirs_sign,
              "shapedirs": lambda a: a * X_SIGN[:, None],
              "hands_components": lambda a: a * AXIS_ANGLE_MIRROR,
              "hands_mean": lambda a: a * AXIS_ANGLE_MIRROR}
    return {key: mirror[key](value) if key in mirror else value for key, value in arrays.items()}


def write_mano_fixture(path: str | Path, seed: int = 0, side: str = "right") -> Path:
    """Write the fake model (MANO_RIGHT's, or with side="left" its mirror, MANO_LEFT's) to `path`
    in MANO's pickle format; returns the path."""
    arrays = fake_mano_arrays(seed)
    if side == "left":
        arrays = mirrored_mano_arrays(arrays)
    # shapedirs is stored like the official file: a Select over a flat chumpy array
    flat = arrays["shapedirs"].ravel()
    order = np.random.default_rng(seed + 1).permutation(flat.size)
    base = np.empty_like(flat)
    base[order] = flat
    shapedirs = Select(Ch(base), idxs=order, preferred_shape=arrays["shapedirs"].shape)
    content = {
        "v_template": Ch(arrays["v_template"]),
        "f": arrays["f"],
        "weights": Ch(arrays["weights"]),
        "posedirs": Ch(arrays["posedirs"]),
        "shapedirs": shapedirs,
        "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
        "kintree_table": arrays["kintree_table"],
        "J": arrays["J"],
        "hands_components": arrays["hands_components"],
        "hands_mean": arrays["hands_mean"],
        "hands_coeffs": arrays["hands_coeffs"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    modules = _as_chumpy_modules()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        data = pickle.dumps(content, protocol=2)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    path = Path(path)
    path.write_bytes(data)
    return path
