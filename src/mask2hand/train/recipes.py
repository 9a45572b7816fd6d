"""The training recipes shipped in mask2hand/configs: their names, and the file a recipe argument means.

Imports no torch (nor the rest of training), so that `mask2hand train --help` can list the names.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from mask2hand.errors import Mask2HandError


def _shipped_folder():
    """The package folder that holds the shipped recipes (an importlib.resources Traversable)."""
    return resources.files("mask2hand") / "configs"


def recipe_names() -> list[str]:
    """Names of the shipped training recipes (file names without .yaml), sorted."""
    return sorted(p.name[:-5] for p in _shipped_folder().iterdir() if p.name.endswith(".yaml"))


def resolve_recipe(source: str | os.PathLike) -> Path:
    """The YAML file `source` names: an existing file, else the shipped recipe of that name."""
    path = Path(source)
    if path.is_file():
        return path
    named = Path(str(_shipped_folder() / f"{source}.yaml"))
    if named.is_file():
        return named
    raise Mask2HandError(f"recipe not found: {source} (give a YAML file or one of: {', '.join(recipe_names())})")
