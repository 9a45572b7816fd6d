"""Losses: zero for perfect predictions, hand-computed values (millimeters, per-coordinate
means), gradients, the ablation switches, self-supervision and the silhouette wiring."""

import sys
import types
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.transform import Rotation

from mask2hand import Mask2HandError
from mask2hand.data.dataset import HandBatch
from mask2hand.hand.params import HandParams
from mask2hand.losses.objective import LossTerms, LossWeights, mask2hand_loss
from mask2hand.losses.procrustes import procrustes_align
from mask2hand.nn.model import Mask2HandOutput


@pytest.fixture
def fake_contour(monkeypatch):
    """Stand-ins for mask2hand.render.contour with simple known values, so these tests check
    this module's wiring whatever the state of the renderer."""
    module = types.ModuleType("mask2hand.render.contour")
    module.silhouette_bce = lambda s, m: F.binary_cross_entropy(s, m)
    module.contour_loss = lambda s, d: (s * d).sum() / s.shape[0]
    monkeypatch.setitem(sys.modules, "mask2hand.render.contour", module)
    return module


def make_batch(seed=0, dtype=torch.float64, batch=3, refined=True):
    gen = torch.Generator().manual_seed(seed)
    joints = torch.randn(batch, 21, 3, generator=gen, dtype=dtype) * 0.04 + torch.tensor([0, 0, 0.6], dtype=dtype)
    vertices = torch.randn(batch, 40, 3, generator=gen, dtype=dtype) * 0.04 + torch.tensor([0, 0, 0.6], dtype=dtype)
    mask = (torch.rand(batch, 8, 8, generator=gen) > 0.5).to(dtype)
    field = torch.rand(batch, 8, 8, generator=gen, dtype=dtype) * 3
    K = torch.tensor([[20.0, 0, 4], [0, 20.0, 4], [0, 0, 1]], dtype=dtype).expand(batch, 3, 3)
    target = HandBatch(mask=mask, K=K, joints=joints, vertices=vertices, distance_field=field, params=None,
                       index=torch.arange(batch))
    zeros = torch.zeros(batch, 3, dtype=dtype)
    params = HandParams(global_orient=zeros, transl=zeros, betas=torch.zeros(batch, 10, dtype=dtype),
                        pose=torch.zeros(batch, 45, dtype=dtype), flat_hand_mean=False)
    output = Mask2HandOutput(
        params=params, joints=joints.clone(), vertices=vertices.clone(),
        refined_joints=joints.clone() if refined else None, refined_vertices=vertices.clone() if refined else None,
        silhouette=mask.clamp(0.01, 0.99), input_mask=mask, input_K=K,
    )
    return output, target


def three_d_only(**changes):
    return replace(LossWeights.paper(), bce=0.0, contour=0.0, **changes)


def test_paper_weights():
    w = LossWeights.paper()
    assert (w.joints, w.aligned_joints, w.contour, w.vertices, w.aligned_vertices, w.bce) == (2e-3, 2e-2, 1e-4, 0.1, 1.0, 0.0)
    assert w.units_per_meter == 1000.0
    assert LossWeights.paper_ablation_bce().bce == 0.5
    assert not LossWeights.paper_aligned_refined_only().preliminary_aligned
    assert not LossWeights.reference_code().preliminary_vertices


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_perfect_prediction_gives_zero_3d_terms(dtype):
    output, target = make_batch(dtype=dtype)
    terms = mask2hand_loss(output, target, three_d_only())
    # mm or mm^2; the aligned terms keep FreiHAND's 1e-8 norm epsilon (residuals ~1e-9 mm)
    tol = 1e-3 if dtype == torch.float32 else 1e-6
    for name in ("joints", "aligned_joints", "vertices", "aligned_vertices"):
        value = getattr(terms, name)
        assert value.dtype == dtype and abs(float(value)) < tol, name
    assert terms.bce is None and terms.contour is None


def test_hand_computed_values_in_millimeters():
    output, target = make_batch()
    # every joint 1 mm off along x: squared errors (1, 0, 0) mm^2, per-coordinate mean 1/3
    output = replace(output, joints=target.joints + torch.tensor([0.001, 0.0, 0.0], dtype=torch.float64),
                     refined_joints=target.joints + torch.tensor([0.0, 0.002, 0.0], dtype=torch.float64))  # 4/3
    # every vertex (1, 2, 3) mm off: absolute errors mean 2 mm; refined exact
    output = replace(output, vertices=target.vertices + torch.tensor([0.001, -0.002, 0.003], dtype=torch.float64))
    terms = mask2hand_loss(output, target, three_d_only())
    assert float(terms.joints) == pytest.approx(1 / 3 + 4 / 3, rel=1e-9)
    assert float(terms.vertices) == pytest.approx(2.0, rel=1e-9)
    # pure translations are removed by the alignment
    assert abs(float(terms.aligned_joints)) < 1e-6 and abs(float(terms.aligned_vertices)) < 1e-6
    expected_total = 2e-3 * (5 / 3) + 0.1 * 2.0 + 2e-2 * float(terms.aligned_joints) + float(terms.aligned_vertices)
    assert float(terms.total) == pytest.approx(expected_total, rel=1e-9)


def test_aligned_terms_remove_similarity_but_not_mirror_images():
    output, target = make_batch()
    rot = torch.from_numpy(Rotation.random(random_state=0).as_matrix())
    center = target.joints.mean(dim=1, keepdim=True)
    output = replace(output, joints=1.2 * (target.joints - center) @ rot.T + center + 0.01,
                     refined_joints=(target.joints - center) * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
                     + center)
    weights = three_d_only(joints=0.0, vertices=0.0, aligned_vertices=0.0)
    both = mask2hand_loss(output, target, weights)
    # the preliminary joints align perfectly; the mirrored refined ones cannot (rotation only)
    single_prelim = mask2hand_loss(replace(output, refined_joints=None), target, weights).aligned_joints
    assert abs(float(single_prelim)) < 1e-6
    mirrored_error = procrustes_align(output.refined_joints * 1000, target.joints * 1000, allow_reflection=False).aligned
    expected = F.mse_loss(mirrored_error, target.joints * 1000)
    assert float(expected) > 10.0
    assert float(both.aligned_joints) == pytest.approx(float(expected), rel=1e-6)


def test_gradients_flow_to_every_output(fake_contour):
    output, target = make_batch(seed=1)
    gen = torch.Generator().manual_seed(2)
    for name in ("joints", "vertices", "refined_joints", "refined_vertices"):
        noisy = getattr(output, name) + 0.005 * torch.randn(getattr(output, name).shape, generator=gen, dtype=torch.float64)
        output = replace(output, **{name: noisy.requires_grad_()})
    output = replace(output, silhouette=output.silhouette.clone().requires_grad_())
    terms = mask2hand_loss(output, target, LossWeights.paper_ablation_bce())
    terms.total.backward()
    for name in ("joints", "vertices", "refined_joints", "refined_vertices", "silhouette"):
        grad = getattr(output, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_total_is_the_weighted_sum_and_silhouette_terms_use_the_renderer(fake_contour):
    output, target = make_batch(seed=3)
    output = replace(output, joints=output.joints + 0.003)
    weights = LossWeights.paper_ablation_bce()
    terms = mask2hand_loss(output, target, weights)
    assert float(terms.bce) == pytest.approx(float(F.binary_cross_entropy(output.silhouette, target.mask)))
    assert float(terms.contour) == pytest.approx(float((output.silhouette * target.distance_field).sum() / 3))
    expected = sum(getattr(weights, k) * float(getattr(terms, k))
                   for k in ("joints", "aligned_joints", "vertices", "aligned_vertices", "bce", "contour"))
    assert float(terms.total) == pytest.approx(expected, rel=1e-9)
    logged = terms.as_dict()
    assert set(logged) == {"total", "joints", "aligned_joints", "vertices", "aligned_vertices", "bce", "contour"}
    assert all(isinstance(v, float) for v in logged.values())


def test_switches(fake_contour):
    output, target = make_batch(seed=4)
    gen = torch.Generator().manual_seed(5)
    for name in ("joints", "vertices", "refined_joints", "refined_vertices"):
        noisy = getattr(output, name) + 0.004 * torch.randn(getattr(output, name).shape, generator=gen, dtype=torch.float64)
        output = replace(output, **{name: noisy})
    paper = mask2hand_loss(output, target, LossWeights.paper())
    assert paper.bce is None and paper.contour is not None  # lambda_bce = 0 in the final model

    def only(stage_output):
        return mask2hand_loss(stage_output, target, three_d_only())

    prelim_only = only(replace(output, refined_joints=None, refined_vertices=None))
    refined_only = only(replace(output, joints=output.refined_joints, vertices=output.refined_vertices,
                                refined_joints=None, refined_vertices=None))
    for name in ("joints", "aligned_joints", "vertices", "aligned_vertices"):  # eq. 3, 4, 7, 8: prelim + refined
        assert float(getattr(paper, name)) == pytest.approx(float(getattr(prelim_only, name)) + float(getattr(refined_only, name)))

    star = mask2hand_loss(output, target, LossWeights.paper_aligned_refined_only())
    assert float(star.aligned_joints) == pytest.approx(float(refined_only.aligned_joints))
    assert float(star.aligned_vertices) == pytest.approx(float(refined_only.aligned_vertices))
    assert float(star.joints) == pytest.approx(float(paper.joints))

    reference = mask2hand_loss(output, target, LossWeights.reference_code())
    assert float(reference.vertices) == pytest.approx(float(refined_only.vertices))
    assert float(reference.aligned_joints) == pytest.approx(float(paper.aligned_joints))

    no_mesh = mask2hand_loss(output, target, replace(LossWeights.paper(), vertices=0.0, aligned_vertices=0.0))
    assert no_mesh.vertices is None and no_mesh.aligned_vertices is None
    assert float(no_mesh.total) == pytest.approx(float(paper.total) - 0.1 * float(paper.vertices) - float(paper.aligned_vertices))


def test_without_refinenet_the_preliminary_output_is_final(fake_contour):
    output, target = make_batch(seed=6, refined=False)
    output = replace(output, vertices=output.vertices + 0.001)
    # even the presets that skip the preliminary part keep it when it is the only output
    for weights in (LossWeights.reference_code(), LossWeights.paper_aligned_refined_only()):
        terms = mask2hand_loss(output, target, weights)
        assert float(terms.vertices) == pytest.approx(1.0)


def test_self_supervised_needs_no_annotations(fake_contour):
    output, target = make_batch(seed=7)
    target = replace(target, joints=None, vertices=None)  # a batch without 3-D annotations
    output = replace(output, silhouette=output.silhouette.clone().requires_grad_())
    terms = mask2hand_loss(output, target, LossWeights.self_supervised())
    assert terms.joints is None and terms.vertices is None and terms.aligned_joints is None
    assert terms.bce is not None and terms.contour is not None
    terms.total.backward()
    assert output.silhouette.grad.abs().sum() > 0
    # the terms that need labels are left out of an unlabelled batch, the silhouette ones stay
    paper = mask2hand_loss(output, target, LossWeights.paper())
    assert paper.joints is None and paper.aligned_vertices is None and paper.contour is not None
    with pytest.raises(Mask2HandError, match="no 3-D ground truth"):
        mask2hand_loss(output, target, LossWeights.cpu())  # no silhouette term: nothing to learn from


def test_all_weights_zero_is_an_error():
    output, target = make_batch()
    zero = LossWeights(joints=0, aligned_joints=0, vertices=0, aligned_vertices=0, bce=0, contour=0)
    with pytest.raises(Mask2HandError, match="every loss weight is 0"):
        mask2hand_loss(output, target, zero)


def test_returns_loss_terms():
    output, target = make_batch()
    assert isinstance(mask2hand_loss(output, target, three_d_only()), LossTerms)


def test_with_the_real_renderer_contour_functions():
    contour = pytest.importorskip("mask2hand.render.contour")
    output, target = make_batch(seed=8, dtype=torch.float32)
    output = replace(output, silhouette=output.silhouette.clone().requires_grad_())
    terms = mask2hand_loss(output, target, LossWeights.paper_ablation_bce())
    assert torch.allclose(terms.bce, contour.silhouette_bce(output.silhouette, target.mask))
    assert torch.allclose(terms.contour, contour.contour_loss(output.silhouette, target.distance_field))
    terms.total.backward()
    assert torch.isfinite(output.silhouette.grad).all()


def test_reprojection_terms_measure_pixels_and_ignore_depth():
    output, target = make_batch(refined=False)
    K = torch.tensor([[500.0, 0, 64], [0, 500.0, 64], [0, 0, 1]], dtype=torch.float64).expand(3, 3, 3)
    output = replace(output, input_K=K)
    weights = LossWeights(joints=0, aligned_joints=0, vertices=0, aligned_vertices=0, contour=0,
                          joints_2d=1.0, vertices_2d=1.0)
    assert float(mask2hand_loss(output, target, weights).total) == pytest.approx(0.0, abs=1e-9)
    # moving every point along its own viewing ray changes no projection
    output = replace(output, joints=target.joints * 1.3, vertices=target.vertices * 0.8)
    assert float(mask2hand_loss(output, target, weights).total) == pytest.approx(0.0, abs=1e-9)
    # a sideways shift of 1 mm at 0.6 m is 500 * 0.001 / 0.6 pixels in u, none in v: mean over u, v
    shift = torch.tensor([0.001, 0.0, 0.0], dtype=torch.float64)
    output = replace(output, joints=target.joints + shift, vertices=target.vertices.clone())
    terms = mask2hand_loss(output, target, weights)
    expected = (500 * 0.001 / target.joints[..., 2]).mean() / 2
    assert float(terms.joints_2d) == pytest.approx(float(expected), rel=1e-6)
    assert float(terms.vertices_2d) == pytest.approx(0.0, abs=1e-9)


def test_cpu_preset_needs_no_silhouette():
    assert not LossWeights.cpu().needs_silhouette() and LossWeights.paper().needs_silhouette()
