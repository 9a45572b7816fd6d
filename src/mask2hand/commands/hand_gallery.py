"""`mask2hand hand-gallery`: a picture of the open hand model and an OBJ of its rest pose."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/gallery",
                        help="output folder for hand_gallery.png and open_hand_rest.obj (default: out/gallery)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pose samples shown (default: 0)")


def run(args: argparse.Namespace) -> int:
    from mask2hand.export.gallery import write_hand_gallery

    paths = write_hand_gallery(args.out, seed=args.seed)
    for path in paths:
        print(f"wrote {path}")
    return 0
