"""Dataset folders: round trip, card, atomic writing, overwrite, damage detection."""

import json

import numpy as np
import pytest

from mask2hand.data.storage import (CARD_NAME, ArraySpec, DatasetWriter, open_dataset, pack_masks, unpack_masks,
                                    read_card)
from mask2hand.errors import Mask2HandError

SPECS = {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"), "pose_id": ArraySpec((), "int32")}


def _arrays(n, seed=0, size=(20, 30)):
    rng = np.random.default_rng(seed)
    return {"masks": rng.random((n, *size)) < 0.3, "K": rng.normal(size=(n, 3, 3)).astype(np.float32),
            "joints": rng.normal(size=(n, 21, 3)).astype(np.float32), "pose_id": np.arange(n, dtype=np.int32)}


def _write(path, n=10, seed=0, **kwargs):
    data = _arrays(n, seed)
    with DatasetWriter(path, n, (20, 30), SPECS, **kwargs) as writer:
        writer.write(0, **{k: v[:4] for k, v in data.items()})
        writer.write(4, **{k: v[4:] for k, v in data.items()})
        writer.write_extra("split_test", np.array([1, 3]))
        splits = {"a": {"start": 0, "stop": 4}, "b": {"ids_file": "split_test.npy"}}
        writer.finish({"generator": "test", "splits": splits})
    return data


def test_pack_unpack_round_trip_odd_width():
    masks = np.random.default_rng(1).random((3, 7, 13)) < 0.5
    packed = pack_masks(masks)
    assert packed.shape == (3, 7, 2) and packed.dtype == np.uint8
    np.testing.assert_array_equal(unpack_masks(packed, 13), masks.astype(np.uint8))


def test_round_trip_and_card(tmp_path):
    data = _write(tmp_path / "ds")
    ds = open_dataset(tmp_path / "ds", verify=True)
    assert len(ds) == 10 and ds.image_size == (20, 30)
    np.testing.assert_array_equal(ds.masks(slice(None)), data["masks"].astype(np.uint8))
    np.testing.assert_array_equal(ds.masks(5), data["masks"][5].astype(np.uint8))
    for name in ("K", "joints", "pose_id"):
        np.testing.assert_array_equal(ds.arrays[name], data[name])
    card = read_card(tmp_path / "ds")
    assert card["generator"] == "test" and card["num_samples"] == 10
    assert set(card["arrays"]) == {"masks", "K", "joints", "pose_id"}
    np.testing.assert_array_equal(ds.split_indices("a"), np.arange(4))
    np.testing.assert_array_equal(ds.split_indices("b"), [1, 3])
    with pytest.raises(Mask2HandError, match="no split"):
        ds.split_indices("c")
    # nothing but the dataset folder is left behind
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_same_content_gives_identical_bytes(tmp_path):
    _write(tmp_path / "a", seed=3)
    _write(tmp_path / "b", seed=3)
    _write(tmp_path / "c", seed=4)
    for name in ("masks", "K", "joints"):
        a, b, c = ((tmp_path / d / f"{name}.npy").read_bytes() for d in "abc")
        assert a == b and a != c


def test_exception_while_writing_publishes_nothing(tmp_path):
    data = _arrays(10)
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "ds", 10, (20, 30), SPECS) as writer:
            writer.write(0, **{k: v[:4] for k, v in data.items()})
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Mask2HandError):
        open_dataset(tmp_path / "ds")


def test_killed_write_leaves_nothing_that_loads(tmp_path):
    # a writer that never finishes (as if the process were killed): only a hidden partial folder exists
    data = _arrays(10)
    writer = DatasetWriter(tmp_path / "ds", 10, (20, 30), SPECS)
    writer.write(0, **{k: v[:4] for k, v in data.items()})
    (partial,) = list(tmp_path.iterdir())
    assert partial.name.startswith(".ds.partial-")
    assert not (tmp_path / "ds").exists()
    with pytest.raises(Mask2HandError, match="not a complete"):
        open_dataset(partial)
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_folder_without_card_or_with_damaged_files_is_refused(tmp_path):
    _write(tmp_path / "ds")
    (tmp_path / "ds" / CARD_NAME).rename(tmp_path / "ds" / "card.bak")
    with pytest.raises(Mask2HandError, match="not a complete"):
        open_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "card.bak").rename(tmp_path / "ds" / CARD_NAME)
    joints = np.load(tmp_path / "ds" / "joints.npy")
    joints[0, 0, 0] += 1
    np.save(tmp_path / "ds" / "joints.npy", joints)
    open_dataset(tmp_path / "ds")  # shapes still match
    with pytest.raises(Mask2HandError, match="checksum"):
        open_dataset(tmp_path / "ds", verify=True)
    np.save(tmp_path / "ds" / "joints.npy", joints[:5])
    with pytest.raises(Mask2HandError, match="shape"):
        open_dataset(tmp_path / "ds")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / CARD_NAME).write_text("{not json")
    with pytest.raises(Mask2HandError, match="JSON"):
        open_dataset(tmp_path / "bad")


def test_existing_folder_needs_overwrite(tmp_path):
    _write(tmp_path / "ds", seed=0)
    with pytest.raises(Mask2HandError, match="already exists"):
        _write(tmp_path / "ds", seed=1)
    data = _write(tmp_path / "ds", seed=1, overwrite=True)
    np.testing.assert_array_equal(open_dataset(tmp_path / "ds").arrays["K"], data["K"])
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]
    assert json.loads((tmp_path / "ds" / CARD_NAME).read_text())["num_samples"] == 10


def test_a_disk_without_room_is_one_line_before_anything_is_written(tmp_path, monkeypatch):
    """The arrays are sparse memory maps: the writer reserves their blocks first, so a full disk is a
    clear error (not a SIGBUS while writing) and no partial folder is left."""
    import errno
    import os

    def full(descriptor, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(Mask2HandError, match="not enough disk space for the dataset"):
        DatasetWriter(tmp_path / "set", 10, (8, 8), {"K": ArraySpec((3, 3), "float32")})
    assert sorted(p.name for p in tmp_path.iterdir()) == []
