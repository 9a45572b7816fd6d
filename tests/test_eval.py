"""`mask2hand eval` (mask2hand.evaluation.network): what the network is given and what is scored."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from mask2hand.cli import main as cli_main
from mask2hand.data.dataset import MaskDataset, collate_samples
from mask2hand.data.forearm import ForearmSettings
from mask2hand.data.storage import open_dataset
from mask2hand.data.synthetic import BroadCorpus, generate_broad
from mask2hand.evaluation.network import evaluate, network_inputs
from mask2hand.nn.checkpoint import load_network
from tiny_model import write_tiny_weights


@pytest.fixture(scope="module")
def forearm_set(tmp_path_factory):
    """Four test masks, every one with a forearm beside its hand-only mask."""
    corpus = BroadCorpus(train=2, val=0, test=4, forearm=ForearmSettings(probability=1.0))
    return generate_broad(tmp_path_factory.mktemp("arms") / "broad", seed=7, corpus=corpus)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    return load_network(write_tiny_weights(tmp_path_factory.mktemp("weights") / "tiny.pt"))[0]


@pytest.mark.parametrize("sensor_size", [None, 48])
def test_the_network_gets_the_full_mask_of_a_forearm_set(forearm_set, net, monkeypatch, sensor_size):
    """The network sees what a user would give it, the arm included (the hand-only mask is for mIoU)."""
    seen = []
    forward = net.forward
    monkeypatch.setattr(net, "forward", lambda mask, K, **kw: seen.append(mask.clone()) or forward(mask, K, **kw))
    evaluate(net, f"{forearm_set}:test", sensor_size=sensor_size)
    size = net.config.model_input_size
    dataset = MaskDataset(forearm_set, split="test", resolution=sensor_size or size, distance_field=False, seed=0)
    batch = collate_samples([dataset[i] for i in range(len(dataset))])
    assert (batch.mask > batch.hand_mask).any()  # the arm is there to be seen
    full = batch.mask if sensor_size is None else network_inputs(batch.mask, batch.K, size, None)[0]
    torch.testing.assert_close(torch.cat(seen), full, rtol=0, atol=0)


def test_noise_reaches_the_network_on_a_forearm_set(forearm_set, net):
    clean = evaluate(net, f"{forearm_set}:test").stages["refined"]
    noisy = evaluate(net, f"{forearm_set}:test", noise="erode:3").stages["refined"]
    assert noisy["mpjpe_cm"] != clean["mpjpe_cm"] and noisy["miou"] != clean["miou"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0])
def test_eval_on_a_set_with_a_bad_k_names_the_sample_and_k(forearm_set, tmp_path, capsys, value):
    """One line, exit status 2, naming the dataset, the sample and K (not the renderer's NaN vertices)."""
    folder = tmp_path / "bad"
    shutil.copytree(forearm_set, folder)
    bad = int(open_dataset(folder).split_indices("test")[2])
    K = np.load(folder / "K.npy")
    K[bad, 0, 0] = value
    np.save(folder / "K.npy", K)
    weights = write_tiny_weights(tmp_path / "tiny.pt")
    code = cli_main(["eval", str(weights), f"{folder}:test"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"sample {bad}" in err[0] and "K" in err[0] and str(folder) in err[0] and "vertices" not in err[0]


def test_eval_fit_scores_a_network_of_six_pose_pcs_with_and_without_fitting(tmp_path, capsys):
    """`eval --fit` on the paper protocol's kind of network (6 pose PCs, fewer than the default fit's 20):
    the fit runs in the network's own PCs, and since `predict` keeps a fitted hand only where it raised
    the IoU with the mask, no mask's IoU is lower after fitting."""
    import json
    from dataclasses import replace

    from mask2hand.data.synthetic import PaperProtocol, generate_paper

    data = generate_paper(tmp_path / "paper", seed=3, protocol=replace(PaperProtocol(), train_poses=0, test_poses=1))
    weights = write_tiny_weights(tmp_path / "six.pt", num_pose_pcs=6, pose_space="pca")
    out = tmp_path / "eval.json"
    code = cli_main(["eval", str(weights), f"{data}:test", "--fit", "--fit-samples", "3", "--device", "cpu",
                     "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "Test-time fitting (3 masks)" in printed and "network + fit" in printed
    fit = json.loads(out.read_text())["fit"]
    assert fit["num_samples"] == 3 and set(fit["rows"]) == {"network", "network + fit"}
    network, fitted = fit["rows"]["network"], fit["rows"]["network + fit"]
    assert fitted["miou"] >= network["miou"]
    assert fitted["seconds_per_mask"] > network["seconds_per_mask"]


def test_eval_refuses_a_fit_sample_count_below_one(tmp_path, capsys):
    code = cli_main(["eval", "default", f"{tmp_path}:test", "--fit", "--fit-samples", "0"])
    assert code == 2 and "--fit-samples must be at least 1" in capsys.readouterr().err
