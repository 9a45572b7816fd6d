"""`mask2hand ablate RECIPE --out DIR [--epochs N] [--set KEY=VALUE ...]`: the paper's Table 5.

Nine training runs (one per row) plus their evaluation: with the paper's schedule this
is a GPU job (9 x 150 epochs); `--epochs` shortens every run for a quick comparison.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the base recipe (YAML file or shipped name), e.g. paper-freihand-6pc")
    parser.add_argument("--out", required=True, help="folder for the nine runs and ablation.json")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the recipe's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe value for every run (repeatable)")
    parser.add_argument("--rows", default=None, help="run only these rows of Table 5, numbered 1-9 from the top, "
                                                     "e.g. 1,3,7 (default: all)")
    parser.add_argument("--max-test-samples", type=int, default=None, help="evaluate each run on the first N test samples")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from mask2hand.utils.files import write_text_atomic
    from mask2hand.errors import Mask2HandError
    from mask2hand.version import JSON_SCHEMA_VERSION
    from mask2hand.train.ablation import TABLE5_ROWS, format_ablation, rank_agreement, run_ablation
    from mask2hand.train.config import load_config

    # --epochs goes through the recipe's checks (0 or less is refused there, not ignored)
    overrides = list(args.overrides) + ([f"train.epochs={args.epochs}"] if args.epochs is not None else [])
    base = load_config(args.recipe, overrides)
    if args.max_test_samples is not None and args.max_test_samples < 1:
        raise Mask2HandError(f"--max-test-samples must be at least 1, got {args.max_test_samples}")
    rows = TABLE5_ROWS if args.rows is None else _selected_rows(args.rows, TABLE5_ROWS)
    results = run_ablation(base, args.out, rows=rows, max_test_samples=args.max_test_samples)
    print(format_ablation(results))
    record = {"schema_version": JSON_SCHEMA_VERSION, "rows": results, "rank_agreement": rank_agreement(results)}
    path = write_text_atomic(Path(args.out) / "ablation.json", json.dumps(record, indent=2))
    print(f"wrote {path}")
    return 0


def _selected_rows(text: str, table: tuple) -> tuple:
    """The rows of `table` named by "1,3,7" (numbered from 1); any other text is refused."""
    from mask2hand.errors import Mask2HandError

    try:
        numbers = [int(n) for n in text.split(",")]
    except ValueError:
        numbers = []
    if not numbers or any(not 1 <= n <= len(table) for n in numbers):
        raise Mask2HandError(f"--rows must be numbers from 1 to {len(table)}, e.g. 1,3,7; got '{text}'")
    return tuple(table[n - 1] for n in numbers)
