"""`mask2hand models`: the pretrained models shipped in the package, by name, with their files
(PyTorch weights and their ONNX export) and where their model card lies; `--card` prints the card."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--card", action="store_true", help="print the shipped models' card (Markdown)")


def run(args: argparse.Namespace) -> int:
    from mask2hand.errors import Mask2HandError
    from mask2hand.nn.pretrained import list_models, model_card_path

    card = model_card_path()
    if args.card:
        if card is None:
            raise Mask2HandError("this build of mask2hand lacks its model card (MODEL_CARD.md)")
        print(card.read_text(encoding="utf-8"), end="")
        return 0

    def files(model: dict) -> str:
        return ", ".join(f"{f['file']} ({'missing' if f['size_mb'] is None else str(f['size_mb']) + ' MB'})"
                         for f in model["files"])

    rows = [[m["name"], files(m), m["card"], m["trained_on"]] for m in list_models()]
    header = ["name", "files (PyTorch, ONNX)", "card", "trained on"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    print(f"\nmodel card: {card if card is not None else 'not in this build'} (mask2hand models --card prints it)")
    return 0
