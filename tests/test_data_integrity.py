"""Untrusted dataset folders: truncated or altered arrays, hostile cards, pickles, checksums on request,
and the temporary folders of killed or interrupted writes."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mask2hand.data.dataset import MaskDataset
from mask2hand.data.storage import (CARD_NAME, OWNER_NAME, ArraySpec, DatasetWriter, open_dataset,
                                    remove_stale_partials)
from mask2hand.errors import Mask2HandError

SIZE = (20, 30)
SPECS = {"K": ArraySpec((3, 3), "float32"), "joints": ArraySpec((21, 3), "float32"),
         "vertices": ArraySpec((5, 3), "float32"), "pose_id": ArraySpec((), "int32")}


def write_dataset(path, n=6, generator="synthetic-paper"):
    """A small dataset folder with every array MaskDataset reads, a range split and an ids-file split."""
    rng = np.random.default_rng(0)
    K = np.tile(np.array([[50.0, 0, 15], [0, 50.0, 10], [0, 0, 1]], np.float32), (n, 1, 1))
    with DatasetWriter(path, n, SIZE, SPECS) as writer:
        writer.write(0, masks=rng.random((n, *SIZE)) < 0.3, K=K,
                     joints=rng.normal(size=(n, 21, 3)).astype(np.float32),
                     vertices=rng.normal(size=(n, 5, 3)).astype(np.float32), pose_id=np.arange(n, dtype=np.int32))
        splits = {"train": {"start": 0, "stop": 4}, "test": {"ids_file": writer.write_extra("split_test", [4, 5])}}
        writer.finish({"generator": generator, "seed": 3, "splits": splits})
    return Path(path)


def error_of(call, *args, **kwargs) -> str:
    """The message of the Mask2HandError that call(*args, **kwargs) raises; it must be one line."""
    with pytest.raises(Mask2HandError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def edit_card(path, change):
    card = json.loads((path / CARD_NAME).read_text())
    change(card)
    (path / CARD_NAME).write_text(json.dumps(card))


# -- 1. sizes: checked whenever a folder is opened ----------------------------------------------------------

@pytest.mark.parametrize("name", ["masks", "K", "joints", "vertices", "pose_id"])
def test_a_truncated_array_is_refused_on_opening(tmp_path, name):
    path = write_dataset(tmp_path / "ds")
    file = path / f"{name}.npy"
    os.truncate(file, file.stat().st_size - 3)
    message = error_of(open_dataset, path)
    assert f"{name}.npy is truncated" in message and "mask2hand synth paper" in message and "--seed 3" in message
    error_of(MaskDataset, path)


def test_an_array_cut_inside_its_header_or_grown_is_refused(tmp_path):
    path = write_dataset(tmp_path / "ds", generator="freihand")
    os.truncate(path / "K.npy", 20)
    message = error_of(open_dataset, path)
    assert "K.npy is not a readable .npy array" in message and "synth freihand" in message
    path = write_dataset(tmp_path / "ds2")
    with open(path / "joints.npy", "ab") as fh:
        fh.write(b"\0" * 8)
    assert "joints.npy has 8 bytes more" in error_of(open_dataset, path)


def test_an_array_of_another_dtype_or_order_is_refused(tmp_path):
    path = write_dataset(tmp_path / "ds")
    joints = np.load(path / "joints.npy")
    np.save(path / "joints.npy", joints.astype(np.float64)[:, :, :])
    assert "has shape" in error_of(open_dataset, path)
    # same bytes per element, same shape, but transposed on reading
    np.save(path / "joints.npy", np.asfortranarray(joints))
    assert "Fortran order" in error_of(open_dataset, path)


# -- 2. checksums: on request, from Python and through MaskDataset -------------------------------------------

def flip_a_byte(file):
    data = bytearray(file.read_bytes())
    data[-1] ^= 1
    file.write_bytes(bytes(data))


def test_same_size_corruption_is_found_with_verify_through_every_entry_point(tmp_path):
    path = write_dataset(tmp_path / "ds")
    flip_a_byte(path / "vertices.npy")
    MaskDataset(path)  # the sizes are right: opening alone cannot tell
    for call in (lambda: open_dataset(path, verify=True), lambda: MaskDataset(path, split="train", verify=True),
                 lambda: MaskDataset(open_dataset(path), verify=True)):
        message = error_of(call)
        assert "vertices.npy does not match its SHA-256 checksum" in message and "generate it again" in message


def test_verify_covers_the_split_files(tmp_path):
    path = write_dataset(tmp_path / "ds")
    np.save(path / "split_test.npy", np.array([5, 4]))
    np.testing.assert_array_equal(open_dataset(path).split_indices("test"), [5, 4])
    assert "split_test.npy does not match" in error_of(open_dataset, path, verify=True)


def test_verify_of_freihands_own_layout_is_refused(tmp_path):
    (tmp_path / "training_K.json").write_text("[]")
    assert "no checksums" in error_of(MaskDataset, tmp_path, verify=True)


# -- hostile cards and files ---------------------------------------------------------------------------------

@pytest.mark.parametrize("change, expected", [
    (lambda c: c["arrays"]["K"].update(file="../K.npy"), "not a .npy file inside the folder"),
    (lambda c: c["arrays"]["K"].update(file="/etc/hostname"), "not a .npy file inside the folder"),
    (lambda c: c["arrays"]["K"].update(dtype="object"), "not a number type"),
    (lambda c: c["arrays"]["K"].update(dtype="no such type"), "not a number type"),
    (lambda c: c["arrays"]["K"].update(shape=[6, "3", 3]), "not a list of positive whole numbers"),
    (lambda c: c["arrays"]["K"].update(shape=[5, 3, 3]), "5 rows for 6 samples"),
    (lambda c: c["arrays"]["masks"].update(shape=[6, 20, 3]), "masks are not uint8"),
    (lambda c: c.update(num_samples="6"), "positive whole numbers"),
    (lambda c: c.update(image_size=[20]), "positive whole numbers"),
    (lambda c: c.update(format_version="1"), "not a whole number"),
    (lambda c: c["arrays"].pop("vertices"), "no 'vertices' array"),
])
def test_a_hostile_card_is_refused(tmp_path, change, expected):
    path = write_dataset(tmp_path / "ds")
    edit_card(path, change)
    assert expected in error_of(MaskDataset, path)


def test_an_array_of_another_per_sample_shape_is_refused_by_mask_dataset(tmp_path):
    with DatasetWriter(tmp_path / "ds", 2, SIZE, {**SPECS, "K": ArraySpec((2, 2), "float32")}) as writer:
        writer.write(0, masks=np.zeros((2, *SIZE), bool), K=np.zeros((2, 2, 2)), joints=np.zeros((2, 21, 3)),
                     vertices=np.zeros((2, 5, 3)), pose_id=np.zeros(2))
        writer.finish({"generator": "test"})
    open_dataset(tmp_path / "ds")  # a valid folder, not one MaskDataset can read
    message = error_of(MaskDataset, tmp_path / "ds")
    assert "'K' has per-sample shape (2, 2), expected (3, 3)" in message and "write the dataset again" in message


@pytest.mark.parametrize("splits, expected", [
    ({"train": {"start": -2, "stop": 4}}, "not a range of sample ids"),
    ({"train": {"start": 0, "stop": 7}}, "not a range of sample ids"),
    ({"train": {"ids_file": "../split_test.npy"}}, "is missing"),
    ({"train": {"ids_file": "K.npy"}}, "does not hold sample ids"),
])
def test_a_hostile_split_is_refused(tmp_path, splits, expected):
    path = write_dataset(tmp_path / "ds")
    edit_card(path, lambda c: c.update(splits=splits))
    assert expected in error_of(MaskDataset, path, split="train")


def test_a_split_file_with_ids_outside_the_folder_is_refused(tmp_path):
    path = write_dataset(tmp_path / "ds")
    np.save(path / "split_test.npy", np.array([4, 6]))
    assert "does not hold sample ids in [0, 6)" in error_of(MaskDataset, path, split="test")


class _Payload:
    """Pickling this object stores a call that creates `marker` when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickles_are_never_loaded(tmp_path):
    path = write_dataset(tmp_path / "ds")
    marker = tmp_path / "unpickled"
    hostile = np.array([_Payload(marker)] * 6, dtype=object)
    np.save(path / "split_test.npy", hostile, allow_pickle=True)
    assert "split_test.npy is not a readable .npy array" in error_of(MaskDataset, path, split="test")
    np.save(path / "pose_id.npy", hostile, allow_pickle=True)
    assert "pose_id.npy has shape (6,) object" in error_of(open_dataset, path)
    edit_card(path, lambda c: c["arrays"]["pose_id"].update(dtype="object"))
    assert "not a number type" in error_of(open_dataset, path)
    assert not marker.exists()


# -- 3. temporary folders of killed and interrupted writes ---------------------------------------------------

def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def killed_write(path, owner=None):
    """The temporary folder a write killed mid-way leaves (its owner note replaced by `owner`, if given)."""
    writer = DatasetWriter(path, 4, SIZE, SPECS)
    if owner is not None:
        (writer.tmp / OWNER_NAME).write_text(json.dumps(owner))
    return writer.tmp


def test_the_next_write_removes_a_killed_writes_folder_only(tmp_path):
    host = socket.gethostname()
    running = killed_write(tmp_path / "ds")  # this process: still writing
    elsewhere = killed_write(tmp_path / "ds", {"host": host + "-other", "pid": dead_pid()})
    no_note = killed_write(tmp_path / "ds")
    (no_note / OWNER_NAME).unlink()  # a folder made this instant, or by an older mask2hand
    stale = killed_write(tmp_path / "ds", {"host": host, "pid": dead_pid()})
    other_target = killed_write(tmp_path / "other", {"host": host, "pid": dead_pid()})
    assert all(p.is_dir() for p in (stale, running, elsewhere, no_note, other_target))

    write_dataset(tmp_path / "ds")
    assert not stale.exists()
    assert all(p.is_dir() for p in (running, elsewhere, no_note, other_target))
    assert not (tmp_path / "ds" / OWNER_NAME).exists()  # the published folder holds no note
    open_dataset(tmp_path / "ds", verify=True)


def test_stale_folders_look_alike_but_not_ours_are_kept(tmp_path):
    note = json.dumps({"host": socket.gethostname(), "pid": dead_pid()})
    for name in (".ds.partial-xyz", ".ds.partial-0123abcd.bak", ".dsx.partial-0123abcd", "ds.partial-0123abcd"):
        (tmp_path / name).mkdir()
        (tmp_path / name / OWNER_NAME).write_text(note)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / OWNER_NAME).write_text(note)
    (tmp_path / ".ds.partial-0123abcd").symlink_to(target, target_is_directory=True)
    assert remove_stale_partials(tmp_path / "ds") == []
    assert (target / OWNER_NAME).exists() and len(list(tmp_path.iterdir())) == 6
    for pid in (0, -1, 2 ** 80, "1", True):
        (tmp_path / ".ds.partial-00000000").mkdir(exist_ok=True)
        (tmp_path / ".ds.partial-00000000" / OWNER_NAME).write_text(
            json.dumps({"host": socket.gethostname(), "pid": pid}))
        removed = remove_stale_partials(tmp_path / "ds")
        assert removed == ([tmp_path / ".ds.partial-00000000"] if pid == 2 ** 80 else []), pid


def test_an_interrupt_while_the_writer_opens_leaves_nothing(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "open_memmap", interrupted)
    with pytest.raises(KeyboardInterrupt):
        DatasetWriter(tmp_path / "ds", 4, SIZE, SPECS)
    assert list(tmp_path.iterdir()) == []


class _Unhandled(Exception):
    """Raised by the test's own SIGTERM handler: the command installed none."""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_synth_removes_its_temporary_folder(tmp_path, monkeypatch, capsys, signum):
    from mask2hand import cli

    original_write = DatasetWriter.write

    def write_then_signal(self, *args, **kwargs):
        original_write(self, *args, **kwargs)
        assert self.tmp.is_dir()
        os.kill(os.getpid(), signum)

    def unhandled(*args):
        raise _Unhandled

    monkeypatch.setattr(DatasetWriter, "write", write_then_signal)
    previous = signal.signal(signal.SIGTERM, unhandled)  # without this, an unhandled TERM would end pytest
    try:
        code = cli.main(["synth", "paper", "--out", str(tmp_path / "p"), "--train-poses", "1", "--test-poses", "1",
                         "--views", "1"])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
