"""The controlled comparison of the paper's Tables 1-2 gap: train each arm of a recipe file
(tools/paper_gap.yaml) at one sample budget, evaluate it, and report the arms side by side.

    python tools/paper_gap.py run --runs /work/runs/paper-gap --data /work/runs/paper-gap/data --threads 1
    python tools/paper_gap.py report --runs /work/runs/paper-gap --out docs/runs/paper-gap/paper_gap

`run` trains the arms one after another, each with `mask2hand train` in RUNS/ARM (log in
RUNS/ARM/train.log). It is resumable: an arm whose run finished is skipped, an arm with a
last.pt is resumed, so the same command continues after an interruption. Each finished arm's
best.pt (the lowest validation loss, the paper's choice) is then scored with `mask2hand eval` on
the first --eval-samples masks of the pose-disjoint test split (RUNS/ARM/eval_test.json).
The recipe's `data/` folders are read from (and generated into, when missing) --data.

`report` writes OUT.json (the table), OUT.md (the table in Markdown) and OUT.png (the arms'
validation MPJPE and PA-MPJPE of the refined output against training samples seen). With
--earlier OLD.json it takes the rows of arms whose run folders are gone from an earlier report.

`errors` splits a weights file's MPJPE on a test split into its parts (mask2hand.evaluation.
error_parts: the centroid's offset, rotation, scale, what PA-MPJPE leaves) for each weights
file given, and writes them as OUT.json and OUT.md:

    python tools/paper_gap.py errors paper-synthetic RUNS/ARM/best.pt --data DATA/paper:test --out OUT
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import yaml

from mask2hand.train.config import dump_config, load_config
from mask2hand.train.recipes import resolve_recipe
from mask2hand.utils.dataclass_config import apply_overrides

RECIPE = Path(__file__).with_name("paper_gap.yaml")
ARM_FILE = "arm.json"
METRICS = (("mpjpe_cm", "MPJPE"), ("pa_mpjpe_cm", "PA-MPJPE"))


def load_arms(path: Path) -> dict:
    """The recipe file: base, epoch_samples, val_samples, budget_samples and arms (name -> label, set,
    optional budget_samples)."""
    spec = yaml.safe_load(path.read_text())
    for name, arm in spec["arms"].items():
        arm.setdefault("set", {})
        arm.setdefault("budget_samples", spec["budget_samples"])
    return spec


def _in_data(value: str, data: Path) -> str:
    """A recipe's `data/...` source moved into the folder `data`."""
    return str(data / value[len("data/"):]) if value.startswith("data/") else value


def arm_recipe(spec: dict, name: str, data: Path, threads: int) -> dict:
    """The full recipe of one arm as a dict: the base recipe, its data under `data`, the arm's
    overrides, and the budget as epochs of epoch_samples (rounded down to whole batches of the
    arm's batch size; the epochs round up to cover the budget)."""
    arm = spec["arms"][name]
    values = yaml.safe_load(resolve_recipe(spec["base"]).read_text())
    values["name"] = f"paper-gap-{name}"
    section = values["data"]
    for key in ("train", "val", "test"):
        section[key] = _in_data(section[key], data)
    section["generate"] = {_in_data(folder, data): how for folder, how in section.get("generate", {}).items()}
    section["workers"] = 0  # the loader runs in the training process: one core in all
    values = apply_overrides(values, [f"{key}={json.dumps(value)}" for key, value in arm["set"].items()])
    batch = values["train"]["batch_size"]
    values["train"].update(epochs=math.ceil(arm["budget_samples"] / spec["epoch_samples"]),
                           max_steps_per_epoch=max(1, spec["epoch_samples"] // batch),
                           val_batches=max(1, spec["val_samples"] // batch), max_minutes=0, threads=threads)
    return values


def _finished(folder: Path) -> bool:
    summary = folder / "summary.json"
    return summary.is_file() and json.loads(summary.read_text()).get("stop_reason") == "finished"


def _mask2hand(args: list[str], log: Path, threads: int) -> None:
    """Run `python -m mask2hand ARGS` with `threads` threads, appending its output to `log`."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with log.open("a") as out:
        out.write(f"$ mask2hand {' '.join(args)}\n")
        out.flush()
        done = subprocess.run([sys.executable, "-m", "mask2hand", *args], stdout=out, stderr=subprocess.STDOUT,
                              env=env)
    if done.returncode != 0:
        raise SystemExit(f"mask2hand {args[0]} failed (exit {done.returncode}); see {log}")


def run_arm(spec: dict, name: str, runs: Path, data: Path, threads: int, eval_samples: int) -> None:
    """Train (or resume, or skip when finished) one arm, then evaluate its best.pt once."""
    folder = runs / name
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "train.log"
    arm = spec["arms"][name]
    recipe = arm_recipe(spec, name, data, threads)
    epoch_samples = recipe["train"]["max_steps_per_epoch"] * recipe["train"]["batch_size"]
    (folder / ARM_FILE).write_text(json.dumps({"arm": name, "label": arm["label"],
                                               "budget_samples": arm["budget_samples"],
                                               "epoch_samples": epoch_samples}, indent=2))
    if not _finished(folder):
        if (folder / "last.pt").is_file():
            _mask2hand(["train", str(folder / "config.yaml"), "--out", str(folder), "--resume", "--quiet"],
                       log, threads)
        else:
            path = folder / "recipe.yaml"
            path.write_text(dump_config(load_config(recipe)))
            _mask2hand(["train", str(path), "--out", str(folder), "--quiet"], log, threads)
    result = folder / "eval_test.json"
    if not result.is_file():
        test = yaml.safe_load((folder / "config.yaml").read_text())["data"]["test"]
        _mask2hand(["eval", str(folder / "best.pt"), test, "--max-samples", str(eval_samples), "--device", "cpu",
                    "--json", str(result)], log, threads)


def validation_curve(folder: Path, epoch_samples: int) -> dict[str, list[float]]:
    """Samples seen and the validation metrics of the refined output at each row of epochs.csv."""
    with (folder / "epochs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    curve = {"samples": [float(r["epoch"]) * epoch_samples for r in rows]}
    for key, _ in METRICS:
        curve[key] = [float(r[f"val_refined_{key}"]) for r in rows]
    curve["samples_per_s"] = [float(r["samples_per_s"]) for r in rows]
    return curve


def arm_row(folder: Path) -> dict:
    """One arm's row of the report: its settings, samples seen, throughput, validation and test figures."""
    arm = json.loads((folder / ARM_FILE).read_text())
    curve = validation_curve(folder, arm["epoch_samples"])
    starts = [0.0] + curve["samples"]
    seconds = sum((b - a) / speed for a, b, speed in zip(starts, curve["samples"], curve["samples_per_s"]))
    row = {**arm, "finished": _finished(folder), "samples_seen": curve["samples"][-1] if curve["samples"] else 0,
           "train_hours": seconds / 3600, "curve": curve}
    row["samples_per_s"] = row["samples_seen"] / seconds if seconds else None
    for key, _ in METRICS:
        row[f"val_last_{key}"] = curve[key][-1] if curve[key] else None
        row[f"val_best_{key}"] = min(curve[key]) if curve[key] else None
    result = folder / "eval_test.json"
    if result.is_file():
        clean = json.loads(result.read_text())["results"][0]
        row["test_samples"] = clean["num_samples"]
        for key, _ in METRICS:
            row[f"test_{key}"] = clean["stages"]["refined"][key]
    return row


def _cell(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    lines = ["| arm | what changes | samples seen (budget) | samples/s | hours | val MPJPE / PA-MPJPE (cm), last | "
             "test MPJPE / PA-MPJPE (cm), best.pt |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        test = (f"{_cell(r.get('test_mpjpe_cm'))} / {_cell(r.get('test_pa_mpjpe_cm'))} "
                f"({r['test_samples']} masks)") if "test_samples" in r else "-"
        lines.append(f"| {r['arm']} | {r['label']} | {r['samples_seen']:,.0f} ({r['budget_samples']:,}) | "
                     f"{_cell(r['samples_per_s'], 1)} | {_cell(r['train_hours'])} | "
                     f"{_cell(r['val_last_mpjpe_cm'])} / {_cell(r['val_last_pa_mpjpe_cm'])} | {test} |")
    return "\n".join(lines) + "\n"


def plot_curves(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(12, 4.4))
    for ax, (key, title) in zip(axes, METRICS):
        for r in rows:
            ax.plot(r["curve"]["samples"], r["curve"][key], marker=".", label=r["arm"])
        ax.set_xlabel("training samples seen")
        ax.set_ylabel(f"validation {title} of the refined output (cm)")
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.suptitle("Paper protocol (Tables 1-2): one change per arm against the shipped recipe")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _logged(folder: Path) -> bool:
    return (folder / ARM_FILE).is_file() and (folder / "epochs.csv").is_file()


def report(runs: Path, out: Path, arms: list[str] | None = None, earlier: Path | None = None) -> list[dict]:
    """Write OUT.json, OUT.md and OUT.png of the arms in `runs` that logged an epoch (only `arms`, in
    that order, when given); the rows. With `earlier` (an OUT.json of an earlier report), an arm named
    in `arms` whose run folder is not in `runs` keeps its row from that report."""
    kept = {}
    if earlier is not None:
        kept = {row["arm"]: row for row in json.loads(earlier.read_text())["arms"]}
    names = arms if arms else sorted(folder.name for folder in runs.iterdir())
    rows = []
    for name in names:
        if _logged(runs / name):
            rows.append(arm_row(runs / name))
        elif name in kept:
            rows.append(kept[name])
    if not rows:
        raise SystemExit(f"no arm in {runs} has logged an epoch yet")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"arms": rows}, indent=2))
    out.with_suffix(".md").write_text(markdown_table(rows))
    plot_curves(rows, out.with_suffix(".png"))
    return rows


def error_parts_rows(weights: list[str], data: str, max_samples: int | None,
                     labels: list[str] | None = None) -> list[dict]:
    """For each weights file (or shipped name): its refined answers' error parts on `data`, under its
    label (default: the file or name as given)."""
    from dataclasses import asdict

    from mask2hand.evaluation.error_parts import ErrorPartsAccumulator
    from mask2hand.evaluation.network import network_outputs
    from mask2hand.nn.checkpoint import load_network

    rows = []
    for source, label in zip(weights, labels or weights):
        net, _ = load_network(source)
        parts = ErrorPartsAccumulator()
        for output, scored in network_outputs(net, data, max_samples=max_samples).batches:
            parts.update(output.final_joints, scored.joints)
        rows.append({"label": label, "weights": source, "data": data, **asdict(parts.result())})
    return rows


def error_parts_table(rows: list[dict]) -> str:
    lines = ["| weights | masks | MPJPE | centroid moved onto the target's | then turned | then scaled (PA-MPJPE) | "
             "centroid offset: all / image plane / depth |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['count']} | {r['mpjpe']:.2f} | {r['after_translation']:.2f} | "
                     f"{r['after_rotation']:.2f} | {r['after_scale']:.2f} | {r['centroid_offset']:.2f} / "
                     f"{r['centroid_offset_xy']:.2f} / {r['centroid_offset_depth']:.2f} |")
    return "\n".join(lines) + "\n\nAll in cm, mean over the masks; each column after MPJPE removes one more part.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train and evaluate the arms in turn (resumable)")
    run.add_argument("--runs", type=Path, required=True, help="folder of the arms' run folders")
    run.add_argument("--data", type=Path, required=True, help="folder of the recipe's data/ folders")
    run.add_argument("--recipe", type=Path, default=RECIPE, help="the arms (default tools/paper_gap.yaml)")
    run.add_argument("--arms", help="comma-separated arms to run, in this order (default: all, in file order)")
    run.add_argument("--threads", type=int, default=1, help="torch threads of each run (default 1)")
    run.add_argument("--budget-samples", type=int, help="every arm's sample budget (default: the recipe file's)")
    run.add_argument("--epoch-samples", type=int, help="samples per epoch (default: the recipe file's)")
    run.add_argument("--val-samples", type=int, help="validation masks per epoch (default: the recipe file's)")
    run.add_argument("--eval-samples", type=int, default=2000, help="test masks scored per arm (default 2000)")
    rep = commands.add_parser("report", help="table (JSON, Markdown) and figure of the arms run so far")
    rep.add_argument("--runs", type=Path, required=True)
    rep.add_argument("--out", type=Path, required=True, help="path prefix of OUT.json, OUT.md and OUT.png")
    rep.add_argument("--arms", help="comma-separated arms to report, in this order (default: all that logged an epoch)")
    rep.add_argument("--earlier", type=Path, help="OUT.json of an earlier report: the rows of --arms whose run "
                                                 "folders are not in --runs")
    err = commands.add_parser("errors", help="split the MPJPE of weights files into translation, rotation, scale "
                                             "and articulation")
    err.add_argument("weights", nargs="+", help="weights or checkpoint files, or shipped model names")
    err.add_argument("--data", required=True, help="the test split, FOLDER:SPLIT")
    err.add_argument("--max-samples", type=int, help="score only the first N masks")
    err.add_argument("--out", type=Path, required=True, help="path prefix of OUT.json and OUT.md")
    err.add_argument("--labels", help="comma-separated names of the weights in the table, one each (default: "
                                      "the weights as given)")
    args = parser.parse_args(argv)
    if args.command == "errors":
        labels = args.labels.split(",") if args.labels else None
        if labels is not None and len(labels) != len(args.weights):
            parser.error(f"--labels names {len(labels)} weights; {len(args.weights)} were given")
        rows = error_parts_rows(args.weights, args.data, args.max_samples, labels)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=2))
        table = error_parts_table(rows)
        args.out.with_suffix(".md").write_text(table)
        print(table, end="")
        return 0
    if args.command == "report":
        arms = args.arms.split(",") if args.arms else None
        print(markdown_table(report(args.runs, args.out, arms, args.earlier)), end="")
        return 0
    spec = load_arms(args.recipe)
    for key in ("epoch_samples", "val_samples"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    names = args.arms.split(",") if args.arms else list(spec["arms"])
    unknown = [name for name in names if name not in spec["arms"]]
    if unknown:
        raise SystemExit(f"unknown arms {unknown}; {args.recipe} has {list(spec['arms'])}")
    for name in names:
        if args.budget_samples is not None:
            spec["arms"][name]["budget_samples"] = args.budget_samples
        print(f"arm {name}: training in {args.runs / name}", flush=True)
        run_arm(spec, name, args.runs, args.data.resolve(), args.threads, args.eval_samples)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
