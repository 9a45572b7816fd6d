"""Real hands: the shipped models on masks of real people's hands, scored against a 2-D reference.

Each set is a real-hands folder (mask2hand.data.real_hands; the committed ones are under
datasets/real-hands/), read through `Mask2Hand.predict` as a user's file would be: the whole mask,
no K (the default focal length, 2.2 x the longer image side: the photos carry no intrinsics; the
2-D figures below do not depend on it), the side the reference names. Per model, network alone
and with test-time fitting (--fit), per set and over all sets:

- IoU of the answer's silhouette with the whole mask, and with the mask cut at the reference's
  wrist (the forearm left out; mask2hand.evaluation.real_hands.cut_at_wrist);
- 2-D joint error of the projected joints against the reference's 21 landmarks, in pixels and
  as % of the hand's size (diagonal of the landmarks' box), and PCK at 10% of that size;
- thumb-side flips: the answer shows the palm where the reference shows the back, or the reverse,
  among the hands whose reference palm is within 75 degrees of facing the camera or away
  (mask2hand.evaluation.real_hands.palm_clearly_facing; "judged" counts them);
- failures (inputs with no answer) and warnings.
A set without a 2-D reference (the webcam cut-outs) has the IoU with the whole mask only.

The reference is MediaPipe Hands on the RGB photo (tools/make_real_hands.py). Its landmarks are
defined on the skin (its wrist and thumb base sit elsewhere than the open hand's joint centres),
so part of the 2-D error is that difference of definitions, the same for every model.

Usage: python benchmarks/real_hands.py [--share test] [--checkpoint NAME_OR_PATH ...] [--no-fit]
                                       [--steps 80] [--limit N] [--sheet PNG [--sheet-worst N]] [--name NAME]
                                       [SET_FOLDER ...]
Writes benchmarks/results/real_hands.json (--name to change) (and the contact sheet with --sheet).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import print_table, setup_threads, write_json
from mask2hand import Mask2Hand
from mask2hand.data.real_hands import read_real_hands
from mask2hand.errors import Mask2HandError
from mask2hand.evaluation.real_hands import cut_at_wrist, joint_errors_2d, palm_clearly_facing, palm_toward_camera
from mask2hand.render.exact import mask_iou

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SETS = sorted(p.parent for p in (REPO / "datasets" / "real-hands").glob("*/labels.json"))
GOALS = {"iou": 0.85, "error_pct": 6.0, "pck": 0.85, "flip_pct": 3.0, "fit_iou": 0.92}
COLUMNS = ["model", "set", "mode", "n", "IoU", "IoU wrist", "2-D px", "2-D %", "PCK@10%", "flips %", "judged", "failed",
           "warned", "s/mask"]


def score(predictions, hands) -> list[dict]:
    """Per-hand scores of predictions (Prediction or Mask2HandError per hand)."""
    rows = []
    for prediction, hand in zip(predictions, hands):
        if isinstance(prediction, Exception):
            rows.append({"ident": hand.ident, "error": str(prediction)})
            continue
        row = {"ident": hand.ident, "group": hand.group, "warned": bool(prediction.warnings),
               "iou": float(mask_iou(prediction.rendered_mask[None], prediction.mask[None])[0])}
        if hand.landmarks is not None:
            errors = joint_errors_2d(prediction.joints_2d, hand.landmarks)
            flip = None
            if palm_clearly_facing(hand.world_landmarks):
                flip = palm_toward_camera(prediction.joints_2d, hand.side) != palm_toward_camera(hand.landmarks,
                                                                                                  hand.side)
            wrist_cut = cut_at_wrist(prediction.mask, hand.landmarks)
            row.update(iou_wrist=float(mask_iou(prediction.rendered_mask[None], wrist_cut[None])[0]),
                       error_px=errors.mean_px, error_pct=100 * errors.mean_fraction, pck=errors.pck, flip=flip)
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    """Means over the answered hands (None where no hand of the set has the figure: a set without a
    2-D reference has only IoU), flips over the judged ones, counts of failures and warnings."""
    ok = [r for r in rows if "error" not in r]
    def mean(key: str) -> float | None:
        values = [r[key] for r in ok if key in r]
        return float(np.mean(values)) if values else None

    judged = [r["flip"] for r in ok if r.get("flip") is not None]
    return {"n": len(rows), "iou": mean("iou"), "iou_wrist": mean("iou_wrist"), "error_px": mean("error_px"),
            "error_pct": mean("error_pct"), "pck": mean("pck"),
            "flip_pct": 100 * float(np.mean(judged)) if judged else None, "flips_judged": len(judged),
            "failed": len(rows) - len(ok), "warned": sum(r["warned"] for r in ok)}


def predict_each(model: Mask2Hand, hands, fit: int | None) -> list:
    """The prediction of each hand, or the error it raised (one bad input costs no other)."""
    results = []
    for hand in hands:
        try:
            results.append(model.predict(str(hand.mask_path), side=hand.side, fit=fit))
        except Mask2HandError as exc:
            results.append(exc)
    return results


def worst(rows: list[dict], count: int) -> list[int]:
    """Indices of the `count` hands with the largest 2-D error (or, without a reference, the lowest
    IoU); failed answers first."""
    def badness(i: int) -> float:
        row = rows[i]
        if "error" in row:
            return float("inf")
        return row["error_pct"] if "error_pct" in row else 1.0 - row["iou"]

    return sorted(range(len(rows)), key=badness, reverse=True)[:count]


def contact_sheet(path: Path, hands, predictions, columns: int = 10) -> None:
    """Per hand: the mask (grey), the answer's silhouette over it (red where only the answer, blue
    where only the mask), the reference's skeleton (green) and the answer's (yellow)."""
    import cv2
    from PIL import Image

    tiles = []
    for hand, prediction in zip(hands, predictions):
        mask = hand.read_mask()
        tile = np.zeros(mask.shape + (3,), np.uint8)
        tile[mask] = (110, 110, 110)
        if not isinstance(prediction, Exception):
            tile[prediction.rendered_mask & mask] = (200, 200, 200)
            tile[prediction.rendered_mask & ~mask] = (200, 40, 40)
            tile[~prediction.rendered_mask & mask] = (40, 40, 200)
        scale = 200 / max(mask.shape)
        tile = cv2.resize(tile, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        skeletons = [] if hand.landmarks is None else [(hand.landmarks, (0, 220, 0))]
        if not isinstance(prediction, Exception):
            skeletons.append((prediction.joints_2d, (240, 220, 0)))
        for points, colour in skeletons:
            points = np.asarray(points) * scale
            for finger in range(5):
                chain = [0] + list(range(1 + 4 * finger, 5 + 4 * finger))
                for a, b in zip(chain[:-1], chain[1:]):
                    cv2.line(tile, tuple(int(v) for v in points[a]), tuple(int(v) for v in points[b]), colour, 1)
        cv2.putText(tile, hand.ident, (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1)
        tiles.append(tile)
    blank = np.zeros_like(tiles[0])
    rows = [np.concatenate(tiles[i:i + columns] + [blank] * (columns - len(tiles[i:i + columns])), axis=1)
            for i in range(0, len(tiles), columns)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sets", nargs="*", type=Path, default=DEFAULT_SETS)
    parser.add_argument("--share", default="test", help="train, validation or test (default: test)")
    parser.add_argument("--checkpoint", action="append", help="a shipped model's name or weights (repeatable; "
                        "default: cpu-default-v4 and default)")
    parser.add_argument("--no-fit", action="store_true", help="network alone only")
    parser.add_argument("--steps", type=int, default=80, help="test-time fitting steps (default 80)")
    parser.add_argument("--limit", type=int, help="at most this many hands per set (a quick look)")
    parser.add_argument("--sheet", type=Path, help="contact sheets of the last model's answers (network alone), one "
                        "per set: SHEET-<set>.png")
    parser.add_argument("--sheet-worst", type=int, metavar="N",
                        help="draw only the N answers with the largest 2-D error (IoU-only sets: the lowest IoU)")
    parser.add_argument("--name", default="real_hands", help="results file name (default real_hands)")
    args = parser.parse_args()
    setup_threads(2)
    checkpoints = args.checkpoint or ["cpu-default-v4", "default"]
    sets = {folder.name: read_real_hands(folder, share=args.share)[:args.limit] for folder in args.sets}
    modes = [("network", None)] + ([] if args.no_fit else [("fit", args.steps)])
    table, results = [], {}
    for checkpoint in checkpoints:
        model = Mask2Hand.from_pretrained(checkpoint)
        for mode, fit in modes:
            every = []
            for name, hands in sets.items():
                start = time.perf_counter()
                predictions = predict_each(model, hands, fit)
                seconds = (time.perf_counter() - start) / max(len(hands), 1)
                rows = score(predictions, hands)
                every += rows
                results.setdefault(checkpoint, {}).setdefault(mode, {})[name] = {
                    **summary(rows), "seconds_per_mask": seconds, "hands": rows}
                table.append(_table_row(checkpoint, name, mode, summary(rows), seconds))
                if args.sheet is not None and mode == "network" and checkpoint == checkpoints[-1]:
                    picked = worst(rows, args.sheet_worst) if args.sheet_worst else range(len(hands))
                    contact_sheet(args.sheet.with_name(f"{args.sheet.stem}-{name}{args.sheet.suffix}"),
                                  [hands[i] for i in picked], [predictions[i] for i in picked],
                                  columns=min(10, len(picked)))
            if len(sets) > 1:
                results[checkpoint][mode]["all"] = summary(every)
                table.append(_table_row(checkpoint, "all", mode, summary(every), None))
    print_table(table, COLUMNS)
    goals = {"network": {k: v for k, v in GOALS.items() if k != "fit_iou"}, "fit": {"iou": GOALS["fit_iou"]}}
    write_json(args.name, {"share": args.share, "sets": [str(s.relative_to(REPO)) if s.is_relative_to(REPO) else str(s)
                                                          for s in args.sets],
                          "camera": "default focal length (2.2 x the longer side), principal point at the center",
                          "goals": goals, "results": results})


def _table_row(checkpoint: str, name: str, mode: str, s: dict, seconds: float | None) -> dict:
    return {"model": checkpoint, "set": name, "mode": mode, "n": s["n"], "IoU": s["iou"], "IoU wrist": s["iou_wrist"],
            "2-D px": s["error_px"], "2-D %": s["error_pct"], "PCK@10%": s["pck"], "flips %": s["flip_pct"],
            "judged": s["flips_judged"],
            "failed": s["failed"], "warned": s["warned"], "s/mask": seconds}


if __name__ == "__main__":
    main()
