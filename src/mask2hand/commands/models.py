"""`mask2hand models`: the pretrained weights shipped in the package, by name."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: it lists every shipped model."""


def run(args: argparse.Namespace) -> int:
    from mask2hand.nn.pretrained import list_models

    rows = [[m["name"], "missing" if m["size_mb"] is None else f"{m['size_mb']} MB", m["card"], m["trained_on"]]
            for m in list_models()]
    header = ["name", "size", "card", "trained on"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
