"""`mask2hand hand-gallery`: a picture of the open hand model (filled in by the open-hand work)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="out/gallery", help="output folder (default: out/gallery)")


def run(args: argparse.Namespace) -> int:
    from mask2hand.viz_gallery import write_hand_gallery

    paths = write_hand_gallery(args.out)
    for path in paths:
        print(f"wrote {path}")
    return 0
