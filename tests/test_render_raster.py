"""The exact rasterizer against a brute-force point-in-triangle reference."""

import numpy as np
import pytest
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.render import rasterize_silhouette
from mask2hand.render.exact import project_for_rendering
from mask2hand.render import exact
from mask2hand.testing.scenes import synthetic_scene

TOLERANCE_PX = 0.01


def brute_force(uv: np.ndarray, faces: np.ndarray, valid: np.ndarray, size: tuple[int, int]):
    """Coverage by testing every pixel center against every triangle, and each center's
    distance to the nearest projected edge."""
    height, width = size
    jj, ii = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    px, py = jj.reshape(-1, 1), ii.reshape(-1, 1)  # (P,1) against triangles (1,F)
    t = uv[faces[valid]]  # (F,3,2)
    signs, distances = [], []
    for k in range(3):
        ax, ay = t[:, k, 0], t[:, k, 1]
        bx, by = t[:, (k + 1) % 3, 0], t[:, (k + 1) % 3, 1]
        signs.append((bx - ax) * (py - ay) - (by - ay) * (px - ax))
        dx, dy = bx - ax, by - ay
        s = np.clip(((px - ax) * dx + (py - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-300), 0, 1)
        distances.append(np.hypot(px - ax - s * dx, py - ay - s * dy))
    e = np.stack(signs)
    area = (t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1]) - (t[:, 1, 1] - t[:, 0, 1]) * (t[:, 2, 0] - t[:, 0, 0])
    inside = ((e >= 0).all(0) | (e <= 0).all(0)) & (area != 0)
    covered = inside.any(1) if inside.size else np.zeros(len(px), dtype=bool)
    edge_distance = np.min(distances, axis=(0, 2)) if inside.size else np.full(len(px), np.inf)
    return covered.reshape(height, width), edge_distance.reshape(height, width)


def rasterize_projected(uv: np.ndarray, faces: np.ndarray, valid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The exact rasterizer's scan conversion of projected faces (F,3) with their validity (B,F), uv (B,V,2)."""
    table = exact.edge_table(faces)
    side_sums = exact.edge_side_sums(uv, valid, faces, table.edge_faces, table.edge_dirs)
    batch, edge, weight = exact.silhouette_edge_list(uv, side_sums, table.edges)
    return exact.coverage_counts(uv, table.edges, batch, edge, weight, size)[..., :size[1]] > 0


def assert_exact(mask: np.ndarray, uv, faces, valid, size):
    reference, distance = brute_force(np.asarray(uv), np.asarray(faces), np.asarray(valid), size)
    wrong = mask != reference
    assert not (wrong & (distance > TOLERANCE_PX)).any(), f"{int(wrong.sum())} pixels differ"


@pytest.mark.parametrize("seed", [0, 1])
def test_rasterizer_matches_brute_force_on_meshes(seed):
    size = (40, 36)
    scene = synthetic_scene(2, size, seed=seed, dtype=torch.float64, capsule_count=6)
    masks = rasterize_silhouette(scene.vertices, scene.faces, scene.K, size)
    assert masks.dtype == bool and masks.shape == (2, *size)
    uv, valid = project_for_rendering(scene.vertices, scene.faces, scene.K)
    for b in range(2):
        assert masks[b].any()
        assert_exact(masks[b], uv[b], scene.faces, valid[b], size)


def test_rasterizer_matches_brute_force_on_triangle_soups():
    # Overlapping, inconsistently oriented, tiny, degenerate and off-image triangles, and
    # vertices exactly on pixel centers and pixel corners.
    rng = np.random.default_rng(3)
    size = (24, 30)
    for trial in range(6):
        uv = rng.uniform(-6, 34, size=(1, 40, 2))
        uv[0, :8] = np.round(uv[0, :8]) + 0.5  # on pixel centers
        uv[0, 8:12] = np.round(uv[0, 8:12])  # on pixel corners
        uv[0, 12:14] = uv[0, 14:16] + 1e-3  # near-duplicates: tiny triangles
        faces = rng.integers(0, 40, size=(30, 3))
        faces[0] = [0, 0, 1]  # zero area
        faces[1] = [2, 3, 2]
        valid = np.ones((1, len(faces)), dtype=bool)
        valid[0, 5] = False
        mask = rasterize_projected(uv, faces, valid, size)
        assert_exact(mask[0], uv[0], faces, valid[0], size)


def test_rasterizer_accepts_numpy_and_float32_and_empty_views():
    size = (32, 32)
    scene = synthetic_scene(1, size, seed=2, dtype=torch.float32, capsule_count=6)
    from_torch = rasterize_silhouette(scene.vertices, scene.faces, scene.K, size)
    from_numpy = rasterize_silhouette(scene.vertices.numpy(), scene.faces.numpy(), scene.K.numpy(), size)
    assert np.array_equal(from_torch, from_numpy)
    behind = scene.vertices.clone()
    behind[..., 2] *= -1  # everything behind the camera
    assert not rasterize_silhouette(behind, scene.faces, scene.K, size).any()


def test_rasterizer_rejects_bad_input():
    scene = synthetic_scene(1, (16, 16), seed=0, capsule_count=6)
    bad = scene.vertices.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(Mask2HandError, match="NaN"):
        rasterize_silhouette(bad, scene.faces, scene.K, (16, 16))
    K = scene.K.clone()
    K[0, 0, 0] = float("inf")
    with pytest.raises(Mask2HandError):
        rasterize_silhouette(scene.vertices, scene.faces, K, (16, 16))
    with pytest.raises(Mask2HandError):
        rasterize_silhouette(scene.vertices, scene.faces + 10_000, scene.K, (16, 16))
