"""The pretrained weights shipped inside the package, by name.

Every command and API that takes weights (`Mask2Hand.from_pretrained`, `predict --checkpoint`,
`eval`, `export-onnx`, `train --set train.init_from=...`) takes a shipped model's name as well as
a file: a name wins over a file of the same name in the working folder (write `./default` for
the file). `mask2hand models` lists them.

Each shipped model comes as PyTorch weights (`file`), and the default one also as their ONNX
export (`onnx_file`, made by `python tools/export_shipped_onnx.py`; tests/test_torch_free.py checks
that the two give the same answers); the others need torch. `resolve_runtime` is the one rule that picks between them: the PyTorch weights
where torch imports, else the ONNX file on onnxruntime (`pip install mask2hand`, no torch).
This module imports no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mask2hand.errors import Mask2HandError, ModelFileError
from mask2hand.utils.optional import available, missing_message


@dataclass(frozen=True)
class ShippedModel:
    """name: what to pass; file: the PyTorch weights under mask2hand/weights; trained_on: one line;
    card: its section; onnx_file: their ONNX export there, or None (the model needs torch)."""

    name: str
    file: str
    trained_on: str
    card: str
    onnx_file: str | None = None


SHIPPED_MODELS = {model.name: model for model in (
    ShippedModel("default", "default.pt",
                 "open and Anny hands, natural and broad views, forearms, silhouette noise (synthetic only); "
                 "hand locator; cpu-default-v5", "the model card", onnx_file="default.onnx"),
    ShippedModel("cpu-default-v6", "cpu-default-v6.pt",
                 "v5 fine-tuned on real people's hand masks (Sign Language Digits, train share) with 2-D "
                 "keypoints beside synthetic natural views: for masks of real hands; worse than v5 on "
                 "synthetic hands in unusual orientations", "docs/REAL_HANDS.md in the source tree"),
    ShippedModel("cpu-default-v4", "cpu-default-v4.pt",
                 "the previous default: synthetic masks of the open hand ending at the wrist (broad corpus, "
                 "silhouette noise); the start of v5 and of the adaptation benchmark",
                 "docs/runs/HISTORY.md in the source tree"),
    ShippedModel("paper-synthetic", "paper-synthetic.pt",
                 "the paper's synthetic protocol (6 pose PCs, betas 0, 4,000 poses x 5 views); "
                 "paper-synthetic-cpu, then paper-synthetic-cpu-cycle2",
                 "docs/runs/HISTORY.md in the source tree"),
)}
DEFAULT_MODEL = "default"
RUNTIMES = ("auto", "torch", "onnx")


def resolve_runtime(runtime: str = "auto") -> str:
    """"torch" or "onnx" for a requested runtime: "auto" is "torch" where torch imports, else
    "onnx". Raises Mask2HandError for "torch" without torch, or an unknown name."""
    if runtime not in RUNTIMES:
        raise Mask2HandError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
    if runtime == "onnx":
        return runtime
    if available("torch"):
        return "torch"
    if runtime == "torch":
        raise Mask2HandError(missing_message("torch", "the PyTorch runtime"))
    return "onnx"


def _package_file(file: str) -> Path | None:
    candidate = resources.files("mask2hand") / "weights" / file
    return Path(str(candidate)) if candidate.is_file() else None


def model_card_path() -> Path | None:
    """The shipped models' card inside the package (mask2hand/MODEL_CARD.md, the text of the
    source tree's docs/MODEL_CARD.md), or None if this build lacks it."""
    candidate = resources.files("mask2hand") / "MODEL_CARD.md"
    return Path(str(candidate)) if candidate.is_file() else None


def shipped_weights_path(name: str = DEFAULT_MODEL) -> Path | None:
    """The PyTorch weights of a shipped model inside the package, or None if this build lacks them."""
    return _package_file(SHIPPED_MODELS[name].file)


def shipped_onnx_path(name: str = DEFAULT_MODEL) -> Path:
    """The ONNX export of a shipped model inside the package; Mask2HandError if this build lacks it."""
    model = SHIPPED_MODELS[name]
    if model.onnx_file is None:
        raise ModelFileError(f"the shipped model '{name}' comes as PyTorch weights only: "
                             f"{missing_message('torch', 'using it')}")
    path = _package_file(model.onnx_file)
    if path is None:
        raise ModelFileError(f"this installation has no ONNX file of the shipped model '{name}'; reinstall "
                             "mask2hand, or install torch (pip install 'mask2hand[torch]') to use its PyTorch weights")
    return path


def resolve_weights(source: str | os.PathLike | None) -> Path:
    """The weights file of `source`: None (the default model), a shipped model's name, or a path.
    Raises Mask2HandError for a shipped model this installation does not have."""
    name = DEFAULT_MODEL if source is None else str(source)
    if name not in SHIPPED_MODELS:
        return Path(source)
    path = shipped_weights_path(name)
    if path is None:
        raise ModelFileError(f"this installation has no shipped pretrained model '{name}'; pass a checkpoint "
                             "(--checkpoint PATH) trained with `mask2hand train`")
    return path


def list_models() -> list[dict]:
    """Per shipped model: name, what it was trained on, its card section, and its files: [{"file",
    "runtime" ("torch" or "onnx"), "size_mb" (None if this build lacks it)}]."""
    rows = []
    for model in SHIPPED_MODELS.values():
        files = []
        for file, runtime in ((model.file, "torch"), (model.onnx_file, "onnx")):
            if file is None:
                continue
            path = _package_file(file)
            files.append({"file": file, "runtime": runtime,
                          "size_mb": None if path is None else round(path.stat().st_size / 1e6, 1)})
        rows.append({"name": model.name, "trained_on": model.trained_on, "card": model.card, "files": files})
    return rows
