"""`mask2hand synth`: make a dataset folder (the paper's synthetic set, the broad corpus, natural views, or
FreiHAND converted)."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("paper", "broad", "natural", "freihand"),
                        help="paper: the paper's synthetic protocol (sec. 4.1); broad: the default model's corpus; "
                             "natural: hands held up to a camera, with forearms (docs/DATASETS.md); "
                             "freihand: convert a FreiHAND v2 folder for fast loading")
    parser.add_argument("--out", required=True, help="dataset folder to create")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same arrays; default 0)")
    parser.add_argument("--hand", choices=("open", "mano", "anny"), default="open",
                        help="hand model (default: open); anny (broad, natural) needs the anny package")
    parser.add_argument("--mano", default=None, metavar="PATH",
                        help="MANO_RIGHT.pkl for --hand mano (default: the MANO_RIGHT_PATH variable)")
    parser.add_argument("--count", type=int, default=None,
                        help="broad, natural: training samples (default 100000 broad, 50000 natural)")
    parser.add_argument("--val-count", type=int, default=2_000,
                        help="broad, natural: validation samples (default 2000)")
    parser.add_argument("--test-count", type=int, default=2_000, help="broad, natural: test samples (default 2000)")
    parser.add_argument("--forearm", type=float, default=None, metavar="P",
                        help="paper, broad, natural: share of samples with a forearm (default 0, natural 0.85)")
    parser.add_argument("--shape-variety", type=float, default=None, metavar="P",
                        help="paper, broad, natural: share of hands with extra shape variety (finger lengths and "
                             "widths, palm, surface; default 0, natural 0.75)")
    parser.add_argument("--train-poses", type=int, default=4_000, help="paper: training poses (default 4000)")
    parser.add_argument("--test-poses", type=int, default=400, help="paper: test poses (default 400)")
    parser.add_argument("--views", type=int, default=5, help="paper: views per pose (default 5)")
    parser.add_argument("--view-seed", type=int, default=None,
                        help="paper: seed of the view draws alone (default: --seed); with a training set's --seed "
                             "and --train-poses N, its first N training poses in other views")
    parser.add_argument("--root", default=None, help="freihand: the FreiHAND_pub_v2 folder")
    parser.add_argument("--split-file", default=None,
                        help="freihand: FreiHand_split_ids.json of the reference code (default: the paper's "
                             "26000/3280/3280 random partition with --seed)")
    parser.add_argument("--preview", default=None, metavar="PNG", help="also draw 16 samples into this PNG")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")


class _Progress:
    def __init__(self):
        self.start = time.perf_counter()
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = 10 * done // total
        if tenth != self.last:
            self.last = tenth
            elapsed = time.perf_counter() - self.start
            print(f"  {done}/{total} samples, {elapsed:.0f} s", file=sys.stderr, flush=True)


def write_dataset(args: argparse.Namespace, progress) -> Path:
    """The dataset folder of `args` (see add_arguments), written; its path."""
    from dataclasses import replace

    from mask2hand.errors import Mask2HandError

    for name, seed in (("--seed", args.seed), ("--view-seed", args.view_seed)):
        if seed is not None and seed < 0:
            raise Mask2HandError(f"{name} must be a non-negative integer, got {seed}")
    if args.view_seed is not None and args.kind != "paper":
        raise Mask2HandError("--view-seed draws the paper protocol's poses in other views: it is for "
                             "`synth paper` only")
    if args.kind == "paper":
        from mask2hand.data.synthetic import PaperProtocol, generate_paper, with_probabilities

        protocol = replace(PaperProtocol(), train_poses=args.train_poses, test_poses=args.test_poses,
                           views_per_pose=args.views)
        path = generate_paper(args.out, hand=args.hand, hand_path=args.mano, seed=args.seed,
                              protocol=with_probabilities(protocol, args.forearm, args.shape_variety),
                              overwrite=args.overwrite, progress=progress, view_seed=args.view_seed)
    elif args.kind in ("broad", "natural"):
        from mask2hand.data.synthetic import (BroadCorpus, NaturalCorpus, generate_broad, generate_natural,
                                              with_probabilities)

        corpus, generate = {"broad": (BroadCorpus(), generate_broad),
                            "natural": (NaturalCorpus(), generate_natural)}[args.kind]
        corpus = replace(corpus, train=corpus.train if args.count is None else args.count, val=args.val_count,
                         test=args.test_count)
        path = generate(args.out, hand=args.hand, hand_path=args.mano, seed=args.seed,
                        corpus=with_probabilities(corpus, args.forearm, args.shape_variety),
                        overwrite=args.overwrite, progress=progress)
    else:
        from mask2hand.data.freihand import convert_freihand

        if args.root is None:
            raise Mask2HandError("synth freihand needs --root, the FreiHAND_pub_v2 folder")
        path = convert_freihand(args.root, args.out, split_file=args.split_file, split_seed=args.seed,
                                overwrite=args.overwrite, progress=progress)
    return path


def run(args: argparse.Namespace) -> int:
    from mask2hand.data.storage import open_dataset
    from mask2hand.errors import Mask2HandError
    from mask2hand.utils.files import check_writable_folder

    check_writable_folder(Path(args.out).absolute().parent, "the folder of --out")  # before any mask is made
    try:
        path = write_dataset(args, _Progress())
    except OSError as exc:  # a disk that fills, a folder made read-only meanwhile
        raise Mask2HandError(f"cannot write the dataset {args.out} ({exc.strerror or exc}); check that its folder "
                             "is writable and has space") from None
    card = open_dataset(path).card
    print(f"wrote {path}: {card['num_samples']} samples {card['counts']}, "
          f"{card['timing']['seconds']:.1f} s" + (f", rejected {card['rejections']}" if "rejections" in card else ""))
    if args.preview:
        from mask2hand.data.figures import draw_dataset_samples

        print(f"wrote {draw_dataset_samples({args.kind: path}, args.preview)}")
    return 0
