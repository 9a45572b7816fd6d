"""Export every shipped model's PyTorch weights to its ONNX file in the package
(src/mask2hand/weights/<onnx_file>, as named in mask2hand.nn.pretrained.SHIPPED_MODELS): the
file the torch-free install (`pip install mask2hand`) predicts with.

Each export is `mask2hand export-onnx NAME OUT --check 100`: written only if onnxruntime
matches PyTorch on 100 synthetic masks. tools/release_model.py runs this after writing new
weights; tests/test_torch_free.py fails while the two files give different answers.

Run: python tools/export_shipped_onnx.py [NAME ...]   (default: every shipped model with an ONNX file)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mask2hand import cli
from mask2hand.nn.pretrained import SHIPPED_MODELS

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "mask2hand" / "weights"


def export_shipped(names: list[str]) -> int:
    """Export the named shipped models; the first failing export's exit status, else 0."""
    for name in names:
        if SHIPPED_MODELS[name].onnx_file is None:
            continue
        code = cli.main(["export-onnx", name, str(WEIGHTS / SHIPPED_MODELS[name].onnx_file), "--check", "100"])
        if code:
            return code
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"shipped models to export (default: all of {', '.join(SHIPPED_MODELS)})")
    args = parser.parse_args()
    unknown = [name for name in args.names if name not in SHIPPED_MODELS]
    if unknown:
        parser.error(f"not a shipped model: {', '.join(unknown)} (choose from {', '.join(SHIPPED_MODELS)})")
    sys.exit(export_shipped(args.names or list(SHIPPED_MODELS)))


if __name__ == "__main__":
    main()
