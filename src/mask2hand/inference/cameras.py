"""The camera of an input mask: a given K, a given focal length, or a documented default.

Default focal length. Without calibration, mask2hand assumes the image was framed like
FreiHAND's crops, on which the Mask2Hand setting is defined: 224x224 images whose focal
lengths cluster around 490 px, a field of view of about 2 * atan(112 / 490) = 26 degrees.
Keeping that field of view for any image size gives f = DEFAULT_FOCAL_FACTOR * max(H, W)
(2.2 x 224 = 493 px) with the principal point at the image center. The answer's shape, pose
and 2-D projections depend little on this choice, but its absolute depth scales with it
(a hand of known size seen at a given pixel size is at z proportional to f): with the
default, the camera-space position is only as good as the guess, and the outputs say so.

K files (`--K FILE`), JSON:
- one 3x3 matrix: used for every input;
- a list of 3x3 matrices, FreiHAND's `*_K.json`: the matrix of input `00000123.jpg` is
  entry 123 (the file's number);
- an object {file name or stem: 3x3}: per-file matrices.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mask2hand.errors import CameraError
from mask2hand.image.camera import Camera
from mask2hand.utils.checks import check_K
from mask2hand.utils.files import read_small_file

DEFAULT_FOCAL_FACTOR = 2.2
"""Default focal length in pixels per pixel of the longer image side (FreiHAND-like, see above)."""

MAX_K_FILE_BYTES = 64 * 2**20
"""The largest `--K` file read: FreiHAND's training_K.json (32,560 matrices) is under 10 MB."""

DEFAULT_CAMERA_NOTE = ("no camera given: assumed focal length {focal:.1f} px ({factor} x the longer image side, "
                       "FreiHAND-like); absolute depth is only as good as this guess (give --focal or --K)")


@dataclass(frozen=True)
class CameraChoice:
    """The camera of one input and how it was chosen: camera (mask2hand.image.camera.Camera);
    source: "K", "focal" or "default"; note (None unless something about it matters to the
    user, e.g. the default focal guess)."""

    camera: Camera
    source: str
    note: str | None = None


def default_focal(image_size: tuple[int, int]) -> float:
    """The default focal length (pixels) for an (H, W) image: DEFAULT_FOCAL_FACTOR x max(H, W)."""
    return round(DEFAULT_FOCAL_FACTOR * max(image_size), 6)  # 492.8, not 492.80000000000007


class KFile:
    """A `--K` JSON file (see the module docstring): `for_input(path)` gives the input's K."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        text = read_small_file(self.path, MAX_K_FILE_BYTES, "K file")
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CameraError(f"K file {self.path} is not valid JSON ({exc})") from None
        except RecursionError:
            raise CameraError(f"K file {self.path} is not valid JSON (nested too deeply)") from None
        self.single: np.ndarray | None = None
        self.by_index: np.ndarray | None = None
        self.by_name: dict[str, np.ndarray] | None = None
        if isinstance(data, dict):
            self.by_name = {str(k): check_K(v, f"K of '{k}' in {self.path}") for k, v in data.items()}
            return
        try:
            array = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError):
            raise CameraError(f"K file {self.path} must hold a 3x3 matrix, a list of them, "
                              "or an object {file name: 3x3}") from None
        if array.shape == (3, 3):
            self.single = check_K(array, f"K in {self.path}")
        elif array.ndim == 3 and array.shape[1:] == (3, 3):
            for i, k in enumerate(array):
                check_K(k, f"K entry {i} of {self.path}")
            self.by_index = array
        else:
            raise CameraError(f"K file {self.path} holds an array of shape {array.shape}; expected (3,3) or (N,3,3)")

    def for_input(self, name: str | os.PathLike) -> np.ndarray:
        """K (3,3) of the input file `name` (raises CameraError if the file gives none)."""
        if self.single is not None:
            return self.single
        path = Path(name)
        if self.by_name is not None:
            for key in (path.name, path.stem, str(name)):
                if key in self.by_name:
                    return self.by_name[key]
            raise CameraError(f"K file {self.path} has no entry for '{path.name}' (keys are file names or stems)")
        assert self.by_index is not None
        if not path.stem.isdigit():
            raise CameraError(f"K file {self.path} is a list of {len(self.by_index)} matrices; cannot tell which "
                              f"belongs to '{path.name}': name inputs by their index (FreiHAND's 00000123.jpg) "
                              "or give one 3x3 K")
        index = int(path.stem)
        if index >= len(self.by_index):
            raise CameraError(f"'{path.name}' is entry {index} but K file {self.path} has only "
                              f"{len(self.by_index)} matrices")
        return self.by_index[index]


def resolve_camera(image_size: tuple[int, int], K: np.ndarray | None = None,
                   focal: float | None = None) -> CameraChoice:
    """The camera of an (H, W) input: K if given, else `focal` with a centered principal point,
    else the default focal length (with a note saying depth depends on the guess). A given K
    or focal length must be plausible for the image (`Camera.check_plausible`)."""
    if K is not None and focal is not None:
        raise CameraError("give either K or a focal length, not both")
    if K is not None:
        return CameraChoice(Camera(K, image_size).check_plausible(), source="K")
    if focal is not None:
        return CameraChoice(Camera.centered(image_size, focal).check_plausible(), source="focal")
    f = default_focal(image_size)
    return CameraChoice(Camera.centered(image_size, f), source="default",
                        note=DEFAULT_CAMERA_NOTE.format(focal=f, factor=DEFAULT_FOCAL_FACTOR))
