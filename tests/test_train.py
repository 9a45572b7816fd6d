"""Training: a tiny run learns and writes loadable checkpoints; resume is exact; config errors are clear;
`mask2hand eval` prints every column; torchrun with 2 CPU processes keeps the replicas identical."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mask2hand.utils.files import TEMP_PREFIX, TEMP_SUFFIX
from mask2hand import Mask2HandError
from mask2hand.image.camera import Camera
from mask2hand.cli import main as cli_main
from mask2hand.train.config import load_config
from mask2hand.train.recipes import recipe_names
from mask2hand.train.loop import Trainer


def tiny_recipe(data_dir: Path, **train) -> dict:
    return {
        "name": "tiny", "seed": 3,
        "network": {"input_size": 32, "num_pose_pcs": 6, "backbone_width": 0.25},
        "data": {"train": f"{data_dir}:train", "val": f"{data_dir}:val", "workers": 0,
                 "generate": {str(data_dir): {"corpus": "broad", "seed": 0, "train": 48, "val": 16, "test": 16}}},
        "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "scheduler": "none", **train},
    }


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny") / "data"


@pytest.fixture(scope="module")
def trained_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    trainer = Trainer(load_config(tiny_recipe(data_dir, epochs=3)), out, quiet=True)
    before = trainer.validate()["total"]
    result = trainer.run()
    return out, before, result


def read_steps(path: Path) -> list[tuple[int, float]]:
    rows = path.read_text().splitlines()[1:]
    return [(int(r.split(",")[0]), float(r.split(",")[2])) for r in rows]


def test_tiny_run_lowers_validation_loss_and_writes_its_files(trained_run):
    out, before, result = trained_run
    assert result.stop_reason == "finished" and result.epochs_done == 3 and result.steps_done == 9
    assert result.best_val_loss < before
    for name in ("config.yaml", "last.pt", "best.pt", "epochs.csv", "steps.csv", "loss_curve.png", "summary.json"):
        assert (out / name).is_file(), name
    header = (out / "epochs.csv").read_text().splitlines()[0].split(",")
    for column in ("train_total", "train_joints", "train_contour", "val_total", "lr", "val_refined_pa_mpjpe_cm", "val_miou"):
        assert column in header


def test_checkpoint_loads_as_a_network(trained_run):
    from mask2hand.nn.checkpoint import load_network

    out, _, _ = trained_run
    net, payload = load_network(out / "best.pt")
    assert payload["hand"]["name"] == "open" and not net.training
    mask = torch.zeros(1, 32, 32)
    mask[0, 8:24, 10:22] = 1
    K = torch.tensor([[[60.0, 0, 16], [0, 60.0, 16], [0, 0, 1]]])
    with torch.no_grad():
        output = net(mask, K)
    assert output.refined_joints.shape == (1, 21, 3) and torch.isfinite(output.refined_vertices).all()


def test_eval_prints_every_column(trained_run, data_dir, capsys, tmp_path):
    out, _, _ = trained_run
    code = cli_main(["eval", str(out / "best.pt"), f"{data_dir}:test", "--noise", "merge:2",
                     "--json", str(tmp_path / "eval.json")])
    text = capsys.readouterr().out
    assert code == 0
    for column in ("MPJPE (cm)", "AUC of PCK", "MPVPE (cm)", "AUC of PCV", "mIoU", "Dice", "PA-MPJPE (cm)",
                   "PA-MPVPE (cm)", "preliminary", "refined", "merge:2"):
        assert column in text, column
    assert (tmp_path / "eval.json").is_file()


@pytest.fixture
def single_thread():
    """One torch thread for the test: on several threads, float32 reductions were seen to round
    differently between runs of the same process (5e-6 relative), which would hide what the
    resume test measures (that the restored state is exact)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_resume_after_interruption_matches_uninterrupted_run(data_dir, tmp_path, monkeypatch, single_thread):
    recipe = tiny_recipe(data_dir, epochs=2)
    Trainer(load_config(recipe), tmp_path / "a", quiet=True).run()
    reference = read_steps(tmp_path / "a" / "steps.csv")

    original = Trainer._train_step
    calls = {"n": 0}

    def interrupt_at_step_four(self, batch):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(Trainer, "_train_step", interrupt_at_step_four)
    first = Trainer(load_config(recipe), tmp_path / "b", quiet=True).run()
    assert first.stop_reason == "interrupted" and first.steps_done == 4
    monkeypatch.setattr(Trainer, "_train_step", original)
    resumed = Trainer(load_config(recipe), tmp_path / "b", resume=True, quiet=True).run()
    assert resumed.stop_reason == "finished" and resumed.steps_done == len(reference)
    steps = read_steps(tmp_path / "b" / "steps.csv")
    assert [s for s, _ in steps] == [s for s, _ in reference]
    epochs = [row.split(",")[0] for row in (tmp_path / "b" / "epochs.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]
    for (_, loss), (_, expected) in zip(steps, reference):
        assert abs(loss - expected) <= 1e-6 * max(1.0, abs(expected))


def test_new_run_refuses_an_existing_run_folder(trained_run, data_dir):
    out, _, _ = trained_run
    with pytest.raises(Mask2HandError, match="--resume"):
        Trainer(load_config(tiny_recipe(data_dir)), out, quiet=True)


def test_resume_with_other_network_settings_is_refused(trained_run, data_dir):
    out, _, _ = trained_run
    recipe = tiny_recipe(data_dir)
    recipe["network"]["num_pose_pcs"] = 12
    with pytest.raises(Mask2HandError, match="network settings"):
        Trainer(load_config(recipe), out, resume=True, quiet=True)


def test_fine_tuning_starts_from_the_given_weights(trained_run, data_dir, tmp_path):
    from mask2hand.nn.checkpoint import export_weights, read_file

    out, _, _ = trained_run
    export_weights(read_file(out / "best.pt"), tmp_path / "w.pt", half=False)
    for source in (out / "best.pt", tmp_path / "w.pt"):
        tuned = Trainer(load_config(tiny_recipe(data_dir, init_from=str(source))), tmp_path / source.stem, quiet=True)
        fresh = Trainer(load_config(tiny_recipe(data_dir)), tmp_path / f"fresh-{source.stem}", quiet=True)
        assert tuned.epoch == 0 and tuned.step == 0
        assert tuned.validate()["total"] < fresh.validate()["total"]
        stored = read_file(out / "best.pt")["model"]
        assert all(torch.equal(v, stored[k]) for k, v in tuned.net.state_dict().items())


def test_fine_tuning_refuses_weights_of_another_network(trained_run, data_dir, tmp_path):
    out, _, _ = trained_run
    recipe = tiny_recipe(data_dir, init_from=str(out / "best.pt"))
    recipe["network"]["num_pose_pcs"] = 12
    with pytest.raises(Mask2HandError, match="init_from.*same network"):
        Trainer(load_config(recipe), tmp_path / "other", quiet=True)
    with pytest.raises(Mask2HandError, match="not found"):
        Trainer(load_config(tiny_recipe(data_dir, init_from=str(tmp_path / "missing.pt"))), tmp_path / "m", quiet=True)


def test_fine_tuning_the_shipped_model_from_a_recipe_without_its_locator(tmp_path, monkeypatch, capsys):
    from mask2hand.nn.checkpoint import network_config_of, read_file
    from mask2hand.nn.pretrained import resolve_weights
    from mask2hand.train.config import network_config

    monkeypatch.chdir(tmp_path)  # cpu-default generates data/broad relative to the working directory
    assert cli_main(["train", "cpu-default", "--out", "run", "--set", "train.init_from=default"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "{" not in err
    assert "locator_input 256 (the recipe: None)" in err and "--set network.locator_input=256" in err
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()  # refused before any data
    # the line's advice gives the shipped network
    advised = load_config("cpu-default", ["train.init_from=default", "network.locator_input=256"])
    stored = network_config(load_config({"network": network_config_of(read_file(resolve_weights("default")))}))
    assert network_config(advised) == stored


def test_overrides_and_validation_errors_are_clear(data_dir):
    config = load_config(tiny_recipe(data_dir), ["train.lr=3e-4", "network.num_pose_pcs=45"])
    assert config.train.lr == 3e-4 and config.network["num_pose_pcs"] == 45
    with pytest.raises(Mask2HandError, match="unknown key"):
        load_config(tiny_recipe(data_dir), ["train.learning_rate=1"])
    with pytest.raises(Mask2HandError, match="must be float"):
        load_config(tiny_recipe(data_dir), ["train.lr=fast"])
    with pytest.raises(Mask2HandError, match="network"):
        load_config(tiny_recipe(data_dir), ["network.backbone=vgg"])
    with pytest.raises(Mask2HandError, match="recipe not found"):
        load_config("no-such-recipe")
    names = recipe_names()
    assert {"paper-synthetic", "paper-freihand-6pc", "paper-freihand-45pc", "cpu-default", "cpu-lowres"} <= set(names)
    for name in names:
        assert load_config(name).name == name


def test_cli_train_reports_bad_recipe_in_one_line(tmp_path, capsys):
    code = cli_main(["train", "no-such-recipe", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "recipe not found" in err[0]


DDP_SCRIPT = """
import sys, torch
from mask2hand.train.config import load_config
from mask2hand.train.loop import Trainer
import json
recipe = json.loads(sys.argv[1])
trainer = Trainer(load_config(recipe), sys.argv[2], quiet=True)
trainer.run()
flat = torch.cat([p.detach().flatten() for p in trainer.net.parameters()])
with open(sys.argv[3] + f"/rank{trainer.dist.rank}.pt", "wb") as f:
    torch.save(flat, f)
"""


@pytest.mark.slow
def test_torchrun_two_cpu_processes_keep_replicas_identical(data_dir, tmp_path):
    import json

    recipe = tiny_recipe(data_dir, epochs=1, batch_size=8, max_steps_per_epoch=2)
    Trainer(load_config(recipe), tmp_path / "gen", quiet=True)  # makes sure the data exists before the ranks start
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           str(script), json.dumps(recipe), str(tmp_path / "run"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    initial = torch.cat([p.detach().flatten() for p in Trainer(load_config(recipe), tmp_path / "fresh", quiet=True).net.parameters()])
    assert torch.equal(rank0, rank1)
    assert not torch.equal(rank0, initial)  # they trained
    assert (tmp_path / "run" / "last.pt").is_file()


def test_ablation_rows_switch_the_right_terms(data_dir):
    from mask2hand.train.ablation import TABLE5_ROWS, row_config
    from mask2hand.train.config import loss_weights, network_config

    base = load_config(tiny_recipe(data_dir))
    assert len(TABLE5_ROWS) == 9
    no_refine_no_mesh = row_config(base, TABLE5_ROWS[2])
    assert network_config(no_refine_no_mesh).refine is False
    weights = loss_weights(no_refine_no_mesh)
    assert weights.vertices == 0 and weights.aligned_vertices == 0 and weights.aligned_joints > 0
    star = loss_weights(row_config(base, TABLE5_ROWS[5]))
    assert star.contour == 0 and star.aligned_joints > 0 and star.vertices > 0
    assert not (star.preliminary_aligned or star.preliminary_joints or star.preliminary_vertices)
    full = loss_weights(row_config(base, TABLE5_ROWS[0]))
    assert full.preliminary_aligned and full.preliminary_joints and full.preliminary_vertices
    with_bce = loss_weights(row_config(base, TABLE5_ROWS[6]))
    assert with_bce.bce == 0.5 and with_bce.contour > 0
    unaligned = loss_weights(row_config(base, TABLE5_ROWS[4]))
    assert unaligned.aligned_joints == 0 and unaligned.aligned_vertices == 0 and unaligned.vertices > 0
    assert all(network_config(row_config(base, r)).num_pose_pcs == 6 for r in TABLE5_ROWS)


@pytest.mark.slow
def test_ablate_command_runs_a_tiny_schedule(data_dir, tmp_path, capsys):
    recipe = tmp_path / "tiny.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(tiny_recipe(data_dir, epochs=1, max_steps_per_epoch=1)))
    code = cli_main(["ablate", str(recipe), "--out", str(tmp_path / "abl"), "--rows", "1,3",
                     "--max-test-samples", "8"])
    text = capsys.readouterr().out
    assert code == 0 and "Table 5" in text and "PA-MPJPE" in text
    rows = json.loads((tmp_path / "abl" / "ablation.json").read_text())["rows"]
    assert [r["row"] for r in rows] == ["x - x x x", "x - x - -"]
    assert all(r["steps"] == 1 and r["stop_reason"] == "finished" for r in rows)


def test_rank_agreement_compares_the_order_of_the_rows_with_the_papers():
    from mask2hand.train.ablation import PAPER_TABLE5, TABLE5_ROWS, format_ablation, rank_agreement

    labels = [row.label() for row in TABLE5_ROWS]
    assert set(labels) == set(PAPER_TABLE5)
    same_order = [{"row": label, **{key: 2 * value + 1 for key, value in PAPER_TABLE5[label].items()}}
                  for label in labels]
    assert rank_agreement(same_order)["pa_mpjpe_cm"] == pytest.approx(1.0)
    reversed_order = [{**r, "pa_mpjpe_cm": -r["pa_mpjpe_cm"]} for r in same_order]
    assert rank_agreement(reversed_order)["pa_mpjpe_cm"] == pytest.approx(-1.0)
    assert all(value is None for value in rank_agreement(same_order[:2]).values())
    text = format_ablation(same_order)
    assert "[0.78]" in text and "Spearman" in text  # the paper's first-row PA-MPJPE beside ours


def test_interrupted_ablation_row_stops_the_ablation_and_writes_no_table(data_dir, tmp_path, capsys, monkeypatch):
    import mask2hand.train.loop as loop

    started = []

    class InterruptedTrainer:
        def __init__(self, config, out_dir, resume=False):
            started.append(Path(out_dir).name)
            self.out_dir = Path(out_dir)

        def run(self):
            return loop.RunResult(self.out_dir, 0, 3, float("inf"), "interrupted", 10.0)

    monkeypatch.setattr(loop, "Trainer", InterruptedTrainer)
    recipe = tmp_path / "tiny.yaml"
    import yaml

    recipe.write_text(yaml.safe_dump(tiny_recipe(data_dir, epochs=1, max_steps_per_epoch=1)))
    code = cli_main(["ablate", str(recipe), "--out", str(tmp_path / "abl"), "--rows", "1,3"])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert started == ["aligned-contour-refine-mesh"]  # row 3 never started
    assert not (tmp_path / "abl" / "ablation.json").exists()


@pytest.mark.slow
def test_cropping_network_trains_and_evaluates_on_prepared_masks(data_dir, tmp_path, capsys):
    from mask2hand.data.dataset import MaskDataset
    from mask2hand.evaluation.network import network_inputs
    from mask2hand.inference.prepare import prepare_mask

    recipe = tiny_recipe(data_dir, epochs=1)
    recipe["network"]["input_crop"] = 1.25
    recipe["loss"] = {"preset": "cpu"}
    recipe["data"].update(crop_jitter_shift=0.05, crop_jitter_scale=[0.9, 1.1])
    result = Trainer(load_config(recipe), tmp_path / "run", quiet=True).run()
    assert result.stop_reason == "finished"
    header = (tmp_path / "run" / "epochs.csv").read_text().splitlines()[0].split(",")
    assert "train_vertices_2d" in header and "train_contour" not in header

    # evaluation feeds the network what `predict` would: the crop found from the mask itself
    sample = MaskDataset(data_dir, split="test")[0]
    masks, K = network_inputs(sample.mask[None], sample.K[None], 32, 1.25)
    prepared = prepare_mask(sample.mask.numpy(), 32, crop_margin=1.25)
    assert (masks[0].numpy() == prepared.model_input).all()
    expected = prepared.transform.camera(Camera(sample.K.numpy(), sample.mask.shape)).K
    assert torch.allclose(K[0], torch.as_tensor(expected, dtype=torch.float32))

    code = cli_main(["eval", str(tmp_path / "run" / "last.pt"), f"{data_dir}:test", "--sensor-size", "24"])
    text = capsys.readouterr().out
    assert code == 0 and "clean @24px" in text


@pytest.mark.slow
def test_interrupted_best_write_leaves_a_consistent_run(data_dir, tmp_path, monkeypatch):
    """SIGTERM (the loop's handler raises KeyboardInterrupt) arriving while best.pt is written:
    no temporary file stays, and last.pt never names a best validation loss that best.pt lacks."""
    import mask2hand.train.loop as loop
    from mask2hand.nn.checkpoint import read_file
    from mask2hand.utils.files import atomic_path

    real_save = loop.save_checkpoint
    interrupted = []

    def save_interrupted_once(path, state):
        if Path(path).name == "best.pt" and not interrupted:
            interrupted.append(state["best_val"])
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"half a checkpoint")
                raise KeyboardInterrupt
        return real_save(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", save_interrupted_once)
    out = tmp_path / "run"
    first = Trainer(load_config(tiny_recipe(data_dir, epochs=2)), out, quiet=True).run()
    assert first.stop_reason == "interrupted" and interrupted
    assert not list(out.glob(".*.tmp")) and not (out / "best.pt").exists()
    assert read_file(out / "last.pt")["best_val"] == float("inf")  # names no best.pt: the next epoch writes one

    resumed = Trainer(load_config(tiny_recipe(data_dir, epochs=2)), out, resume=True, quiet=True).run()
    assert resumed.stop_reason == "finished"
    best, last = read_file(out / "best.pt"), read_file(out / "last.pt")
    assert best["best_val"] == last["best_val"] == resumed.best_val_loss


def test_resume_takes_the_best_loss_from_best_pt(trained_run, data_dir, tmp_path):
    """A run state naming a better loss than its best.pt holds (what the old write order left)
    is healed on resume: best.pt is what a new best must beat."""
    import shutil

    from mask2hand.nn.checkpoint import read_file

    out, _, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    payload = read_file(run / "last.pt")
    payload["best_val"] = -1.0
    torch.save(payload, run / "last.pt")
    trainer = Trainer(load_config(tiny_recipe(data_dir, epochs=4)), run, resume=True, quiet=True)
    assert trainer.best_val == read_file(run / "best.pt")["best_val"]


def test_stale_temporary_checkpoints_are_removed_at_start_and_resume(trained_run, data_dir, tmp_path):
    import shutil

    out, _, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    stale = [run / f"{TEMP_PREFIX}k2j3h4{TEMP_SUFFIX}", run / f"{TEMP_PREFIX}a8b9c0{TEMP_SUFFIX}"]
    kept = [run / "notes.tmp", run / ".other.pt.a1.tmp", run / f"{TEMP_PREFIX}last.pt.backup"]
    for path in stale + kept:
        path.write_bytes(b"x" * 1000)
    Trainer(load_config(tiny_recipe(data_dir, epochs=4)), run, resume=True, quiet=True)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / f"{TEMP_PREFIX}q1w2e3{TEMP_SUFFIX}").write_bytes(b"x")
    Trainer(load_config(tiny_recipe(data_dir)), fresh, quiet=True)
    assert not (fresh / f"{TEMP_PREFIX}q1w2e3{TEMP_SUFFIX}").exists()


def test_run_files_load_weights_only(trained_run):
    """last.pt and best.pt hold only tensors and plain values (numpy's RNG state included)."""
    out, _, _ = trained_run
    for name in ("last.pt", "best.pt"):
        payload = torch.load(out / name, weights_only=True)
        assert isinstance(payload["rng"]["numpy"]["key"], torch.Tensor)


def test_planted_last_pt_with_a_payload_does_not_run(trained_run, data_dir, tmp_path):
    import shutil

    out, _, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return eval, (f"__import__('pathlib').Path({str(marker)!r}).touch()",)

    torch.save({"format": "mask2hand-checkpoint", "version": 1, "payload": Payload()}, run / "last.pt")
    with pytest.raises(Mask2HandError, match="nothing in it ran"):
        Trainer(load_config(tiny_recipe(data_dir, epochs=4)), run, resume=True, quiet=True)
    with pytest.raises(Mask2HandError, match="nothing in it ran"):
        Trainer(load_config(tiny_recipe(data_dir, init_from=str(run / "last.pt"))), tmp_path / "ft", quiet=True)
    assert not marker.exists()


@pytest.mark.slow
def test_a_run_off_a_terminal_logs_one_line_per_epoch(data_dir, tmp_path, capsys):
    """Under nohup or a scheduler (stderr not a terminal) there is no progress bar: each epoch still
    says where the run is; --quiet says nothing."""
    Trainer(load_config(tiny_recipe(data_dir, epochs=2)), tmp_path / "loud").run()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("validation loss" in line and "samples/s" in line for line in lines)
    Trainer(load_config(tiny_recipe(data_dir, epochs=2)), tmp_path / "quiet", quiet=True).run()
    assert capsys.readouterr().err == ""
