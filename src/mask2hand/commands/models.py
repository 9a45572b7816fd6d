"""`mask2hand models`: the pretrained models shipped in the package, by name, with their files
(PyTorch weights and their ONNX export)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: it lists every shipped model."""


def run(args: argparse.Namespace) -> int:
    from mask2hand.nn.pretrained import list_models

    def files(model: dict) -> str:
        return ", ".join(f"{f['file']} ({'missing' if f['size_mb'] is None else str(f['size_mb']) + ' MB'})"
                         for f in model["files"])

    rows = [[m["name"], files(m), m["card"], m["trained_on"]] for m in list_models()]
    header = ["name", "files (PyTorch, ONNX)", "card", "trained on"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0
