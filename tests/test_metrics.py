"""Metrics: agreement with an independent numpy statement of the FreiHAND benchmark
protocol, hand-computed cases, the batch-by-batch accumulator and the mask metrics wiring."""

import json
import sys
import types

import numpy as np
import pytest
import torch
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.transform import Rotation

from mask2hand import Mask2HandError
from mask2hand.data.dataset import HandBatch
from mask2hand.hand.params import HandParams
from mask2hand.nn.model import Mask2HandOutput
from mask2hand.evaluation.metrics import (
    EvaluationAccumulator,
    PointErrorStats,
    curve_auc,
    evaluate_points,
    pck_thresholds,
    point_errors,
)


# ---------------------------------------------------------------------------------------
# The benchmark protocol restated in plain numpy, one sample at a time, from its description:
# scipy alignment after centring and norm scaling (+1e-8), per-point error lists, per-point
# mean / PCK (error <= threshold) / trapezoid AUC over 100 thresholds in [0, 5 cm], each
# normalised by the integral of 1, then averaged over the points.


def benchmark_align(gt, pred):
    gt_c, pred_c = gt - gt.mean(axis=0), pred - pred.mean(axis=0)
    gt_n = np.linalg.norm(gt_c) + 1e-8
    pred_n = np.linalg.norm(pred_c) + 1e-8
    rot, s = orthogonal_procrustes(gt_c / gt_n, pred_c / pred_n)
    return (pred_c / pred_n) @ rot.T * s * gt_n + gt.mean(axis=0)


def benchmark_protocol(gts, preds, aligned):
    """gts, preds: lists of (N,3) float64 arrays in meters. Returns (mean cm, auc, curve)."""
    errors = []  # errors[sample][point]
    for gt, pred in zip(gts, preds):
        if aligned:
            pred = benchmark_align(gt, pred)
        errors.append(np.sqrt(((gt - pred) ** 2).sum(axis=1)))
    errors = np.array(errors)
    thresholds = np.linspace(0.0, 0.05, 100)
    unit_area = np.trapezoid(np.ones_like(thresholds), thresholds)
    means, aucs, curves = [], [], []
    for point in range(errors.shape[1]):
        e = errors[:, point]
        means.append(e.mean())
        curve = np.array([np.mean(e <= t) for t in thresholds])
        curves.append(curve)
        aucs.append(np.trapezoid(curve, thresholds) / unit_area)
    return 100.0 * np.mean(means), np.mean(aucs), np.mean(curves, axis=0)


def random_hands(num, num_points, seed):
    """Ground truth around 0.6 m in front of the camera and predictions of mixed quality:
    near misses (errors of a few cm, all over the PCK range) and unrelated point clouds
    (where the best orthogonal alignment is often a reflection)."""
    rng = np.random.default_rng(seed)
    gts = [rng.normal(0, 0.04, (num_points, 3)) + [0.0, 0.0, 0.6] for _ in range(num)]
    preds = []
    for i, gt in enumerate(gts):
        if i % 3 == 2:
            preds.append(rng.normal(0, 0.04, (num_points, 3)) + [0.0, 0.0, 0.6])
        else:
            rot = Rotation.from_rotvec(rng.normal(0, 0.2, 3)).as_matrix()
            pred = 1.1 * (gt - gt.mean(0)) @ rot.T + gt.mean(0) + rng.normal(0, 0.01, 3)
            preds.append(pred + rng.normal(0, 0.012, (num_points, 3)))
    return gts, preds


@pytest.mark.parametrize("num_points", [21, 778])
@pytest.mark.parametrize("aligned", [False, True])
def test_matches_the_benchmark_protocol_on_random_predictions(num_points, aligned):
    gts, preds = random_hands(24, num_points, seed=num_points)
    expected_mean, expected_auc, expected_curve = benchmark_protocol(gts, preds, aligned)
    # Batch by batch, in float32 torch (as a network gives them), uneven batch sizes.
    stats = PointErrorStats()
    for lo, hi in ((0, 5), (5, 16), (16, 24)):
        pred = torch.tensor(np.stack(preds[lo:hi]))
        gt = torch.tensor(np.stack(gts[lo:hi]))
        stats.update(point_errors(pred, gt, aligned=aligned))
    got = stats.result()
    assert got.num_samples == 24
    assert abs(got.mean_cm - expected_mean) < 1e-6
    assert abs(got.auc - expected_auc) < 1e-6
    np.testing.assert_allclose(got.curve, expected_curve, atol=1e-6)
    assert 0.05 < got.auc < 0.95  # the curve really spans the thresholds


def test_float32_inputs_are_evaluated_in_float64():
    gts, preds = random_hands(6, 21, seed=3)
    gts32 = [g.astype(np.float32) for g in gts]
    preds32 = [p.astype(np.float32) for p in preds]
    expected = benchmark_protocol([g.astype(np.float64) for g in gts32], [p.astype(np.float64) for p in preds32], True)
    got = evaluate_points(torch.tensor(np.stack(preds32)), torch.tensor(np.stack(gts32)), aligned=True)
    assert abs(got.mean_cm - expected[0]) < 1e-6 and abs(got.auc - expected[1]) < 1e-6


def test_thresholds_are_100_steps_from_0_to_5_cm():
    t = pck_thresholds()
    assert t.shape == (100,) and t[0] == 0.0 and t[-1] == 0.05
    np.testing.assert_allclose(np.diff(t), 0.05 / 99)


def test_constant_one_cm_error_by_hand():
    gt = torch.zeros(3, 21, 3, dtype=torch.float64)
    pred = gt + torch.tensor([0.0, 0.006, 0.008], dtype=torch.float64)  # |(0, 6, 8) mm| = 1 cm
    m = evaluate_points(pred, gt, aligned=False)
    assert m.mean_cm == pytest.approx(1.0, abs=1e-12)
    # thresholds k * 5/99 cm: 1 cm is first reached at k = 20 (19.8 rounded up)
    expected_curve = (np.arange(100) >= 20).astype(float)
    np.testing.assert_array_equal(m.curve, expected_curve)
    # trapezoid: 79 full steps plus half of the step from k=19 to 20, out of 99 steps
    assert m.auc == pytest.approx(79.5 / 99, abs=1e-12)
    np.testing.assert_allclose(m.per_point_mean_cm, 1.0)


def test_pck_is_inclusive_and_zero_error_gives_auc_one():
    stats = PointErrorStats()
    t = pck_thresholds()
    stats.update(torch.from_numpy(t[[0, 50]])[None, :])  # one sample, two points exactly on thresholds
    m = stats.result()
    assert m.curve[0] == 0.5 and m.curve[49] == 0.5 and m.curve[50] == 1.0
    perfect = evaluate_points(torch.ones(2, 5, 3), torch.ones(2, 5, 3), aligned=False)
    assert perfect.mean_cm == 0.0 and perfect.auc == 1.0


def test_curve_auc_by_hand():
    thresholds = np.array([0.0, 1.0, 2.0])
    assert curve_auc(np.array([0.0, 1.0, 1.0]), thresholds) == pytest.approx(0.75)
    assert curve_auc(np.ones(3), thresholds) == pytest.approx(1.0)


def test_aligned_errors_ignore_similarity_transforms_and_mirror_images():
    rng = np.random.default_rng(0)
    gt = rng.normal(0, 0.05, (4, 21, 3))
    rot = Rotation.random(random_state=1).as_matrix()
    moved = 0.8 * gt @ rot.T + 0.1
    mirrored = gt * np.array([-1.0, 1.0, 1.0])  # FreiHAND's alignment allows reflections
    for pred in (moved, mirrored):
        assert evaluate_points(pred, gt, aligned=False).mean_cm > 1.0
        aligned = evaluate_points(pred, gt, aligned=True)
        assert aligned.mean_cm < 1e-5
        # The benchmark's 1e-8 norm epsilon leaves residuals of ~1e-9 m, so the threshold 0
        # is missed even by a perfect prediction: AUC 1 - (1/2)/99, as in FreiHAND's code.
        assert aligned.auc == pytest.approx(1 - 0.5 / 99, abs=1e-12)


def network_output(joints, vertices, refined_joints=None, refined_vertices=None) -> Mask2HandOutput:
    """A network output with the given geometry (its other fields are placeholders)."""
    b = joints.shape[0]
    params = HandParams(global_orient=torch.zeros(b, 3), transl=torch.zeros(b, 3), betas=torch.zeros(b, 10),
                        pose=torch.zeros(b, 45), flat_hand_mean=False)
    return Mask2HandOutput(params=params, vertices=vertices, joints=joints, silhouette=torch.zeros(b, 8, 8),
                           input_mask=torch.zeros(b, 8, 8), input_K=torch.eye(3).expand(b, 3, 3),
                           refined_vertices=refined_vertices, refined_joints=refined_joints)


def hand_batch(joints, vertices=None, mask=None) -> HandBatch:
    """A batch with the given ground truth; vertices None: a batch without vertex annotations."""
    b = joints.shape[0]
    return HandBatch(mask=torch.zeros(b, 8, 8) if mask is None else mask, K=torch.eye(3).expand(b, 3, 3),
                     joints=joints, vertices=vertices, distance_field=None, params=None, index=torch.arange(b))


def test_accumulator_matches_one_shot_metrics_for_both_stages():
    gts, preds = random_hands(10, 21, seed=5)
    vgts, vpreds = random_hands(10, 50, seed=6)
    gj, pj = torch.tensor(np.stack(gts)), torch.tensor(np.stack(preds))
    gv, pv = torch.tensor(np.stack(vgts)), torch.tensor(np.stack(vpreds))
    acc = EvaluationAccumulator()
    for lo, hi in ((0, 4), (4, 10)):
        out = network_output(pj[lo:hi], pv[lo:hi], refined_joints=gj[lo:hi] + 0.002, refined_vertices=pv[lo:hi])
        acc.update(out, hand_batch(gj[lo:hi], gv[lo:hi]))
    res = acc.result()
    assert res.num_samples == 10
    pre = res.preliminary.summary()
    assert pre["mpjpe_cm"] == pytest.approx(evaluate_points(pj, gj, aligned=False).mean_cm, abs=1e-12)
    assert pre["pa_auc_pck"] == pytest.approx(evaluate_points(pj, gj, aligned=True).auc, abs=1e-12)
    assert pre["pa_mpvpe_cm"] == pytest.approx(evaluate_points(pv, gv, aligned=True).mean_cm, abs=1e-12)
    assert pre["auc_pcv"] == pytest.approx(evaluate_points(pv, gv, aligned=False).auc, abs=1e-12)
    assert "miou" not in pre  # no mask, K or faces given
    ref = res.refined.summary()
    assert ref["mpjpe_cm"] == pytest.approx(0.2 * np.sqrt(3), abs=1e-9)  # (2, 2, 2) mm everywhere
    assert ref["mpvpe_cm"] == pytest.approx(pre["mpvpe_cm"], abs=1e-12)
    blob = json.loads(json.dumps(res.to_dict()))
    assert len(blob["thresholds_cm"]) == 100 and len(blob["refined"]["curves"]["pa_pcv"]) == 100


def test_accumulator_without_refinement_or_vertices():
    acc = EvaluationAccumulator()
    acc.update(network_output(torch.zeros(2, 21, 3), torch.zeros(2, 30, 3)), hand_batch(torch.zeros(2, 21, 3)))
    res = acc.result()
    assert res.refined is None
    assert set(res.preliminary.summary()) == {"mpjpe_cm", "auc_pck", "pa_mpjpe_cm", "pa_auc_pck", "rr_mpjpe_cm"}


def test_accumulator_errors():
    with pytest.raises(Mask2HandError):
        EvaluationAccumulator().result()


def test_another_hand_models_vertices_are_skipped_with_a_note():
    """A dataset of another hand model (other vertex count): joints are scored, vertices not, and the result says so."""
    acc = EvaluationAccumulator()
    joints = torch.rand(2, 21, 3)
    acc.update(network_output(joints, torch.zeros(2, 30, 3)), hand_batch(joints, torch.zeros(2, 778, 3)))
    res = acc.result()
    assert res.preliminary.vertices is None and res.preliminary.joints.mean_cm == 0.0
    assert len(res.notes) == 1 and "778 vertices" in res.notes[0] and "network's 30" in res.notes[0]


def test_root_relative_errors_ignore_a_shift_of_the_whole_hand():
    joints = torch.rand(3, 21, 3, dtype=torch.float64)
    acc = EvaluationAccumulator()
    acc.update(network_output(joints + torch.tensor([0.01, -0.02, 0.05], dtype=torch.float64), torch.zeros(3, 30, 3)),
               hand_batch(joints))
    stage = acc.result().preliminary
    assert stage.joints_root_relative.mean_cm == pytest.approx(0.0, abs=1e-9)
    assert stage.joints.mean_cm == pytest.approx(100 * (0.01 ** 2 + 0.02 ** 2 + 0.05 ** 2) ** 0.5)


def test_palm_flips_count_a_hand_turned_over_and_skip_edge_on_palms():
    from mask2hand.evaluation.metrics import palm_facing, palm_flips
    from mask2hand.hand import load_hand_model

    hand = load_hand_model("open")
    # the rest hand's fingers point along -x with the palm normal along y: turned about x by -90 degrees its
    # back faces the camera, by +90 its palm, and at rest it is seen edge-on
    facing = torch.tensor([[-np.pi / 2, 0.0, 0.0], [np.pi / 2, 0.0, 0.0], [0.0, 0.0, 0.0]])
    with torch.no_grad():
        joints = hand(facing, torch.tensor([[0.0, 0.0, 0.5]] * 3)).joints
    cosines = palm_facing(joints)
    assert cosines[0] > 0.9 and cosines[1] < -0.9 and abs(cosines[2]) < 0.26
    assert palm_flips(joints, joints) == (0, 2)
    assert palm_flips(joints[[1, 0, 2]], joints) == (2, 2)


def test_mask_metrics_wiring(monkeypatch):
    """mIoU / Dice: the predicted mesh is rasterized with the sample's K at the mask's size
    and compared per sample; the dataset value is the mean over samples. Fake renderer
    functions stand in for mask2hand.render so that only this module's logic is tested."""
    calls = []

    def fake_rasterize(vertices, faces, K, image_size):
        calls.append((tuple(vertices.shape), image_size))
        out = np.zeros((vertices.shape[0], *image_size), dtype=bool)
        out[:, :2, :2] = True  # 4 pixels
        return out

    def iou(pred, target):
        inter = (pred & target).flatten(1).sum(1).double()
        return inter / (pred | target).flatten(1).sum(1).double()

    def dice(pred, target):
        inter = (pred & target).flatten(1).sum(1).double()
        return 2 * inter / (pred.flatten(1).sum(1) + target.flatten(1).sum(1)).double()

    render = types.ModuleType("mask2hand.render")
    render.rasterize_silhouette = fake_rasterize
    exact = types.ModuleType("mask2hand.render.exact")
    exact.mask_iou, exact.mask_dice = iou, dice
    monkeypatch.setitem(sys.modules, "mask2hand.render", render)
    monkeypatch.setitem(sys.modules, "mask2hand.render.exact", exact)

    mask = torch.zeros(2, 6, 8)
    mask[0, :2, :1] = 1  # 2 pixels inside the 4 predicted: IoU 2/4, Dice 4/6
    mask[1, :2, :2] = 1  # identical: IoU 1, Dice 1
    acc = EvaluationAccumulator()
    out = network_output(torch.zeros(2, 21, 3), torch.zeros(2, 30, 3, requires_grad=True))
    acc.update(out, hand_batch(torch.zeros(2, 21, 3), mask=mask), K=torch.eye(3).expand(2, 3, 3), faces=torch.zeros(1, 3))
    res = acc.result().preliminary
    assert calls == [((2, 30, 3), (6, 8))]
    assert res.miou == pytest.approx((0.5 + 1.0) / 2)
    assert res.dice == pytest.approx((4 / 6 + 1.0) / 2)
