"""Loading the official MANO model files (`MANO_RIGHT.pkl`, `MANO_LEFT.pkl`, v1.2) without chumpy.

The file is a Python 2 pickle of a dict whose values are numpy arrays, chumpy
objects and a scipy sparse joint regressor. chumpy is unmaintained and does not
install on current Pythons, so the chumpy classes are replaced while unpickling
by a placeholder that keeps the pickled state, and the arrays are read out of it.

A pickle can name any Python callable and have it called while loading, so the file is
read by an unpickler that resolves only the globals an official MANO file refers to
(numpy arrays and dtypes, the chumpy / scipy.sparse placeholders, the helpers protocol 2
uses for bytes and plain objects) and refuses every other one, however deeply nested.
"""

from __future__ import annotations

import copyreg
import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse

from mask2hand.errors import Mask2HandError, ModelFileError
from mask2hand.hand.data import MANO_PARENTS, HandModelData

MANO_PATH_ENV = "MANO_RIGHT_PATH"

# Which single MANO vertex is taken as each fingertip (thumb, index, middle, ring,
# little). Public code disagrees; FreiHAND's annotations use the first set.
MANO_FINGERTIP_SETS = {
    "freihand": (744, 320, 443, 555, 672),
    "smplx": (744, 320, 443, 554, 671),
    "manopth": (745, 317, 444, 556, 673),
}

_HOW_TO_GET_MANO = (
    "MANO is the licensed parametric hand model of the Max Planck Institute; register and download "
    "'Models & Code' from the MANO website (mano.is.tue.mpg.de), then set "
    f"{MANO_PATH_ENV} to the path of models/MANO_RIGHT.pkl, or name it with path=... in Python, "
    "--mano PATH (predict, eval, synth, serve, export-onnx) or --set network.hand_model_path=PATH "
    "(train, ablate). "
    "Without it, use the open hand model that ships with mask2hand (name 'open')."
)


class _PickledObject:
    """Stands in for a chumpy or scipy.sparse object: keeps the class name and pickled state."""

    def __init__(self, *args, **kwargs):
        self.state = {}

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            state = {**(state[0] or {}), **state[1]}
        self.state = dict(state) if isinstance(state, dict) else {"value": state}


def _placeholder(module: str, name: str) -> type:
    return type(name, (_PickledObject,), {"pickled_module": module})


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global (or a use of one) that no MANO file needs; the message names it."""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """`_codecs.encode` as Python's pickler uses it for bytes in protocol 2 (always 'latin1'):
    any other codec name would let the file choose which codec module is imported."""
    if encoding != "latin1":
        raise _RefusedGlobal(f"_codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


# The globals of an official MANO_RIGHT.pkl (Python 2, protocol 2) and of files a Python 3
# writes in that format, under the names they are pickled with. numpy's module has moved
# (numpy.core -> numpy._core), so its reconstructors are taken from numpy's own pickling.
_ARRAY_RECONSTRUCT = np.empty(0).__reduce__()[0]
_SCALAR_RECONSTRUCT = np.float64(0).__reduce__()[0]
_ALLOWED_GLOBALS = {
    **{(module, "_reconstruct"): _ARRAY_RECONSTRUCT for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(module, "scalar"): _SCALAR_RECONSTRUCT for module in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    **{(module, "_reconstructor"): copyreg._reconstructor for module in ("copy_reg", "copyreg")},
    **{(module, "object"): object for module in ("__builtin__", "builtins")},
    **{(module, "set"): set for module in ("__builtin__", "builtins")},  # chumpy's _dirty_vars
}
# chumpy and scipy.sparse objects become inert placeholders (see _PickledObject): their
# modules are never imported, so any class name in them is harmless
_PLACEHOLDER_MODULES = ("chumpy.", "scipy.sparse.")


class _ManoUnpickler(pickle.Unpickler):
    """Resolves only _ALLOWED_GLOBALS and placeholder classes; raises _RefusedGlobal otherwise."""

    def find_class(self, module: str, name: str):
        if (module + ".").startswith(_PLACEHOLDER_MODULES):
            return _placeholder(module, name)
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise _RefusedGlobal(f"{module}.{name}")
        return allowed


def _to_array(value, key: str) -> np.ndarray:
    """Plain ndarray from an array, a chumpy object or a pickled sparse matrix."""
    if not isinstance(value, _PickledObject):
        return np.asarray(value)
    cls, state = type(value).__name__, value.state
    if type(value).pickled_module.startswith("scipy.sparse"):
        shape = state.get("_shape", state.get("shape"))
        matrix = scipy.sparse.csc_matrix((state["data"], state["indices"], state["indptr"]), shape=shape)
        return matrix.toarray()
    if "x" in state:
        return np.asarray(state["x"])
    if cls == "Select" and "a" in state and "idxs" in state:
        flat = _to_array(state["a"], key).ravel()[np.asarray(state["idxs"])]
        shape = state.get("preferred_shape")
        return flat.reshape(shape) if shape is not None else flat
    raise ModelFileError(f"MANO file: cannot read '{key}' (pickled chumpy {cls} with keys {sorted(state)})")


def _resolve_path(path: str | os.PathLike | None) -> Path:
    if path is None:
        env = os.environ.get(MANO_PATH_ENV)
        if not env:
            raise ModelFileError(f"no MANO model file given. {_HOW_TO_GET_MANO}")
        path = env
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / "MANO_RIGHT.pkl", path / "models" / "MANO_RIGHT.pkl"):
            if candidate.is_file():
                return candidate
    if not path.is_file():
        raise ModelFileError(f"MANO model file not found: {path}. {_HOW_TO_GET_MANO}")
    return path


MANO_KEYS = ("v_template", "f", "weights", "posedirs", "shapedirs", "J_regressor", "kintree_table",
             "hands_components", "hands_mean")
"""The arrays of a MANO file that define the hand (the rest are fitting by-products), by their names
in the file."""


@dataclass(frozen=True)
class ManoFile:
    """A MANO model file's hand-defining arrays, read without running code.

    arrays: MANO_KEYS -> plain ndarray in the file's dtype (the chumpy objects' values, the sparse
    J_regressor dense); sha256: the file's hash; path: where it was read.
    """

    arrays: dict[str, np.ndarray]
    sha256: str
    path: Path


def read_mano_file(path: str | os.PathLike | None = None) -> ManoFile:
    """Read and check a MANO model file (MANO_RIGHT.pkl or MANO_LEFT.pkl, v1.2).

    path: the file, a folder holding MANO_RIGHT.pkl, or None for the MANO_RIGHT_PATH variable.
    Raises ModelFileError (one line) if the file is missing, refers to any Python global a MANO
    file does not hold (nothing in it runs), or lacks MANO's arrays, shapes or kinematic tree.
    """
    path = _resolve_path(path)
    raw_bytes = path.read_bytes()
    try:
        raw = _ManoUnpickler(io.BytesIO(raw_bytes), encoding="latin1").load()
    except _RefusedGlobal as exc:
        raise ModelFileError(f"{path} refers to the Python global '{exc}', which a MANO model file never holds; "
                             "it was not loaded (nothing in it ran). Use the MANO_RIGHT.pkl downloaded from "
                             "mano.is.tue.mpg.de") from None
    except Exception as exc:  # any unpickling failure means the file is not a MANO model
        raise ModelFileError(f"{path} is not a readable MANO model file ({type(exc).__name__}: {exc}). "
                             f"{_HOW_TO_GET_MANO}") from None
    if not isinstance(raw, dict) or any(k not in raw for k in MANO_KEYS):
        have = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
        raise ModelFileError(f"{path} is not a MANO model file: expected keys {list(MANO_KEYS)}, found {have}. "
                             f"{_HOW_TO_GET_MANO}")
    try:
        mano = ManoFile({k: _to_array(raw[k], k) for k in MANO_KEYS}, hashlib.sha256(raw_bytes).hexdigest(), path)
        _model_data(mano, "freihand").validate()
    except ModelFileError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, Mask2HandError) as exc:
        # the right keys holding the wrong contents: a damaged or crafted file
        raise ModelFileError(f"{path} is not a readable MANO model file ({type(exc).__name__}: {exc}). "
                             f"{_HOW_TO_GET_MANO}") from None
    return mano


def load_mano_data(path: str | os.PathLike | None = None, fingertips: str = "freihand") -> HandModelData:
    """Read a MANO model file into HandModelData.

    path: the file, a folder holding MANO_RIGHT.pkl, or None for the MANO_RIGHT_PATH variable.
    fingertips: a key of MANO_FINGERTIP_SETS.
    """
    if fingertips not in MANO_FINGERTIP_SETS:
        raise Mask2HandError(f"unknown fingertip set '{fingertips}'; choose one of {sorted(MANO_FINGERTIP_SETS)}")
    return _model_data(read_mano_file(path), fingertips)


def _model_data(mano: ManoFile, fingertips: str) -> HandModelData:
    """HandModelData from a MANO file's arrays (by their MANO names); ModelFileError for another
    kinematic tree."""
    arrays = mano.arrays
    kintree = arrays["kintree_table"].astype(np.int64)
    parents = kintree[0].copy()
    parents[0] = -1
    if tuple(parents) != MANO_PARENTS:
        raise ModelFileError(f"{mano.path}: unexpected kinematic tree {parents.tolist()}; is this a MANO hand?")
    return HandModelData(
        name="mano",
        asset_hash=mano.sha256,
        v_template=arrays["v_template"].astype(np.float64),
        faces=arrays["f"].astype(np.int64),
        shapedirs=arrays["shapedirs"].astype(np.float64),
        posedirs=arrays["posedirs"].astype(np.float64),
        joint_regressor=arrays["J_regressor"].astype(np.float64),
        weights=arrays["weights"].astype(np.float64),
        parents=parents,
        pose_components=arrays["hands_components"].astype(np.float64),
        pose_mean=arrays["hands_mean"].astype(np.float64).ravel(),
        fingertip_ids=np.asarray(MANO_FINGERTIP_SETS[fingertips], dtype=np.int64),
    )
