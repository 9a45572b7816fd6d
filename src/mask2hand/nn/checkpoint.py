"""Checkpoints (full training state) and weights files (what `predict` loads).

A checkpoint is a dict saved with torch.save, written atomically:
  format "mask2hand-checkpoint", version, config (the fully resolved training
  config as plain dicts; its "network" section builds the NetConfig), hand
  (name, asset_hash), model (state_dict), optimizer, scheduler, epoch, step,
  rng (torch / numpy / python states), metrics, best_val.
A weights file holds only what inference needs:
  format "mask2hand-weights", version, network (NetConfig as a dict), hand,
  model (state_dict, float16 unless asked otherwise), training (summary dict).
Both hold only tensors and plain Python values (dict, list, tuple, str, int, float, bool,
None), so they are read with torch.load(weights_only=True): a file from elsewhere cannot
make loading run code. The MANO file's path is not part of either: where the hand model
comes from is the user's choice at load time (load_network's mano_path, MANO_RIGHT_PATH).
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.torch_version import TorchVersion

from mask2hand.errors import ModelFileError
from mask2hand.utils.files import atomic_path

CHECKPOINT_FORMAT = "mask2hand-checkpoint"
WEIGHTS_FORMAT = "mask2hand-weights"
FORMAT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a training checkpoint atomically; `state` holds the fields listed above."""
    payload = {"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


# The shipped weights' training record holds torch.__version__, a str subclass; it is the
# one class beyond torch's weights-only set that mask2hand files were written with.
_SAFE_EXTRA_GLOBALS = [TorchVersion]


def read_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint or weights file, checking that it is one; never runs code from the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(_SAFE_EXTRA_GLOBALS), warnings.catch_warnings():
            # a foreign pickle's protocol draws a UserWarning from torch before it is refused
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to unpickle means a broken or foreign file
        raise ModelFileError(f"{path} is not a readable mask2hand checkpoint ({_load_failure(exc)}); "
                             "use a checkpoint or weights file written by mask2hand") from None
    if not isinstance(payload, dict) or payload.get("format") not in (CHECKPOINT_FORMAT, WEIGHTS_FORMAT):
        raise ModelFileError(f"{path} is not a mask2hand checkpoint or weights file")
    version = payload.get("version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{path} was written by a newer mask2hand (format version {version!r}); upgrade")
    _check_layout(payload, path)
    return payload


def _check_layout(payload: dict[str, Any], path: Path) -> None:
    """Refuse a payload whose network, hand or model entries are not what mask2hand writes."""
    config = payload.get("config")
    network = payload.get("network") if payload["format"] == WEIGHTS_FORMAT else (
        config.get("network") if isinstance(config, dict) else None)
    model = payload.get("model")
    if not (isinstance(network, dict) and isinstance(payload.get("hand"), dict) and isinstance(model, dict)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in model.items())):
        raise ModelFileError(f"{path} is a damaged mask2hand file (its network, hand or model entry is missing "
                             "or malformed); use another copy")


def _load_failure(exc: Exception) -> str:
    """One line on why torch.load refused a file (its own messages span many lines and advise
    loading with weights_only=False, which is what must not happen)."""
    refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if refused:
        return f"it refers to the Python object '{refused.group(1)}', which mask2hand files never hold; nothing in it ran"
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds data other than tensors and plain values; nothing in it ran"
    first_line = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first_line}"


def network_config_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The NetConfig dict of a checkpoint or weights payload, without a hand model path.

    A path stored in a file is never used: a file from elsewhere must not choose which
    local file gets opened, so the hand model comes from where the user says.
    """
    stored = payload["network"] if payload["format"] == WEIGHTS_FORMAT else payload["config"]["network"]
    return {**stored, "hand_model_path": None}


def export_weights(checkpoint: dict[str, Any], path: str | os.PathLike, half: bool = True,
                   training_summary: dict | None = None) -> Path:
    """Write the inference-only weights of a checkpoint payload (float16 by default)."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in checkpoint["model"].items()}
    payload = {"format": WEIGHTS_FORMAT, "version": FORMAT_VERSION, "network": network_config_of(checkpoint),
               "hand": checkpoint["hand"], "model": state, "training": plain_values(training_summary or {})}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def plain_values(value: Any) -> Any:
    """`value` (nested dicts and lists) with numpy scalars and subclasses of str / int / float /
    bool (e.g. torch.__version__) turned into the built-in types and tuples into lists, so
    that weights_only loading reads it. Other types raise TypeError."""
    if isinstance(value, dict):
        return {str(k): plain_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_values(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    for kind in (bool, int, float, str):  # bool first: it is an int
        if isinstance(value, kind):
            return kind(value)
    if value is None:
        return None
    raise TypeError(f"cannot store a {type(value).__name__} in a mask2hand file")


def float32_state(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model state_dict of a checkpoint or weights payload with floating tensors in float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}


def check_hand_identity(payload: dict[str, Any], hand_identity: dict[str, str], source: str) -> None:
    """Refuse a checkpoint made with another hand model (name or asset hash)."""
    stored = payload.get("hand", {})
    if stored.get("name") != hand_identity["name"]:
        raise ModelFileError(f"{source} was trained with the '{stored.get('name')}' hand model, "
                             f"not '{hand_identity['name']}'; load it with hand model '{stored.get('name')}'")
    if stored.get("asset_hash") != hand_identity["asset_hash"]:
        raise ModelFileError(f"{source} was trained with a different '{stored.get('name')}' model file "
                             f"(asset hash {str(stored.get('asset_hash'))[:12]}..., this one "
                             f"{hand_identity['asset_hash'][:12]}...); use the same model file it was trained with")


def load_network(path: str | os.PathLike | None = None, hand_model: str | None = None,
                 mano_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """A Mask2HandNet in eval mode from a checkpoint or weights file, or a shipped model's name
    (None: the default one; mask2hand.nn.pretrained).

    hand_model overrides the file's hand model name; mano_path is the MANO file for a
    MANO-trained network (None: MANO_RIGHT_PATH; a path stored in the file is ignored). The
    model must be the one the file was trained with.
    Returns (network, payload).
    """
    from mask2hand.utils.dataclass_config import dataclass_from_dict
    from mask2hand.nn import Mask2HandNet, NetConfig

    from mask2hand.nn.pretrained import resolve_weights

    path = resolve_weights(path)
    payload = read_file(path)
    values = network_config_of(payload)
    if hand_model is not None:
        values["hand_model"] = hand_model
    values["hand_model_path"] = None if mano_path is None else str(mano_path)
    config = dataclass_from_dict(NetConfig, values, where=f"{path} network")
    net = Mask2HandNet(config)
    check_hand_identity(payload, net.hand.identity, str(path))
    state = float32_state(payload)
    misfit = state_misfit(net.state_dict(), state)
    if misfit:
        raise ModelFileError(f"{path}: the weights do not fit the network it describes ({misfit}); the file "
                             "holds another architecture's weights")
    net.load_state_dict(state)
    return net.to(device).eval(), payload


def state_misfit(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor]) -> str:
    """How a state_dict fails to fit a network's, in one line (counts and a first example of missing,
    unexpected and misshapen entries); "" when it fits."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    misshapen = [key for key in expected if key in given and tuple(given[key].shape) != tuple(expected[key].shape)]
    parts = [f"{len(keys)} {what}, e.g. {keys[0]}" for keys, what in
             ((missing, "missing"), (unexpected, "unexpected"), (misshapen, "of another shape")) if keys]
    return "; ".join(parts)
