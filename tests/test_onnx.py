"""ONNX export and the torch-free runtime: parity with PyTorch, metadata, predict without torch, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from mask2hand import cli  # noqa: E402
from mask2hand.utils.dataclass_config import dataclass_from_dict, to_dict  # noqa: E402
from mask2hand.errors import Mask2HandError  # noqa: E402
from mask2hand.utils.files import file_sha256  # noqa: E402
from mask2hand.nn import Mask2HandNet, NetConfig  # noqa: E402
from mask2hand.export.onnx import check_parity, export_onnx, synthetic_check_inputs  # noqa: E402
from mask2hand.inference.onnx_runner import OnnxRunner  # noqa: E402
from mask2hand.inference.api import Mask2Hand  # noqa: E402
from mask2hand.render import rasterize_silhouette  # noqa: E402
from mask2hand.render.exact import mask_iou  # noqa: E402
from tiny_model import TINY, write_tiny_weights  # noqa: E402

EXAMPLES = Path(__file__).parent.parent / "examples"
TOLERANCE_M = 1e-4
# the other branches of the network: axis-angle rotation and finger pose, no shape head, no RefineNet
VARIANT = dict(rotation="axis_angle", pose_space="axis_angle", num_pose_pcs=45, predict_shape=False, refine=False)

# Runs a command with torch and torchvision hidden from imports, then reports whether torch was loaded.
TORCH_FREE_RUNNER = """
import importlib.abc, sys
class HideTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(name + " is hidden for this test")
sys.meta_path.insert(0, HideTorch())
from mask2hand.cli import main
code = main(sys.argv[1:])
print("TORCH_LOADED=" + str("torch" in sys.modules))
sys.exit(code)
"""


def tiny_network(seed: int = 0, **changes) -> Mask2HandNet:
    torch.manual_seed(seed)
    return Mask2HandNet(NetConfig(**{**TINY, **changes})).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(network, path) of the tiny network exported from a weights file."""
    folder = tmp_path_factory.mktemp("onnx")
    weights = write_tiny_weights(folder / "tiny.pt", seed=3)
    result = export_onnx(weights, folder / "tiny.onnx")
    return result.network, result.path, weights


def test_export_matches_pytorch_within_tolerance(exported):
    network, path, _ = exported
    report = check_parity(network, path, count=12, batch_size=6)
    assert report.max_vertex_diff_m <= TOLERANCE_M and report.max_joint_diff_m <= TOLERANCE_M
    assert report.max_param_diff <= 1e-4
    assert report.silhouette_pixel_mismatch == 0.0  # the traced rasterizer gives the exact pixels


def test_variant_network_exports_and_matches(tmp_path):
    network = tiny_network(seed=1, **VARIANT)
    weights_before = {k: v.clone() for k, v in network.state_dict().items()}
    network.train()
    result = export_onnx(network, tmp_path / "variant.onnx")
    assert network.training  # the network is left as it was
    assert all(torch.equal(v, weights_before[k]) for k, v in network.state_dict().items())
    outputs = OnnxRunner(result.path).output_names
    assert "pose_pcs" not in outputs and "pose" in outputs
    report = check_parity(network.eval(), result.path, count=6)
    assert report.passes(TOLERANCE_M)


def test_graph_silhouette_is_the_exact_rasterizer(exported):
    network, path, _ = exported
    runner = OnnxRunner(path)
    masks, K = synthetic_check_inputs(network.hand, 6, runner.input_size, seed=5)
    assert masks.mean(axis=(1, 2)).min() > 0.02  # real hands, not empty images
    outputs = runner.run_graph(masks, K)
    with torch.no_grad():
        prelim = network.preliminary(torch.as_tensor(masks)[:, None], torch.as_tensor(K))
    exact = rasterize_silhouette(prelim.vertices, network.hand.faces, K, (runner.input_size,) * 2)
    assert exact.any(axis=(1, 2)).all()
    assert mask_iou(outputs["silhouette"] > 0.5, exact).min() == 1.0


def test_metadata_round_trip(exported):
    import onnx

    network, path, weights = exported
    runner = OnnxRunner(path)
    assert runner.hand_identity == network.hand.identity
    assert runner.flat_hand_mean == network.hand.flat_hand_mean
    assert runner.input_size == network.config.input_size
    assert runner.input_crop == getattr(network.config, "input_crop", None)
    assert np.array_equal(runner.faces, network.hand.faces.numpy())
    assert dataclass_from_dict(NetConfig, runner.network_config) == network.config
    assert runner.metadata["source"]["sha256"] == file_sha256(weights)
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    assert json.loads(props["mask2hand.network"]) == to_dict(network.config)
    # the batch axis is dynamic
    masks, K = synthetic_check_inputs(network.hand, 3, runner.input_size, seed=1)
    assert runner.run_graph(masks, K)["vertices"].shape == (3, network.hand.num_vertices, 3)
    assert runner.run_graph(masks[:1], K[:1])["joints"].shape == (1, 21, 3)


def test_mask2hand_from_onnx_matches_the_network_on_a_file(exported):
    network, path, _ = exported
    model = Mask2Hand.from_onnx(path)
    item = model.prepare(EXAMPLES / "open_palm.png")
    raw = model.run_network([item])
    with torch.inference_mode():
        out = network(torch.as_tensor(item.mask.model_input[None]), torch.as_tensor(item.model_camera.K[None]).float(),
                      exact_silhouette=True)
    assert np.abs(raw.vertices - out.final_vertices.numpy()).max() <= TOLERANCE_M
    prediction = model.finish([item], raw)[0]
    assert prediction.joints.shape == (21, 3) and prediction.joints_2d.shape == (21, 2)
    assert prediction.model["format"] == "mask2hand-onnx" and prediction.hand["name"] == network.hand.name


@pytest.mark.slow
def test_cli_export_and_torch_free_predict(exported, tmp_path):
    _, _, weights = exported
    model_path = tmp_path / "model.onnx"
    assert cli.main(["export-onnx", str(weights), str(model_path), "--check", "4"]) == 0
    assert model_path.is_file()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", TORCH_FREE_RUNNER, "predict", "--runtime", "onnx", "--model",
                           str(model_path), str(EXAMPLES / "open_palm.png"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "TORCH_LOADED=False" in proc.stdout
    for suffix in ("obj", "ply", "json", "png"):
        assert (out / f"open_palm.{suffix}").is_file()
    result = json.loads((out / "open_palm.json").read_text())
    assert np.asarray(result["joints"]).shape == (21, 3) and 0.0 <= result["iou"] <= 1.0


def test_failed_check_writes_nothing(exported, tmp_path, capsys):
    _, _, weights = exported
    model_path = tmp_path / "model.onnx"
    # no float32 graph matches PyTorch to 1e-12 m: the check must fail and leave no file
    assert cli.main(["export-onnx", str(weights), str(model_path), "--check", "2", "--tolerance", "1e-12"]) == 1
    assert not model_path.exists() and list(tmp_path.iterdir()) == []
    assert "was not written" in capsys.readouterr().err


def test_bad_onnx_files_give_clear_errors(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(Mask2HandError, match="ONNX model not found"):
        OnnxRunner(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    with pytest.raises(Mask2HandError, match="not a readable ONNX model"):
        Mask2Hand.from_onnx(garbage)
    foreign = tmp_path / "foreign.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    with pytest.raises(Mask2HandError, match="not a mask2hand export"):
        OnnxRunner(foreign)
    # the CLI: one line, exit status 2
    code = cli.main(["predict", "--runtime", "onnx", "--model", str(garbage), str(EXAMPLES / "fist.png"),
                     "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "not a readable ONNX model" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["predict", "--runtime", "torch", "--model", str(garbage), str(EXAMPLES / "fist.png"),
                     "--out", str(tmp_path / "o")]) == 2
    assert "--model is an ONNX file" in capsys.readouterr().err
