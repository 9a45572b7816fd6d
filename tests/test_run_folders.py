"""Run folders of `adapt` and `train`: a stopped preparation starts over, a folder is held by one
run at a time, and `--resume --minutes/--epochs` set the sitting and the run's length."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path

import pytest

from mask2hand.cli import main as cli_main
from mask2hand.errors import Mask2HandError

sys.path.insert(0, str(Path(__file__).parent))
from test_adapt import hand_masks  # noqa: E402
from tiny_model import write_tiny_weights  # noqa: E402


@pytest.fixture(scope="module")
def sensor(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sensor")
    hand_masks(root / "masks", 12)
    weights = write_tiny_weights(root / "start.pt", num_pose_pcs=6, backbone_width=0.25, input_crop=1.25)
    return root / "masks", weights


def adapt_args(sensor: tuple[Path, Path], run: Path) -> list[str]:
    masks, weights = sensor
    return ["adapt", str(masks), "--out", str(run), "--checkpoint", str(weights), "--focal", "500", "--synthetic",
            "16", "--epochs", "1", "--batch-size", "8", "--quiet"]


def train_recipe(tmp_path: Path) -> str:
    """A tiny valid recipe file (test_train's): the run folder is taken only once the recipe is good."""
    import yaml

    from test_train import tiny_recipe

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "data")))
    return str(path)


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.slow
def test_a_stopped_preparation_is_started_over(sensor, tmp_path, monkeypatch, capsys):
    import mask2hand.train.data_setup as data_setup

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C or SIGTERM while the synthetic masks are generated

    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(data_setup, "ensure_generated", stopped)
        assert cli_main(adapt_args(sensor, run)) == 130
    assert (run / "masks").is_dir() and not (run / "config.yaml").exists()
    capsys.readouterr()
    assert cli_main(["adapt", "--out", str(run), "--resume"]) == 2
    assert "without --resume" in one_error_line(capsys)
    assert cli_main(adapt_args(sensor, run)) == 0
    assert (run / "adapted.pt").is_file() and (run / "epochs.csv").is_file()


@pytest.fixture(scope="module")
def adapted(sensor, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("adapted") / "run"
    assert cli_main(adapt_args(sensor, run)) == 0
    return run


@pytest.mark.slow
def test_a_folder_held_by_another_run_is_refused(adapted, tmp_path, capsys):
    descriptor = os.open(adapted / "run.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running adapt or train holds
        capsys.readouterr()
        assert cli_main(["adapt", "--out", str(adapted), "--resume", "--epochs", "2"]) == 2
        assert "in use by another run" in one_error_line(capsys)
        assert cli_main(["train", train_recipe(tmp_path), "--out", str(adapted)]) == 2
        assert "in use by another run" in one_error_line(capsys)
    finally:
        os.close(descriptor)
    assert "epochs: 1\n" in (adapted / "config.yaml").read_text()  # the refused runs changed nothing


@pytest.mark.slow
def test_resume_takes_this_sittings_minutes_and_the_runs_epochs(adapted, capsys):
    capsys.readouterr()
    assert cli_main(["adapt", "--out", str(adapted), "--resume", "--epochs", "50", "--minutes", "0.0001"]) == 0
    assert "stopped (time budget" in capsys.readouterr().out
    assert "epochs: 50\n" in (adapted / "config.yaml").read_text()
    assert "max_minutes: 20" in (adapted / "config.yaml").read_text()  # the sitting's budget is not the run's
    recipe = (adapted / "config.yaml").read_text()
    assert cli_main(["adapt", "--out", str(adapted), "--resume", "--epochs", "0"]) == 2
    assert "epochs" in capsys.readouterr().err and (adapted / "config.yaml").read_text() == recipe


@pytest.mark.parametrize("command", ["adapt", "train"])
def test_a_read_only_run_folder_is_one_line(command, sensor, tmp_path, monkeypatch, capsys):
    run = tmp_path / "read-only" / "run"
    original = Path.mkdir

    def read_only(self, *args, **kwargs):  # the suite may run as root, whom permissions do not stop
        if self == run or run in self.parents:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    argv = adapt_args(sensor, run) if command == "adapt" else ["train", train_recipe(tmp_path), "--out", str(run)]
    capsys.readouterr()
    assert cli_main(argv) == 2
    assert "cannot write into the run folder" in one_error_line(capsys)


@pytest.mark.slow
def test_a_sitting_shorter_than_an_epoch_writes_its_row(tmp_path):
    from mask2hand.train.config import load_config
    from mask2hand.train.loop import Trainer
    from test_train import tiny_recipe

    data, out = tmp_path / "data", tmp_path / "run"
    first = Trainer(load_config(tiny_recipe(data, max_minutes=1e-6)), out, quiet=True).run()  # 1 of 3 steps
    assert first.stop_reason == "time budget" and first.steps_done == 1

    def epochs() -> list[float]:
        return [float(row.split(",")[0]) for row in (out / "epochs.csv").read_text().splitlines()[1:]]

    assert epochs() == pytest.approx([1 / 3])
    resumed = Trainer(load_config(tiny_recipe(data)), out, resume=True, quiet=True).run()
    assert resumed.stop_reason == "finished"
    assert epochs() == pytest.approx([1 / 3, 1, 2])


def test_a_run_refused_before_it_wrote_anything_leaves_no_folder(tmp_path):
    from mask2hand.train.run_folder import hold_run_folder

    with pytest.raises(Mask2HandError, match="refused"):
        with hold_run_folder(tmp_path / "new"):
            raise Mask2HandError("refused")
    assert not (tmp_path / "new").exists()
    (tmp_path / "old").mkdir()
    with hold_run_folder(tmp_path / "old"):
        pass
    assert (tmp_path / "old").is_dir()  # a folder the user had is left as it was, lock file aside
