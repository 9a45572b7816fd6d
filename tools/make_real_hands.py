"""Build a real-hands set from photos of hands against a plain wall: masks plus a 2-D reference.

For each photo this writes a binary mask (skin against the wall) and records MediaPipe Hands'
answer on the RGB photo as the reference: its 21 landmarks in pixels (the same order as the
project's joints), its handedness and its 3-D world landmarks (meters, origin near the hand's
center). The masks and labels form a dataset folder that tests and benchmarks/real_hands.py
read (mask2hand.data.real_hands); no RGB is written.

The mask, per photo (100 x 100 px in the Sign Language Digits set):
1. the wall's colour is the median of the image's top rows and side columns in CIELAB;
2. a pixel's skin score is its chroma distance from the wall in (a*, b*), so a shadow on the
   wall (darker, same hue) scores low;
3. Otsu's threshold on the score seeds OpenCV's GrabCut (definite hand and wall where the score
   is far from the threshold, probable elsewhere), which settles the outline;
4. the largest region touching the photo's bottom or sides (the wrist enters from an edge) is
   kept, holes are filled, speckles removed by an opening of 1 px.
A photo whose mask covers under 3% or over 85% of the picture, or where MediaPipe finds no
hand, is recorded with its reason and left out of the benchmark's reference metrics.

Students and split: the Sign Language Digits photos of one student carry consecutive numbers,
digits 0 to 9 in order, so a new student starts where the digit does not increase. Students are
shuffled with a fixed seed and split into train / validation / test shares; every photo of a
student is in one share.

Only photos numbered below --max-number are read (the rest of that set is reserved for
independent checks of the project and must never be opened).

A second kind of source, `cutouts`: grey pictures of a hand (and forearm) already cut out onto a
black background by a webcam program, one person, named <gesture><frame>.png. The mask is the
pixels above a low grey level, opened by 1 px, its largest region at an edge, holes under 0.5% of
the picture filled (speckle; an OK sign's ring is larger and stays). No reference: MediaPipe
finds a hand in few of these grey pictures (5 of 64 tried), so such a set is scored by IoU only.
It holds one person, so it is a test-only set.

Needs the `reference-labels` extra (MediaPipe, in a virtual environment of its own):
    python -m venv .venv-labels && .venv-labels/bin/pip install -e '.[reference-labels]'
    .venv-labels/bin/python tools/make_real_hands.py sign-language-digits PHOTOS OUT [--sheet SHEET.png]
    .venv-labels/bin/python tools/make_real_hands.py cutouts IMAGES OUT --gesture stop --side left
PHOTOS holds <digit>/IMG_<number>.JPG as the Sign Language Digits repository does.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SEED = 30
SHARES = {"train": 0.7, "validation": 0.1, "test": 0.2}
RESERVED_FROM = 4900
DETECTION_SCALE = 3
DETECTION_PAD = 0.4
"""MediaPipe's palm detector misses a hand that fills a 100 px photo (it found none in 207 of 1,016):
it runs on the photo padded by 0.4 of its side with its own border pixels, upscaled 3x (it then
misses 4)."""
MIN_AREA, MAX_AREA = 0.03, 0.85
FORMAT = "mask2hand-real-hands/1"


def photo_number(path: Path) -> int:
    match = re.fullmatch(r"IMG_(\d+)", path.stem)
    if match is None:
        raise ValueError(f"{path}: not an IMG_<number> photo")
    return int(match.group(1))


def list_photos(root: Path, max_number: int) -> list[tuple[int, int, Path]]:
    """(number, digit, path) of every photo numbered below max_number, by number. A photo
    numbered at or above it is never opened."""
    photos = []
    for path in root.glob("[0-9]/IMG_*.JPG"):
        number = photo_number(path)
        if number < max_number:
            photos.append((number, int(path.parent.name), path))
    return sorted(photos)


def assign_students(photos: list[tuple[int, int, Path]]) -> list[int]:
    """A student index per photo (photos sorted by number): a new student starts where the digit
    does not increase (a repeated digit other than 0 stays with its student)."""
    students, student, last_digit = [], -1, 10
    for _, digit, _ in photos:
        if digit < last_digit or (digit == last_digit == 0):
            student += 1
        students.append(student)
        last_digit = digit
    return students


def split_students(count: int, seed: int = SEED) -> dict[int, str]:
    """student index -> "train" / "validation" / "test", by a seeded shuffle and SHARES."""
    order = np.random.default_rng(seed).permutation(count)
    n_test = round(SHARES["test"] * count)
    n_val = round(SHARES["validation"] * count)
    share = {}
    for rank, student in enumerate(order):
        share[int(student)] = "test" if rank < n_test else "validation" if rank < n_test + n_val else "train"
    return share


def skin_mask(rgb: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(mask (H,W) bool, reason it is unusable or None) of a hand photographed against a plain wall."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    height, width = rgb.shape[:2]
    band = max(2, height // 20)
    border = np.concatenate([lab[:band].reshape(-1, 3), lab[:, :band].reshape(-1, 3),
                             lab[:, -band:].reshape(-1, 3)])
    wall = np.median(border, axis=0)
    score = np.hypot(lab[..., 1] - wall[1], lab[..., 2] - wall[2])
    score8 = np.clip(score * (255.0 / max(float(score.max()), 1e-6)), 0, 255).astype(np.uint8)
    level, _ = cv2.threshold(score8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    seed = np.full((height, width), cv2.GC_PR_BGD, np.uint8)
    seed[score8 > level] = cv2.GC_PR_FGD
    seed[score8 > min(255, level * 1.6)] = cv2.GC_FGD
    seed[score8 < level * 0.4] = cv2.GC_BGD
    if (seed == cv2.GC_FGD).sum() == 0 or (seed == cv2.GC_BGD).sum() == 0:
        return np.zeros((height, width), bool), "no contrast between hand and wall"
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), seed, None, background, foreground, 5,
                cv2.GC_INIT_WITH_MASK)
    mask = np.isin(seed, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    mask = largest_region_at_edge(mask)
    mask = fill_holes(mask)
    area = mask.mean()
    if area < MIN_AREA or area > MAX_AREA:
        return mask.astype(bool), f"mask covers {100 * area:.0f}% of the photo"
    return mask.astype(bool), None


def largest_region_at_edge(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected region of a 0/1 mask that touches the bottom, left or right edge
    (the arm enters there), else the largest region."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask
    edge = set(np.unique(np.concatenate([labels[-1], labels[:, 0], labels[:, -1]]))) - {0}
    candidates = sorted(edge) if edge else list(range(1, count))
    best = max(candidates, key=lambda label: stats[label, cv2.CC_STAT_AREA])
    return (labels == best).astype(np.uint8)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """A 0/1 mask with every background region not connected to the image border filled."""
    padded = np.pad(mask, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood == 0
    padded[holes] = 1
    return padded[1:-1, 1:-1]


class Reference:
    """MediaPipe Hands on one RGB photo: 21 landmarks (pixels), handedness and world landmarks."""

    def __init__(self):
        import mediapipe as mp

        self.hands = mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=1, model_complexity=1,
                                              min_detection_confidence=0.3)

    def __call__(self, rgb: np.ndarray) -> dict | None:
        height, width = rgb.shape[:2]
        pad = round(DETECTION_PAD * max(height, width))
        padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        found = self.hands.process(cv2.resize(padded, None, fx=DETECTION_SCALE, fy=DETECTION_SCALE,
                                              interpolation=cv2.INTER_CUBIC))
        if not found.multi_hand_landmarks:
            return None
        points = found.multi_hand_landmarks[0].landmark
        world = found.multi_hand_world_landmarks[0].landmark
        label = found.multi_handedness[0].classification[0]
        # MediaPipe labels handedness as if the photo were mirrored (a selfie view); these photos are not
        side = {"Left": "right", "Right": "left"}[label.label]
        size = (width + 2 * pad, height + 2 * pad)
        return {"landmarks_px": [[round(p.x * size[0] - pad, 3), round(p.y * size[1] - pad, 3)] for p in points],
                "landmarks_depth_px": [round(p.z * size[0], 3) for p in points],
                "world_landmarks_m": [[round(p.x, 5), round(p.y, 5), round(p.z, 5)] for p in world],
                "side": side, "side_score": round(float(label.score), 4)}


def contact_sheet(records: list[dict], photos: dict[str, np.ndarray], masks: dict[str, np.ndarray],
                  path: Path, columns: int = 12) -> None:
    """Photo with the mask's outline (green) and the reference's skeleton (red) for each record."""
    tiles = []
    for record in records:
        rgb = photos[record["id"]].copy()
        outline = cv2.morphologyEx(masks[record["id"]].astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3)))
        rgb[outline > 0] = (0, 255, 0)
        tile = cv2.resize(rgb, (200, 200), interpolation=cv2.INTER_NEAREST)
        if record["reference"] is not None:
            points = np.asarray(record["reference"]["landmarks_px"]) * 2.0
            for finger in range(5):
                chain = [0] + list(range(1 + 4 * finger, 5 + 4 * finger))
                for a, b in zip(chain[:-1], chain[1:]):
                    cv2.line(tile, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), (255, 0, 0), 1)
        cv2.putText(tile, f"{record['id']} {record['share'][:2]}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (0, 0, 255), 1)
        tiles.append(tile)
    rows = [np.concatenate(tiles[i:i + columns] + [np.zeros_like(tiles[0])] * (columns - len(tiles[i:i + columns])),
                           axis=1) for i in range(0, len(tiles), columns)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def write_labels(out: Path, records: list[dict]) -> None:
    """labels.json of a real-hands folder: one record a line."""
    lines = ",\n".join(json.dumps(record, separators=(",", ":")) for record in records)
    (out / "labels.json").write_text(f'{{"format": "{FORMAT}", "records": [\n{lines}\n]}}\n')


def write_mask(out: Path, ident: str, mask: np.ndarray) -> str:
    """Write masks/<ident>.png (hand 255 on 0) under `out`; its path relative to `out`."""
    Image.fromarray(mask.astype(np.uint8) * 255).save(out / "masks" / f"{ident}.png", optimize=True)
    return f"masks/{ident}.png"


def sign_language_digits(args: argparse.Namespace) -> int:
    if args.max_number > RESERVED_FROM:
        print(f"photos numbered {RESERVED_FROM} and above are reserved for independent checks", file=sys.stderr)
        return 2
    photos = list_photos(args.photos, args.max_number)
    if not photos:
        print(f"{args.photos}: no <digit>/IMG_<number>.JPG photos below {args.max_number}", file=sys.stderr)
        return 2
    students = assign_students(photos)
    shares = split_students(max(students) + 1)
    reference = Reference()
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    records, rgbs, masks = [], {}, {}
    for (number, digit, path), student in zip(photos, students):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        mask, problem = skin_mask(rgb)
        ident = f"IMG_{number}"
        found = reference(rgb)
        if problem is None and found is None:
            problem = "MediaPipe Hands found no hand"
        records.append({"id": ident, "mask": write_mask(args.out, ident, mask), "group": str(digit), "person": student,
                        "share": shares[student], "image_size": [int(rgb.shape[0]), int(rgb.shape[1])],
                        "problem": problem, "reference": found})
        rgbs[ident], masks[ident] = rgb, mask
    write_labels(args.out, records)
    if args.sheet is not None:
        contact_sheet(records, rgbs, masks, args.sheet)
    usable = sum(r["problem"] is None for r in records)
    print(f"{len(records)} photos of {max(students) + 1} students; {usable} usable; written to {args.out}")
    return 0


CUTOUT_LEVEL = 15
"""A cut-out's background is black: grey levels above this are hand (or arm)."""
SMALL_HOLE = 0.005
"""Holes under this fraction of the picture are sensor speckle and filled; larger ones (the ring of
an OK sign) are kept."""


def cutout_mask(grey: np.ndarray) -> tuple[np.ndarray, str | None]:
    """(mask (H,W) bool, reason it is unusable or None) of a hand cut out onto a black background."""
    mask = (grey > CUTOUT_LEVEL).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    mask = largest_region_at_edge(mask)
    holes = fill_holes(mask) - mask
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4)
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < SMALL_HOLE * mask.size:
            mask[labels == label] = 1
    area = mask.mean()
    if area < MIN_AREA or area > MAX_AREA:
        return mask.astype(bool), f"mask covers {100 * area:.0f}% of the picture"
    return mask.astype(bool), None


def cutouts(args: argparse.Namespace) -> int:
    """Grey cut-outs <gesture><frame>.png of one person (a test-only set: one person cannot be
    split by person), every --every-th frame of each --gesture, side given by --side."""
    (args.out / "masks").mkdir(parents=True, exist_ok=True)
    records = []
    for gesture in args.gesture:
        frames = sorted(args.images.glob(f"{gesture}[0-9]*.png"), key=lambda p: int(p.stem[len(gesture):]))
        for path in frames[::args.every]:
            grey = np.asarray(Image.open(path).convert("L"))
            mask, problem = cutout_mask(grey)
            records.append({"id": path.stem, "mask": write_mask(args.out, path.stem, mask), "group": gesture,
                            "person": 0, "share": "test", "image_size": [int(grey.shape[0]), int(grey.shape[1])],
                            "side": args.side, "problem": problem, "reference": None})
    if not records:
        print(f"{args.images}: no <gesture><frame>.png images of {', '.join(args.gesture)}", file=sys.stderr)
        return 2
    write_labels(args.out, records)
    usable = sum(r["problem"] is None for r in records)
    print(f"{len(records)} cut-outs; {usable} usable; written to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sources = parser.add_subparsers(dest="source", required=True)
    sld = sources.add_parser("sign-language-digits", help="photos of hands against a wall, with a MediaPipe reference")
    sld.add_argument("photos", type=Path, help="folder with <digit>/IMG_<number>.JPG")
    sld.add_argument("out", type=Path, help="dataset folder to write (masks/, labels.json)")
    sld.add_argument("--max-number", type=int, default=RESERVED_FROM,
                     help=f"read only photos numbered below this (default {RESERVED_FROM})")
    sld.add_argument("--sheet", type=Path, help="also write a contact sheet of every photo here")
    sld.set_defaults(run=sign_language_digits)
    cut = sources.add_parser("cutouts", help="grey hands cut out onto black, one person, no reference")
    cut.add_argument("images", type=Path, help="folder with <gesture><frame>.png")
    cut.add_argument("out", type=Path, help="dataset folder to write (masks/, labels.json)")
    cut.add_argument("--gesture", action="append", required=True, help="file-name prefix of a gesture (repeatable)")
    cut.add_argument("--side", choices=("right", "left"), required=True, help="the hand's side")
    cut.add_argument("--every", type=int, default=3, help="take every N-th frame (default 3)")
    cut.set_defaults(run=cutouts)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
