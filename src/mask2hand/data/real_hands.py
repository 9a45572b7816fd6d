"""Real-hands sets: masks of real people's hands with a 2-D reference, read from a dataset folder.

A folder (written by tools/make_real_hands.py) holds `labels.json` and `masks/*.png`:

    {"format": "mask2hand-real-hands/1", "records": [
     {"id": "IMG_1118", "mask": "masks/IMG_1118.png", "group": "0", "person": 0, "share": "train",
      "image_size": [100, 100], "problem": null,
      "reference": {"landmarks_px": [[u, v] x 21], "landmarks_depth_px": [21],
                    "world_landmarks_m": [[x, y, z] x 21], "side": "right", "side_score": 0.98}}, ...]}

`group` is a label from the source (the digit signed, the gesture), `person` tells people
apart within the set. `landmarks_px` are MediaPipe Hands' 21 landmarks in the project's joint order
(wrist, thumb base to tip, index, middle, ring, little), in pixels of the mask (pixel (i, j)
covers [j, j+1) x [i, i+1)). `problem` is null for a usable record, else why
it is left out (no hand found by the reference, a mask too small). `share` is "train",
"validation" or "test"; all photos of one person are in one share. `reference` is null where
the set has no 2-D reference (the masks then score by IoU only) or the reference found no hand;
`side` ("right" or "left") is then given on the record itself. The shipped sets are under
datasets/real-hands/ in the repository (their README gives source, license and citation).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.utils.files import read_small_file

FORMAT = "mask2hand-real-hands/1"
SHARES = ("train", "validation", "test")
MAX_LABELS_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class RealHand:
    """One real hand's mask and reference.

    ident: the record's id; mask_path: its mask file; person: the person's index (photos of one
    person share it); share: "train", "validation" or "test"; image_size: (H, W) pixels;
    landmarks: (21,2) float64 pixels, the reference's 2-D joints, or None without a reference;
    world_landmarks: (21,3) float64 meters, the reference's 3-D joints (its own frame, origin near
    the hand's center), or None; side: "right" or "left" (the reference's handedness, else the
    record's own, None where unknown); problem: None for a usable record, else why it is left out; group: a label
    from the source (the digit signed, the gesture).
    """

    ident: str
    mask_path: Path
    person: int
    share: str
    image_size: tuple[int, int]
    landmarks: np.ndarray | None
    world_landmarks: np.ndarray | None
    side: str | None
    problem: str | None
    group: str

    def read_mask(self) -> np.ndarray:
        """The mask (H,W) bool."""
        from mask2hand.image.masks import load_mask

        return load_mask(self.mask_path)[0]


def _points(value, count: int, dims: int, what: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != (count, dims) or not np.isfinite(array).all():
        raise Mask2HandError(f"{what} must be {count}x{dims} finite numbers")
    return array


def read_real_hands(folder: str | os.PathLike, share: str | None = None,
                    usable_only: bool = True) -> list[RealHand]:
    """The records of a real-hands folder, in file order: only `share` ("train", "validation",
    "test"; None: all), only usable ones unless usable_only=False. Raises Mask2HandError for a
    folder that is not such a set."""
    folder = Path(folder)
    labels = folder / "labels.json"
    if not labels.exists():
        raise Mask2HandError(f"{folder}: no labels.json, so not a real-hands set (tools/make_real_hands.py writes one)")
    if share is not None and share not in SHARES:
        raise Mask2HandError(f"share must be one of {', '.join(SHARES)}, got {share!r}")
    text = read_small_file(labels, MAX_LABELS_BYTES, "real-hands label file")
    try:
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Mask2HandError(f"{labels}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("records"), list):
        raise Mask2HandError(f"{labels}: not a {FORMAT} label file")
    hands = []
    for index, record in enumerate(data["records"]):
        try:
            hand = _record(folder, record)
        except (KeyError, TypeError, ValueError, Mask2HandError) as exc:
            raise Mask2HandError(f"{labels}: record {index} is malformed ({exc})") from None
        if (share is None or hand.share == share) and (hand.problem is None or not usable_only):
            hands.append(hand)
    return hands


def _record(folder: Path, record: dict) -> RealHand:
    mask_name = Path(str(record["mask"]))
    if mask_name.is_absolute() or ".." in mask_name.parts:
        raise ValueError("a mask path must stay inside the folder")
    reference = record.get("reference")
    share = str(record["share"])
    if share not in SHARES:
        raise ValueError(f"unknown share {share!r}")
    height, width = (int(v) for v in record["image_size"])
    return RealHand(
        ident=str(record["id"]), mask_path=folder / mask_name, person=int(record["person"]), share=share,
        image_size=(height, width),
        landmarks=None if reference is None else _points(reference["landmarks_px"], 21, 2, "landmarks_px"),
        world_landmarks=None if reference is None else _points(reference["world_landmarks_m"], 21, 3,
                                                                "world_landmarks_m"),
        side=str(reference["side"]) if reference is not None else record.get("side"),
        problem=None if record.get("problem") is None else str(record["problem"]),
        group=str(record.get("group", "")))


def keypoints_of(hands: list[RealHand], confidence: np.ndarray | None = None, world: bool = False) -> dict:
    """The references of real hands as a keypoints mapping (mask2hand.inference.keypoints's format):
    {mask file name: 21 [u, v, confidence]}, or with world=True {mask file name: {"points": ...,
    "world": the 21 world landmarks}}; confidence (21,) per landmark (default 1). Hands without a
    reference are left out."""
    confidence = np.ones(21) if confidence is None else np.asarray(confidence, dtype=np.float64)
    entries = {}
    for hand in hands:
        if hand.landmarks is None:
            continue
        points = [[float(u), float(v), float(c)] for (u, v), c in zip(hand.landmarks, confidence)]
        entries[hand.mask_path.name] = ({"points": points, "world": hand.world_landmarks.tolist()} if world
                                        else points)
    return entries
