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


def _one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(Mask2HandError) as info:
        call(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


_GOOD = json.dumps(np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3).tolist())


def test_the_undamaged_file_of_the_damage_cases_reads(tmp_path):
    (tmp_path / "a.json").write_text(_GOOD)
    np.testing.assert_array_equal(read_number_array(tmp_path / "a.json", (4, 3)), np.arange(24.0).reshape(2, 4, 3))


@pytest.mark.parametrize("text, expected", [
    (_GOOD[:-9], "truncated"),  # cut inside a number
    (_GOOD[:-2], "truncated"),  # cut after an entry's last bracket
    (_GOOD[:-1] + ",", "truncated"),
    ("", "empty"),
    ("[]", "no entries"),
    ('{"K": []}', "does not start with '['"),
    ("[[[1,2],[3,4,5,6],[7,8,9],[10,11,12]]]", "not nested lists of shape [4, 3]"),  # ragged, 12 numbers
    ("[[[1,2,3],[4,5,6],[7,8,9]]]", "not nested lists of shape [4, 3]"),  # an entry of 3 joints
    ("[[[1,2,3],[4,5,6],[7,8,9],[10,11,12]],[1,2,3]]", "not nested lists of shape [4, 3]"),
    ("[[[1,2,3],[4,5,6],[7,8,9],[10,11,12]]]]", "not nested lists of shape [4, 3]"),
    ("[[[1,2,3],[4,5,6],[7,8,9],[10,11,12]]]0", "more after its last ']'"),
    ('[[[1,2,3],[4,"5",6],[7,8,9],[10,11,12]]]', "something other than numbers"),
    ("[[[1,2,3],[4,null,6],[7,8,9],[10,11,12]]]", "something other than numbers"),
    ("[[[1,2,3],[4,true,6],[7,8,9],[10,11,12]]]", "something other than numbers"),
    ("[[[1,2,3],[4,,6],[7,8,9],[10,11,12]]]", "something other than numbers"),
    ("[[[1,2,3],[4,5,],[7,8,9],[10,11,12]]]", "something other than numbers"),
    ("[[[1,2,3],[4,\u00e95,6],[7,8,9],[10,11,12]]]", "something other than numbers"),
    ("[[[1,2,3],[4,NaN,6],[7,8,9],[10,11,12]]]", "NaN"),
    ("[[[1,2,3],[4,-Infinity,6],[7,8,9],[10,11,12]]]", "NaN"),
])
def test_broken_annotation_files_are_clear_errors(tmp_path, monkeypatch, text, expected):
    file = tmp_path / "a.json"
    file.write_text(text, encoding="utf-8")
    for chunk in (freihand._CHUNK, 7):  # the same whether a block ends inside the damage or not
        monkeypatch.setattr(freihand, "_CHUNK", chunk)
        message = _one_line_error(read_number_array, file, (4, 3))
        assert expected in message and str(file) in message and "FreiHAND_pub_v2 again" in message


def test_values_beyond_float32_are_refused_for_float32(tmp_path):
    file = tmp_path / "a.json"
    file.write_text("[[1e300, 2, 3]]")
    assert read_number_array(file, (3,))[0, 0] == 1e300
    assert "out-of-range (float32)" in _one_line_error(read_number_array, file, (3,), np.float32)


def test_an_unreadable_annotation_file_is_a_clear_error(tmp_path):
    (tmp_path / "a.json").mkdir()
    assert "cannot read" in _one_line_error(read_number_array, tmp_path / "a.json", (3,))


@pytest.fixture
def own_root(tmp_path):
    root = tmp_path / "FreiHAND_pub_v2"
    write_freihand_fixture(root, n=3)
    return root


@pytest.mark.parametrize("name, shape", [("training_K.json", (3, 3)), ("training_xyz.json", (21, 3)),
                                         ("training_verts.json", (778, 3)), ("training_mano.json", (1, 61))])
def test_a_damaged_freihand_file_stops_reading_and_conversion(own_root, tmp_path, capsys, name, shape):
    from mask2hand import cli

    values = np.zeros((3, *shape))
    values[1].flat[0] = np.nan
    (own_root / name).write_text(json.dumps(values.tolist()))
    assert name in _one_line_error(FreiHand, own_root) and "NaN" in _one_line_error(FreiHand, own_root)
    assert cli.main(["synth", "freihand", "--root", str(own_root), "--out", str(tmp_path / "fh")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and not (tmp_path / "fh").exists()


def test_an_annotation_file_with_another_count_is_refused(own_root):
    (own_root / "training_verts.json").write_text(json.dumps(np.zeros((2, 778, 3)).tolist()))
    assert "training_verts.json has 2 entries, training_K.json 3" in _one_line_error(FreiHand, own_root)


def test_a_mask_of_another_size_is_refused(own_root):
    cv2.imwrite(str(own_root / "training" / "mask" / "00000001.jpg"), np.zeros((100, 120), np.uint8))
    data = FreiHand(own_root)
    data.mask(0)
    assert "is 120x100 pixels, not 224x224" in _one_line_error(data.mask, 1)


@pytest.mark.parametrize("content", [
    '{"train_ids": [0, 1.5], "test_ids": [2]}',
    '{"train_ids": [0, "1"], "test_ids": [2]}',
    '{"train_ids": [0, true], "test_ids": [2]}',
    '{"train_ids": [[0, 1]], "test_ids": [2]}',
    '{"train_ids": 3, "test_ids": [2]}',
    '{"train_ids": [0, 100000000000000000000000], "test_ids": [2]}',
    '["train_ids"]',
    "\xff\xfe not text",
])
def test_a_hostile_split_file_is_a_clear_error(tmp_path, content):
    file = tmp_path / "FreiHand_split_ids.json"
    file.write_bytes(content.encode("latin-1"))
    assert str(file) in _one_line_error(load_split_file, file, num_samples=3)
