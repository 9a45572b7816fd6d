"""The Python API (mask2hand.inference.api): shapes, coordinate maps, batching."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mask2hand.image.camera import Camera
from mask2hand.inference.cameras import resolve_camera
from mask2hand.errors import Mask2HandError
from mask2hand.export.files import json_text
from mask2hand.export.prediction import prediction_json
from mask2hand.inference.api import Mask2Hand, Prediction
from mask2hand.render import project
from tiny_model import TINY, blob_mask, save_mask_png, write_tiny_weights

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def test_prediction_shapes_and_identity(model, tmp_path):
    path = save_mask_png(tmp_path / "hand.png", blob_mask(80, 120))
    result = model.predict(path)
    assert isinstance(result, Prediction)
    V = model.faces.max() + 1
    assert result.vertices.shape == (V, 3) and result.joints.shape == (21, 3) and result.joints_2d.shape == (21, 2)
    assert result.params.global_orient.shape == (3,) and result.params.transl.shape == (3,)
    assert result.params.pose.shape == (45,) and result.params.betas.shape == (10,)
    assert result.silhouette.shape == (TINY["input_size"],) * 2
    assert result.mask.shape == result.rendered_mask.shape == (80, 120) == result.image_size
    assert 0.0 <= result.iou <= 1.0
    assert result.faces.shape[1] == 3
    assert result.hand["name"] == "open" and len(result.hand["asset_hash"]) == 64
    assert result.model["sha256"] and result.model["network"]["input_size"] == TINY["input_size"]
    assert result.source == str(path) and result.camera == "default"
    assert any("absolute depth" in note for note in result.notes)


def test_2d_joints_and_iou_are_those_of_the_3d_answer(model):
    mask = blob_mask(100, 100)
    result = model.predict(mask.astype(np.uint8) * 255, focal=300.0)
    assert result.camera == "focal" and result.notes == []
    assert np.allclose(result.K, Camera.centered((100, 100), 300.0).K)
    uv = project(torch.from_numpy(result.joints[None]).double(), torch.from_numpy(result.K[None]))[0].numpy()
    assert np.allclose(result.joints_2d, uv, atol=1e-3)
    inter = (result.rendered_mask & result.mask).sum()
    union = (result.rendered_mask | result.mask).sum()
    assert result.iou == pytest.approx(inter / union)


def test_params_rebuild_the_answer_with_the_documented_call(model):
    """The written parameters, posed by a fresh hand layer in the flat_hand_mean=True convention the
    JSON states, give the hand whose distance from the answer is the reported residual, and the
    offsets close the rest."""
    from mask2hand.hand import load_hand_model

    result = model.predict(blob_mask())
    assert result.hand["flat_hand_mean"] is True and model.runner.hand.flat_hand_mean is False
    p = result.params
    layer = load_hand_model(result.hand["name"], flat_hand_mean=result.hand["flat_hand_mean"])
    with torch.no_grad():
        out = layer(*(torch.from_numpy(v[None]) for v in (p.global_orient, p.transl)),
                    hand_pose=torch.from_numpy(p.pose[None]), betas=torch.from_numpy(p.betas[None]))
    vertices, joints = out.vertices[0].numpy(), out.joints[0].numpy()
    residual = result.params_residual_mm
    assert np.linalg.norm(joints - result.joints, axis=-1).mean() * 1000 == pytest.approx(residual["joints"], abs=1e-2)
    assert np.linalg.norm(vertices - result.vertices, axis=-1).mean() * 1000 == pytest.approx(residual["vertices"],
                                                                                               abs=1e-2)
    assert np.allclose(vertices + result.vertex_offsets, result.vertices, atol=1e-5)
    assert json.loads(json_text(prediction_json(result)))["params_residual_mm"] == pytest.approx(residual)


def test_rescaled_mask_gives_the_same_hand_and_scaled_2d_joints(model):
    """A 2x upscaled mask with its 2x intrinsics is the same picture: same 3-D answer, 2-D joints x 2."""
    mask = blob_mask(96, 96)
    K = Camera.centered((96, 96), 250.0).K
    big = np.kron(mask, np.ones((2, 2), dtype=bool))
    K_big = np.diag([2.0, 2.0, 1.0]) @ K
    a, b = model.predict([mask, big], K=[K, K_big])
    assert np.allclose(a.joints, b.joints, atol=1e-5)
    assert np.allclose(b.joints_2d, 2 * a.joints_2d, atol=1e-3)


def test_padded_mask_maps_2d_joints_back_to_its_own_pixels(model):
    """A non-square mask is padded to a square: the prediction equals that of the square image,
    and its 2-D joints are shifted by exactly the padding."""
    square = np.zeros((120, 120), dtype=bool)
    square[:, 18:102] = blob_mask(120, 84)
    K_square = Camera.centered((120, 120), 260.0).K
    narrow = square[:, 18:102]  # (120, 84): padded by 18 columns each side
    K_narrow = K_square.copy()
    K_narrow[0, 2] -= 18
    a, b = model.predict([square, narrow], K=np.stack([K_square, K_narrow]))
    assert b.image_size == (120, 84)
    assert np.allclose(a.joints, b.joints, atol=1e-5)
    assert np.allclose(b.joints_2d, a.joints_2d - [18.0, 0.0], atol=1e-3)


def test_batch_forms_and_batch_independence(model, tmp_path):
    masks = [blob_mask(64, 64), blob_mask(90, 70), blob_mask(50, 100)]
    singles = [model.predict(m) for m in masks]
    batch = model.predict(masks, batch_size=2)
    assert isinstance(batch, list) and len(batch) == 3
    for s, b in zip(singles, batch):
        assert np.allclose(s.joints, b.joints, atol=1e-5)
    stacked = model.predict(torch.from_numpy(np.stack([masks[0]] * 2)))
    assert len(stacked) == 2 and stacked[1].source == "<array 1>"
    with pytest.raises(Mask2HandError, match="2 K values for 3 masks"):
        model.predict(masks, K=[np.eye(3)] * 2)


def test_bad_input_names_the_input(model):
    with pytest.raises(Mask2HandError, match=r"<array 1>: the mask is empty"):
        model.predict([blob_mask(), np.zeros((40, 40))])
    with pytest.raises(Mask2HandError, match="file not found"):
        model.predict("/nonexistent/mask.png")


def test_checkpoint_of_another_hand_model_is_refused(tmp_path, mano_path):
    path = write_tiny_weights(tmp_path / "mano.pt", hand_model="mano", hand_model_path=str(mano_path))
    model = Mask2Hand.from_pretrained(path, mano_path=mano_path)
    result = model.predict(blob_mask())
    assert result.hand["name"] == "mano" and result.vertices.shape == (778, 3)
    with pytest.raises(Mask2HandError, match="mano"):
        Mask2Hand.from_pretrained(path, hand_model="open")


def test_missing_default_weights_is_a_clear_error(monkeypatch):
    import mask2hand.nn.pretrained as pretrained

    monkeypatch.setattr(pretrained, "shipped_weights_path", lambda name="default": None)
    with pytest.raises(Mask2HandError, match="no shipped pretrained model"):
        Mask2Hand.from_pretrained()


def test_examples_are_consistent():
    """examples/: the shared K is the default camera, the ground truth projects onto its masks."""
    from mask2hand.image.masks import load_mask

    K = np.array(json.loads((EXAMPLES / "K.json").read_text()))
    truth = json.loads((EXAMPLES / "ground_truth.json").read_text())["examples"]
    assert 8 <= len(truth) <= 12
    for name, entry in truth.items():
        mask, warnings = load_mask(EXAMPLES / name)
        assert warnings == [] and mask.sum() == entry["mask_pixels"]
        assert np.allclose(K, resolve_camera(mask.shape).camera.K) and np.allclose(entry["K"], K)
        joints = torch.tensor(entry["joints"], dtype=torch.float64)[None]
        uv = project(joints, torch.from_numpy(K)[None])[0].numpy()
        assert np.allclose(uv, entry["joints_2d"], atol=1e-6)
        cols, rows = np.clip(uv.astype(int), 0, 223).T
        assert mask[rows, cols].mean() > 0.6  # joints lie inside the silhouette (mostly; fingertips on edges)


def test_cropping_model_answers_the_same_wherever_the_canvas_ends(tmp_path):
    """For a network that sees the square around the hand, enlarging the canvas (with K
    following) changes nothing: same 3-D hand, 2-D joints shifted by the offset."""
    model = Mask2Hand.from_pretrained(write_tiny_weights(tmp_path / "crop.pt", input_crop=1.25))
    assert model.runner.input_crop == 1.25
    small = blob_mask(96, 96)
    K_small = Camera.centered((96, 96), 250.0).K
    large = np.zeros((300, 260), dtype=bool)
    large[150:246, 20:116] = small
    K_large = K_small.copy()
    K_large[:2, 2] += [20.0, 150.0]
    a, b = model.predict([small, large], K=[K_small, K_large])
    assert np.allclose(a.joints, b.joints, atol=1e-5)
    assert np.allclose(b.joints_2d, a.joints_2d + [20.0, 150.0], atol=1e-3)
    assert a.iou == pytest.approx(b.iou, abs=1e-6)


def test_shipped_models_are_reachable_by_name(capsys):
    from mask2hand import cli
    from mask2hand.nn.pretrained import SHIPPED_MODELS, model_card_path, resolve_weights, shipped_weights_path

    assert resolve_weights("default") == resolve_weights(None) == shipped_weights_path()
    assert resolve_weights("runs/x/best.pt") == Path("runs/x/best.pt")
    by_name = Mask2Hand.from_pretrained("default")
    assert by_name.model_identity["weights"] == "default (shipped)"
    assert cli.main(["models"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in SHIPPED_MODELS) and "MB" in listed
    card = model_card_path()
    assert card is not None and f"model card: {card}" in listed
    assert cli.main(["models", "--card"]) == 0
    printed = capsys.readouterr().out
    assert printed == (REPO / "docs" / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert printed.startswith("# Model card") and "cpu-default-v5" in printed
