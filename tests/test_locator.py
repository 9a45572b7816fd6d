"""The hand locator: window codes, the in-graph crop and its intrinsics, a dataset's hand windows,
training that finds the hand on an arm, and a located network through predict and ONNX."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mask2hand import Mask2HandError
from mask2hand.export.prediction import prediction_json
from mask2hand.nn import Mask2HandNet, NetConfig
from mask2hand.nn.locator import code_to_window, crop_windows, window_to_code
from mask2hand.train.config import load_config
from mask2hand.train.loop import Trainer


def test_codes_and_windows_are_inverse():
    windows = torch.tensor([[10.0, 20.0, 50.0], [-5.0, 30.0, 140.0]])
    np.testing.assert_allclose(code_to_window(window_to_code(windows, 128), 128), windows, rtol=1e-6, atol=1e-4)
    # the code 0 is the whole input: a mask without an arm is its own hand's window
    np.testing.assert_allclose(code_to_window(torch.zeros(1, 3), 128), [[0.0, 0.0, 128.0]])


def test_a_crop_cuts_the_window_and_moves_the_intrinsics_with_it():
    mask = torch.zeros(1, 1, 128, 128)
    mask[0, 0, 40:56, 60:76] = 1  # a 16 x 16 square
    K = torch.tensor([[[150.0, 0, 64], [0, 150.0, 64], [0, 0, 1]]])
    window = torch.tensor([[52.0, 32.0, 32.0]])  # the square's center is the window's
    crops, K_crop = crop_windows(mask, K, window, 64)
    inside = crops[0, 0] >= 0.5
    rows, cols = np.nonzero(inside.numpy())
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 47, 16, 47)  # 2x: 32 x 32 in the middle
    point = torch.tensor([0.01, -0.02, 0.5])
    uv = K[0] @ point
    uv_crop = K_crop[0] @ point
    np.testing.assert_allclose((uv_crop[:2] / uv_crop[2]).numpy(), ((uv[:2] / uv[2] - window[0, :2]) * 2).numpy(),
                               atol=1e-4)
    # a window larger than the image pads with background
    crops, _ = crop_windows(mask, K, torch.tensor([[-64.0, -64.0, 256.0]]), 64)
    assert crops[0, 0, :10].sum() == 0 and crops[0, 0, 16:48, 16:48].sum() > 0


def test_a_located_network_takes_its_larger_input_and_crops_at_its_encoder_size():
    net = Mask2HandNet(NetConfig(input_size=32, input_crop=1.25, locator_input=64, num_pose_pcs=6,
                                 backbone_width=0.25)).eval()
    assert net.config.model_input_size == 64
    mask = torch.zeros(2, 64, 64)
    mask[:, 10:50, 20:40] = 1
    K = torch.tensor([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]]).expand(2, 3, 3)
    with torch.no_grad():
        out = net(mask, K)
        given = net(mask, K, hand_window=torch.tensor([[16.0, 16.0, 32.0]] * 2))
    assert out.input_mask.shape == (2, 32, 32) and out.locator_code.shape == (2, 3)
    assert given.input_mask[0].sum() > out.input_mask[0].sum()  # a closer crop: the hand fills more of it
    np.testing.assert_allclose(given.input_K[0, 0, 0].item(), 100.0)
    with pytest.raises(Mask2HandError, match="locator_input needs a cropping network"):
        NetConfig(locator_input=256).validate()
    with pytest.raises(Mask2HandError, match="multiple of 64"):
        NetConfig(input_crop=1.25, input_size=128, locator_input=200).validate()


def locator_recipe(root: Path, **network) -> dict:
    data = root / "arms"
    return {
        "name": "locator", "seed": 1,
        "network": {"input_size": 32, "num_pose_pcs": 6, "backbone_width": 0.25, "input_crop": 1.25,
                    "locator_input": 64, **network},
        "data": {"train": f"{data}:train", "val": f"{data}:val", "workers": 0,
                 "generate": {str(data): {"corpus": "natural", "seed": 0, "train": 96, "val": 32, "test": 0,
                                          "forearm": 1.0}}},
        "loss": {"preset": "cpu"},
        "train": {"epochs": 6, "batch_size": 16, "lr": 3e-3, "scheduler": "none"},
    }


@pytest.fixture(scope="module")
def arm_trainer(tmp_path_factory):
    root = tmp_path_factory.mktemp("locator")
    return Trainer(load_config(locator_recipe(root)), root / "run", quiet=True)


def test_the_dataset_gives_the_hands_own_window_inside_the_arms(arm_trainer):
    batch = arm_trainer.train_set.parts[0].load_batch(list(range(16)))
    windows = batch.hand_window.numpy()
    assert batch.mask.shape == (16, 64, 64) and windows.shape == (16, 3)
    # with a forearm on every mask the hand's window is smaller than the whole mask's
    assert np.median(windows[:, 2]) < 0.9 * 64
    # and it holds the hand: the hand-only mask lies mostly inside it
    for k in range(16):
        u0, v0, side = windows[k]
        hand = batch.hand_mask[k].numpy() > 0.5
        rows, cols = np.nonzero(hand)
        inside = (cols >= u0 - 1) & (cols <= u0 + side + 1) & (rows >= v0 - 1) & (rows <= v0 + side + 1)
        assert inside.mean() > 0.95


@pytest.fixture(scope="module")
def trained_arm_run(arm_trainer):
    """The locator's mean code error on the validation masks before and after a short run."""
    trainer = arm_trainer
    val = trainer.val_set.load_batch(list(range(32)))

    def locator_error() -> float:
        trainer.net.eval()
        with torch.no_grad():
            out = trainer.net(val.mask, val.K)
        trainer.net.train()
        return float((out.locator_code - window_to_code(val.hand_window, 64)).abs().mean())

    before = locator_error()
    result = trainer.run()
    return result, before, locator_error()


@pytest.mark.slow
def test_training_teaches_the_locator_to_find_the_hand(arm_trainer, trained_arm_run):
    result, before, after = trained_arm_run
    assert result.stop_reason == "finished"
    assert after < 0.7 * before, (before, after)
    header = (arm_trainer.out_dir / "epochs.csv").read_text().splitlines()[0].split(",")
    assert "train_locator" in header and "val_locator" in header


@pytest.mark.slow
def test_a_located_network_predicts_and_exports(arm_trainer, trained_arm_run, tmp_path):
    pytest.importorskip("onnxruntime")
    from mask2hand import Mask2Hand
    from mask2hand.export.onnx import check_parity, export_onnx

    weights = arm_trainer.out_dir / "last.pt"
    model = Mask2Hand.from_pretrained(weights, device="cpu")
    mask = np.zeros((160, 200), bool)
    mask[30:130, 60:110] = True  # an arm-like bar with a wider "hand" at the top
    mask[20:70, 45:125] = True
    K = np.array([[300.0, 0, 100], [0, 300.0, 80], [0, 0, 1]])
    prediction = model.predict(mask, K=K)
    assert prediction.joints.shape == (21, 3) and np.isfinite(prediction.joints).all()
    u0, v0, side = prediction.hand_window
    assert side > 0 and prediction_json(prediction)["hand_window"] is prediction.hand_window
    # the IoU counts the mask within the located window only
    from mask2hand.inference.finish import within_window
    from mask2hand.render.exact import mask_iou

    restricted = within_window(prediction.mask, prediction.hand_window)
    np.testing.assert_allclose(prediction.iou, mask_iou(prediction.rendered_mask[None], restricted[None])[0])
    left = model.predict(mask[:, ::-1].copy(), K=np.array([[300.0, 0, 100], [0, 300.0, 80], [0, 0, 1]]), side="left")
    np.testing.assert_allclose(left.hand_window, [200 - (u0 + side), v0, side], atol=0.05)
    exported = export_onnx(weights, tmp_path / "located.onnx")
    report = check_parity(exported.network, exported.path, count=8, batch_size=4)
    assert report.max_joint_diff_m < 1e-3 and report.max_vertex_diff_m < 1e-3
    onnx_answer = Mask2Hand.from_onnx(exported.path).predict(mask, K=K)
    np.testing.assert_allclose(onnx_answer.hand_window, prediction.hand_window, atol=1e-2)


def test_a_located_network_starts_from_weights_without_a_locator(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_model import write_tiny_weights
    from mask2hand.nn.checkpoint import load_network

    source = write_tiny_weights(tmp_path / "plain.pt", num_pose_pcs=6, backbone_width=0.25, input_crop=1.25)
    recipe = locator_recipe(tmp_path)
    recipe["train"]["init_from"] = str(source)
    trainer = Trainer(load_config(recipe), tmp_path / "run", quiet=True)
    plain, _ = load_network(source)
    ours = trainer.net.state_dict()
    for key, value in plain.state_dict().items():
        torch.testing.assert_close(ours[key].float(), value.float(), msg=key)
    assert any(key.startswith("locator.") for key in ours)
    recipe["network"]["num_pose_pcs"] = 12  # any other difference is still refused
    with pytest.raises(Mask2HandError, match="fine-tuning needs the same network"):
        Trainer(load_config(recipe), tmp_path / "run2", quiet=True)
