"""The pretrained weights shipped inside the package, by name.

Every command and API that takes weights (`Mask2Hand.from_pretrained`, `predict --checkpoint`,
`eval`, `export-onnx`, `train --set train.init_from=...`) takes a shipped model's name as well as
a file: a name wins over a file of the same name in the working folder (write `./default` for
the file). `mask2hand models` lists them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mask2hand.errors import Mask2HandError


@dataclass(frozen=True)
class ShippedModel:
    """name: what to pass; file: under mask2hand/weights; trained_on: one line; card: its section."""

    name: str
    file: str
    trained_on: str
    card: str


SHIPPED_MODELS = {model.name: model for model in (
    ShippedModel("default", "default.pt",
                 "synthetic masks of the open hand (broad corpus, any orientation, silhouette noise); cpu-default-v4",
                 "docs/MODEL_CARD.md"),
)}
DEFAULT_MODEL = "default"


def shipped_weights_path(name: str = DEFAULT_MODEL) -> Path | None:
    """The file of a shipped model inside the package, or None if this build lacks it."""
    candidate = resources.files("mask2hand") / "weights" / SHIPPED_MODELS[name].file
    return Path(str(candidate)) if candidate.is_file() else None


def resolve_weights(source: str | os.PathLike | None) -> Path:
    """The weights file of `source`: None (the default model), a shipped model's name, or a path.
    Raises Mask2HandError for a shipped model this installation does not have."""
    name = DEFAULT_MODEL if source is None else str(source)
    if name not in SHIPPED_MODELS:
        return Path(source)
    path = shipped_weights_path(name)
    if path is None:
        raise Mask2HandError(f"this installation has no shipped pretrained model '{name}'; pass a checkpoint "
                             "(--checkpoint PATH) trained with `mask2hand train`")
    return path


def list_models() -> list[dict]:
    """Per shipped model: name, what it was trained on, its size in MB (None if absent), its card section."""
    rows = []
    for model in SHIPPED_MODELS.values():
        path = shipped_weights_path(model.name)
        rows.append({"name": model.name, "trained_on": model.trained_on,
                     "size_mb": None if path is None else round(path.stat().st_size / 1e6, 1), "card": model.card})
    return rows
