"""The renderer's public entry points on every device x dtype (device_dtype.py): each keeps the
dtype and device of its inputs, agrees with its float64 cpu answer within the tolerance of the
dtype (so float32 agrees with float64, and cuda with cpu), and passes finite gradients back."""

from __future__ import annotations

import pytest
import torch

from device_dtype import assert_close, assert_finite_gradients, assert_kept, on, tolerance
from mask2hand.render import mask_iou, project, rasterize_silhouette, render_soft_silhouette, unproject
from mask2hand.render.contour import contour_distance_field, contour_loss, silhouette_bce
from mask2hand.render.soft import CUTOFF_PROBABILITY
from mask2hand.hand import load_hand_model
from mask2hand.hand.prior import sample_pose_prior
from mask2hand.testing.scenes import RenderScene, scene_from_meshes

SIZE = (40, 48)


@pytest.fixture(scope="module")
def scene() -> RenderScene:
    """Two open hands (1,100 vertices, none repeated) from the pose prior, turned at random and
    placed before a 40 x 48 camera, float64 on the cpu. Meshes with repeated vertices (the
    synthetic scenes' zero-length palm capsule) are no good here: a face whose corners coincide
    sends its gradient to either copy, and float32 and float64 may choose differently."""
    hand = load_hand_model("open")
    pose = torch.as_tensor(sample_pose_prior(2, 5), dtype=torch.float64)
    zeros = torch.zeros(2, 3, dtype=torch.float64)
    with torch.no_grad():
        vertices = hand(zeros, zeros, hand_pose=pose).vertices
    return scene_from_meshes(vertices, hand.faces, SIZE, seed=7, dtype=torch.float64)


def silhouette_atol(dtype: torch.dtype) -> float:
    """A float32 pixel whose coverage lies at the cutoff probability can be a fragment in one dtype
    and not in the other: float32 silhouettes may differ from float64 by up to the cutoff there."""
    return CUTOFF_PROBABILITY if dtype == torch.float32 else 0.0


def weights(shape: tuple[int, ...]) -> torch.Tensor:
    """Fixed pixel weights in [0, 1) (float64, cpu): a loss whose gradient reaches every fragment."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def soft_silhouette(vertices: torch.Tensor, faces: torch.Tensor, K: torch.Tensor, mode: str) -> torch.Tensor:
    return render_soft_silhouette(vertices, faces, K, SIZE, sigma=1.0, mode=mode)


def test_the_scene_projects_inside_the_image(scene):
    uv = project(scene.vertices, scene.K)
    assert bool((uv >= 0).all()) and bool((uv[..., 0] < SIZE[1]).all()) and bool((uv[..., 1] < SIZE[0]).all())


def test_project_and_unproject(scene, device, dtype):
    vertices, K = on(device, dtype, scene.vertices, scene.K)
    vertices.requires_grad_(True)
    uv = project(vertices, K)
    assert_kept(uv, device, dtype)
    assert_close(uv, project(scene.vertices, scene.K))  # pixels: float32 keeps them to about 1e-5 px
    back = unproject(uv, vertices[..., 2], K)
    assert_kept(back, device, dtype)
    assert_close(back, scene.vertices)
    (uv * on(device, dtype, weights(uv.shape))[0]).sum().backward()
    assert_finite_gradients(vertices)


@pytest.mark.parametrize("mode", ["contour", "faces"])
def test_render_soft_silhouette(scene, device, dtype, mode):
    reference_vertices = scene.vertices.clone().requires_grad_(True)
    reference = soft_silhouette(reference_vertices, scene.faces, scene.K, mode)
    (reference * weights(reference.shape)).sum().backward()

    vertices, faces, K = on(device, dtype, scene.vertices, scene.faces, scene.K)
    vertices.requires_grad_(True)
    silhouette = soft_silhouette(vertices, faces, K, mode)
    assert_kept(silhouette, device, dtype)
    assert ((silhouette > 0.01) & (silhouette < 0.99)).sum() > 100  # a soft band, not a hard mask
    assert_close(silhouette, reference, atol=silhouette_atol(dtype))
    (silhouette * on(device, dtype, weights(silhouette.shape))[0]).sum().backward()
    assert_finite_gradients(vertices)
    # gradients are sums of d(sigmoid)/d(vertex) over many pixels: compared relative to their largest entry
    scale = reference_vertices.grad.abs().max()
    assert_close(vertices.grad / scale, reference_vertices.grad / scale, atol=10 * tolerance(dtype).atol)


def test_rasterize_silhouette_and_mask_iou(scene, device, dtype):
    reference = rasterize_silhouette(scene.vertices, scene.faces, scene.K, SIZE)
    assert 0.08 < reference.mean() < 0.3
    vertices, faces, K = on(device, dtype, scene.vertices, scene.faces, scene.K)
    masks = rasterize_silhouette(vertices, faces, K, SIZE)  # numpy bool, rendered in float64 on the cpu
    assert masks.dtype == bool and (masks == reference).all()
    soft = render_soft_silhouette(vertices, faces, K, SIZE, mode="contour")
    iou = mask_iou(soft >= 0.5, torch.from_numpy(masks))  # "contour" thresholds to the exact mask
    assert_kept(iou, device, torch.float64)
    assert iou.tolist() == [1.0, 1.0]


def test_silhouette_losses(scene, device, dtype):
    target = torch.from_numpy(rasterize_silhouette(scene.vertices, scene.faces, scene.K, SIZE))
    # a slightly smaller hand: the losses are neither zero nor at their floor
    center = scene.vertices.mean(1, keepdim=True)
    smaller = center + 0.93 * (scene.vertices - center)
    field = torch.from_numpy(contour_distance_field(target.numpy()))

    def losses(vertices, faces, K, mask, distance):
        silhouette = soft_silhouette(vertices, faces, K, "contour")
        return contour_loss(silhouette, distance), silhouette_bce(silhouette, mask)

    reference = losses(smaller, scene.faces, scene.K, target, field)
    vertices, faces, K = on(device, dtype, smaller, scene.faces, scene.K)
    vertices.requires_grad_(True)
    # the distance field is float32 (cv2) and the mask bool: each loss takes the silhouette's dtype
    contour, bce = losses(vertices, faces, K, target.to(device), field.to(device))
    for value, expected in zip((contour, bce), reference):
        assert_kept(value, device, dtype)
        assert float(expected.detach()) > 0.01
        # the summed contour loss multiplies the silhouettes' cutoff differences by distances of pixels
        assert_close(value, expected, rtol=10 * tolerance(dtype).rtol, atol=silhouette_atol(dtype))
    (contour + bce).backward()
    assert_finite_gradients(vertices)
