"""Left hands: a mirrored right-hand mask predicted with side="left" is
exactly the mirror of the right-hand prediction, with outward normals."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
import trimesh

from mask2hand import cli
from mask2hand.errors import Mask2HandError
from mask2hand.export.files import mesh_bytes
from mask2hand.export.prediction import prediction_json
from mask2hand.hand import load_hand_model
from mask2hand.inference.api import Mask2Hand
from mask2hand.image.camera import Camera
from mask2hand.render import rasterize_silhouette
from tiny_model import save_mask_png, write_tiny_weights

SIZE = (96, 128)  # (H, W): not square, so the padding and the mirror are not trivially symmetric
K_OFF_CENTER = np.array([[260.0, 0.0, 70.3], [0.0, 255.0, 45.1], [0.0, 0.0, 1.0]])


@pytest.fixture(scope="module")
def right_mask() -> np.ndarray:
    """The exact silhouette (H,W) bool of the open right hand, fingers up, slightly off center."""
    hand = load_hand_model("open")
    out = hand(torch.tensor([[0.2, 0.1, math.pi / 2]]), torch.tensor([[0.01, 0.08, 0.55]]),
               hand_pose=torch.zeros(1, 45), betas=torch.zeros(1, 10))
    mask = rasterize_silhouette(out.vertices, hand.faces, torch.from_numpy(K_OFF_CENTER[None]), image_size=SIZE)[0]
    assert 500 < mask.sum() < 0.6 * mask.size
    return mask


def test_the_mirrored_camera_sees_the_mirrored_scene_at_mirrored_pixels():
    """The mirrored camera projects x-negated points to W - u of the original projection."""
    W = SIZE[1]
    K = K_OFF_CENTER.copy()
    K[0, 1] = 3.0  # a skew, to check it is handled too
    camera = Camera(K, SIZE)
    points = np.array([[0.02, -0.03, 0.5], [-0.05, 0.04, 0.7]])
    uv = camera.project(points)
    uv_m = camera.mirrored().project(points * [-1.0, 1.0, 1.0])
    assert np.allclose(uv_m[:, 0], W - uv[:, 0]) and np.allclose(uv_m[:, 1], uv[:, 1])
    assert np.allclose(camera.mirrored().mirrored().K, K) and camera.mirrored().image_size == SIZE


def test_left_prediction_of_mirrored_mask_is_mirror_of_right(model, right_mask):
    W = SIZE[1]
    left_mask = right_mask[:, ::-1].copy()
    right = model.predict(right_mask, K=K_OFF_CENTER)
    # the mirrored image's camera is the mirrored K: the network then sees exactly the right-hand input
    left = model.predict(left_mask, K=Camera(K_OFF_CENTER, SIZE).mirrored().K, side="left")
    assert right.side == "right" and left.side == "left"
    flip = np.array([-1.0, 1.0, 1.0], dtype=np.float32)
    assert np.allclose(left.vertices, right.vertices * flip, atol=1e-6)
    assert np.allclose(left.joints, right.joints * flip, atol=1e-6)
    assert np.allclose(left.joints_2d[:, 0], W - right.joints_2d[:, 0], atol=1e-3)
    assert np.allclose(left.joints_2d[:, 1], right.joints_2d[:, 1], atol=1e-3)
    assert np.array_equal(left.faces, right.faces[:, ::-1])
    # masks in the input's own frame; the IoU of a mirrored pair is the same
    assert np.array_equal(left.mask, left_mask)
    # exact up to pixel centers lying on a triangle edge to float precision
    assert (left.rendered_mask != right.rendered_mask[:, ::-1]).sum() <= 3
    assert left.iou == pytest.approx(right.iou, abs=1e-3)
    # params are those of the mirrored right hand, i.e. of the right prediction here
    assert np.allclose(left.params.global_orient, right.params.global_orient)
    assert np.allclose(left.params.transl, right.params.transl)
    assert prediction_json(left)["side"] == "left"


def test_left_mesh_has_outward_normals(model, right_mask):
    """Mirroring alone would turn the mesh inside out (negative volume); reversed faces fix it."""
    left = model.predict(right_mask[:, ::-1].copy(), side="left")
    hand = load_hand_model("open")
    mesh = trimesh.load(io.BytesIO(mesh_bytes(left.vertices, left.faces, "ply")), file_type="ply", process=False)
    assert mesh.is_watertight and mesh.volume > 0
    inside_out = trimesh.Trimesh(left.vertices, hand.faces.numpy(), process=False)
    assert inside_out.volume < 0
    # the hand layer's own mesh is outward-facing with the original faces (the premise of the above)
    out = hand(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 0.5]]), hand_pose=torch.zeros(1, 45),
               betas=torch.zeros(1, 10))
    assert trimesh.Trimesh(out.vertices[0].numpy(), hand.faces.numpy(), process=False).volume > 0


def test_bad_side_is_refused(model, right_mask):
    with pytest.raises(Mask2HandError, match="side"):
        model.predict(right_mask, side="both")


def test_cli_side_left(monkeypatch, tmp_path, right_mask, capsys):
    monkeypatch.setitem(cli.SUBCOMMANDS, "predict", cli.SUBCOMMANDS.get(
        "predict", ("predict", "predict 3D hands from silhouette files")))
    weights = write_tiny_weights(tmp_path / "tiny.pt")
    path = save_mask_png(tmp_path / "left.png", right_mask[:, ::-1])
    code = cli.main(["predict", str(path), "--out", str(tmp_path / "out"), "--checkpoint", str(weights),
                     "--side", "left", "--no-figure"])
    capsys.readouterr()
    assert code == 0
    data = json.loads((tmp_path / "out" / "left.json").read_text())
    assert data["side"] == "left"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["side"] == "left"
