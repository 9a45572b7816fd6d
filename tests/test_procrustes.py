"""procrustes_align: scipy/FreiHAND agreement, exact recovery of known transforms, the
reflection flag, degenerate inputs, gradients, dtypes."""

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from mask2hand.losses.procrustes import procrustes_align


def random_points(batch, n, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n, 3, generator=gen, dtype=dtype)


def random_rotations(batch, seed):
    return torch.from_numpy(Rotation.random(batch, random_state=seed).as_matrix())


def scipy_alignment(target, pred):
    """Align pred to target the way the FreiHAND evaluation does, with scipy (numpy, one sample)."""
    t_mean, p_mean = target.mean(0), pred.mean(0)
    t_scale = np.linalg.norm(target - t_mean) + 1e-8
    p_scale = np.linalg.norm(pred - p_mean) + 1e-8
    t_unit, p_unit = (target - t_mean) / t_scale, (pred - p_mean) / p_scale
    rot, s = orthogonal_procrustes(t_unit, p_unit)
    return rot, s, (p_unit @ rot.T) * s * t_scale + t_mean


def test_reflection_allowed_matches_scipy_orthogonal_procrustes():
    # Unrelated random sets: the best orthogonal map is often a reflection.
    pred, target = random_points(16, 21, 0), random_points(16, 21, 1)
    res = procrustes_align(pred, target, allow_reflection=True)
    dets = torch.linalg.det(res.rotation)
    assert (dets < 0).any() and (dets > 0).any()  # both cases are exercised
    for b in range(16):
        rot, _, aligned = scipy_alignment(target[b].numpy(), pred[b].numpy())
        np.testing.assert_allclose(res.rotation[b].numpy(), rot, atol=1e-12)
        np.testing.assert_allclose(res.aligned[b].numpy(), aligned, atol=1e-12)


def test_rotation_only_is_the_best_proper_rotation():
    pred, target = random_points(16, 30, 2), random_points(16, 30, 3)
    res = procrustes_align(pred, target, allow_reflection=False)
    np.testing.assert_allclose(torch.linalg.det(res.rotation).numpy(), 1.0, atol=1e-12)
    for b in range(16):
        a = target[b].numpy() - target[b].numpy().mean(0)
        p = pred[b].numpy() - pred[b].numpy().mean(0)
        # scipy's Kabsch solver (proper rotations only) as an independent reference.
        rot, _ = Rotation.align_vectors(a, p)
        np.testing.assert_allclose(res.rotation[b].numpy(), rot.as_matrix(), atol=1e-9)


@pytest.mark.parametrize("allow_reflection", [True, False])
def test_known_similarity_transform_is_recovered_exactly(allow_reflection):
    pred = random_points(8, 21, 4)
    rot = random_rotations(8, 5)
    scale = torch.linspace(0.5, 3.0, 8, dtype=torch.float64)
    shift = random_points(8, 1, 6)[:, 0]
    target = scale[:, None, None] * pred @ rot.mT + shift[:, None, :]
    res = procrustes_align(pred, target, allow_reflection=allow_reflection)
    torch.testing.assert_close(res.rotation, rot, atol=1e-12, rtol=0)
    # FreiHAND adds 1e-8 to both Frobenius norms, which shrinks the result by a relative
    # 2e-8 / ||pred - mean|| (here about 4e-9): exact up to that epsilon.
    torch.testing.assert_close(res.scale, scale, atol=0, rtol=1e-8)
    torch.testing.assert_close(res.aligned, target, atol=1e-7, rtol=0)
    torch.testing.assert_close(res.translation, shift, atol=1e-7, rtol=0)


def test_mirror_image_differs_between_the_flags():
    pred = random_points(4, 21, 7)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    rot = random_rotations(4, 8)
    target = 1.7 * pred @ (rot @ mirror).mT + 0.3
    with_reflection = procrustes_align(pred, target, allow_reflection=True)
    rotation_only = procrustes_align(pred, target, allow_reflection=False)
    # FreiHAND's alignment maps a mirror image onto the original (up to its norm epsilon).
    torch.testing.assert_close(with_reflection.aligned, target, atol=1e-7, rtol=0)
    np.testing.assert_allclose(torch.linalg.det(with_reflection.rotation).numpy(), -1.0, atol=1e-12)
    # A proper rotation cannot.
    np.testing.assert_allclose(torch.linalg.det(rotation_only.rotation).numpy(), 1.0, atol=1e-12)
    residual = torch.linalg.vector_norm(rotation_only.aligned - target, dim=-1).mean(dim=1)
    assert (residual > 0.1).all()


def test_transform_fields_reproduce_the_aligned_points():
    pred, target = random_points(5, 50, 9), random_points(5, 50, 10)
    for flag in (True, False):
        res = procrustes_align(pred, target, allow_reflection=flag)
        rebuilt = res.scale[:, None, None] * pred @ res.rotation.mT + res.translation[:, None, :]
        torch.testing.assert_close(rebuilt, res.aligned, atol=1e-12, rtol=0)


@pytest.mark.parametrize("allow_reflection", [True, False])
def test_gradcheck(allow_reflection):
    pred = random_points(3, 7, 11).requires_grad_()
    target = random_points(3, 7, 12).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p, t: procrustes_align(p, t, allow_reflection=allow_reflection).aligned, (pred, target)
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("allow_reflection", [True, False])
@pytest.mark.parametrize("degenerate", ["pred", "target", "both", "collinear"])
def test_degenerate_inputs_give_finite_values_and_gradients(dtype, allow_reflection, degenerate):
    pred = random_points(2, 21, 13, dtype)
    target = random_points(2, 21, 14, dtype)
    if degenerate in ("pred", "both"):
        pred = torch.full_like(pred, 0.25)
    if degenerate in ("target", "both"):
        target = torch.full_like(target, -0.5)
    if degenerate == "collinear":
        line = torch.linspace(-1, 1, 21, dtype=dtype)[None, :, None]
        pred = line * torch.tensor([1.0, 2.0, 3.0], dtype=dtype)
        target = line * torch.tensor([0.0, 0.0, 1.0], dtype=dtype) + 1.0
        pred, target = pred.expand(2, -1, -1), target.expand(2, -1, -1)
    pred = pred.clone().requires_grad_()
    target = target.clone().requires_grad_()
    res = procrustes_align(pred, target, allow_reflection=allow_reflection)
    ((res.aligned - target) ** 2).sum().backward()
    for t in (res.aligned, res.rotation, res.scale, res.translation, pred.grad, target.grad):
        assert torch.isfinite(t).all()
    if degenerate in ("target", "both"):
        # Nothing to align to but a point: everything lands on it.
        torch.testing.assert_close(res.aligned, target.detach())
    if degenerate == "collinear":
        torch.testing.assert_close(res.aligned, target.detach(), atol=1e-5, rtol=0)


def test_dtype_device_and_float32_accuracy():
    pred64, target64 = random_points(4, 21, 15), random_points(4, 21, 16)
    for flag in (True, False):
        res32 = procrustes_align(pred64.float(), target64.float(), allow_reflection=flag)
        res64 = procrustes_align(pred64, target64, allow_reflection=flag)
        for field in ("aligned", "rotation", "scale", "translation"):
            value = getattr(res32, field)
            assert value.dtype == torch.float32 and value.device == pred64.device
            torch.testing.assert_close(value.double(), getattr(res64, field), atol=1e-5, rtol=0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match=r"\(B,N,3\)"):
        procrustes_align(torch.zeros(21, 3), torch.zeros(21, 3), allow_reflection=True)
    with pytest.raises(ValueError):
        procrustes_align(torch.zeros(1, 21, 3), torch.zeros(1, 20, 3), allow_reflection=False)
