"""Checkpoints (full training state) and weights files (what `predict` loads).

A checkpoint is a dict saved with torch.save, written atomically:
  format "mask2hand-checkpoint", version, config (the fully resolved training
  config as plain dicts; its "network" section builds the NetConfig), hand
  (name, asset_hash), model (state_dict), optimizer, scheduler, epoch, step,
  rng (torch / numpy / python states), metrics, best_val.
A weights file holds only what inference needs:
  format "mask2hand-weights", version, network (NetConfig as a dict), hand,
  model (state_dict, float16 unless asked otherwise), training (summary dict).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mask2hand.errors import Mask2HandError
from mask2hand.utils.files import atomic_path

CHECKPOINT_FORMAT = "mask2hand-checkpoint"
WEIGHTS_FORMAT = "mask2hand-weights"
FORMAT_VERSION = 1
DEFAULT_WEIGHTS = "default.pt"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write a training checkpoint atomically; `state` holds the fields listed above."""
    payload = {"format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, **state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint or weights file, checking that it is one."""
    path = Path(path)
    if not path.is_file():
        raise Mask2HandError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # any failure to unpickle means a broken or foreign file
        raise Mask2HandError(f"{path} is not a readable mask2hand checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") not in (CHECKPOINT_FORMAT, WEIGHTS_FORMAT):
        raise Mask2HandError(f"{path} is not a mask2hand checkpoint or weights file")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise Mask2HandError(f"{path} was written by a newer mask2hand (format version {payload['version']}); upgrade")
    return payload


def network_config_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The NetConfig dict of a checkpoint or weights payload."""
    if payload["format"] == WEIGHTS_FORMAT:
        return dict(payload["network"])
    return dict(payload["config"]["network"])


def export_weights(checkpoint: dict[str, Any], path: str | os.PathLike, half: bool = True,
                   training_summary: dict | None = None) -> Path:
    """Write the inference-only weights of a checkpoint payload (float16 by default)."""
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in checkpoint["model"].items()}
    payload = {"format": WEIGHTS_FORMAT, "version": FORMAT_VERSION, "network": network_config_of(checkpoint),
               "hand": checkpoint["hand"], "model": state, "training": training_summary or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def float32_state(payload: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The model state_dict of a checkpoint or weights payload with floating tensors in float32."""
    return {k: v.float() if v.is_floating_point() else v for k, v in payload["model"].items()}


def default_weights_path() -> Path | None:
    """The shipped pretrained weights inside the package, or None if this build has none."""
    candidate = resources.files("mask2hand") / "weights" / DEFAULT_WEIGHTS
    return Path(str(candidate)) if candidate.is_file() else None


def check_hand_identity(payload: dict[str, Any], hand_identity: dict[str, str], source: str) -> None:
    """Refuse a checkpoint made with another hand model (name or asset hash)."""
    stored = payload.get("hand", {})
    if stored.get("name") != hand_identity["name"]:
        raise Mask2HandError(f"{source} was trained with the '{stored.get('name')}' hand model, "
                             f"not '{hand_identity['name']}'; load it with hand model '{stored.get('name')}'")
    if stored.get("asset_hash") != hand_identity["asset_hash"]:
        raise Mask2HandError(f"{source} was trained with a different '{stored.get('name')}' model file "
                             f"(asset hash {str(stored.get('asset_hash'))[:12]}..., this one "
                             f"{hand_identity['asset_hash'][:12]}...); use the same model file it was trained with")


def load_network(path: str | os.PathLike | None = None, hand_model: str | None = None,
                 mano_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
    """A Mask2HandNet in eval mode from a checkpoint or weights file (None: the shipped model).

    hand_model / mano_path override where the hand model comes from (a MANO-trained
    checkpoint needs the MANO file); the model must be the one the file was trained with.
    Returns (network, payload).
    """
    from mask2hand.utils.dataclass_config import dataclass_from_dict
    from mask2hand.nn import Mask2HandNet, NetConfig

    if path is None:
        path = default_weights_path()
        if path is None:
            raise Mask2HandError("this installation has no shipped pretrained model; pass a checkpoint "
                                 "(--checkpoint PATH) trained with `mask2hand train`")
    payload = read_file(path)
    values = network_config_of(payload)
    if hand_model is not None:
        values["hand_model"] = hand_model
    if mano_path is not None:
        values["hand_model_path"] = str(mano_path)
    config = dataclass_from_dict(NetConfig, values, where=f"{path} network")
    net = Mask2HandNet(config)
    check_hand_identity(payload, net.hand.identity, str(path))
    try:
        net.load_state_dict(float32_state(payload))
    except RuntimeError as exc:
        raise Mask2HandError(f"{path}: weights do not fit the network it describes ({exc})") from None
    return net.to(device).eval(), payload
