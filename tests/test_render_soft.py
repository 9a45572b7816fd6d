"""The soft silhouette renderer: agreement with the exact mask, with the dense formula, gradients."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.render import default_sigma, rasterize_silhouette, render_soft_silhouette
from mask2hand.render.exact import project_for_rendering
from mask2hand.render.fragments import rasterize_contour_fragments
from mask2hand.render.exact import mask_iou
from mask2hand.testing.reference import render_soft_silhouette_dense
from mask2hand.render.soft import CUTOFF_PROBABILITY, blend_silhouette, cutoff_radius_sq
from mask2hand.testing.scenes import capsule_mesh, scene_from_meshes, synthetic_scene


@pytest.fixture(scope="module")
def open_hands():
    """Eight open hands from the pose prior, random orientations, 128x128."""
    from mask2hand.hand import load_hand_model
    from mask2hand.hand.prior import sample_pose_prior

    model = load_hand_model("open")
    pose = torch.as_tensor(sample_pose_prior(8, 5), dtype=torch.float32)
    betas = torch.randn(8, 10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(global_orient=torch.zeros(8, 3), transl=torch.zeros(8, 3), hand_pose=pose, betas=betas)
    return scene_from_meshes(out.vertices, model.faces, (128, 128), seed=7)


def small_mesh(dtype=torch.float64, size=(14, 14), rings=2):
    """A small closed mesh (a squashed capsule: 26 vertices, 14 with rings=1) in front of a camera."""
    v, f = capsule_mesh(0.3, 0.25, segments=6, rings=rings)
    v = v - v.mean(0)
    rot = np.array([[1, 0, 0], [0, np.cos(0.7), -np.sin(0.7)], [0, np.sin(0.7), np.cos(0.7)]])
    v = v @ rot.T * np.array([1.0, 0.8, 0.6]) + np.array([0.03, -0.02, 2.0])
    K = torch.tensor([[[18.0, 0.0, size[1] / 2], [0.0, 18.0, size[0] / 2], [0.0, 0.0, 1.0]]], dtype=dtype)
    return torch.tensor(v[None], dtype=dtype), torch.from_numpy(f), K


def test_default_sigma_is_the_paper_value_in_pixels():
    assert default_sigma((224, 224)) == pytest.approx(1.2544)
    assert default_sigma((128, 128)) == pytest.approx(0.4096)
    sigma = 1.0
    d2 = cutoff_radius_sq(sigma)
    assert 1 / (1 + math.exp(d2 / sigma)) == pytest.approx(CUTOFF_PROBABILITY, rel=1e-3)


def test_soft_silhouette_thresholds_to_the_exact_mask_on_open_hands(open_hands):
    s = open_hands
    exact = torch.from_numpy(rasterize_silhouette(s.vertices, s.faces, s.K, s.image_size))
    soft = render_soft_silhouette(s.vertices, s.faces, s.K, s.image_size)
    assert soft.shape == exact.shape and soft.dtype == torch.float32
    assert soft.min() >= 0 and soft.max() <= 1
    assert exact.float().mean() > 0.05  # the hands are in view
    iou = mask_iou(soft >= 0.5, exact)
    assert iou.min() >= 0.99
    # The soft part is a band around the boundary: deep inside 1, far outside 0.
    assert ((soft > 0) & (soft < 1)).float().mean() < 0.2


def test_faithful_mode_contains_the_exact_mask_and_is_close_to_fast_mode(open_hands):
    s = open_hands
    exact = torch.from_numpy(rasterize_silhouette(s.vertices[:2], s.faces, s.K[:2], s.image_size))
    faithful = render_soft_silhouette(s.vertices[:2], s.faces, s.K[:2], s.image_size, mode="faces")
    fast = render_soft_silhouette(s.vertices[:2], s.faces, s.K[:2], s.image_size)
    # Every pixel inside a face has D >= 0.5 for that face.
    assert (faithful[exact] >= 0.5).all()
    # "faces" dilates by about one pixel (front and back face share each contour edge).
    assert mask_iou(faithful >= 0.5, exact).min() > 0.8
    assert (faithful - fast).abs().mean() < 0.05


def test_open_meshes_render_like_closed_ones():
    # A capsule without its bottom cap (open like MANO's wrist), seen through the opening
    # and from the side: boundary edges of the hole count as silhouette edges.
    v, f = capsule_mesh(0.4, 0.2, segments=10, rings=4)
    south = len(v) - 1
    f = f[(f != south).all(1)]
    v = v - v.mean(0)
    views = []
    for angle in (0.3, 1.4, 2.9):  # 2.9 rad: looking into the opening
        c, s_ = np.cos(angle), np.sin(angle)
        views.append(v @ np.array([[1, 0, 0], [0, c, -s_], [0, s_, c]]).T + np.array([0.0, 0.0, 2.5]))
    vertices = torch.tensor(np.stack(views))
    faces = torch.from_numpy(f)
    K = torch.tensor([[40.0, 0.0, 24.0], [0.0, 40.0, 24.0], [0.0, 0.0, 1.0]], dtype=torch.float64).repeat(3, 1, 1)
    exact = torch.from_numpy(rasterize_silhouette(vertices, faces, K, (48, 48)))
    fast = render_soft_silhouette(vertices, faces, K, (48, 48), sigma=0.5)
    faithful = render_soft_silhouette(vertices, faces, K, (48, 48), sigma=0.5, mode="faces")
    assert mask_iou(fast >= 0.5, exact).min() >= 0.99
    assert (faithful[exact] >= 0.5).all()


@pytest.mark.parametrize("sigma", [None, 0.5])
def test_faithful_mode_matches_the_dense_formula(sigma):
    v, f, K = small_mesh(size=(16, 16))
    v = torch.cat([v, v + torch.tensor([0.04, 0.0, 0.1], dtype=v.dtype)])
    K = K.repeat(2, 1, 1)
    dense = render_soft_silhouette_dense(v, f, K, (16, 16), sigma=sigma)
    faithful = render_soft_silhouette(v, f, K, (16, 16), sigma=sigma, mode="faces")
    # Faces beyond the cutoff are skipped: each would change 1 - prod(1 - D) by < 1e-4.
    assert (dense - faithful).abs().max() < 1e-3


def test_fast_mode_is_one_sigmoid_of_the_distance_to_the_boundary():
    # A single triangle: the silhouette boundary is the triangle's boundary.
    K = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    v = torch.tensor([[[2.0, 2.0, 1.0], [13.0, 3.0, 1.0], [5.0, 11.0, 1.0]]], dtype=torch.float64)
    f = torch.tensor([[0, 1, 2]])
    sigma = 1.5
    fast = render_soft_silhouette(v, f, K, (16, 16), sigma=sigma)
    dense = render_soft_silhouette_dense(v, f, K, (16, 16), sigma=sigma)
    band = (dense > CUTOFF_PROBABILITY) & (dense < 1 - CUTOFF_PROBABILITY)
    assert torch.allclose(fast[band], dense[band], atol=1e-12)  # one face: both are sigmoid(-dist/sigma)


def test_fragments_detach_cuts_the_graph_and_leaves_the_original_alone():
    vertices, faces, K = small_mesh()
    vertices.requires_grad_(True)
    uv, face_valid = project_for_rendering(vertices, faces, K)
    fragments = rasterize_contour_fragments(uv, face_valid, faces, (14, 14), cutoff_radius_sq(0.5))
    base = fragments.base.clone()
    detached = fragments.detach()
    assert fragments.dist.requires_grad and not detached.dist.requires_grad
    assert detached.one_per_pixel and torch.equal(detached.pixel, fragments.pixel)
    silhouette = blend_silhouette(detached, 0.5)  # blending writes into the detached copy's base only
    assert torch.equal(fragments.base, base) and not silhouette.requires_grad
    torch.testing.assert_close(silhouette, blend_silhouette(fragments, 0.5).detach())
    with pytest.raises(dataclasses.FrozenInstanceError):
        fragments.dist = detached.dist


@pytest.mark.parametrize("mode", ["contour", "faces"])
def test_gradcheck_float64(mode):
    v, f, K = small_mesh(size=(10, 10), rings=1)
    K[0, :2, :2] *= 0.8
    v.requires_grad_(True)

    def render(x):
        return render_soft_silhouette(x, f, K, (10, 10), sigma=2.0, mode=mode)

    soft = render(v)
    assert ((soft > 0.01) & (soft < 0.99)).sum() > 10  # a real soft band, not a trivially zero Jacobian
    assert torch.autograd.gradcheck(render, (v,), eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=True)


@pytest.mark.parametrize("mode", ["contour", "faces"])
def test_degenerate_faces_and_vertices_on_pixel_centers_give_finite_gradients(mode):
    K = torch.eye(3, dtype=torch.float64).unsqueeze(0)  # uv = (x, y) at z = 1
    v = torch.tensor([[[2.5, 2.5, 1.0], [9.5, 2.5, 1.0], [2.5, 9.5, 1.0], [9.5, 9.5, 1.0],
                       [5.5, 5.5, 1.0], [7.5, 7.5, 1.0], [4.5, 4.5, 1.0]]], dtype=torch.float64, requires_grad=True)
    f = torch.tensor([[0, 1, 2], [1, 3, 2],
                      [0, 0, 1],  # repeated vertex
                      [4, 5, 6],  # three collinear vertices
                      [3, 3, 3]])  # a point
    soft = render_soft_silhouette(v, f, K, (12, 12), sigma=1.0, mode=mode)
    assert torch.isfinite(soft).all()
    (soft * torch.rand(soft.shape, generator=torch.Generator().manual_seed(0), dtype=soft.dtype)).sum().backward()
    assert torch.isfinite(v.grad).all()
    assert v.grad.abs().sum() > 0


def test_gradients_move_the_boundary_the_right_way():
    # Growing the mesh (moving vertices away from its center in the image) raises the silhouette.
    v, f, K = small_mesh(dtype=torch.float32, size=(32, 32))
    K[0, :2, :2] *= 2.2
    K[0, :2, 2] = 16.0
    center = v.mean(1, keepdim=True)
    scale = torch.ones((), requires_grad=True)
    soft = render_soft_silhouette(center + (v - center) * scale, f, K, (32, 32))
    soft.sum().backward()
    assert scale.grad > 0


def test_inputs_are_checked():
    v, f, K = small_mesh()
    bad = v.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(Mask2HandError, match="NaN"):
        render_soft_silhouette(bad, f, K, (8, 8))
    bad_K = K.clone()
    bad_K[0, 1, 2] = float("inf")
    with pytest.raises(Mask2HandError):
        render_soft_silhouette(v, f, bad_K, (8, 8))
    with pytest.raises(Mask2HandError):
        render_soft_silhouette(v, f, K, (8, 8), sigma=0.0)
    with pytest.raises(Mask2HandError):
        render_soft_silhouette(v, f, K, (8, 8), mode="pytorch3d")
    with pytest.raises(Mask2HandError):
        render_soft_silhouette(v, f.float(), K, (8, 8))


def test_dtypes_and_batch_independence():
    scene = synthetic_scene(3, (40, 40), seed=4, capsule_count=6)

    def renderer(vertices, faces, K):
        return render_soft_silhouette(vertices, faces, K, (40, 40), sigma=1.0)

    batch = renderer(scene.vertices, scene.faces, scene.K)
    single = renderer(scene.vertices[1:2], scene.faces, scene.K[1:2])
    assert torch.allclose(batch[1:2], single)
    double = renderer(scene.vertices.double(), scene.faces, scene.K.double())
    assert double.dtype == torch.float64
    assert (double - batch.double()).abs().max() < 1e-3
