"""The real-hands recipe: fine-tune a model on the train share of a real-hands set with `mask2hand adapt`.

The shipped model cpu-default-v6 is this recipe run from the default model (cpu-default-v5) for one
60-minute sitting on 2 CPU cores (docs/REAL_HANDS.md): the train share's masks (the held-out 10% of them validate), their
MediaPipe landmarks as 2-D keypoints (the thumb base at half confidence: MediaPipe puts it elsewhere
than the open hand's joint), and 30% of the batches labelled synthetic masks (natural views with
forearms), with the adaptation objective's silhouette, prior and teacher terms.

Writes OUT/keypoints.json (mask2hand.inference.keypoints's format) and runs
    mask2hand adapt <train-share masks> --out OUT --checkpoint START --keypoints OUT/keypoints.json
        --synthetic 4000 --synthetic-share 0.3 --epochs 400 --minutes 60 --batch-size 32 --lr 1e-4
(--world-weight W adds the landmarks' 3-D points; other adapt options pass through after `--`).

Run: python tools/train_real_hands.py OUT [--set datasets/real-hands/sign-language-digits]
                                          [--checkpoint default] [--minutes 60] [-- ADAPT OPTIONS]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mask2hand import cli
from mask2hand.data.real_hands import keypoints_of, read_real_hands

ROOT = Path(__file__).resolve().parents[1]
THUMB_BASE = 1
THUMB_BASE_CONFIDENCE = 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the adaptation run's folder")
    parser.add_argument("--set", type=Path, default=ROOT / "datasets" / "real-hands" / "sign-language-digits",
                        help="real-hands set whose train share is trained on")
    parser.add_argument("--checkpoint", default="default", help="weights to start from (default: the shipped default)")
    parser.add_argument("--minutes", type=float, default=60.0, help="time budget of the sitting (default 60)")
    parser.add_argument("--world-weight", type=float, default=0.0, help="weight of the 3-D landmarks (default 0)")
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    extra = argv[split + 1:]
    hands = [hand for hand in read_real_hands(args.set, share="train") if hand.landmarks is not None]
    confidence = np.ones(21)
    confidence[THUMB_BASE] = THUMB_BASE_CONFIDENCE
    args.out.mkdir(parents=True, exist_ok=True)
    keypoints = args.out / "keypoints.json"
    keypoints.write_text(json.dumps(keypoints_of(hands, confidence=confidence, world=args.world_weight > 0)))
    return cli.main(["adapt", *[str(hand.mask_path) for hand in hands], "--out", str(args.out),
                     "--checkpoint", args.checkpoint, "--keypoints", str(keypoints), "--synthetic", "4000",
                     "--synthetic-share", "0.3", "--epochs", "400", "--minutes", str(args.minutes),
                     "--batch-size", "32", "--lr", "1e-4", "--world-weight", str(args.world_weight), *extra])


if __name__ == "__main__":
    sys.exit(main())
