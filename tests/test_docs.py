"""Every fenced ```bash and ```python block of README.md and docs/*.md, run or checked.

The blocks are read from the Markdown itself, so a command the docs show cannot drift from the
code. Python blocks run in order, one namespace per file. Each shell command is one of:
- run as written, in a scratch folder holding `examples/` and a stand-in `MANO_RIGHT.pkl`;
- run with a small budget through its own options (BUDGETS: the options appended);
- parsed only, with the reason it is not run (NOT_RUN), where it takes hours, needs data or a
  server that the suite does not have, or installs packages. Every `mask2hand` command, run or
  not, is parsed by the command line's own parser, every script's options are checked against
  the script, and every extra an install line names must exist.
A command in no list fails the suite: a new command in the docs needs a decision here.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2hand import cli
from mask2hand.commands.predict import fold_fit_steps

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs" / "runs").glob("*.md"))]
FENCE = re.compile(r"^```([A-Za-z]*)\n(.*?)^```$", re.M | re.S)
LANGUAGES = {"bash", "python", "bibtex", "text"}

TINY_TRAIN = ["--set", "data.generate={}", "--set", "data.train=data/small:train", "--set", "data.val=data/small:val",
              "--set", "data.test=data/small:test", "--set", "data.workers=0", "--set", "train.epochs=1",
              "--set", "train.max_steps_per_epoch=2", "--set", "train.batch_size=8", "--set", "train.val_batches=1",
              "--set", "train.warmup_steps=1"]

BUDGETS = {
    "mask2hand synth paper --out data/paper --seed 0": ["--train-poses", "2", "--test-poses", "1"],
    "mask2hand synth broad --out data/broad --count 100000": ["--count", "8", "--val-count", "4", "--test-count", "4"],
    "mask2hand synth natural --out data/natural": ["--count", "8", "--val-count", "4", "--test-count", "4"],
    "mask2hand train cpu-default --out runs/cpu": TINY_TRAIN,
    "mask2hand train cpu-default --out runs/cpu --resume": ["--set", "train.epochs=2"],
    "mask2hand train cpu-real-inputs --out runs/tuned --set train.init_from=default": TINY_TRAIN,
    "mask2hand export-onnx default out/mine.onnx --check 4": [],
    "mask2hand adapt my_masks/ --out runs/sensor --focal 480 --minutes 20": [
        "--batch-size", "4", "--synthetic", "8", "--epochs", "1", "--quiet"],
    "mask2hand adapt --out runs/sensor --resume --minutes 20": ["--quiet"],
}
"""Commands run with a small budget: the documented command, then these options (the last value
of an option wins)."""

PREPARED = {
    "mask2hand synth broad --out data/small --count 64 --val-count 16 --test-count 16 --seed 2":
        "made by the scratch folder's set-up, since other pages read it first",
}

NOT_RUN = {
    # installs and builds
    "python3 -m venv": "creates a virtual environment from PyPI (.ci/run runs the test set-up)",
    "apt-get": "installs Debian packages as root (.ci/run)",
    "pip install": "installs packages; the extras it names are checked against pyproject.toml",
    "python -m pip wheel": "builds the 28 MB wheel (about a minute); run by hand before a release",
    "python -m pytest": "the suite itself (.ci/run)",
    "python -m pytest -m": "a tier of the suite itself, whose tests the full suite runs",
    # needs what the suite does not have
    "mask2hand synth freihand": "needs FreiHAND's 4 GB download",
    "mask2hand synth natural --hand anny": "builds Anny's model data (about 90 s on first use); tests/test_anny.py "
                                           "makes Anny sets",
    "mask2hand ablate paper-freihand-6pc": "needs FreiHAND and MANO's file; tests/test_train.py runs ablate on tiny data",
    "mask2hand ablate paper-synthetic-cpu": "nine trainings, 103 minutes; tests/test_train.py runs ablate on tiny data",
    "mask2hand serve": "serves until Ctrl-C; tests/test_serve_api.py starts the command and calls the API",
    "curl": "needs a running mask2hand serve; tests/test_serve_api.py sends the same forms",
    "torchrun": "starts DistributedDataParallel processes; tests/test_train.py runs a two-process run",
    "tools/gpu_paper_synthetic.sh": "the GPU job (about 10 minutes on one H100); tests/test_gpu_job.py runs it on "
                                    "the CPU with its tiny budget",
    # the model card's reproduction list: hours of training on full corpora
    "mask2hand train cpu-noise-ft": "about an hour per stage; tests/test_train.py fine-tunes on tiny data",
    "mask2hand train cpu-real-inputs --out runs/v5": "about 3 hours and 7 GB of data; TRAINING.md's fine-tuning "
                                                     "line runs this recipe on tiny data",
    "mask2hand train cpu-lowres": "about 15 minutes; tests/test_train.py trains with data.sensor",
    "mask2hand train paper-synthetic": "75 minutes (CPU recipe) or a GPU job; tests/test_train.py trains on tiny data",
    "mask2hand eval default data/broad-heldout": "needs the 2,000-mask held-out set; the eval line of TRAINING.md runs",
    "mask2hand eval runs/lowres": "needs the cpu-lowres run of the model card's list",
    "mask2hand eval runs/paper/": "needs the paper-synthetic run of the model card's list",
    "mask2hand synth broad --out data/broad-heldout": "2,000 masks of the model card's evaluation",
    "python tools/": "rebuilds shipped assets or records; its options are checked against the script",
    "python benchmarks/": "rewrites the recorded figures in benchmarks/results; its options are checked "
                          "against the script",
}
"""Commands not run (by prefix; BUDGETS and PREPARED are matched first), and why."""

NOT_RUN_PYTHON = {
    ("ANNY.md", 0): "builds Anny's model data (about 90 s on first use); tests/test_anny.py poses AnnyHand",
    ("MANO.md", 3): "needs smplx, which mask2hand does not depend on; tests/test_mano_smplx.py opens the converted "
                    "fixtures with smplx's MANO",
}
"""Python blocks not run ((page, block index among the page's Python blocks)), and why."""


@dataclass(frozen=True)
class Block:
    page: str
    language: str
    text: str


def fenced_blocks() -> list[Block]:
    return [Block(page.name, m.group(1), m.group(2)) for page in PAGES for m in FENCE.finditer(page.read_text())]


def shell_commands() -> list[tuple[str, str]]:
    """(page, command) for every line of every bash block, comments removed; `a && b` chains split."""
    found = []
    for block in fenced_blocks():
        if block.language != "bash":
            continue
        for line in block.text.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found += [(block.page, part.strip()) for part in shlex.join(words).split(" '&&' ")]
    return found


def classify(command: str) -> tuple[str, object]:
    command = command.removeprefix(".venv/bin/")
    if command in PREPARED:
        return "prepared", PREPARED[command]
    if command in BUDGETS:
        return "budget", BUDGETS[command]
    reasons = [(prefix, why) for prefix, why in NOT_RUN.items() if command.startswith(prefix)]
    if reasons:
        return "not run", max(reasons, key=lambda r: len(r[0]))[1]
    if command.startswith("mask2hand "):
        return "run", None
    return "unknown", None


def test_blocks_are_fenced_with_a_known_language_and_no_command_is_indented():
    for block in fenced_blocks():
        assert block.language in LANGUAGES, (block.page, block.language)
    for page in PAGES:
        indented = [line for line in page.read_text().splitlines()
                    if re.match(r"    (mask2hand|python|pip|curl|torchrun) ", line)]
        assert not indented, (page.name, indented)


def test_every_command_is_run_budgeted_or_named_with_a_reason():
    commands = shell_commands()
    assert len(commands) > 40
    unknown = [c for c in commands if classify(c[1])[0] == "unknown"]
    assert not unknown, f"commands the docs show that this test does not know: {unknown}"
    shown = {c for _, c in commands}
    stale = [c for c in [*BUDGETS, *PREPARED] if c not in shown]
    stale += [prefix for prefix in NOT_RUN if not any(c.removeprefix(".venv/bin/").startswith(prefix) for c in shown)]
    assert not stale, f"listed here but no longer in the docs: {stale}"


def test_every_mask2hand_command_parses_and_every_script_option_exists():
    parser = cli.build_parser()
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    for page, command in shell_commands():
        words = shlex.split(command)
        if words[0] == "torchrun":
            words = ["mask2hand", *words[words.index("mask2hand.cli") + 1:]]
        if words[0].endswith("mask2hand"):
            parser.parse_args(fold_fit_steps(words[1:]))  # argparse exits on an unknown option
        elif words[0] == "python" and words[1].endswith(".py"):
            script = (REPO / words[1]).read_text()
            for option in (w for w in words[2:] if w.startswith("--")):
                assert f'"{option}"' in script, (page, command, option)
        if "pip" in words[0] and "install" in words:
            for named in re.findall(r"\[([a-z,]+)\]", command):
                assert set(named.split(",")) <= extras, (page, command)


def test_the_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    setups = [b.text.strip() for b in fenced_blocks() if b.page == "README.md" and b.language == "bash"][:2]
    assert setups[1] == ci and ci in readme
    assert setups[0].endswith("mask2hand predict examples --out out/examples")


def test_the_readme_is_short_and_its_links_resolve():
    readme = (REPO / "README.md").read_text()
    assert len(readme) < 10_000
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"https?://", target):
                assert (page.parent / target).exists(), (page.name, target)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, mano_path, mano_left_path):
    """A folder as a user's: examples/, MANO_RIGHT.pkl and MANO_LEFT.pkl (the tests' stand-ins),
    data/small, my_masks/ and new_masks/ (masks for adapt)."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "examples", root / "examples")
    shutil.copy(mano_path, root / "MANO_RIGHT.pkl")
    shutil.copy(mano_left_path, root / "MANO_LEFT.pkl")
    (root / "my_masks").mkdir()
    (root / "new_masks").mkdir()
    for i, path in enumerate(sorted((REPO / "examples").glob("*.png"))):
        mask = np.asarray(Image.open(path))
        Image.fromarray(np.ascontiguousarray(mask[:, ::-1])).save(root / "my_masks" / f"m{i:02d}.png")
        Image.fromarray(mask).save(root / "new_masks" / path.name)
    return root


@pytest.fixture
def in_scratch(scratch, monkeypatch):
    monkeypatch.chdir(scratch)
    monkeypatch.setenv("MANO_RIGHT_PATH", str(scratch / "MANO_RIGHT.pkl"))
    return scratch


def run_command(command: str, extra: list[str]) -> None:
    words = shlex.split(command)
    assert words[0] == "mask2hand", command
    code = cli.main([*words[1:], *extra])
    assert code == 0, f"{command} {' '.join(extra)} exited with {code}"


@pytest.mark.slow
def test_the_shell_commands_run(in_scratch, capsys):
    for command in PREPARED:
        run_command(command, [])
    done = []
    for page, command in shell_commands():
        command = command.removeprefix(".venv/bin/")
        kind, value = classify(command)
        if command in done:
            continue
        if kind == "run":
            run_command(command, [])
        elif kind == "budget":
            run_command(command, value)
        else:
            continue
        done.append(command)
    capsys.readouterr()
    assert len(done) >= 20
    # what the commands leave is what the docs say they leave
    assert {"victory.obj", "victory.ply", "victory.json", "summary.json"} <= {p.name for p in
                                                                         (in_scratch / "out/examples").iterdir()}
    assert (in_scratch / "runs/sensor/adapted.pt").is_file() and (in_scratch / "out/mine.onnx").is_file()
    assert (in_scratch / "out/sensor/summary.json").is_file()
    results = json.loads((in_scratch / "eval.json").read_text())["results"]  # a list, as docs/JSON.md says
    assert isinstance(results, list) and [r["condition"] for r in results] == ["clean", "merge:2"]
    assert set(results[0]) == {"condition", "num_samples", "notes", "stages"}


SLOW_PYTHON_PAGES = {"FITTING.md", "MANO.md"}
"""Pages whose Python blocks fit hands for seconds: run by the full suite only (marked slow)."""


def python_pages() -> list[str]:
    return sorted({b.page for b in fenced_blocks() if b.language == "python"})


@pytest.mark.parametrize("page", [pytest.param(page, marks=pytest.mark.slow) if page in SLOW_PYTHON_PAGES else page
                                  for page in python_pages()])
def test_the_python_blocks_run(page, in_scratch):
    if not (in_scratch / "data/small").exists():
        run_command(next(iter(PREPARED)), [])
    namespace: dict = {"__name__": f"docs_{page}"}
    blocks = [b for b in fenced_blocks() if b.page == page and b.language == "python"]
    for index, block in enumerate(blocks):
        if (page, index) in NOT_RUN_PYTHON:
            continue
        exec(compile(block.text, f"{page}, python block {index}", "exec"), namespace)


def test_not_run_python_blocks_exist():
    for page, index in NOT_RUN_PYTHON:
        assert len([b for b in fenced_blocks() if b.page == page and b.language == "python"]) > index
    assert SLOW_PYTHON_PAGES <= set(python_pages())


def test_json_md_names_every_key_of_a_prediction_and_the_model_block_of_each_runtime():
    from mask2hand import Mask2Hand
    from mask2hand.export.prediction import prediction_json

    text = (REPO / "docs" / "JSON.md").read_text()
    table = text[text.index("## `<stem>.json`"):text.index("## `<stem>_mano.json`")]
    documented = {key for row in re.findall(r"^\| ([^|]+) \|", table, re.M) for key in re.findall(r"`(\w+)`", row)}
    for runtime, keys in (("torch", {"weights", "sha256", "format", "network"}),
                          ("onnx", {"onnx", "sha256", "format", "network", "exported_from"})):
        written = Mask2Hand.from_pretrained(runtime=runtime).predict(str(REPO / "examples" / "fist.png"))
        written = prediction_json(written)
        assert set(written) <= documented | {"iou_before_fit", "fit_steps", "hypotheses"}, set(written) - documented
        assert written["params_residual_mm"] is not None  # on both runtimes, as JSON.md says
        assert set(written["model"]) == keys
        assert all(f"`{key}`" in table for key in keys)


@pytest.mark.slow
def test_the_open_hand_rebuild_needs_only_the_extras_its_install_line_names(tmp_path):
    """OPEN_HAND.md's install line names the extras; the rebuild tools import with every other
    extra's modules hidden."""
    import os
    import subprocess

    from mask2hand.utils.optional import EXTRAS

    line = next(c for page, c in shell_commands() if page == "OPEN_HAND.md" and c.startswith("pip install"))
    named = set(re.search(r"\[([a-z,]+)\]", line).group(1).split(","))
    hidden = sorted(module for module, extra in EXTRAS.items() if extra not in named)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class Hide(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name.split('.')[0] in {hidden!r}:\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, Hide())\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hook), str(REPO / "tools"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", "import build_open_hand, open_hand_tune_thumb"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
