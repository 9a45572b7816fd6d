"""`mask2hand train RECIPE [--set section.key=value ...] --out DIR [--resume]`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from mask2hand.train.recipes import recipe_names

    parser.add_argument("recipe", help="a YAML recipe file or the name of a shipped recipe "
                                       f"({', '.join(recipe_names())})")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, logs, config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value, e.g. --set train.lr=3e-4 (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    output.add_argument("--verbose", action="store_true",
                        help="also a line every 100 steps when there is no progress bar (not a terminal)")
    parser.add_argument("--verify", action="store_true",
                        help="check the SHA-256 of every dataset file against its card first (data.verify=true)")


def run(args: argparse.Namespace) -> int:
    import os
    from contextlib import nullcontext
    from pathlib import Path

    from mask2hand.train.config import load_config
    from mask2hand.train.loop import Trainer
    from mask2hand.train.run_folder import hold_run_folder

    if args.verify:
        args.overrides = [*args.overrides, "data.verify=true"]
    if args.resume:
        saved = Path(args.out) / "config.yaml"
        config = load_config(saved if saved.is_file() else args.recipe, args.overrides)
    else:
        config = load_config(args.recipe, args.overrides)
    # the recipe is good: hold the folder (under torchrun every process runs this on the same folder,
    # and the first one holds it)
    with hold_run_folder(args.out) if os.environ.get("RANK", "0") == "0" else nullcontext():
        trainer = Trainer(config, args.out, resume=args.resume, quiet=args.quiet, verbose=args.verbose)
        result = trainer.run()
    if trainer.dist.is_main:
        state = "finished" if result.stop_reason == "finished" else f"stopped ({result.stop_reason}; --resume continues)"
        print(f"training {state}: {result.epochs_done} epochs, {result.steps_done} steps, best validation "
              f"loss {result.best_val_loss:.4g}, {result.samples_per_second:.1f} samples/s; run folder {args.out}")
    return 130 if result.stop_reason == "interrupted" else 0
