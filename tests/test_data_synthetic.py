"""Synthetic generators: determinism, protocol structure, rejection counting, MANO files."""

import hashlib

import numpy as np
import pytest
import torch

from mask2hand.data.storage import open_dataset
from mask2hand.data.synthetic import (BroadCorpus, PaperProtocol, ViewSampling, generate_broad, generate_paper,
                                      sample_orientations)
from mask2hand.errors import Mask2HandError
from mask2hand.hand import load_hand_model
from mask2hand.render import rasterize_silhouette

SMALL = PaperProtocol(train_poses=3, test_poses=1)


def digests(path):
    return {name: entry["sha256"] for name, entry in open_dataset(path).card["arrays"].items()}


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    return generate_paper(tmp_path_factory.mktemp("syn") / "paper", hand="open", seed=0, protocol=SMALL)


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open", num_pose_pcs=45, flat_hand_mean=True)


def test_same_seed_identical_arrays_other_seed_differs(paper, tmp_path):
    again = generate_paper(tmp_path / "again", hand="open", seed=0, protocol=SMALL)
    other = generate_paper(tmp_path / "other", hand="open", seed=1, protocol=SMALL)
    first = digests(paper)
    assert digests(again) == first
    for name in first:
        assert (paper / f"{name}.npy").read_bytes() == (again / f"{name}.npy").read_bytes()
        if name not in ("pose_id", "betas"):  # the paper's betas are all zero
            assert digests(other)[name] != first[name], name
    assert hashlib.sha256((paper / "masks.npy").read_bytes()).hexdigest() == first["masks"]


def test_arrays_do_not_depend_on_the_torch_thread_count(paper, tmp_path):
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        again = generate_paper(tmp_path / "threads", hand="open", seed=0, protocol=SMALL)
    finally:
        torch.set_num_threads(threads)
    assert digests(again) == digests(paper)
    assert torch.get_num_threads() == threads


def test_view_seed_draws_the_training_poses_in_other_views(paper, tmp_path):
    same = generate_paper(tmp_path / "same", hand="open", seed=0, protocol=SMALL, view_seed=0)
    assert digests(same) == digests(paper)  # the seed's own views, bit for bit
    # the first 2 of the 3 training poses, in views of another seed: an image-level split's test set
    fewer = PaperProtocol(train_poses=2, test_poses=0)
    seen = open_dataset(generate_paper(tmp_path / "seen", hand="open", seed=0, protocol=fewer, view_seed=7))
    base = open_dataset(paper)
    assert seen.card["view_seed"] == 7 and seen.card["counts"] == {"train": 10, "test": 0}
    for name in ("pose", "pose_pcs", "pose_id", "betas"):
        np.testing.assert_array_equal(np.asarray(seen.arrays[name]), np.asarray(base.arrays[name])[:10], name)
    # every view differs: another orientation, camera and mask for each
    assert np.all(np.any(np.asarray(seen.arrays["global_orient"]) != np.asarray(base.arrays["global_orient"])[:10], 1))
    assert not np.any(np.all(seen.masks(slice(None)) == base.masks(slice(0, 10)), axis=(1, 2)))


def test_paper_protocol_structure(paper, hand):
    ds = open_dataset(paper, verify=True)
    card = ds.card
    assert card["generator"] == "synthetic-paper" and card["seed"] == 0
    assert card["counts"] == {"train": 15, "test": 5} and len(ds) == 20
    assert card["hand"]["name"] == "open" and card["hand"]["asset_hash"] == hand.asset_hash
    for key in ("pose", "betas", "views", "camera", "size", "placement", "rejection"):
        assert key in card["choices"]
    a = {k: np.array(v) for k, v in ds.arrays.items() if k != "masks"}
    np.testing.assert_array_equal(a["pose_id"], np.repeat(np.arange(4), 5))
    assert np.all(a["betas"] == 0)
    assert np.all(np.abs(a["pose_pcs"]) <= 2.0) and a["pose_pcs"].shape == (20, 6)
    for p in range(4):
        views = slice(5 * p, 5 * p + 5)
        assert np.all(a["pose_pcs"][views] == a["pose_pcs"][5 * p])
        assert len(np.unique(a["global_orient"][views], axis=0)) == 5
    assert np.all(np.abs(a["global_orient"]) <= np.pi)
    f = a["K"][:, 0, 0]
    assert np.all((f >= 350) & (f < 700)) and np.all(a["K"][:, 1, 1] == f)
    assert np.all(a["K"][:, 0, 2] == 112) and np.all(a["K"][:, 1, 2] == 112)
    # the stored parameters reproduce the stored mesh, and the mask is its exact rendering
    with torch.inference_mode():
        out = hand(torch.from_numpy(a["global_orient"]), torch.from_numpy(a["transl"]),
                   hand_pose=torch.from_numpy(a["pose"]), betas=torch.from_numpy(a["betas"]))
    np.testing.assert_allclose(out.vertices.numpy(), a["vertices"], atol=1e-5)
    np.testing.assert_allclose(out.joints.numpy(), a["joints"], atol=1e-5)
    rendered = rasterize_silhouette(a["vertices"], hand.faces, a["K"], (224, 224))
    np.testing.assert_array_equal(rendered, ds.masks(slice(None)).astype(bool))
    # fully inside the image, FreiHAND-like size
    masks = ds.masks(slice(None))
    assert masks[:, 0].sum() == masks[:, -1].sum() == masks[:, :, 0].sum() == masks[:, :, -1].sum() == 0
    rows, cols = masks.any(2), masks.any(1)
    extent = np.maximum(rows.sum(1), cols.sum(1))
    assert np.all((extent > 80) & (extent < 200)), extent


def test_rejections_are_counted_and_never_kept(tmp_path, hand):
    # hands sized 180-215 px with a 6 px margin often touch the border; a high minimum area rejects thin views
    view = ViewSampling(size_range_px=(180.0, 215.0), max_offset_px=None, margin_px=6.0, min_area_fraction=0.25)
    path = generate_paper(tmp_path / "tight", hand="open", seed=3,
                          protocol=PaperProtocol(train_poses=4, test_poses=1, view=view))
    ds = open_dataset(path)
    rejected = ds.card["rejections"]
    assert rejected["out_of_image"] > 0 and rejected["too_small"] > 0 and rejected["behind_camera"] == 0
    assert len(ds) == 25  # resampled up to the requested count
    masks = ds.masks(slice(None))
    assert np.all(masks.reshape(25, -1).sum(1) >= 0.25 * 224 * 224)
    a = ds.arrays
    uvw = np.einsum("nij,nvj->nvi", np.asarray(a["K"], np.float64), np.asarray(a["vertices"], np.float64))
    uv = uvw[..., :2] / uvw[..., 2:]
    assert uv.min() >= 6.0 and uv.max() <= 224 - 6.0


def test_impossible_settings_fail_clearly(tmp_path):
    view = ViewSampling(size_range_px=(400.0, 500.0))
    with pytest.raises(Mask2HandError, match="rejected"):
        generate_paper(tmp_path / "never", hand="open", protocol=PaperProtocol(train_poses=1, test_poses=1, view=view))
    assert not (tmp_path / "never").exists()


def test_interrupted_generation_leaves_no_dataset(tmp_path):
    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_paper(tmp_path / "cut", hand="open", protocol=SMALL, progress=stop)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Mask2HandError):
        open_dataset(tmp_path / "cut")


def test_broad_corpus_with_a_mano_file(tmp_path, mano_path):
    corpus = BroadCorpus(train=6, val=2, test=0)
    path = generate_broad(tmp_path / "broad", hand="mano", hand_path=str(mano_path), seed=4, corpus=corpus)
    ds = open_dataset(path)
    assert ds.card["hand"]["name"] == "mano" and ds.card["counts"] == {"train": 6, "val": 2}
    assert ds.arrays["vertices"].shape == (8, 778, 3)
    betas = np.asarray(ds.arrays["betas"])
    assert betas.std() > 0.3 and np.abs(betas).max() <= 3.0
    assert np.abs(np.asarray(ds.arrays["pose"])).max() > 0.1  # prior poses, all 45 dims
    np.testing.assert_array_equal(ds.split_indices("val"), [6, 7])


def test_broad_corpus_sizes_range_widely(tmp_path):
    path = generate_broad(tmp_path / "broad", hand="open", seed=5, corpus=BroadCorpus(train=40, val=0, test=0))
    masks = open_dataset(path).masks(slice(None))
    extent = np.maximum(masks.any(2).sum(1), masks.any(1).sum(1))
    assert extent.min() < 80 and extent.max() > 140


def test_so3_orientations_are_uniform():
    rotvec = sample_orientations(np.random.default_rng(0), 20000, "so3_uniform")
    angle = np.linalg.norm(rotvec, axis=1)
    # uniform rotations: angle density (1 - cos t) / pi on [0, pi], mean pi/2 + 2/pi
    assert abs(angle.mean() - (np.pi / 2 + 2 / np.pi)) < 0.02
    axis = rotvec / angle[:, None]
    assert np.abs(axis.mean(0)).max() < 0.03


def test_synth_command(tmp_path, capsys):
    import argparse

    from mask2hand.commands import synth

    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    args = parser.parse_args(["paper", "--out", str(tmp_path / "p"), "--train-poses", "2", "--test-poses", "1",
                              "--seed", "3", "--preview", str(tmp_path / "p.png")])
    assert synth.run(args) == 0
    ds = open_dataset(tmp_path / "p")
    assert ds.card["counts"] == {"train": 10, "test": 5} and ds.card["seed"] == 3
    assert (tmp_path / "p.png").stat().st_size > 0
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(Mask2HandError, match="already exists"):
        synth.run(args)
    with pytest.raises(Mask2HandError, match="--root"):
        synth.run(parser.parse_args(["freihand", "--out", str(tmp_path / "f")]))
