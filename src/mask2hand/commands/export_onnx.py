"""`mask2hand export-onnx CHECKPOINT OUT.onnx [--check N]`: one ONNX file, runnable without torch.

The graph goes from a mask at the network's input size and its intrinsics to the hand
(see mask2hand.export.onnx); the file carries everything `mask2hand predict --runtime onnx
--model OUT.onnx` needs. With --check N (default 100; 0 skips it) N synthetic masks run
through PyTorch and onnxruntime before the file is put in place; if the final vertices or
joints differ by more than --tolerance meters, nothing is written and the exit status is 1.
"""

from __future__ import annotations

import argparse

DEFAULT_CHECK = 100
DEFAULT_TOLERANCE_M = 1e-4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint",
                        help="checkpoint (.pt from a run) or weights file; 'default' for the shipped model")
    parser.add_argument("out", metavar="OUT.onnx", help="the ONNX file to write")
    parser.add_argument("--check", type=int, default=DEFAULT_CHECK, metavar="N",
                        help=f"compare PyTorch and onnxruntime on N synthetic masks first (default {DEFAULT_CHECK}; "
                             "0: no check)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_M, metavar="M",
                        help=f"largest vertex/joint difference accepted by the check, meters "
                             f"(default {DEFAULT_TOLERANCE_M:g})")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: 17)")
    parser.add_argument("--hand", choices=["open", "mano"], default=None, help="hand model (default: the checkpoint's)")
    parser.add_argument("--mano", default=None, help="MANO_RIGHT.pkl for MANO-trained checkpoints")


def run(args: argparse.Namespace) -> int:
    import sys
    import time
    from pathlib import Path

    from mask2hand.errors import Mask2HandError
    from mask2hand.utils.files import atomic_path, check_writable_folder
    from mask2hand.export.onnx import DEFAULT_OPSET, check_parity, export_onnx, mano_notice

    if args.check < 0:
        raise Mask2HandError("--check must be 0 (no check) or a number of masks")
    out = Path(args.out)
    if out.is_dir():
        raise Mask2HandError(f"{out} is a folder; give the file name of the ONNX model to write")
    check_writable_folder(out.absolute().parent, "the folder of --out")  # before the export's minute of work
    source = args.checkpoint
    start = time.perf_counter()
    try:
        with atomic_path(out) as tmp:  # the file is put in place only if the check passes
            result = export_onnx(source, tmp, opset=args.opset or DEFAULT_OPSET, hand_model=args.hand,
                                 mano_path=args.mano)
            meta = result.metadata
            print(f"exported {args.checkpoint} ({meta['hand']['name']} hand, input {meta['input_size']}x"
                  f"{meta['input_size']}, crop {meta['input_crop']}) in {time.perf_counter() - start:.1f} s: "
                  f"{result.size_bytes / 1e6:.1f} MB, opset {result.opset}")
            if args.check:
                report = check_parity(result.network, tmp, count=args.check)
                print(f"check on {report.count} synthetic masks, PyTorch vs onnxruntime: max vertex difference "
                      f"{report.max_vertex_diff_m:.2e} m, max joint difference {report.max_joint_diff_m:.2e} m, "
                      f"max parameter difference {report.max_param_diff:.2e}, silhouette pixels differing "
                      f"{100 * report.silhouette_pixel_mismatch:.4f}%")
                if not report.passes(args.tolerance):
                    raise _CheckFailed
    except _CheckFailed:
        print(f"mask2hand export-onnx: error: the exported model differs from PyTorch by more than "
              f"{args.tolerance:g} m; {out} was not written (please report this with the checkpoint's network "
              "config)", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    notice = mano_notice(meta)
    if notice:
        print(f"mask2hand export-onnx: note: {notice}", file=sys.stderr)
    return 0


class _CheckFailed(Exception):
    """The parity check failed: leave the atomic write without putting the file in place."""
