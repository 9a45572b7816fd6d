"""Inputs that gave a traceback or a flood of lines now give one line that names them: a PNG
named .npy, a checkpoint of another architecture; a TIFF stack whose pages differ in size is
predicted with its animation and summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mask2hand.cli import main as cli_main
from tiny_model import blob_mask, save_mask_png, write_tiny_weights


def _error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line]


def test_a_png_named_npy_is_not_advised_to_be_unpickled(weights, tmp_path, capsys):
    save_mask_png(tmp_path / "png.png", blob_mask())
    (tmp_path / "picture.npy").write_bytes((tmp_path / "png.png").read_bytes())
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    code = cli_main(["predict", str(tmp_path / "picture.npy"), str(tmp_path / "objects.npy"), "--out",
                     str(tmp_path / "out"), "--checkpoint", str(weights), "--no-figure"])
    lines = _error_lines(capsys)
    assert code == 2 and len(lines) == 2
    assert "picture.npy" in lines[0] and "header" in lines[0]
    assert "objects.npy" in lines[1] and "Python objects" in lines[1]
    assert not any("allow_pickle" in line or "pickle.load" in line for line in lines)


def test_a_checkpoint_of_another_architecture_is_one_short_line(weights, tmp_path, capsys):
    payload = torch.load(weights, weights_only=False)
    payload["network"]["backbone_width"] = 0.25  # the file says one network, holds another's weights
    torch.save(payload, tmp_path / "other.pt")
    save_mask_png(tmp_path / "m.png", blob_mask())
    code = cli_main(["predict", str(tmp_path / "m.png"), "--out", str(tmp_path / "out"), "--checkpoint",
                     str(tmp_path / "other.pt"), "--no-figure"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and len(err) < 500, err[:2000]
    assert "other.pt" in lines[0] and "another architecture" in lines[0] and "of another shape" in lines[0]


def test_a_tiff_stack_of_different_page_sizes_gets_its_animation_and_summary(weights, tmp_path, capsys):
    pages = [Image.fromarray(blob_mask(96, 96).astype(np.uint8) * 255),
             Image.fromarray(blob_mask(80, 120).astype(np.uint8) * 255),
             Image.fromarray(blob_mask(96, 96).astype(np.uint8) * 255)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    code = cli_main(["predict", str(tmp_path / "stack.tif"), "--sequence", "--out", str(tmp_path / "out"),
                     "--checkpoint", str(weights), "--no-figure", "--focal", "200", "--no-smoothing"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 3 and (tmp_path / "out" / summary["animation"]).is_file()
    with Image.open(tmp_path / "out" / summary["animation"]) as gif:
        assert gif.n_frames == 3


def _onnx_with_metadata(path: Path, **changes) -> Path:
    """A small ONNX model carrying the shipped export's metadata with `changes` (values as JSON text)."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    from mask2hand.inference.onnx_runner import METADATA_PREFIX
    from mask2hand.nn.pretrained import DEFAULT_MODEL, shipped_onnx_path

    shipped = onnxruntime.InferenceSession(str(shipped_onnx_path(DEFAULT_MODEL)), providers=["CPUExecutionProvider"])
    metadata = dict(shipped.get_modelmeta().custom_metadata_map)
    metadata.update({METADATA_PREFIX + key: text for key, text in changes.items()})
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    helper.set_model_props(model, metadata)
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("entry, text", [
    ("input_size", '"abc"'), ("input_size", "200000"), ("input_crop", "NaN"),
    ("network", '{"backbone": {"nested": [1, 2]}}'), ("network", "[" * 5000 + "]" * 5000),
    ("hand", '"open"'), ("faces", '[[0, 1]]'),
])
def test_odd_onnx_metadata_blames_the_model_file_once(entry, text, tmp_path, capsys):
    model = _onnx_with_metadata(tmp_path / "odd.onnx", **{entry: text})
    masks = [str(save_mask_png(tmp_path / f"m{i}.png", blob_mask())) for i in range(2)]
    code = cli_main(["predict", *masks, "--model", str(model), "--out", str(tmp_path / "out"), "--no-figure"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert "odd.onnx" in lines[0] and len(lines[0]) < 400


DEEP = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize("recipe, overrides", [
    ("train: {lr: " + DEEP + "}\n", []),
    (None, ["--set", "train.lr=" + DEEP]),
    (None, ["--set", "train.lr=[unclosed"]),
    (None, ["--set", "train.lr=" + "9" * 5000]),
    ("train: {lr: " + "9" * 5000 + "}\n", []),
])
def test_a_deeply_nested_or_broken_recipe_is_one_line(recipe, overrides, tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(recipe or "name: odd\n")
    code = cli_main(["train", str(path), *overrides, "--out", str(tmp_path / "run")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert ("recipe.yaml" in lines[0] or "train.lr" in lines[0]) and len(lines[0]) < 400


def test_a_deeply_nested_or_odd_dataset_card_is_one_line(tmp_path):
    from dataclasses import replace

    from mask2hand.data.dataset import MaskDataset
    from mask2hand.data.storage import open_dataset
    from mask2hand.data.synthetic import NaturalCorpus, generate_natural
    from mask2hand.errors import Mask2HandError

    folder = Path(generate_natural(tmp_path / "set", seed=0, corpus=replace(NaturalCorpus(), train=2, val=0, test=0)))
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "generator": [1]}))  # a note, not a setting
    assert MaskDataset(folder, split="train", distance_field=False)[0].mask.shape[-1] == card["image_size"][1]
    (folder / "card.json").write_text(DEEP)
    with pytest.raises(Mask2HandError, match="card.json"):
        open_dataset(folder)


@pytest.mark.parametrize("options, text", [
    (["paper", "--seed", "-1"], "--seed must be a non-negative"),
    (["paper", "--view-seed", "-3"], "--view-seed must be a non-negative"),
    (["broad", "--view-seed", "2"], "for `synth paper` only"),
])
def test_a_bad_synth_seed_is_one_line_before_any_mask(options, text, tmp_path, capsys):
    code = cli_main(["synth", *options, "--out", str(tmp_path / "set"), "--train-poses", "1", "--test-poses", "0",
                     "--count", "1", "--val-count", "0", "--test-count", "0"])
    lines = _error_lines(capsys)
    assert code == 2 and len(lines) == 1 and text in lines[0]
    assert not (tmp_path / "set").exists()
