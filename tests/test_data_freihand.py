"""FreiHAND reader on a small fixture in the official v2 layout, the paper's split, conversion."""

import json

import cv2
import numpy as np
import pytest

from mask2hand.data import freihand
from mask2hand.data.freihand import (FreiHand, convert_freihand, load_split_file, paper_split, read_number_array,
                                     save_split_file)
from mask2hand.data.storage import open_dataset
from mask2hand.errors import Mask2HandError

N = 12


def write_freihand_fixture(root, n=N, seed=0):
    """A FreiHAND_pub_v2-like folder: JPEG masks, 4x as many rgb files, and the JSON annotations."""
    rng = np.random.default_rng(seed)
    (root / "training" / "mask").mkdir(parents=True)
    (root / "training" / "rgb").mkdir(parents=True)
    K = [[[float(f), 0.0, 112.0], [0.0, float(f), 112.0], [0.0, 0.0, 1.0]] for f in rng.uniform(350, 700, n)]
    xyz = rng.normal(0, 0.05, (n, 21, 3)) + [0, 0, 0.6]
    verts = rng.normal(0, 0.05, (n, 778, 3)) + [0, 0, 0.6]
    mano = rng.normal(0, 0.5, (n, 1, 61))
    for name, value in (("training_K.json", K), ("training_xyz.json", xyz.tolist()),
                        ("training_verts.json", verts.tolist()), ("training_mano.json", mano.tolist())):
        (root / name).write_text(json.dumps(value))
    for i in range(n):
        m = np.zeros((224, 224), np.uint8)
        cv2.circle(m, (int(rng.integers(80, 140)), int(rng.integers(80, 140))), int(rng.integers(20, 60)), 255, -1)
        cv2.rectangle(m, (100, 30), (110 + i, 120), 255, -1)
        cv2.imwrite(str(root / "training" / "mask" / f"{i:08d}.jpg"), m, [cv2.IMWRITE_JPEG_QUALITY, 70])
        for version in range(4):
            cv2.imwrite(str(root / "training" / "rgb" / f"{i + version * n:08d}.jpg"), np.zeros((8, 8, 3), np.uint8))
    return {"K": np.array(K), "xyz": xyz, "verts": verts, "mano": mano[:, 0]}


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("freihand") / "FreiHAND_pub_v2"
    truth = write_freihand_fixture(root)
    return root, truth


def test_reads_the_official_layout(fixture_root):
    root, truth = fixture_root
    data = FreiHand(root.parent)  # the folder holding FreiHAND_pub_v2 works too
    assert len(data) == N
    np.testing.assert_allclose(data.K, truth["K"], rtol=1e-6)
    np.testing.assert_allclose(data.joints, truth["xyz"], atol=1e-7)
    np.testing.assert_allclose(data.vertices, truth["verts"], atol=1e-7)
    np.testing.assert_allclose(data.mano, truth["mano"], atol=1e-6)
    for i in (0, N - 1):
        raw = cv2.imread(str(root / "training" / "mask" / f"{i:08d}.jpg"), cv2.IMREAD_GRAYSCALE)
        mask = data.mask(i)
        assert mask.dtype == np.uint8 and mask.shape == (224, 224)
        np.testing.assert_array_equal(mask, (raw > 127).astype(np.uint8))
        assert 0 < mask.mean() < 1
    with pytest.raises(IndexError):
        data.mask(N)


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(Mask2HandError, match="FreiHAND"):
        FreiHand(tmp_path)


def test_number_parser_is_exact_across_chunk_boundaries(tmp_path, monkeypatch):
    values = np.random.default_rng(2).normal(size=(50, 7, 3))
    (tmp_path / "a.json").write_text(json.dumps(values.tolist()))
    monkeypatch.setattr(freihand, "_CHUNK", 37)
    np.testing.assert_array_equal(read_number_array(tmp_path / "a.json", (7, 3)), values)
    with pytest.raises(Mask2HandError):
        read_number_array(tmp_path / "a.json", (8, 3))


def test_paper_split_sizes_disjoint_and_fixed():
    split = paper_split()
    assert {k: len(v) for k, v in split.items()} == {"train": 26000, "val": 3280, "test": 3280}
    everything = np.concatenate(list(split.values()))
    assert len(np.unique(everything)) == 32560 and everything.min() == 0 and everything.max() == 32559
    again = paper_split()
    for name in split:
        np.testing.assert_array_equal(split[name], again[name])
    assert not np.array_equal(paper_split(seed=1)["test"], split["test"])
    small = paper_split(N)
    assert sum(len(v) for v in small.values()) == N and len(small["val"]) == len(small["test"])


def test_split_file_round_trip(tmp_path):
    split = {"train": np.array([0, 2, 5]), "val": np.array([1]), "test": np.array([3, 4])}
    path = save_split_file(split, tmp_path / "FreiHand_split_ids.json")
    assert set(json.loads(path.read_text())) == {"train_ids", "val_ids", "test_ids"}
    loaded = load_split_file(path, num_samples=6)
    for name in split:
        np.testing.assert_array_equal(loaded[name], split[name])
    with pytest.raises(Mask2HandError, match="ids must lie"):
        load_split_file(path, num_samples=5)
    (tmp_path / "bad.json").write_text(json.dumps({"train_ids": [0, 1], "test_ids": [1]}))
    with pytest.raises(Mask2HandError, match="share"):
        load_split_file(tmp_path / "bad.json")


def test_convert_and_dataset_agree(fixture_root, tmp_path):
    from mask2hand.data.dataset import MaskDataset

    root, truth = fixture_root
    split = {"train": np.arange(0, 8), "val": np.array([8, 9]), "test": np.array([10, 11])}
    split_file = save_split_file(split, tmp_path / "FreiHand_split_ids.json")
    out = convert_freihand(root, tmp_path / "fh", split_file=split_file)
    stored = open_dataset(out, verify=True)
    assert stored.card["generator"] == "freihand" and stored.card["counts"] == {"train": 8, "val": 2, "test": 2}
    np.testing.assert_array_equal(stored.split_indices("val"), [8, 9])
    data = FreiHand(root)
    for i in range(N):
        np.testing.assert_array_equal(stored.masks(i), data.mask(i))
    np.testing.assert_allclose(stored.arrays["vertices"], truth["verts"], atol=1e-7)

    direct = MaskDataset(root, split="test", split_file=split_file, distance_field=False)
    converted = MaskDataset(out, split="test", distance_field=False)
    assert len(direct) == len(converted) == 2
    for i in range(2):
        a, b = direct[i], converted[i]
        assert a.index == b.index == 10 + i
        for name in ("mask", "K", "joints", "vertices"):
            assert getattr(a, name).equal(getattr(b, name))
        assert a.params is None
