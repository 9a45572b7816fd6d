"""`mask2hand predict INPUT... --out DIR`: meshes, joints and figures for silhouette files.

Inputs are files (PNG, JPEG, BMP, TIFF, PGM, .npy), folders (their mask files, not
recursive) and glob patterns. Per input, DIR receives <stem>.obj, <stem>.ply, <stem>.glb,
<stem>.json and <stem>.png (the figure; mask2hand.export.prediction.write_prediction), the meshes
and joints in the camera's OpenCV frame or, with --frame opengl, y up; DIR/summary.json lists every
input with its status, IoU, output files, warnings and error. A bad input prints one line and is skipped; the exit
status is 2 at the end if any input failed.

--fit (budget: --fit-steps N) fits each answer to its silhouette (mask2hand.fit; the JSON and
summary gain iou_before_fit and fit_steps); --hypotheses K adds the K best distinct hands that explain
the silhouette to the JSON ("hypotheses", best score first) and writes <stem>_hypN.obj.

Sequences: videos (.mp4, .avi, .mov, ...) and animated GIFs, or with --sequence folders of
frames (sorted naturally by name: 2 before 10) and multi-page TIFFs, one or several per run.
Frames are read, predicted and written one batch at a time (memory does not grow with a
video's length), the hand parameters are smoothed over time with a One Euro filter
(mask2hand.inference.hand_smoothing; --min-cutoff, --beta, --d-cutoff, --no-smoothing), and DIR
(DIR/<stem>/ per sequence when there are several, with DIR/summary.json listing them) receives
the per-frame files as above, <name>.gif (input mask, predicted contour and 2-D skeleton per
frame, at most GIF_MAX_FRAMES of them) and summary.json (per frame, plus the jitter with and
without smoothing).
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mask2hand.export.files import FRAMES
from mask2hand.image.files import MASK_SUFFIXES
from mask2hand.image.masks import DEFAULT_THRESHOLD
from mask2hand.inference.smoothing import OneEuroConfig
from mask2hand.utils.files import check_writable_folder
from mask2hand.utils.optional import available, missing_message, require
from mask2hand.version import JSON_SCHEMA_VERSION

FIT_STEPS = 80
"""mask2hand.fit.FitConfig's steps, for --help (that module imports torch)."""

PROG = "mask2hand predict"
SUMMARY_NAME = "summary.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="mask files, folders of masks or glob patterns (hand white on black)")
    parser.add_argument("--out", default="out/predict", metavar="DIR",
                        help="output folder (default: out/predict)")
    parser.add_argument("--checkpoint", metavar="PATH",
                        help="weights or checkpoint file (default: the shipped pretrained model)")
    parser.add_argument("--hand", choices=("open", "mano"),
                        help="hand model (default: the one the weights were trained with)")
    parser.add_argument("--mano", metavar="PATH", help="MANO_RIGHT.pkl, for weights trained with MANO")
    parser.add_argument("--mano-export", metavar="PATH",
                        help="also write <stem>_mano.json: MANO parameters (smplx's convention) fitted to each "
                             "answer with this MANO_RIGHT.pkl (or its folder), and <stem>_mano.obj: MANO's mesh "
                             "for them")
    parser.add_argument("--mano-left", metavar="PATH",
                        help="with --mano-export: MANO_LEFT.pkl, so that left hands get MANO_LEFT's parameters in "
                             "the input camera (without it: MANO_RIGHT's in the mirrored camera)")
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--focal", type=float, metavar="F",
                        help="focal length in pixels (principal point at the image center)")
    camera.add_argument("--K", dest="k_file", metavar="FILE",
                        help="intrinsics JSON: one 3x3, FreiHAND's list of 3x3 (by file number) or "
                             "{file name: 3x3}; default: focal 2.2 x the longer image side")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"grey level above which a pixel is hand (default: {DEFAULT_THRESHOLD})")
    parser.add_argument("--device", default="auto", help="torch device: auto (default: CUDA when present, else the "
                                                       "CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                        help="auto (default: PyTorch where torch is installed, else the shipped model's ONNX "
                             "file), torch (--checkpoint weights) or onnx (the shipped model's ONNX file, or "
                             "--model; runs without torch)")
    parser.add_argument("--model", metavar="FILE.onnx",
                        help="an ONNX model from `mask2hand export-onnx` (runs on onnxruntime, without torch)")
    parser.add_argument("--batch-size", type=int, default=64, help="masks per network batch (default: 64)")
    parser.add_argument("--no-figure", action="store_true", help="skip the PNG figures (faster)")
    parser.add_argument("--frame", choices=tuple(FRAMES), default="opencv",
                        help="frame of the meshes and joints written: opencv (default: the camera's, x right, "
                             "y down, z forward) or opengl (x right, y up, z toward the viewer)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only errors and the final line")
    output.add_argument("--verbose", action="store_true", help="also a line per input written, with its IoU")
    seq = parser.add_argument_group("sequences (videos, GIFs, or --sequence with folders of frames / TIFF stacks)")
    seq.add_argument("--sequence", action="store_true",
                     help="treat each INPUT (folder of frames, TIFF stack) as one sequence")
    seq.add_argument("--fps", type=float, help="frame rate (default: the file's, else 30)")
    seq.add_argument("--min-cutoff", type=float, default=OneEuroConfig.min_cutoff,
                     help=f"One Euro cutoff at rest, Hz (default: {OneEuroConfig.min_cutoff})")
    seq.add_argument("--beta", type=float, default=OneEuroConfig.beta,
                     help=f"One Euro speed coefficient (default: {OneEuroConfig.beta})")
    seq.add_argument("--d-cutoff", type=float, default=OneEuroConfig.d_cutoff,
                     help=f"One Euro cutoff of the speed estimate, Hz (default: {OneEuroConfig.d_cutoff})")
    seq.add_argument("--no-smoothing", action="store_true", help="predict every frame independently")
    seq.add_argument("--no-gif", action="store_true", help="skip the animated GIF")
    parser.add_argument("--side", choices=("right", "left", "auto"), default="right",
                        help="which hand the masks show (default: right); a left hand is predicted as the "
                             "mirrored right hand and mirrored back into the camera frame; auto: both "
                             "readings, the one that explains the mask better kept, and the JSON says how "
                             "sure (side_margin, side_ambiguous; single masks, not sequences)")
    parser.add_argument("--confidence", action="store_true",
                        help="also write each joint's confidence (joint_confidence in the JSON: how much the "
                             "answer moves when the mask is moved, scaled or its outline changed by a pixel)")
    fitting = parser.add_argument_group("test-time fitting and hypotheses (single masks, not sequences)")
    fitting.add_argument("--fit", action="store_true",
                         help="fit the answer to the silhouette: up to --fit-steps updates along the main pose "
                              "components, then up to 30 of every joint angle; the JSON reports the IoU before "
                              "and after")
    fitting.add_argument("--fit-steps", type=int, metavar="N",
                         help=f"most updates along the main pose components (implies --fit; default "
                              f"{FIT_STEPS}); '--fit N' with an integer N means the same")
    fitting.add_argument("--hypotheses", type=int, metavar="K",
                         help="also return the K best distinct hands that explain the silhouette, ranked by "
                              "score (IoU and plausibility), each written as <stem>_hypN.obj")


def fold_fit_steps(argv: list[str]) -> list[str]:
    """`predict` arguments with each `--fit N` (an integer right after --fit) spelled
    `--fit-steps N`, so that any other word after --fit is an input."""
    folded = list(argv)
    for i in range(len(folded) - 1):
        if folded[i] == "--fit" and re.fullmatch(r"[+-]?\d+", folded[i + 1]):
            folded[i] = "--fit-steps"
    return folded


# ---------------------------------------------------------------------- inputs

OUTPUT_SUFFIXES = (".obj", ".ply", ".glb", ".json", ".png")
"""What `write_prediction` writes per input (<stem>_hyp<k>.obj besides, with hypotheses)."""


def previous_outputs(out: Path) -> set[Path]:
    """The files an earlier run wrote into `out` (resolved), as its summary.json lists them, and
    the summary itself: never taken as inputs, even when --out is an input folder."""
    summary = out / SUMMARY_NAME
    try:
        entries = json.loads(summary.read_text()).get("inputs", [])
        names = [name for entry in entries for name in (entry.get("outputs") or {}).values()]
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError):
        return {summary.resolve()}  # no summary (or not ours): nothing else is known to be an output
    return {summary.resolve()} | {(out / str(name)).resolve() for name in names}


def expand_inputs(args: list[str], exclude: set[Path] = frozenset()) -> tuple[list[Path], list[tuple[str, str]]]:
    """INPUT arguments -> (mask files in order, without duplicates; [(argument, error)]).

    A folder gives its files with mask suffixes (sorted, not recursive); a pattern its
    matching files with mask suffixes; an existing file is taken whatever its suffix.
    Files in `exclude` (resolved paths: an earlier run's outputs) are skipped unless named
    explicitly.
    """
    files: list[Path] = []
    errors: list[tuple[str, str]] = []
    seen: set[Path] = set()

    def add(path: Path, explicit: bool) -> None:
        key = path.resolve()
        if key in seen or (not explicit and key in exclude):
            return
        seen.add(key)
        files.append(path)

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MASK_SUFFIXES)
            if not found:
                errors.append((arg, "the folder holds no mask files (" + ", ".join(MASK_SUFFIXES) + ")"))
            for p in found:
                add(p, explicit=False)
        elif path.exists():
            add(path, explicit=True)
        elif glob.has_magic(arg):
            matches = sorted(Path(p) for p in glob.glob(arg, recursive=True))
            found = [p for p in matches if p.is_file() and p.suffix.lower() in MASK_SUFFIXES]
            if not found:
                errors.append((arg, "the pattern matches no mask files"))
            for p in found:
                add(p, explicit=False)
        else:
            errors.append((arg, "no such file or folder"))
    return files, errors


def output_stems(files: list[Path], out: Path) -> list[str]:
    """A distinct output name per input: its stem; on a clash, folder_stem, then folder_stem_suffix,
    then a number (case-insensitively distinct, so it also works on macOS and Windows). A stem
    whose outputs in `out` would overwrite an input file is not used (--out may be an input folder)."""
    counts: dict[str, int] = {}
    for path in files:
        counts[path.stem.lower()] = counts.get(path.stem.lower(), 0) + 1
    inputs = {str(path.resolve()).lower() for path in files}
    folder = out.resolve()

    def free(stem: str) -> bool:
        return stem.lower() not in used and not any(
            str(folder / f"{stem}{suffix}").lower() in inputs for suffix in OUTPUT_SUFFIXES)

    used = {Path(SUMMARY_NAME).stem}
    result: list[str] = []
    for path in files:
        candidates = [path.stem] if counts[path.stem.lower()] == 1 else []
        base = f"{path.parent.name or 'input'}_{path.stem}"
        candidates += [base, f"{base}_{path.suffix.lstrip('.').lower()}"]
        name = next((c for c in candidates if free(c)), None)
        k = 2
        while name is None or not free(name):
            name, k = f"{candidates[-1]}-{k}", k + 1
        used.add(name.lower())
        result.append(name)
    return result


# ---------------------------------------------------------------------- running

class _Reporter:
    """One-line messages to stderr that do not break the progress bar, and the bar itself (where
    tqdm is installed: it comes with the torch extra, and the torch-free install goes without)."""

    def __init__(self, total: int, quiet: bool = False, verbose: bool = False):
        self.quiet, self.verbose = quiet, verbose
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self._tqdm = tqdm
        self.bar = None if tqdm is None else tqdm(total=total, unit="mask", file=sys.stderr, dynamic_ncols=True,
                                                  disable=total < 2 or not sys.stderr.isatty())

    def line(self, kind: str, where: str, message: str) -> None:
        """Print one message of `kind` ("error", "warning", "note", "wrote"); quiet keeps the errors only,
        and "wrote" lines are printed only when verbose."""
        if (self.quiet and kind != "error") or (kind == "wrote" and not self.verbose):
            return
        text = " ".join((f"{PROG}: {kind}: {where}: {message}" if where else f"{PROG}: {kind}: {message}").split())
        if self._tqdm is None:
            print(text, file=sys.stderr)
        else:
            self._tqdm.write(text, file=sys.stderr)

    def advance(self) -> None:
        """One more input done."""
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def failed(self, records: dict[int, dict], index: int, path: Path, message: str) -> None:
        """Record and print input `index`'s error; it counts as done."""
        records[index] = {"input": str(path), "status": "error", "error": message}
        self.line("error", str(path), message)
        self.advance()


def is_sequence_file(arg: str) -> bool:
    from mask2hand.inference.video import is_sequence_file as check

    return check(arg)


def load_model(args: argparse.Namespace):
    """The Mask2Hand of --model (an exported ONNX file) or of --checkpoint / the shipped model on
    --runtime (Mask2Hand.from_pretrained: PyTorch where torch imports, else the shipped ONNX file)."""
    from mask2hand.errors import Mask2HandError
    from mask2hand.inference.api import Mask2Hand

    if args.model:
        if args.runtime == "torch":
            raise Mask2HandError("--model is an ONNX file, run by onnxruntime; for PyTorch weights use --checkpoint")
        if args.checkpoint or args.hand or args.mano:
            raise Mask2HandError("--checkpoint, --hand and --mano are for PyTorch weights; the ONNX model file "
                                 "holds its weights and hand model")
        return Mask2Hand.from_onnx(args.model)
    hand = args.hand or ("mano" if args.mano else None)
    return Mask2Hand.from_pretrained(args.checkpoint, hand_model=hand, mano_path=args.mano, device=args.device,
                                     runtime=args.runtime)


def _runs_onnx(args: argparse.Namespace) -> bool:
    """Whether the model of these arguments runs on onnxruntime (no torch hand layer)."""
    from mask2hand.nn.pretrained import resolve_runtime

    return bool(args.model) or resolve_runtime(args.runtime) == "onnx"


GIF_MAX_FRAMES = 240
"""Most frames a sequence's GIF holds: a longer sequence's GIF shows every k-th frame (k doubling
as the sequence goes on), so its panels take bounded memory whatever the sequence's length."""


class _GifFrames:
    """The panels of a sequence's GIF, at most GIF_MAX_FRAMES: every `stride`-th frame, the stride
    doubled (and every other panel dropped) whenever the panels would exceed the limit."""

    def __init__(self, count: int | None):
        from mask2hand.export.animation import gif_panel_side

        self.side = gif_panel_side(min(count or GIF_MAX_FRAMES, GIF_MAX_FRAMES))
        self.stride = 1
        self.seen = 0
        self.panels: list[np.ndarray] = []

    def add(self, prediction) -> None:
        from mask2hand.export.animation import skeleton_panel

        if self.seen % self.stride == 0:
            self.panels.append(skeleton_panel(prediction, max_side=self.side))
            if len(self.panels) > GIF_MAX_FRAMES:
                self.panels, self.stride = self.panels[::2], 2 * self.stride
        self.seen += 1


def _sequence_folders(paths: list[Path], out: Path) -> list[Path]:
    """Where each sequence's files go: `out` for one sequence, out/<distinct stem> for several."""
    return [out] if len(paths) == 1 else [out / stem for stem in output_stems(paths, out)]


def run_sequence(args: argparse.Namespace) -> int:
    """`predict` on sequences (videos, GIFs, or with --sequence folders of frames and TIFF stacks),
    each read and written frame by frame: memory holds a batch of frames and the GIF's panels,
    whatever the sequences' lengths. A bad frame is reported and skipped; a sequence that cannot
    be read is reported and the others go on; the exit status is 2 if anything failed."""
    from mask2hand.errors import Mask2HandError
    from mask2hand.image.camera import check_focal
    from mask2hand.inference.cameras import KFile

    if args.fps is not None and not args.fps > 0:
        raise Mask2HandError("--fps must be positive")
    not_sequences = [arg for arg in args.inputs if not (args.sequence or is_sequence_file(arg))]
    if not_sequences:
        raise Mask2HandError(f"{not_sequences[0]} is not a video or GIF; predict single masks in a separate run, "
                             "or give --sequence for folders of frames and TIFF stacks")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise Mask2HandError(f"--out {out} exists and is not a folder; choose another output folder")
    smoothing = None if args.no_smoothing else OneEuroConfig(args.min_cutoff, args.beta, args.d_cutoff).check()
    focal = check_focal(args.focal) if args.focal is not None else None
    k_file = KFile(args.k_file) if args.k_file else None
    check_writable_folder(out, "--out")  # the arguments are good: before the network runs on any frame
    model = load_model(args)
    paths = [Path(arg) for arg in args.inputs]
    report = _Reporter(0, quiet=args.quiet, verbose=args.verbose)
    records = []
    for path, folder in zip(paths, _sequence_folders(paths, out)):
        K = k_file.for_input(str(path)) if k_file is not None else None  # one camera for the whole sequence
        try:
            summary = _predict_sequence(model, path, folder, args, K=K, focal=focal, smoothing=smoothing,
                                        report=report)
        except Mask2HandError as exc:
            report.line("error", str(path), str(exc))
            records.append({"source": str(path), "status": "error", "error": str(exc)})
            continue
        records.append({"source": str(path), "status": "ok" if not summary["failed"] else "error",
                        "folder": str(folder.relative_to(out)) if folder != out else ".",
                        "frames": summary["frames"], "failed": summary["failed"]})
    if len(paths) > 1:
        write_summary(out, {"schema_version": JSON_SCHEMA_VERSION, "model": model.model_identity,
                            "hand": model.hand_identity, "sequences": records})
    failed = sum(record["status"] != "ok" for record in records)
    if len(paths) > 1:
        print(f"{len(paths) - failed} of {len(paths)} sequence(s) predicted into {out}/ (a folder each); "
              f"summary: {out / SUMMARY_NAME}")
    return 2 if failed else 0


def _predict_sequence(model, path: Path, out: Path, args: argparse.Namespace, K, focal, smoothing,
                      report: _Reporter) -> dict:
    """Predict one sequence into `out`, frame by frame; its summary (also written to out/summary.json).
    Raises Mask2HandError when the sequence cannot be read or its outputs cannot be written."""
    from mask2hand.errors import Mask2HandError
    from mask2hand.export.animation import write_gif
    from mask2hand.export.prediction import write_prediction
    from mask2hand.inference.smoothing import JitterMeter
    from mask2hand.inference.stream import DEFAULT_FPS, HandStream
    from mask2hand.inference.video import read_frames

    frames = read_frames(path)
    rate = float(args.fps or frames.fps or DEFAULT_FPS)
    stream = HandStream(model, fps=rate, smoothing=smoothing, K=K, focal=focal, threshold=args.threshold,
                        side=args.side)
    check_writable_folder(out, "--out")
    figures = _figures_wanted(args)
    gif = None if args.no_gif else _GifFrames(frames.count)
    raw_jitter, smoothed_jitter = JitterMeter(), JitterMeter()
    entries, failed = [], 0
    for t, answer in enumerate(stream.predict_frames(frames, batch_size=args.batch_size)):
        if answer.error is not None:
            failed += 1
            report.line("error", answer.label, str(answer.error))
            entries.append({"frame": t, "status": "error", "error": str(answer.error)})
            continue
        prediction = answer.prediction
        try:
            paths = write_prediction(prediction, out, answer.name, figure=figures, frame=args.frame)
        except OSError as exc:
            raise Mask2HandError(f"cannot write the outputs of frame {t} ({exc}); check that {out} is writable "
                                 "and has space") from None
        raw_jitter.add(answer.raw_joints)
        smoothed_jitter.add(prediction.joints)
        if gif is not None:
            gif.add(prediction)
        entries.append({"frame": t, "status": "ok", "input": prediction.source, "iou": prediction.iou,
                        "outputs": {k: p.name for k, p in paths.items()}, "warnings": prediction.warnings})
    predicted = len(entries) - failed
    if not predicted:
        raise Mask2HandError(f"{frames.source}: no frame could be predicted")
    animation = None
    if gif is not None:
        try:
            animation = write_gif(out / f"{path.stem or 'sequence'}.gif", gif.panels, rate / gif.stride)
        except OSError as exc:
            raise Mask2HandError(f"cannot write the animation ({exc}); check that {out} is writable") from None
    jitter = None if raw_jitter.value is None else {"raw": raw_jitter.value, "smoothed": smoothed_jitter.value}
    summary = {"schema_version": JSON_SCHEMA_VERSION, "model": model.model_identity, "hand": model.hand_identity,
               "source": frames.source, "frame": args.frame, "frames": len(entries), "failed": failed, "fps": rate,
               "side": args.side,
               "smoothing": None if smoothing is None else {"filter": "one_euro", "min_cutoff": smoothing.min_cutoff,
                                                            "beta": smoothing.beta, "d_cutoff": smoothing.d_cutoff},
               "jitter_m_per_frame2": jitter, "animation": animation.name if animation else None,
               "animation_stride": None if animation is None else gif.stride, "inputs": entries}
    summary_path = write_summary(out, summary)
    if not args.quiet or len(args.inputs) == 1:
        print(f"{predicted} of {len(entries)} frame(s) of {frames.source} predicted into {out}/"
              f"{' (smoothed)' if smoothing else ''}{', animation ' + animation.name if animation else ''}; "
              f"summary: {summary_path}")
    return summary


def write_summary(out: Path, summary: dict) -> Path:
    """Write out/summary.json; Mask2HandError when the folder takes no more (full, read-only)."""
    from mask2hand.errors import Mask2HandError
    from mask2hand.export.files import write_json

    try:
        return write_json(out / SUMMARY_NAME, summary)
    except OSError as exc:
        raise Mask2HandError(f"cannot write {out / SUMMARY_NAME} ({exc.strerror or exc}); check that {out} is "
                             "writable and has space") from None


def _fit_options(args: argparse.Namespace):
    """(fit, hypotheses) of --fit / --hypotheses, validated (None, None without them)."""
    from mask2hand.errors import Mask2HandError

    fit = args.fit_steps if args.fit_steps is not None else (True if args.fit else None)
    if fit is None and args.hypotheses is None:
        return None, None
    require("torch", "test-time fitting (--fit, --hypotheses)")
    if _runs_onnx(args):
        raise Mask2HandError("--fit and --hypotheses need the PyTorch hand layer: use --runtime torch")
    from mask2hand.inference.fitting import resolve_fit, resolve_hypotheses  # imports torch: only when asked

    return resolve_fit(fit), resolve_hypotheses(args.hypotheses)


def _check_arguments(args: argparse.Namespace, out: Path) -> None:
    from mask2hand.errors import Mask2HandError

    if out.exists() and not out.is_dir():
        raise Mask2HandError(f"--out {out} exists and is not a folder; choose another output folder")
    if args.batch_size < 1:
        raise Mask2HandError("--batch-size must be at least 1")
    if args.mano and args.hand not in (None, "mano"):
        raise Mask2HandError("--mano is for --hand mano; drop one of them")
    if args.mano_left and not args.mano_export:
        raise Mask2HandError("--mano-left is for --mano-export; give --mano-export MANO_RIGHT.pkl as well")
    if args.mano_export:
        require("torch", "--mano-export")


def _figures_wanted(args: argparse.Namespace) -> bool:
    """Whether to draw the figures: unless --no-figure, and not without matplotlib (then one line
    says how to get them)."""
    if args.no_figure:
        return False
    if available("matplotlib"):
        return True
    if not args.quiet:
        print(f"{PROG}: note: {missing_message('matplotlib', 'drawing the figures')}; writing the meshes and JSON only",
              file=sys.stderr)
    return False


@dataclass(frozen=True)
class _Writer:
    """Where and what the files of each prediction are written: out (the folder), figures
    (draw the PNG), mano_export (the MANO_RIGHT.pkl of --mano-export, or None), frame (--frame),
    mano_left (the MANO_LEFT.pkl of --mano-left, or None)."""

    out: Path
    figures: bool
    mano_export: str | None
    frame: str
    mano_left: str | None

    def write(self, prediction, path: Path, stem: str) -> dict:
        """Write one prediction's files (and its MANO parameters with --mano-export, fitted first so a
        failed fit writes nothing); its summary entry. Raises OSError / Mask2HandError if that fails."""
        from mask2hand.export.prediction import write_prediction

        mano = None
        if self.mano_export:
            from mask2hand.export.mano import mano_from_prediction, save_mano_files

            mano = mano_from_prediction(prediction, self.mano_export, mano_left_path=self.mano_left)
        paths = write_prediction(prediction, self.out, stem, figure=self.figures, frame=self.frame)
        if mano is not None:
            paths.update(save_mano_files(mano, self.out, stem))
        record = {"input": str(path), "status": "ok", "iou": prediction.iou, "camera": prediction.camera,
                  "outputs": {k: p.name for k, p in paths.items()}, "warnings": prediction.warnings}
        if prediction.fit_steps is not None:
            record.update(iou_before_fit=prediction.iou_before_fit, fit_steps=prediction.fit_steps)
        if prediction.hypotheses is not None:
            record["hypotheses"] = [{"start": h.start, "iou": h.iou, "score": h.score} for h in prediction.hypotheses]
        return record


def _predict_files(files: list[Path], outcomes, writer: _Writer, report: _Reporter) -> dict[int, dict]:
    """Write each file's answer as its outcome comes (`Mask2Hand.predict_each` over `files`);
    input index -> summary entry."""
    from mask2hand.errors import Mask2HandError

    records: dict[int, dict] = {}
    stems = output_stems(files, writer.out)
    for outcome in outcomes:
        path, stem = files[outcome.index], stems[outcome.index]
        if not outcome.ok:
            report.failed(records, outcome.index, path, str(outcome.error))
            continue
        prediction = outcome.prediction
        for warning in prediction.warnings:
            report.line("warning", str(path), warning)
        try:
            records[outcome.index] = writer.write(prediction, path, stem)
        except (OSError, Mask2HandError) as exc:
            report.failed(records, outcome.index, path,
                          f"cannot write the outputs ({exc}); check that {writer.out} is writable and has space")
            continue
        except MemoryError:
            report.failed(records, outcome.index, path, "not enough memory to draw the figure; try --no-figure")
            continue
        report.line("wrote", str(path), f"{stem}.* in {writer.out} (IoU {prediction.iou:.3f})")
        report.advance()
    return records


def run(args: argparse.Namespace) -> int:
    from mask2hand.errors import Mask2HandError
    from mask2hand.image.camera import check_focal
    from mask2hand.inference.cameras import DEFAULT_FOCAL_FACTOR, KFile
    from mask2hand.inference.pipeline import MaskInput

    out = Path(args.out)
    _check_arguments(args, out)
    fit, hypotheses = _fit_options(args)
    if args.sequence or any(is_sequence_file(arg) for arg in args.inputs):
        if fit is not None or hypotheses is not None or args.side == "auto" or args.confidence:
            raise Mask2HandError("--fit, --hypotheses, --side auto and --confidence work on single masks, not on "
                                 "sequences; drop them or predict the frames as separate files")
        return run_sequence(args)
    files, arg_errors = expand_inputs(args.inputs, exclude=previous_outputs(out))
    k_file = KFile(args.k_file) if args.k_file else None
    focal = check_focal(args.focal) if args.focal is not None else None
    check_writable_folder(out, "--out")  # the arguments are good: before the network runs on any input
    model = load_model(args)
    writer = _Writer(out, figures=_figures_wanted(args), mano_export=args.mano_export, frame=args.frame,
                     mano_left=args.mano_left)

    report = _Reporter(len(files), quiet=args.quiet, verbose=args.verbose)
    for arg, msg in arg_errors:
        report.line("error", arg, msg)
    if k_file is None and focal is None and files:
        report.line("note", "", f"no --focal or --K given: assumed focal length {DEFAULT_FOCAL_FACTOR} x the longer "
                                "image side (FreiHAND-like); absolute depth is only as good as this guess")
    outcomes = model.predict_each((MaskInput(path, K=k_file, focal=focal, name=str(path)) for path in files),
                                  threshold=args.threshold, side=args.side, batch_size=args.batch_size, fit=fit,
                                  hypotheses=hypotheses, confidence=args.confidence)
    records = _predict_files(files, outcomes, writer, report)
    report.close()

    # argument errors first, then the files in order
    entries = [{"input": arg, "status": "error", "error": msg} for arg, msg in arg_errors]
    entries += [records[i] for i in sorted(records)]
    ok = sum(entry["status"] == "ok" for entry in entries)
    failed = len(entries) - ok
    summary = {"schema_version": JSON_SCHEMA_VERSION, "model": model.model_identity, "hand": model.hand_identity,
               "camera": ("K file " + str(args.k_file)) if k_file else (f"focal {focal:g} px" if focal else
                                                                      f"default focal {DEFAULT_FOCAL_FACTOR} x side"),
               "threshold": args.threshold, "side": args.side, "frame": args.frame,
               "counts": {"inputs": len(entries), "ok": ok, "failed": failed},
               "inputs": entries}
    summary_path = write_summary(out, summary)
    print(f"{ok} of {len(entries)} input(s) predicted into {out}/ (meshes .obj/.ply/.glb, joints .json"
          f"{', figures .png' if writer.figures else ''}); summary: {summary_path}")
    return 2 if failed else 0
