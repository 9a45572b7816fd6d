"""The rasterizer core shared by numpy, torch and the ONNX graph: every path gives the same pixels."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.render import project, rasterize_silhouette
from mask2hand.render.exact import edge_table, mask_iou, project_points, rasterize_by_size, silhouette
from mask2hand.testing.scenes import synthetic_scene


def torch_path(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size, dense_rows: bool) -> np.ndarray:
    """The scan conversion on torch tensors, run eagerly: sparse (as the soft renderer's fragments
    count coverage) or dense (the traceable ONNX formulation)."""
    table = edge_table(faces.numpy())
    return silhouette(vertices.double(), K.double(), faces, torch.from_numpy(table.edges),
                      torch.from_numpy(table.edge_faces), torch.from_numpy(table.edge_dirs).int(), size,
                      dense_rows=dense_rows).numpy()


def dense_torch(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, size) -> np.ndarray:
    return torch_path(vertices, faces, K, size, dense_rows=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_and_torch_inputs_and_the_dense_path_give_the_same_pixels(seed):
    size = (40, 52)
    scene = synthetic_scene(3, size, seed=seed, dtype=torch.float64, capsule_count=6)
    vertices = scene.vertices.clone()
    vertices[2, :5, 2] = -0.1  # some faces cross the near plane: dropped by every path
    reference = rasterize_silhouette(vertices, scene.faces, scene.K, size)
    assert reference.any(axis=(1, 2)).all()
    np.testing.assert_array_equal(rasterize_silhouette(vertices.numpy(), scene.faces.numpy(), scene.K.numpy(), size),
                                  reference)
    np.testing.assert_array_equal(dense_torch(vertices, scene.faces, scene.K, size), reference)


def test_paths_agree_on_triangle_soups():
    # inconsistently oriented, overlapping, degenerate and off-image triangles, vertices on pixel centers
    rng = np.random.default_rng(7)
    size = (24, 30)
    K = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])
    for _ in range(5):
        uv = rng.uniform(-6, 34, size=(1, 40, 2))
        uv[0, :8] = np.round(uv[0, :8]) + 0.5
        vertices = np.concatenate([uv, np.ones((1, 40, 1))], axis=2)  # z = 1 and K = I: uv are the pixels
        faces = rng.integers(0, 40, size=(30, 3))
        faces[0] = [0, 0, 1]
        reference = torch_path(torch.from_numpy(vertices), torch.from_numpy(faces), torch.from_numpy(K), size,
                               dense_rows=False)
        np.testing.assert_array_equal(rasterize_silhouette(vertices, faces, K, size), reference)
        np.testing.assert_array_equal(dense_torch(torch.from_numpy(vertices), torch.from_numpy(faces),
                                                  torch.from_numpy(K), size), reference)


def test_numpy_projection_and_iou_match_the_torch_ones():
    rng = np.random.default_rng(0)
    points = rng.uniform(-0.1, 0.1, size=(2, 7, 3)) + [0.0, 0.0, 0.5]
    K = np.stack([np.array([[300.0, 2.0, 60.0], [0.0, 310.0, 70.0], [0.0, 0.0, 1.0]])] * 2)
    np.testing.assert_allclose(project_points(points, K), project(torch.from_numpy(points), torch.from_numpy(K)),
                               rtol=0, atol=1e-12)
    pred, target = rng.random((3, 9, 9)) > 0.5, rng.random((3, 9, 9)) > 0.6
    target[2] = pred[2] = False  # two empty masks: IoU 1
    np.testing.assert_allclose(mask_iou(pred, target), mask_iou(torch.from_numpy(pred), torch.from_numpy(target)))


def test_rasterize_by_size_renders_each_mesh_at_its_own_size():
    scene = synthetic_scene(3, (30, 40), seed=2, dtype=torch.float64, capsule_count=4)
    vertices, faces, K = scene.vertices.numpy(), scene.faces.numpy(), scene.K.numpy()
    sizes = [(30, 40), (24, 20), (30, 40)]
    masks = rasterize_by_size(vertices, faces, K, sizes)
    assert [m.shape for m in masks] == sizes and all(m.dtype == bool for m in masks)
    for b, size in enumerate(sizes):
        np.testing.assert_array_equal(masks[b], rasterize_silhouette(vertices[b:b + 1], faces, K[b:b + 1], size)[0])
    with pytest.raises(Mask2HandError, match="one size per mesh"):
        rasterize_by_size(vertices, faces, K, sizes[:2])


def test_mask_iou_keeps_the_kind_of_its_inputs():
    pred = np.zeros((2, 4, 4), dtype=np.uint8)
    pred[:, :2, :2] = 1  # 0/1 values
    target = np.zeros((2, 4, 4), dtype=bool)
    target[0, :2, :] = True  # 8 pixels, 4 shared
    iou = mask_iou(pred, target)
    assert isinstance(iou, np.ndarray) and iou.dtype == np.float64 and iou.tolist() == [0.5, 0.0]
    mixed = mask_iou(pred, torch.from_numpy(target))
    assert torch.is_tensor(mixed) and mixed.dtype == torch.float64 and mixed.tolist() == [0.5, 0.0]
    with pytest.raises(Mask2HandError, match="shape"):
        mask_iou(pred, target[:, :3])


def test_numpy_rasterizer_rejects_bad_inputs():
    faces = np.array([[0, 1, 2]])
    K = np.eye(3)[None]
    with pytest.raises(Mask2HandError, match="NaN"):
        rasterize_silhouette(np.full((1, 3, 3), np.nan), faces, K, (8, 8))
    with pytest.raises(Mask2HandError, match="outside"):
        rasterize_silhouette(np.ones((1, 3, 3)), faces + 5, K, (8, 8))
    with pytest.raises(Mask2HandError, match="K must"):
        rasterize_silhouette(np.ones((1, 3, 3)), faces, np.eye(3), (8, 8))


def test_torch_free_modules_import_without_torch():
    code = ("import sys, importlib.abc\n"
            "class Hide(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'torch': raise ImportError(name)\n"
            "sys.meta_path.insert(0, Hide())\n"
            "import numpy as np\n"
            "import mask2hand.inference.api, mask2hand.inference.onnx_runner, mask2hand.hand, mask2hand.render\n"
            "from mask2hand.render import rasterize_silhouette\n"
            "from mask2hand.hand import HandParams\n"
            "corners = np.array([[[0., 0., 1.], [9.2, 0., 1.], [0., 9.2, 1.]]])\n"
            "m = rasterize_silhouette(corners, [[0, 1, 2]], np.eye(3)[None], (8, 8))\n"
            "assert m.sum() == 43 and 'torch' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_banded_rasterizing_and_the_boxed_iou_give_the_full_images_pixels(monkeypatch):
    """Bands of rows (BAND_PIXELS) and the IoU over the box of the mask and the mesh, one mesh at a
    time, count exactly the pixels of one full-image pass, off-image meshes and empty masks included."""
    from mask2hand.hand import load_hand_model
    from mask2hand.render import exact

    hand = load_hand_model("open")
    g = torch.Generator().manual_seed(0)
    out = hand(torch.randn(6, 3, generator=g) * 0.5, torch.tensor([[0.0, 0.0, 0.5]]).repeat(6, 1),
               hand_pose=torch.randn(6, 45, generator=g) * 0.2, betas=torch.zeros(6, 10))
    vertices = out.vertices.numpy().astype(np.float64)
    vertices[5, :, 0] += 5.0  # far outside the image
    faces = hand.faces.numpy()
    K = np.repeat(np.array([[1500.0, 0, 640], [0, 1500.0, 480], [0, 0, 1]])[None], 6, 0)
    full = rasterize_silhouette(vertices, faces, K, (960, 1280))
    masks = [np.roll(full[i], 7 * i, axis=1) for i in range(4)] + [np.zeros_like(full[0])] * 2
    expected = mask_iou(full, np.stack(masks))
    assert np.array_equal(exact.silhouette_iou(vertices, faces, K, masks), expected)
    monkeypatch.setattr(exact, "BAND_PIXELS", 3000)
    assert np.array_equal(rasterize_silhouette(vertices, faces, K, (960, 1280)), full)
    assert np.array_equal(exact.silhouette_iou(vertices, faces, K, masks), expected)
    assert expected[1] < 1 and expected[4] == 0 and expected[5] == 1
