"""Running an exported Mask2Hand ONNX file without torch: numpy, onnxruntime (and Pillow for files).

    from mask2hand import Mask2Hand

    model = Mask2Hand.from_onnx("mask2hand.onnx")     # or: mask2hand predict --runtime onnx --model ...
    result = model.predict("examples/open_palm.png")

`OnnxRunner` is the ONNX twin of `mask2hand.inference.runner.TorchRunner`: a `Runner` (faces,
input_size, input_crop, hand identity, `__call__(masks, K) -> NetworkResult`), so `Mask2Hand`
prepares inputs and finishes predictions the same way for both. Everything
it needs is in the file's metadata (see mask2hand.export.onnx). It has no torch hand layer
(`hand` is None): what needs one (test-time fitting) needs the PyTorch runtime. For the open
hand, whose arrays ship with mask2hand, it has the NumPy layer (`numpy_hand`) that rebuilds the
answer's parameters and re-poses smoothed sequences as the torch runtime does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from mask2hand.errors import Mask2HandError, ModelFileError
from mask2hand.hand.numpy_layer import NumpyHand
from mask2hand.hand.open_hand import load_open_hand_data
from mask2hand.inference.runner import NetworkResult
from mask2hand.utils.checks import check_shape

EXPORT_FORMAT = "mask2hand-onnx"
EXPORT_FORMAT_VERSION = 1
METADATA_PREFIX = "mask2hand."
"""metadata_props keys of an export start with this; their values are JSON."""


def read_metadata(custom_metadata: dict[str, str], source: str) -> dict[str, Any]:
    """The mask2hand metadata (decoded) of an ONNX model's custom metadata map; raises
    Mask2HandError if the model is not a mask2hand export this version can run."""
    values = {}
    for key, text in custom_metadata.items():
        if key.startswith(METADATA_PREFIX):
            try:
                values[key[len(METADATA_PREFIX):]] = json.loads(text)
            except (json.JSONDecodeError, RecursionError):  # RecursionError: nested past Python's stack
                raise ModelFileError(f"{source}: its metadata entry {key} is not valid JSON; export the model "
                                     "again with `mask2hand export-onnx`") from None
    if values.get("format") != EXPORT_FORMAT:
        raise ModelFileError(f"{source} is an ONNX model but not a mask2hand export (no mask2hand metadata); "
                             "make one with `mask2hand export-onnx CHECKPOINT OUT.onnx`")
    if int(values.get("format_version", 0)) > EXPORT_FORMAT_VERSION:
        raise ModelFileError(f"{source} was exported by a newer mask2hand (format version "
                             f"{values['format_version']}); upgrade mask2hand")
    missing = [k for k in ("hand", "flat_hand_mean", "input_size", "faces", "outputs") if k not in values]
    if missing:
        raise ModelFileError(f"{source}: the mask2hand metadata lacks {', '.join(missing)}; export it again")
    problem = metadata_problem(values)
    if problem:
        raise ModelFileError(f"{source}: its mask2hand metadata {problem}; export the model again with "
                             "`mask2hand export-onnx`")
    return values


MAX_INPUT_SIZE = 4096
"""Largest network input side an export may state (the shipped networks take 128 and 256)."""


def metadata_problem(values: dict[str, Any]) -> str:
    """What is wrong with decoded export metadata, in a few words ("" when nothing is): the types
    and ranges the runner relies on."""
    size, crop = values["input_size"], values.get("input_crop")
    if isinstance(size, bool) or not isinstance(size, int) or not 16 <= size <= MAX_INPUT_SIZE:
        return f"input_size is not a whole number from 16 to {MAX_INPUT_SIZE} ({_described(size)})"
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, (int, float))
                             or not 1.0 < crop <= 100.0):  # NaN fails the comparison too
        return f"input_crop is not a number above 1 ({_described(crop)})"
    hand = values["hand"]
    if not isinstance(hand, dict) or not all(isinstance(hand.get(k), str) for k in ("name", "asset_hash")):
        return f"hand is not a hand identity with a name and asset_hash ({_described(hand)})"
    if not isinstance(values["flat_hand_mean"], bool):
        return f"flat_hand_mean is not true or false ({_described(values['flat_hand_mean'])})"
    if values.get("network") is not None and not (isinstance(values["network"], dict) and all(
            isinstance(v, (str, int, float, bool, type(None))) for v in values["network"].values())):
        return f"network is not a mapping of settings ({_described(values['network'])})"
    faces = values["faces"]
    if not (isinstance(faces, list) and faces and all(isinstance(f, list) and len(f) == 3 and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in f) for f in faces)):
        return "faces is not a list of [i, j, k] vertex indices"
    if not (isinstance(values["outputs"], list) and all(isinstance(o, str) for o in values["outputs"])):
        return f"outputs is not a list of names ({_described(values['outputs'])})"
    return ""


def _described(value: Any) -> str:
    """A value named by its type, and shown only when short (never a nested structure's repr)."""
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__} of {len(value)} entries"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:40] + '...'}"


def shipped_numpy_hand(identity: dict[str, Any], flat_hand_mean: bool) -> NumpyHand | None:
    """The NumPy layer of the hand an export names, if it is the open hand this installation
    ships (same asset hash); None for any other (MANO's arrays are not in the file)."""
    if identity.get("name") != "open":
        return None
    data = load_open_hand_data()
    return NumpyHand.from_data(data, flat_hand_mean) if data.asset_hash == identity.get("asset_hash") else None


class OnnxRunner:
    """Runs an exported network with onnxruntime: (masks (B,S,S), K (B,3,3)) numpy -> NetworkResult.

    path: the .onnx file written by `mask2hand export-onnx`; threads: onnxruntime's intra-op
    threads (None: its default, all cores). Raises Mask2HandError for a missing file, a file
    that is not a readable ONNX model or not a mask2hand export, or a missing onnxruntime.
    """

    hand = None  # no torch hand layer (see the module docstring)

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"ONNX model not found: {path}; export one with "
                                 f"`mask2hand export-onnx CHECKPOINT {path.name}`")
        try:
            import onnxruntime
        except ImportError:
            raise Mask2HandError("running an ONNX model needs onnxruntime, a dependency of mask2hand: pip install "
                                 "onnxruntime") from None
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: the graph's unused-initializer notes are noise
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for any unreadable file
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{path} is not a readable ONNX model ({reason[:200]})") from None
        self.path = path
        self.metadata = read_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.input_size = int(self.metadata["input_size"])
        self.input_crop = self.metadata.get("input_crop")
        self.hand_identity = dict(self.metadata["hand"])
        self.flat_hand_mean = bool(self.metadata["flat_hand_mean"])
        self.network_config = self.metadata.get("network")
        self.faces = np.asarray(self.metadata["faces"], dtype=np.int64)
        self.numpy_hand = shipped_numpy_hand(self.hand_identity, self.flat_hand_mean)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run_graph(self, masks: np.ndarray, K: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs by name for masks (B,S,S) or (B,1,S,S) in [0,1] and K (B,3,3) at S."""
        masks = np.asarray(masks, dtype=np.float32)
        if masks.ndim == 3:
            masks = masks[:, None]
        sizes = check_shape(masks, ["B", "1", "S", "S"], "masks (at the model's input size)", {"S": self.input_size})
        K = np.asarray(K, dtype=np.float32)
        check_shape(K, ["B", "3", "3"], "K", sizes)
        values = self.session.run(None, {"mask": np.ascontiguousarray(masks), "K": np.ascontiguousarray(K)})
        return dict(zip(self.output_names, values))

    def __call__(self, masks: np.ndarray, K: np.ndarray) -> NetworkResult:
        out = self.run_graph(masks, K)
        return NetworkResult(vertices=out["vertices"], joints=out["joints"], global_orient=out["global_orient"],
                             transl=out["transl"], pose=out["pose"], betas=out["betas"],
                             flat_hand_mean=self.flat_hand_mean,
                             pose_pcs=out.get("pose_pcs"), silhouette=out["silhouette"],
                             hand_window=out.get("hand_window"))
