"""2-D keypoints per input mask: weak labels for `mask2hand adapt --keypoints FILE`.

A keypoints file is JSON, an object {file name or stem: 21 points}, each point in FreiHAND order
(wrist; thumb, index, middle, ring, little, base to tip) and each either [u, v] (confidence 1),
[u, v, confidence] with confidence in [0, 1], or null (missing). u, v are pixels of the mask
file (u right, v down, the top-left corner at (0, 0), pixel centers at j + 0.5): a detector's
landmarks on the photo the mask was made from, for instance. A mask without an entry trains on
its silhouette alone.

An entry may instead be an object {"points": 21 points as above, "world": 21 [x, y, z]}: the
same joints in 3-D, meters, in any frame (a detector's world landmarks); they are compared with
the answer after a similarity alignment, so only the hand's shape and pose count, not where it
is or how it is turned. Missing 2-D points (null) are missing in 3-D too.

`prepared_keypoints` maps one input's points into the network's input, as its mask was mapped
(mirrored for a left hand, cut and resampled).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.utils.files import read_small_file

NUM_KEYPOINTS = 21
MAX_FILE_BYTES = 64 * 1024 * 1024


def _point(value, where: str) -> list[float]:
    if value is None:
        return [0.0, 0.0, 0.0]
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3) or \
            not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise Mask2HandError(f"{where} must be [u, v], [u, v, confidence] or null")
    u, v, confidence = (float(value[0]), float(value[1]), float(value[2]) if len(value) == 3 else 1.0)
    if not (np.isfinite(u) and np.isfinite(v) and 0.0 <= confidence <= 1.0):
        raise Mask2HandError(f"{where} must hold finite pixels and a confidence in [0, 1]")
    return [u, v, confidence]


def _world(value, where: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64) if isinstance(value, list) else None
    if array is None or array.shape != (NUM_KEYPOINTS, 3) or not np.isfinite(array).all():
        raise Mask2HandError(f"{where} must be {NUM_KEYPOINTS} [x, y, z] points in meters")
    return array


class KeypointFile:
    """A keypoints JSON file (see the module docstring): `for_input(path)` gives an input's points
    (21,3) float64 (u, v, confidence) in its own pixels, or None where the file has none;
    `world_for_input(path)` its 3-D points (21,3) meters, or None."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        text = read_small_file(self.path, MAX_FILE_BYTES, "keypoints file")
        try:
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Mask2HandError(f"keypoints file {self.path} is not valid JSON ({type(exc).__name__})") from None
        if not isinstance(data, dict):
            raise Mask2HandError(f"keypoints file {self.path} must hold an object {{file name: 21 points}}")
        self.points: dict[str, np.ndarray] = {}
        self.world: dict[str, np.ndarray] = {}
        for name, entry in data.items():
            where = f"keypoints of '{str(name)[:80]}' in {self.path}"
            points = entry
            if isinstance(entry, dict):
                if set(entry) - {"points", "world"} or "points" not in entry:
                    raise Mask2HandError(f"{where} must be 21 points or an object with 'points' (and 'world')")
                points = entry["points"]
                if entry.get("world") is not None:
                    self.world[str(name)] = _world(entry["world"], f"{where}, 'world'")
            if not isinstance(points, list) or len(points) != NUM_KEYPOINTS:
                raise Mask2HandError(f"{where} must be a list of {NUM_KEYPOINTS} points")
            self.points[str(name)] = np.array([_point(p, f"{where}, point {i}") for i, p in enumerate(points)])

    def _key(self, name: str | os.PathLike) -> str | None:
        path = Path(name)
        return next((key for key in (path.name, path.stem, str(name)) if key in self.points), None)

    def for_input(self, name: str | os.PathLike) -> np.ndarray | None:
        key = self._key(name)
        return None if key is None else self.points[key]

    def world_for_input(self, name: str | os.PathLike) -> np.ndarray | None:
        key = self._key(name)
        return None if key is None else self.world.get(key)


def prepared_keypoints(points: np.ndarray, prepared) -> np.ndarray:
    """Keypoints (21,3) in pixels of an input image -> in pixels of its prepared network input
    (a mask2hand.inference.prepare.PreparedInput: mirrored for a left hand, then its transform)."""
    uv = points[:, :2].copy()
    if prepared.side == "left":
        uv[:, 0] = prepared.mask.image_size[1] - uv[:, 0]
    return np.concatenate([prepared.mask.transform.to_model(uv), points[:, 2:]], axis=1)
