"""`mask2hand mano convert MANO_RIGHT.pkl MANO_RIGHT.npz`: a chumpy-free copy of the user's MANO
model file that smplx opens (mask2hand.export.mano_npz)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="mano_action", metavar="ACTION", required=True)
    convert = actions.add_parser(
        "convert", help="write a copy of MANO_RIGHT.pkl / MANO_LEFT.pkl that smplx opens without chumpy",
        description="Write a NumPy .npz copy of a MANO model file (chumpy-free) that "
                    "smplx.MANO(model_path=OUT, ext='npz') opens. The file is read without running any of it.")
    convert.add_argument("source", metavar="MANO_FILE", help="the official MANO_RIGHT.pkl or MANO_LEFT.pkl")
    convert.add_argument("out", metavar="OUT.npz", help="the copy to write (keep MANO's name: MANO_RIGHT.npz or "
                                                        "MANO_LEFT.npz, which smplx reads the side from)")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing OUT.npz")


def run(args: argparse.Namespace) -> int:
    from mask2hand.export.mano_npz import convert_mano

    out = convert_mano(args.source, args.out, overwrite=args.overwrite)
    print(f"wrote {out} (open it with smplx.MANO(model_path={str(out)!r}, ext='npz'))")
    return 0
