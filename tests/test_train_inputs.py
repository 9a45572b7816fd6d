"""Nonsense settings fail at once with one clear Mask2HandError: recipe numbers, devices, and the
eval / ablate arguments, before any data is made, any network loaded or any step taken."""

import pytest
import torch

from mask2hand import Mask2HandError
from mask2hand.cli import main as cli_main
from mask2hand.nn.device import resolve_device
from mask2hand.train.config import load_config


def recipe(tmp_path, **train) -> dict:
    """A recipe whose data folders do not exist: anything that reached data set-up would generate them."""
    data = tmp_path / "data"
    return {"name": "bad", "network": {"input_size": 32, "num_pose_pcs": 6, "backbone_width": 0.125},
            "data": {"train": f"{data}:train", "val": f"{data}:val", "workers": 0},
            "train": {"epochs": 1, "batch_size": 4, **train}}


@pytest.mark.parametrize("override, key", [
    ("train.lr=-1e-3", "train.lr"),
    ("train.lr=nan", "train.lr"),
    ("train.lr=0", "train.lr"),
    ("train.lr=.inf", "train.lr"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.epochs=-1", "train.epochs"),
    ("train.epochs=0", "train.epochs"),
    ("data.workers=-1", "data.workers"),
    ("train.weight_decay=-0.1", "train.weight_decay"),
    ("train.plateau_factor=1.5", "train.plateau_factor"),
    ("train.warmup_steps=-5", "train.warmup_steps"),
    ("train.grad_clip=nan", "train.grad_clip"),
    ("train.max_minutes=-10", "train.max_minutes"),
    ("train.threads=-2", "train.threads"),
    ("seed=-1", "seed"),
    ("data.crop_jitter_scale=[1.1, 0.9]", "data.crop_jitter_scale"),
    ("loss.overrides.joints=nan", "loss.joints"),
    ("loss.overrides.contour=-1", "loss.contour"),
    ("loss.overrides.bce=much", "loss.overrides.bce"),
    ("network.num_pose_pcs=0", "num_pose_pcs"),
])
def test_nonsense_values_are_refused_when_the_recipe_is_read(tmp_path, override, key):
    with pytest.raises(Mask2HandError, match=key.replace(".", r"\.").replace("[", r"\[")) as info:
        load_config(recipe(tmp_path), [override])
    assert "\n" not in str(info.value)


def test_limits_may_be_switched_off(tmp_path):
    config = load_config(recipe(tmp_path), ["train.grad_clip=0", "train.max_minutes=null", "train.threads=0"])
    assert config.train.grad_clip == 0 and config.train.max_minutes is None


def test_cli_train_with_negative_epochs_exits_2_before_anything_runs(tmp_path, capsys):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path)))
    code = cli_main(["train", str(path), "--out", str(tmp_path / "run"), "--set", "train.epochs=-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "train.epochs" in err[0]
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_trainer_refuses_values_set_after_loading(tmp_path):
    from mask2hand.train.loop import Trainer

    config = load_config(recipe(tmp_path))
    config.train.lr = float("nan")
    with pytest.raises(Mask2HandError, match="train.lr"):
        Trainer(config, tmp_path / "run", quiet=True)
    assert not (tmp_path / "data").exists()


def test_device_resolver():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu"))
    for bogus in ("gpu0", "", "cuda:x", "meta"):
        with pytest.raises(Mask2HandError, match="device"):
            resolve_device(bogus)


def test_missing_cuda_is_one_line_for_train_and_eval(tmp_path, monkeypatch, capsys):
    import yaml

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(Mask2HandError, match="not available"):
        resolve_device("cuda")
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path)))
    for argv in (["train", str(path), "--out", str(tmp_path / "run"), "--set", "train.device=cuda"],
                 ["train", str(path), "--out", str(tmp_path / "run"), "--set", "train.device=tpu7"],
                 ["eval", "default", f"{tmp_path}:test", "--device", "cuda"],
                 ["eval", "default", f"{tmp_path}:test", "--device", "bogus"]):
        code = cli_main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and "device" in err[0], (argv, err)
    assert not (tmp_path / "data").exists()


@pytest.fixture
def no_evaluation(monkeypatch):
    """Fail the test if an evaluation starts."""
    import mask2hand.evaluation.network as network

    def refuse(*args, **kwargs):
        raise AssertionError("the evaluation ran before the arguments were checked")

    monkeypatch.setattr(network, "evaluate", refuse)


@pytest.mark.parametrize("extra, message", [
    (["--json", "{file}/eval.json"], "--json"),
    (["--json", "{dir}"], "is a folder"),
    (["--batch-size", "0"], "--batch-size"),
    (["--max-samples", "-3"], "--max-samples"),
    (["--sensor-size", "4"], "--sensor-size"),
    (["--noise", "merge"], "KIND:LEVEL"),
])
def test_eval_refuses_bad_arguments_before_evaluating(tmp_path, capsys, no_evaluation, extra, message):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    extra = [e.format(file=a_file, dir=tmp_path) for e in extra]
    code = cli_main(["eval", "default", f"{tmp_path}:test", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "0"], "train.epochs"),
    (["--rows", "0"], "--rows"),
    (["--rows", "2,10"], "--rows"),
    (["--rows", "a"], "--rows"),
    (["--max-test-samples", "0"], "--max-test-samples"),
])
def test_ablate_refuses_bad_arguments_before_training(tmp_path, capsys, extra, message):
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path)))
    code = cli_main(["ablate", str(path), "--out", str(tmp_path / "abl"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "abl").exists() and not (tmp_path / "data").exists()


def laughs(levels: int = 9) -> str:
    """A flow YAML list of a few hundred bytes whose last item expands, alias by alias, to 9^levels
    strings: the "billion laughs"."""
    nodes = ["&l0 [" + ", ".join(["lol"] * 9) + "]"]
    nodes += [f"&l{k} [" + ", ".join([f"*l{k - 1}"] * 9) + "]" for k in range(1, levels + 1)]
    return "[" + ", ".join(nodes) + "]"


@pytest.mark.parametrize("key", ["train.lr", "name", "network.backbone", "loss.overrides", "data.train",
                                 "loss.overrides.contour"])
def test_an_aliased_value_is_named_not_expanded(tmp_path, key):
    """An error about a YAML value full of aliases describes it (its type and size) instead of
    printing it, which would expand every alias (gigabytes for this file of a few hundred bytes)."""
    *sections, last = key.split(".")
    text = "".join(f"{'  ' * i}{section}:\n" for i, section in enumerate(sections))
    text += f"{'  ' * len(sections)}{last}: {laughs()}\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    for load in (lambda: load_config(path), lambda: load_config({}, [f"{key}={laughs()}"])):
        with pytest.raises(Mask2HandError) as error:
            load()
        message = str(error.value)
        assert key in message and "a list of 10 items" in message and len(message) < 400, message
