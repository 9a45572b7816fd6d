"""Files from elsewhere cannot run code: checkpoints and weights are read weights-only, the MANO
unpickler resolves only the globals a MANO file needs, and a hand model path stored in a
weights file is never opened. Every hostile file here carries a payload that would create a
marker file; each test checks that loading refuses the file with one Mask2HandError and that
the marker never appears."""

import io
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mask2hand import Mask2Hand, Mask2HandError
from mask2hand.cli import main as cli_main
from mask2hand.hand import load_hand_model
from mask2hand.nn.checkpoint import CHECKPOINT_FORMAT, WEIGHTS_FORMAT, export_weights, load_network, read_file
from tiny_model import blob_mask, save_mask_png, write_tiny_weights


class EvalPayload:
    """Unpickles by calling builtins.eval on code that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)


class SystemPayload:
    """Unpickles by calling os.system (pickled as posix.system) to create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def os_system_pickle(marker: Path) -> bytes:
    """A hand-written protocol-0 pickle naming the global `os.system` itself."""
    return f"cos\nsystem\n(S'touch {marker}'\ntR.".encode()


def hostile_checkpoint(marker: Path, fmt: str = CHECKPOINT_FORMAT) -> dict:
    """A payload that passes for a mask2hand file, with the code to run hidden in a nested value."""
    return {"format": fmt, "version": 1, "network": {}, "hand": {"name": "open"},
            "model": {}, "training": {"notes": [EvalPayload(marker)]}}


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def hostile_files(tmp_path, marker) -> dict[str, Path]:
    """A torch-format .pt and plain pickles (protocols 2 and 4), each hiding an eval payload."""
    torch_file = tmp_path / "hostile.pt"
    torch.save(hostile_checkpoint(marker), torch_file)
    files = {"torch": torch_file}
    for protocol in (2, 4):
        files[f"pickle{protocol}"] = tmp_path / f"hostile-p{protocol}.pt"
        files[f"pickle{protocol}"].write_bytes(pickle.dumps(hostile_checkpoint(marker), protocol=protocol))
    return files


def test_hostile_files_really_carry_a_payload(hostile_files, marker):
    """The control: loading these files the way mask2hand once did (weights_only=False, or a
    plain pickle) runs the payload, so the tests below would catch that loader."""
    torch.load(hostile_files["torch"], weights_only=False)
    assert marker.exists()
    marker.unlink()
    pickle.loads(hostile_files["pickle2"].read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("kind", ["torch", "pickle2", "pickle4"])
def test_checkpoint_with_a_payload_is_refused_without_running_it(hostile_files, marker, kind):
    with pytest.raises(Mask2HandError, match="nothing in it ran") as info:
        read_file(hostile_files[kind])
    assert "\n" not in str(info.value) and "weights_only=False" not in str(info.value)
    assert not marker.exists()


def test_every_checkpoint_entry_point_refuses_the_payload(hostile_files, marker, tmp_path, capsys):
    path = hostile_files["torch"]
    with pytest.raises(Mask2HandError, match="eval"):
        load_network(path)
    with pytest.raises(Mask2HandError, match="eval"):
        Mask2Hand.from_pretrained(path)
    mask = save_mask_png(tmp_path / "m.png", blob_mask())
    for argv in (["eval", str(path), f"{tmp_path}:test"],
                 ["predict", str(mask), "--out", str(tmp_path / "out"), "--checkpoint", str(path)],
                 ["export-onnx", str(path), str(tmp_path / "m.onnx")]):
        code = cli_main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and any("nothing in it ran" in line for line in err), (argv, err)
    assert not marker.exists()


def test_weights_file_with_payload_in_model_entry_is_refused(tmp_path, marker):
    path = tmp_path / "w.pt"
    torch.save({"format": WEIGHTS_FORMAT, "version": 1, "network": {}, "hand": {},
                "model": {"encoder.weight": SystemPayload(marker)}}, path)
    with pytest.raises(Mask2HandError, match="posix.system"):
        read_file(path)
    assert not marker.exists()


def test_malformed_payload_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.pt"
    torch.save({"format": WEIGHTS_FORMAT, "version": 1, "network": "open", "hand": {}, "model": {}}, path)
    with pytest.raises(Mask2HandError, match="damaged"):
        read_file(path)
    torch.save({"format": WEIGHTS_FORMAT, "version": "2", "network": {}, "hand": {}, "model": {}}, path)
    with pytest.raises(Mask2HandError, match="newer mask2hand"):
        read_file(path)


def test_files_mask2hand_writes_load_weights_only(tmp_path):
    from mask2hand.nn.pretrained import shipped_weights_path

    shipped = read_file(shipped_weights_path())
    assert shipped["format"] == WEIGHTS_FORMAT and shipped["model"]
    path = write_tiny_weights(tmp_path / "tiny.pt")
    summary = {"torch": torch.__version__, "loss": np.float32(1.5), "steps": np.int64(7), "shape": (2, 3)}
    export_weights(read_file(path), tmp_path / "w.pt", training_summary=summary)
    training = torch.load(tmp_path / "w.pt", weights_only=True)["training"]  # no extra globals
    assert training == {"torch": str(torch.__version__), "loss": 1.5, "steps": 7, "shape": [2, 3]}


def test_rng_state_is_stored_as_plain_values_and_restores_exactly():
    from mask2hand.train.rng_state import rng_state, set_rng_state

    np.random.seed(11)
    np.random.normal()  # leaves a cached gaussian in numpy's legacy state
    random.seed(5)
    torch.manual_seed(3)
    buffer = io.BytesIO()
    torch.save(rng_state(), buffer)
    expected = (np.random.normal(size=4), np.random.randint(0, 10**9, size=4), random.random(), torch.rand(4))
    buffer.seek(0)
    set_rng_state(torch.load(buffer, weights_only=True))
    again = (np.random.normal(size=4), np.random.randint(0, 10**9, size=4), random.random(), torch.rand(4))
    assert np.array_equal(expected[0], again[0]) and np.array_equal(expected[1], again[1])
    assert expected[2] == again[2] and torch.equal(expected[3], again[3])


# ------------------------------------------------------------------------------- MANO
def nested_in_dict(payload) -> bytes:
    return pickle.dumps({"v_template": np.zeros((2, 3)), "extra": {"deeper": [payload]}}, protocol=2)


def nested_in_array(payload) -> bytes:
    return pickle.dumps({"weights": np.array([payload, 1.0], dtype=object)}, protocol=2)


@pytest.mark.parametrize("build, refused", [
    (lambda marker: os_system_pickle(marker), "os.system"),
    (lambda marker: pickle.dumps(SystemPayload(marker), protocol=2), "posix.system"),
    (lambda marker: pickle.dumps(EvalPayload(marker), protocol=2), "__builtin__.eval"),  # protocol 2's name
    (lambda marker: pickle.dumps(EvalPayload(marker), protocol=4), "builtins.eval"),
    (lambda marker: nested_in_dict(SystemPayload(marker)), "posix.system"),
    (lambda marker: nested_in_dict(EvalPayload(marker)), "__builtin__.eval"),
    (lambda marker: nested_in_array(EvalPayload(marker)), "__builtin__.eval"),
    (lambda marker: pickle.dumps({"x": io.BytesIO(b"")}, protocol=2), "_io.BytesIO"),
], ids=["os.system", "posix.system", "eval-p2", "eval-p4", "system-in-dict", "eval-in-dict", "eval-in-array",
        "harmless-but-unlisted"])
def test_mano_file_naming_another_global_is_refused(tmp_path, marker, build, refused):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(build(marker))
    with pytest.raises(Mask2HandError, match=f"'{refused}'") as info:
        load_hand_model("mano", path=path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_mano_file_asking_for_another_codec_is_refused(tmp_path):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x05\x00\x00\x00rot13\x86R.")
    with pytest.raises(Mask2HandError, match="rot13"):
        load_hand_model("mano", path=path)


def test_mano_payload_is_refused_through_the_environment_and_synth(tmp_path, marker, monkeypatch, capsys):
    path = tmp_path / "MANO_RIGHT.pkl"
    path.write_bytes(nested_in_dict(SystemPayload(marker)))
    monkeypatch.setenv("MANO_RIGHT_PATH", str(path))
    with pytest.raises(Mask2HandError, match="posix.system"):
        load_hand_model("mano")
    code = cli_main(["synth", "broad", "--hand", "mano", "--out", str(tmp_path / "data"), "--count", "4",
                     "--val-count", "2", "--test-count", "2"])
    assert code == 2 and "posix.system" in capsys.readouterr().err
    assert not marker.exists()


def test_mano_fixture_still_loads(mano_path):
    hand = load_hand_model("mano", path=mano_path)
    assert hand.v_template.shape == (778, 3)


# ----------------------------------------------------- a hand model path inside a file
def weights_naming_a_mano_file(tmp_path: Path, mano_path: Path, stored: Path) -> Path:
    """A MANO-trained weights file whose network config names `stored` as the MANO file
    (as an older mask2hand wrote, or a crafted file would)."""
    path = write_tiny_weights(tmp_path / "mano.pt", hand_model="mano", hand_model_path=str(mano_path))
    payload = read_file(path)
    payload["network"]["hand_model_path"] = str(stored)
    torch.save(payload, path)
    return path


def test_hand_model_path_inside_a_weights_file_is_never_opened(tmp_path, mano_path, monkeypatch):
    import mask2hand.hand.mano as mano

    opened = []
    real = mano.load_mano_data
    monkeypatch.setattr(mano, "load_mano_data", lambda path=None, **kw: opened.append(path) or real(path, **kw))
    monkeypatch.delenv("MANO_RIGHT_PATH", raising=False)
    path = weights_naming_a_mano_file(tmp_path, mano_path, stored=mano_path)
    opened.clear()
    with pytest.raises(Mask2HandError, match="no MANO model file given"):
        load_network(path)
    with pytest.raises(Mask2HandError, match="no MANO model file given"):
        Mask2Hand.from_pretrained(path)
    assert opened == [None, None]  # the loader asked for the user's file, not the stored one
    net, _ = load_network(path, mano_path=mano_path)
    assert net.hand.name == "mano" and opened[-1] == str(mano_path)
    monkeypatch.setenv("MANO_RIGHT_PATH", str(mano_path))
    net, _ = load_network(path)
    assert net.hand.name == "mano" and opened[-1] is None


def test_weights_files_do_not_keep_the_mano_path(tmp_path, mano_path):
    path = write_tiny_weights(tmp_path / "mano.pt", hand_model="mano", hand_model_path=str(mano_path))
    assert torch.load(path, weights_only=True)["network"]["hand_model_path"] is None


def test_mano_file_with_the_right_keys_but_wrong_contents_is_one_clear_error(tmp_path):
    from mano_fixture import fake_mano_arrays

    arrays = fake_mano_arrays(0)
    for key, value in (("J_regressor", {"not": "an array"}), ("v_template", np.float64(1.0)),
                       ("kintree_table", np.zeros(3)), ("weights", "text")):
        path = tmp_path / f"{key}.pkl"
        path.write_bytes(pickle.dumps({**arrays, key: value}, protocol=2))
        with pytest.raises(Mask2HandError, match="MANO") as info:
            load_hand_model("mano", path=path)
        assert "\n" not in str(info.value)
