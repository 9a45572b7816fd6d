"""The `mask2hand` command. Thin: parses arguments and calls the library.

Each subcommand lives in `mask2hand.commands.<module>` with two functions,
`add_arguments(parser)` and `run(args) -> int`; it is imported only when used, so
`mask2hand --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mask2hand.version import __version__
from mask2hand.errors import Mask2HandError
from mask2hand.utils.interrupts import sigterm_as_keyboard_interrupt
from mask2hand.utils.optional import missing_optional

# name -> (module under mask2hand.commands, one-line help)
SUBCOMMANDS = {
    "hand-gallery": ("hand_gallery", "draw the open hand model: rest pose, shape and pose variety"),
    "predict": ("predict", "predict 3D hands (meshes, joints, figures) from silhouette files"),
    "export-onnx": ("export_onnx", "export a checkpoint to one ONNX file that predicts without torch"),
    "synth": ("synth", "make a dataset folder: the paper's synthetic set, the broad corpus, or FreiHAND converted"),
    "train": ("train", "train a network from a recipe (YAML), resumable, single process or torchrun"),
    "eval": ("eval", "evaluate a checkpoint on a dataset: the paper's tables"),
    "ablate": ("ablate", "the paper's Table 5: nine short training runs with losses and RefineNet switched"),
    "adapt": ("adapt", "fine-tune a network on a sensor's unlabelled masks (self-supervised, with a held-out check)"),
    "mano": ("mano", "MANO model files: 'mano convert' writes a chumpy-free copy that smplx opens"),
    "models": ("models", "list the pretrained models shipped in the package (names for --checkpoint)"),
    "serve": ("serve", "a local web app and HTTP API: draw or upload a silhouette, see and download the 3D hand"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mask2hand", description="3D hand pose and shape from a binary silhouette.")
    parser.add_argument("--version", action="version", version=f"mask2hand {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        importlib.import_module(f"mask2hand.commands.{module}").add_arguments(sub_parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"]:
        argv = importlib.import_module("mask2hand.commands.predict").fold_fit_steps(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    sigterm_as_keyboard_interrupt()  # a killed command still removes its temporary files
    try:
        return importlib.import_module(f"mask2hand.commands.{args._module}").run(args)
    except Mask2HandError as exc:
        print(f"mask2hand {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional package this installation lacks (utils.optional)
        message = missing_optional(exc)
        if message is None:
            raise
        print(f"mask2hand {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mask2hand {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
