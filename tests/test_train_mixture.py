"""Training on a mixture of datasets: batches from one source each, by share, resumable and split
across ranks; a source made with another hand model supervises the joints only; recipes can
synthesise natural-view sets and sets of another hand."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mask2hand import Mask2HandError
from mask2hand.losses.objective import LossWeights, mask2hand_loss
from mask2hand.train.config import load_config
from mask2hand.train.loop import Trainer
from mask2hand.train.mixture import MixedBatchSampler


def test_each_batch_comes_from_one_source_in_about_its_share():
    sampler = MixedBatchSampler([300, 100, 600], [0.2, 0.5, 0.3], batch_size=10, seed=4)
    counts = np.zeros(3)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            parts = {int(np.searchsorted([0, 300, 400, 1000], i, side="right") - 1) for i in batch}
            assert len(parts) == 1 and len(set(batch)) == 10
            counts[parts.pop()] += 1
    assert len(sampler) == 100
    np.testing.assert_allclose(counts / counts.sum(), [0.2, 0.5, 0.3], atol=0.05)


def test_the_order_is_deterministic_resumable_and_dealt_across_ranks():
    whole = MixedBatchSampler([64, 96], [1.0, 1.0], batch_size=8, seed=1)
    whole.set_epoch(2)
    batches = list(whole)
    again = MixedBatchSampler([64, 96], [1.0, 1.0], batch_size=8, seed=1)
    again.set_epoch(2, start=7)
    assert list(again) == batches[7:]
    ranks = [MixedBatchSampler([64, 96], [1.0, 1.0], batch_size=8, seed=1, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    dealt = [list(r) for r in ranks]
    assert dealt[0] == whole.epoch_batches()[0::2][:len(dealt[0])] and dealt[1] == whole.epoch_batches()[1::2][:len(dealt[1])]
    assert not set(map(tuple, dealt[0])) & set(map(tuple, dealt[1]))
    whole.set_epoch(3)
    assert list(whole) != batches


def test_bad_shares_and_small_sources_are_refused():
    with pytest.raises(Mask2HandError, match="positive"):
        MixedBatchSampler([64, 64], [1.0, 0.0], batch_size=8, seed=0)
    with pytest.raises(Mask2HandError, match="fewer than one batch"):
        MixedBatchSampler([64, 4], [1.0, 1.0], batch_size=8, seed=0)


def mixture_recipe(root: Path, mano_path: Path, **data) -> dict:
    own, other = root / "own", root / "other"
    return {
        "name": "mixture", "seed": 2,
        "network": {"input_size": 32, "num_pose_pcs": 6, "backbone_width": 0.25, "input_crop": 1.25},
        "data": {"train": {f"{own}:train": 0.5, f"{other}:train": 0.5}, "val": f"{own}:val", "workers": 0,
                 "generate": {str(own): {"corpus": "natural", "seed": 0, "train": 32, "val": 16, "test": 0,
                                         "forearm": 1.0},
                              str(other): {"corpus": "broad", "seed": 1, "train": 32, "val": 0, "test": 0,
                                           "hand": "mano"}},
                 **data},
        "loss": {"preset": "cpu"},
        "train": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "scheduler": "none"},
    }


@pytest.fixture(scope="module")
def mixture_trainer(tmp_path_factory, mano_path, monkeypatch_module):
    monkeypatch_module.setenv("MANO_RIGHT_PATH", str(mano_path))
    root = tmp_path_factory.mktemp("mixture")
    return Trainer(load_config(mixture_recipe(root, mano_path)), root / "run")


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_a_recipe_generates_natural_views_with_forearms_and_another_hands_set(mixture_trainer):
    own, other = mixture_trainer.train_set.parts
    assert own.card["generator"] == "synthetic-natural"
    assert other.made_with["name"] == "mano" and not other.made_by(mixture_trainer.net.hand.identity)
    assert own.with_vertices and not other.with_vertices
    assert own.load_batch([0, 1]).hand_mask is not None  # forearms: the hand-only masks are stored


def test_another_hand_models_batches_train_through_the_joints_only(mixture_trainer):
    own, other = mixture_trainer.train_set.parts
    weights = LossWeights.cpu()
    net = mixture_trainer.net
    other_batch = other.load_batch(list(range(8)))
    own_batch = own.load_batch(list(range(8)))
    assert other_batch.vertices is None and other_batch.joints.shape == (8, 21, 3)
    terms = mask2hand_loss(net(other_batch.mask, other_batch.K), other_batch, weights)
    assert terms.vertices is None and terms.aligned_vertices is None and terms.vertices_2d is None
    assert terms.aligned_joints is not None and terms.joints_2d is not None
    terms.total.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in net.parameters())
    own_terms = mask2hand_loss(net(own_batch.mask, own_batch.K), own_batch, weights)
    assert own_terms.aligned_vertices is not None and own_terms.vertices_2d is not None


@pytest.mark.slow
def test_a_mixture_run_trains_and_logs_both_kinds_of_batches(mixture_trainer):
    result = mixture_trainer.run()
    assert result.stop_reason == "finished" and result.steps_done == len(mixture_trainer.sampler) == 8
    header = (mixture_trainer.out_dir / "epochs.csv").read_text().splitlines()[0].split(",")
    assert "train_aligned_vertices" in header and "val_refined_pa_mpjpe_cm" in header


def test_only_vertex_terms_on_another_hands_batch_is_a_clear_error(mixture_trainer):
    _, other = mixture_trainer.train_set.parts
    batch = other.load_batch(list(range(4)))
    weights = LossWeights(joints=0.0, aligned_joints=0.0, contour=0.0)
    with pytest.raises(Mask2HandError, match="no vertices of the network's hand model"):
        mask2hand_loss(mixture_trainer.net(batch.mask, batch.K), batch, weights)


def test_mixture_values_are_checked(tmp_path, mano_path):
    recipe = mixture_recipe(tmp_path, mano_path)
    recipe["data"]["train"] = {f"{tmp_path}/own:train": -1.0}
    with pytest.raises(Mask2HandError, match="data.train"):
        load_config(recipe)
    recipe = mixture_recipe(tmp_path, mano_path)
    recipe["data"]["generate"][str(tmp_path / "own")]["forearm"] = 1.5
    with pytest.raises(Mask2HandError, match="forearm"):
        load_config(recipe)
