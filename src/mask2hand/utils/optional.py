"""Optional packages: which extra installs each, and one clear line where one is missing.

`pip install mask2hand` is the torch-free runtime (NumPy, Pillow, OpenCV, imageio, onnxruntime):
it predicts with the shipped model's ONNX file. The extras of pyproject.toml add the rest:
[torch] training, evaluation, data, fitting, ONNX export and the PyTorch runtime; [figures]
the PNG figures; and [anny], [serve], [video], [build] as named there.
"""

from __future__ import annotations

import importlib

from mask2hand.errors import Mask2HandError

EXTRAS = {
    "torch": "torch", "torchvision": "torch", "scipy": "torch", "yaml": "torch", "tqdm": "torch", "onnx": "torch",
    "matplotlib": "figures", "anny": "anny", "fastapi": "serve", "uvicorn": "serve", "multipart": "serve",
    "imageio_ffmpeg": "video", "skimage": "build", "fast_simplification": "build",
}
"""Top-level module -> the mask2hand extra that installs it."""

PACKAGES = {"yaml": "PyYAML", "skimage": "scikit-image", "imageio_ffmpeg": "imageio-ffmpeg",
            "multipart": "python-multipart", "fast_simplification": "fast-simplification"}
"""Top-level module -> its package's name on PyPI, where the two differ."""


def available(module: str) -> bool:
    """Whether `module` imports here (it is imported, so a broken installation counts as absent)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def install_hint(module: str) -> str:
    """The command that installs a missing top-level module: its extra, or its package."""
    top = module.split(".")[0]
    if top in EXTRAS:
        return f"pip install 'mask2hand[{EXTRAS[top]}]'"
    return f"pip install {PACKAGES.get(top, top)}"


def missing_message(module: str, purpose: str) -> str:
    """One line: `purpose` needs the package of `module`, and how to install it."""
    top = module.split(".")[0]
    return f"{purpose} needs {PACKAGES.get(top, top)}, which is not installed: {install_hint(top)}"


def require(module: str, purpose: str) -> None:
    """Raise Mask2HandError (missing_message) unless `module` imports."""
    if not available(module):
        raise Mask2HandError(missing_message(module, purpose))


def missing_optional(exc: ModuleNotFoundError) -> str | None:
    """The one line for a missing optional package that an import raised deep inside a command
    (None if the missing module is not one of the extras': that is a bug, not a choice)."""
    top = (exc.name or "").split(".")[0]
    return missing_message(top, "this command") if top in EXTRAS else None
