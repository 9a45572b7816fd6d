"""`mask2hand eval CHECKPOINT DATA [--align both] [--noise KIND:LEVEL ...] [--sensor-size N ...] [--json OUT]`."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="checkpoint (.pt from a run) or weights file; 'default' for the shipped model")
    parser.add_argument("data", help="dataset: FOLDER:SPLIT (from `mask2hand synth`) or FREIHAND_ROOT:SPLIT")
    parser.add_argument("--align", choices=["none", "procrustes", "both"], default="both",
                        help="which table(s) to print (default both)")
    parser.add_argument("--noise", action="append", default=[], metavar="KIND:LEVEL",
                        help="also evaluate on masks with this noise (repeatable; kinds: jitter, erode, dilate, "
                             "merge, holes, lowres; levels 1-3); prints the appendix-C robustness table")
    parser.add_argument("--sensor-size", type=int, action="append", default=[], metavar="N",
                        help="also evaluate on masks first resampled to N x N, like a low-resolution sensor's "
                             "(repeatable, e.g. --sensor-size 32 --sensor-size 64)")
    parser.add_argument("--hand", choices=["open", "mano"], default=None, help="hand model (default: the checkpoint's)")
    parser.add_argument("--mano", default=None, help="MANO_RIGHT.pkl for MANO-trained checkpoints")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N samples")
    parser.add_argument("--json", default=None, help="write the results as JSON here")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from mask2hand.nn.checkpoint import load_network
    from mask2hand.evaluation.network import evaluate, format_tables, write_results

    path = None if args.checkpoint == "default" else args.checkpoint
    net, _ = load_network(path, hand_model=args.hand, mano_path=args.mano, device=args.device)
    results = [evaluate(net, args.data, None, args.batch_size, args.max_samples, args.device)]
    for spec in args.noise:
        results.append(evaluate(net, args.data, spec, args.batch_size, args.max_samples, args.device))
    for side in args.sensor_size:
        results.append(evaluate(net, args.data, None, args.batch_size, args.max_samples, args.device,
                                sensor_size=side))
    print(format_tables(results, args.align))
    if args.json:
        write_results(results, args.json, {"checkpoint": args.checkpoint, "data": args.data})
        print(f"wrote {args.json}")
    return 0
