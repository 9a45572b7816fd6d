"""Test-time fitting, network-free fitting, hypotheses, their predict/CLI integration and evaluation.

Ground truth: hands drawn from the pose prior, rendered with the exact rasterizer, then
perturbed; the network, where one is needed, is a tiny random one (tiny_model).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mask2hand import cli
from mask2hand.data.synthetic import sample_orientations
from mask2hand.export.prediction import write_prediction
from mask2hand.errors import Mask2HandError
from mask2hand.fit import FitConfig, fit_from_prior, fit_to_silhouette, hypotheses
from mask2hand.fit.core import _Variables, pooling_matrix, start_tensors, working_frame
from mask2hand.fit.priors import absolute_pose, limit_penalty, prior_penalty, shape_penalty
from mask2hand.fit.starts import palm_flip, place_on_mask, swap_flexion
from mask2hand.hand import HandParams, load_hand_model
from mask2hand.hand.prior import JOINT_LIMITS, local_to_pose, pose_to_local, sample_pose_prior, within_limits
from mask2hand.inference.api import Mask2Hand
from mask2hand.inference.mirror import mirror_points
from mask2hand.render import rasterize_silhouette
from tiny_model import blob_mask, save_mask_png, write_tiny_weights

SIZE = 128
FOCAL = 250.0
FAST = FitConfig(steps=25)


@pytest.fixture(scope="module")
def hand():
    return load_hand_model("open")


def layer(hand, params: HandParams):
    with torch.no_grad():
        return hand(**{k: torch.as_tensor(np.asarray(v)) for k, v in params.layer_inputs(hand).items()})


def make_scene(hand, n: int, seed: int = 0):
    """n prior hands (random rotation and shape) centred 0.5 m in front of a 128x128 camera:
    (params, masks (n,H,W) bool, K (n,3,3), joints (n,21,3))."""
    rng = np.random.default_rng(seed)
    pose = sample_pose_prior(n, rng).astype(np.float32)
    orient = sample_orientations(rng, n, "so3_uniform").astype(np.float32)
    betas = np.clip(rng.normal(0, 1, (n, 10)), -2, 2).astype(np.float32)
    K = np.repeat(np.array([[[FOCAL, 0, SIZE / 2], [0, FOCAL, SIZE / 2], [0, 0, 1]]]), n, axis=0)
    centred = layer(hand, HandParams(orient, np.zeros((n, 3), np.float32), betas, pose, flat_hand_mean=True))
    transl = (np.array([0, 0, 0.5]) - centred.vertices.mean(1).numpy()).astype(np.float32)
    params = HandParams(global_orient=orient, transl=transl, betas=betas, pose=pose, flat_hand_mean=True)
    out = layer(hand, params)
    masks = rasterize_silhouette(out.vertices.double(), hand.faces, K, (SIZE, SIZE))
    return params, masks, K, out.joints.numpy()


def perturb(params: HandParams, seed: int = 1, scale: float = 1.0) -> HandParams:
    """Rotation ~0.25 rad, finger pose ~0.3 rad, translation ~2 cm, betas ~0.5 away."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    n = params.pose.shape[0]
    turn = Rotation.from_rotvec(rng.normal(0, 0.25 * scale / np.sqrt(3), (n, 3)))
    return HandParams(
        global_orient=(turn * Rotation.from_rotvec(params.global_orient)).as_rotvec().astype(np.float32),
        transl=(params.transl + rng.normal(0, 0.02 * scale / np.sqrt(3), (n, 3))).astype(np.float32),
        pose=(params.pose + rng.normal(0, 0.3 * scale / np.sqrt(3), (n, 45))).astype(np.float32),
        betas=(params.betas + rng.normal(0, 0.5 * scale, (n, 10))).astype(np.float32),
        flat_hand_mean=params.flat_hand_mean)


def mean_joint_error(joints: np.ndarray, target: np.ndarray) -> float:
    return float(np.linalg.norm(joints - target, axis=-1).mean())


# ---------------------------------------------------------------------- fit_to_silhouette

def test_fit_raises_iou_and_brings_joints_closer(hand):
    params, masks, K, joints = make_scene(hand, 4)
    start = perturb(params)
    result = fit_to_silhouette(start, masks, K, hand, FAST)
    assert result.vertices.shape == (4, hand.num_vertices, 3) and result.joints.shape == (4, 21, 3)
    assert np.all(result.iou >= result.iou_before)
    # measured: mean IoU 0.642 -> 0.941, the joints' error down to 0.391 of the start's
    assert result.iou.mean() > result.iou_before.mean() + 0.25
    assert result.iou.mean() > 0.9
    assert mean_joint_error(result.joints, joints) < 0.43 * mean_joint_error(layer(hand, start).joints.numpy(), joints)
    # the reported IoU is the exact silhouette's at the input resolution, and params reproduce the hand
    out = layer(hand, result.params)
    assert np.allclose(out.vertices.numpy(), result.vertices, atol=1e-5)
    rendered = rasterize_silhouette(out.vertices.double(), hand.faces, K, (SIZE, SIZE))
    iou = (rendered & masks).sum((1, 2)) / (rendered | masks).sum((1, 2))
    assert np.allclose(iou, result.iou)


def test_working_parametrization_is_the_hand_layer(hand):
    """Rotating the zero-orientation hand about its root joint and placing the root reproduces
    HandModel.forward(global_orient, transl) exactly; the fitted params convert back."""
    params, _, _, _ = make_scene(hand, 3, seed=4)
    out = layer(hand, params)
    variables = _Variables(start_tensors(params, hand, "cpu"), out.joints[:, 0], hand, FAST)
    placed = variables.posed()
    vertices, joints = placed.vertices, placed.joints
    assert torch.allclose(vertices, out.vertices, atol=1e-6) and torch.allclose(joints, out.joints, atol=1e-6)
    back, _ = variables.answer()
    again = hand(back["global_orient"], back["transl"], hand_pose=back["pose"], betas=back["betas"])
    assert torch.allclose(again.vertices, out.vertices, atol=1e-5)


def test_zero_steps_returns_the_start_with_its_iou(hand):
    params, masks, K, _ = make_scene(hand, 2, seed=2)
    start = perturb(params)
    result = fit_to_silhouette(start, masks, K, hand, replace(FAST, steps=0))
    assert np.array_equal(result.iou, result.iou_before) and result.kept_start.all()
    assert np.allclose(result.params.pose, start.pose) and np.all(result.steps == 0)


def test_early_stopping_stops_after_patience(hand):
    params, masks, K, _ = make_scene(hand, 2, seed=5)
    start = perturb(params, scale=0.5)
    one_stage = replace(FAST, pose_space="axis_angle")
    # no step can beat the best by 1.0: every mask stops once its patience runs out
    stalled = fit_to_silhouette(start, masks, K, hand, replace(one_stage, steps=50, patience=3, min_improvement=1.0))
    assert np.all(stalled.steps == 4)
    patient = fit_to_silhouette(start, masks, K, hand, replace(one_stage, steps=6, patience=100))
    assert np.all(patient.steps == 6)
    # coarse to fine: the two stages' updates add up
    both = fit_to_silhouette(start, masks, K, hand, replace(FAST, steps=6, detail_steps=5, patience=100))
    assert np.all(both.steps == 11)


@pytest.mark.slow
def test_detail_stage_starts_from_the_coarse_answer_and_leaves_the_pca_span(hand):
    params, masks, K, joints = make_scene(hand, 3, seed=8)
    start = perturb(params)
    coarse_config = replace(FAST, num_pcs=6, detail_steps=0)
    coarse = fit_to_silhouette(start, masks, K, hand, coarse_config)
    # the coarse stage changes the pose only along the first 6 pose PCs
    components = hand.pose_components[:6].numpy().astype(np.float64)

    def outside_span(change: np.ndarray) -> float:
        coefficients = np.linalg.lstsq(components.T, change.T, rcond=None)[0]
        return float(np.abs(change - coefficients.T @ components).max())

    assert np.abs(coarse.params.pose - start.pose).max() > 1e-2
    assert outside_span(coarse.params.pose - start.pose) < 1e-4
    full = fit_to_silhouette(start, masks, K, hand, replace(coarse_config, detail_steps=15))
    assert outside_span(full.params.pose - start.pose) > 1e-2
    # the detail stage never lowers the coarse answer's IoU and reports the network start's IoU
    assert np.all(full.iou >= coarse.iou - 1e-12) and np.array_equal(full.iou_before, coarse.iou_before)


@pytest.mark.slow
def test_joint_limit_prior_brings_the_pose_within_limits(hand):
    params, masks, K, _ = make_scene(hand, 3, seed=3)
    local = pose_to_local(params.pose)
    # every finger joint bent backwards, at least 0.2 rad past its limit
    local[:, :, 0] = np.minimum(local[:, :, 0] - 0.6, JOINT_LIMITS[:, 0, 0] - 0.2)
    bad = replace(params, pose=local_to_pose(local).astype(np.float32))
    start_penalty = limit_penalty(torch.from_numpy(bad.pose)).numpy()
    assert not within_limits(bad.pose).any() and start_penalty.min() > 0.1
    free = fit_to_silhouette(bad, masks, K, hand, replace(FAST, limit_weight=0.0))
    held = fit_to_silhouette(bad, masks, K, hand, FAST)
    held_penalty = limit_penalty(torch.from_numpy(held.params.pose)).numpy()
    assert held_penalty.sum() < 0.1 * limit_penalty(torch.from_numpy(free.params.pose)).numpy().sum()
    assert np.all(held_penalty < 0.05 * start_penalty)


def test_limit_penalty_is_zero_inside_and_grows_outside():
    inside = torch.from_numpy(sample_pose_prior(16, 0))
    assert torch.all(limit_penalty(inside) < 1e-20)  # clamped onto the box: rounding only
    local = np.zeros((15, 3))
    local[1, 0] = JOINT_LIMITS[1, 0, 1] + 0.2  # index PIP 0.2 rad past full flexion
    assert limit_penalty(torch.from_numpy(local_to_pose(local)[None])).item() == pytest.approx(0.04, rel=1e-6)


def test_prior_penalty_weighs_the_limit_and_shape_terms(hand):
    pose = torch.from_numpy(local_to_pose(np.full((2, 15, 3), 0.3))).float() - hand.pose_mean
    betas = torch.randn(2, 10, generator=torch.Generator().manual_seed(0))
    expected = 10.0 * limit_penalty(absolute_pose(hand, pose)) + 0.5 * shape_penalty(betas)
    torch.testing.assert_close(prior_penalty(hand, pose, betas, 10.0, 0.5), expected)
    assert (limit_penalty(absolute_pose(hand, pose)) > 0).all()


def test_one_stage_axis_angle_fit_improves(hand):
    params, masks, K, _ = make_scene(hand, 2, seed=6)
    result = fit_to_silhouette(perturb(params), masks, K, hand, replace(FAST, pose_space="axis_angle"))
    assert result.iou.mean() > result.iou_before.mean() + 0.1


def test_pooling_matrix_averages_by_overlap():
    assert np.array_equal(pooling_matrix(8, 8), np.eye(8, dtype=np.float32))
    pool = pooling_matrix(3, 8)  # cells of 8/3 pixels
    assert np.allclose(pool.sum(axis=1), 1.0)
    assert np.allclose(pool[0], np.array([3, 3, 2, 0, 0, 0, 0, 0]) / 8)
    image = np.random.default_rng(0).random(8)
    assert np.allclose(pool @ image * 8 / 3, [image[:2].sum() + image[2] * 2 / 3,
                                              image[2] / 3 + image[3:5].sum() + image[5] / 3,
                                              image[5] * 2 / 3 + image[6:].sum()])


@pytest.mark.slow
def test_low_resolution_masks_are_compared_on_their_own_pixels(hand):
    """A 24 x 24 picture of a hand (area-averaged, cut at one half, as a low-resolution sensor's)
    is the comparison target; the true hand covers each of its hand cells more than half."""
    from mask2hand.image.masks import resample_window

    params, fine_masks, K, joints = make_scene(hand, 3, seed=9)
    side = 24
    coarse = np.stack([resample_window(m, np.array([0, 0, SIZE]), side) > 0.5 for m in fine_masks])
    K_coarse = K.copy()
    K_coarse[:, :2] *= side / SIZE
    frame = working_frame(list(coarse), K_coarse, 64, 1.4, "cpu")
    assert torch.all(frame.cells < 64) and frame.pixels.shape[1] == int(frame.cells.max())
    out = layer(hand, params)
    exact = rasterize_silhouette(out.vertices.double(), hand.faces, frame.K, frame.size)
    covered = frame.coverage(torch.as_tensor(exact, dtype=torch.float32)) > 0.5
    target = frame.pixels > 0.5
    iou = (covered & target).sum((1, 2)).double() / (covered | target).sum((1, 2)).double()
    assert iou.min() > 0.9
    # the enlarged copy the working frame holds differs from the true hand much more
    upsampled = torch.as_tensor(frame.target > 0.5)
    fine_iou = (torch.as_tensor(exact) & upsampled).sum((1, 2)).double() / \
        (torch.as_tensor(exact) | upsampled).sum((1, 2)).double()
    assert torch.all(fine_iou < iou)
    # and a fit on the coarse masks raises the IoU on their pixels (benchmarks/fitting.py
    # --sensor-size measures what that does to the pose)
    result = fit_to_silhouette(perturb(params, seed=3, scale=0.7), list(coarse), K_coarse, hand, FAST)
    assert np.all(result.iou > result.iou_before) and result.iou.mean() > 0.9  # measured 0.957


def test_bad_settings_and_inputs_raise(hand):
    params, masks, K, _ = make_scene(hand, 1, seed=7)
    for bad in (dict(steps=-1), dict(resolution=4), dict(silhouette_loss="l2"), dict(lr_pose=-0.1),
                dict(crop_margin=0.9), dict(patience=0), dict(pose_space="quat"), dict(detail_steps=-2),
                dict(detail_pose_weight=float("nan"))):
        with pytest.raises(Mask2HandError):
            fit_to_silhouette(params, masks, K, hand, replace(FAST, **bad))
    with pytest.raises(Mask2HandError, match="empty"):
        fit_to_silhouette(params, np.zeros_like(masks), K, hand, FAST)
    with pytest.raises(Mask2HandError, match="2 masks for 1"):
        fit_to_silhouette(params, np.concatenate([masks, masks]), K, hand, FAST)


# ---------------------------------------------------------------------- starts, prior, hypotheses

def test_palm_flip_and_flexion_swap_are_involutions(hand):
    params, _, _, _ = make_scene(hand, 3, seed=8)
    flipped = palm_flip(params)
    assert not np.allclose(flipped.global_orient, params.global_orient, atol=1e-3)
    twice = palm_flip(flipped)
    original, back = layer(hand, params), layer(hand, twice)
    assert torch.allclose(original.vertices, back.vertices, atol=1e-5)
    assert torch.allclose(layer(hand, flipped).joints[:, 0], original.joints[:, 0], atol=1e-6)  # root kept
    swapped = swap_flexion(hand, params, "index", "middle")
    a, b = pose_to_local(params.pose), pose_to_local(swapped.pose)
    assert np.allclose(b[:, 0:3, 0], a[:, 3:6, 0], atol=1e-6) and np.allclose(b[:, 3:6, 0], a[:, 0:3, 0], atol=1e-6)
    assert np.allclose(b[:, 6:, :], a[:, 6:, :], atol=1e-6)
    assert np.allclose(swap_flexion(hand, swapped, "index", "middle").pose, params.pose, atol=1e-5)


def test_placement_from_the_mask_alone_covers_the_mask(hand):
    _, masks, K, _ = make_scene(hand, 2, seed=9)
    poses = sample_pose_prior(4, 1)
    for mask, k in zip(masks, K):
        placed = place_on_mask(hand, mask, k, poses, [(0.0, True), (np.pi, True), (0.0, False), (np.pi, False)])
        rendered = rasterize_silhouette(layer(hand, placed).vertices.double(), hand.faces, np.repeat(k[None], 4, 0),
                                        (SIZE, SIZE))
        area = rendered.sum((1, 2))
        assert np.all(np.abs(area / mask.sum() - 1) < 0.1)  # measured up to 0.061
        iou = (rendered & mask).sum((1, 2)) / (rendered | mask).sum((1, 2))
        assert iou.max() > 0.6  # measured 0.660 and 0.791


@pytest.mark.slow
def test_fit_from_prior_finds_the_silhouette(hand):
    _, masks, K, _ = make_scene(hand, 2, seed=10)
    result = fit_from_prior(list(masks), K, hand, n_starts=4, config=FAST)
    assert result.joints.shape == (2, 21, 3)
    assert np.all(result.iou > 0.75)  # measured 0.837 and 0.961
    single = fit_from_prior(masks[0], K[0], hand, n_starts=2, config=replace(FAST, steps=2))
    assert single.joints.shape == (1, 21, 3)
    with pytest.raises(Mask2HandError, match="n_starts"):
        fit_from_prior(masks, K, hand, n_starts=0)


@pytest.mark.slow
def test_hypotheses_are_distinct_and_sorted_by_score(hand):
    params, masks, K, _ = make_scene(hand, 1, seed=11)
    start = perturb(params).map(lambda v: v[0])
    hyps = hypotheses(start, masks[0], K[0], hand, k=4, config=replace(FAST, steps=12), min_distance_cm=1.0)
    assert 2 <= len(hyps) <= 4
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True)
    for h in hyps:
        assert h.score == pytest.approx(h.iou - FAST.plausibility_weight * h.prior_penalty)
        assert 0.0 <= h.iou <= 1.0 and h.vertices.shape == (hand.num_vertices, 3)
    for i in range(len(hyps)):
        for j in range(i):
            a, b = hyps[i].joints, hyps[j].joints
            assert np.linalg.norm((a - a[:1]) - (b - b[:1]), axis=-1).mean() >= 0.01
    with pytest.raises(Mask2HandError, match="k"):
        hypotheses(start, masks[0], K[0], hand, k=0)


# ---------------------------------------------------------------------- predict and the CLI

@pytest.mark.slow
def test_predict_with_fit_and_hypotheses(model, tmp_path):
    mask = blob_mask(100, 100)
    plain = model.predict(mask, focal=220.0)
    assert plain.fit_steps is None and plain.hypotheses is None
    result = model.predict(mask, focal=220.0, fit=10, hypotheses=2)
    assert result.iou_before_fit == pytest.approx(plain.iou)
    assert result.iou >= result.iou_before_fit and 0 <= result.fit_steps <= 10 + FitConfig.detail_steps
    assert 1 <= len(result.hypotheses) <= 2
    assert [h.score for h in result.hypotheses] == sorted((h.score for h in result.hypotheses), reverse=True)
    paths = write_prediction(result, tmp_path, "hand", figure=False)
    data = json.loads(paths["json"].read_text())
    assert data["fit_steps"] == result.fit_steps and data["iou_before_fit"] == pytest.approx(plain.iou)
    assert [h["score"] for h in data["hypotheses"]] == pytest.approx([h.score for h in result.hypotheses])
    for rank in range(1, len(result.hypotheses) + 1):
        assert (tmp_path / f"hand_hyp{rank}.obj").is_file()
    with pytest.raises(Mask2HandError, match="fit steps"):
        model.predict(mask, fit=-1)
    with pytest.raises(Mask2HandError, match="hypotheses"):
        model.predict(mask, hypotheses=0)


def test_left_hand_fit_is_the_mirror_of_the_right(model):
    mask = blob_mask(96, 96)
    K = np.array([[200.0, 0, 40.0], [0, 200.0, 50.0], [0, 0, 1]])
    right = model.predict(mask, K=K, fit=8)
    mirrored_K = np.array([[200.0, 0, 96 - 40.0], [0, 200.0, 50.0], [0, 0, 1]])
    left = model.predict(np.ascontiguousarray(mask[:, ::-1]), K=mirrored_K, fit=8, side="left")
    assert left.iou == pytest.approx(right.iou) and left.fit_steps == right.fit_steps
    assert np.allclose(left.vertices, right.vertices * [-1, 1, 1], atol=1e-5)
    assert np.allclose(left.params.pose, right.params.pose)


STARTS_ONLY = FitConfig(steps=0, detail_steps=0)


def network_start(start, hand, **given) -> np.ndarray:
    """Joints (21,3) of the unfitted "network" start of `hypotheses(start, hand=hand, ...)`."""
    ranked = hypotheses(start, hand=hand, k=9, config=STARTS_ONLY, n_prior=0, min_distance_cm=0.0, **given)
    return next(h.joints for h in ranked if h.start == "network")


@pytest.mark.parametrize("side", ["right", "left"])
def test_parameters_taken_from_a_prediction_start_at_the_predicted_hand(model, side):
    """Every public path that takes a Prediction's parameters starts from the hand they rebuild:
    hypotheses(prediction, ...), hypotheses(prediction.params, mask, K, ...) and
    fit_to_silhouette(prediction.params, ...), with the network's own hand layer and a layer of
    the other pose convention. The rebuilt hand is params_residual_mm["joints"] from the answer."""
    mask = blob_mask(100, 100)
    prediction = model.predict(mask if side == "right" else np.ascontiguousarray(mask[:, ::-1]), focal=220.0,
                               side=side)
    params, frame_mask, frame_K = prediction.network_frame()
    answer = prediction.joints if side == "right" else mirror_points(prediction.joints)
    residual_mm = prediction.params_residual_mm["joints"]
    network_hand = model.runner.hand
    other_hand = load_hand_model(network_hand.name, flat_hand_mean=not network_hand.flat_hand_mean)
    assert np.abs(network_hand.pose_mean.numpy()).max() > 0.05  # the two conventions differ for this hand

    def distance_mm(joints: np.ndarray) -> float:
        return float(np.linalg.norm(joints - answer, axis=-1).mean()) * 1000

    for hand in (network_hand, other_hand):
        assert distance_mm(network_start(prediction, hand)) == pytest.approx(residual_mm, abs=0.05)
        assert distance_mm(network_start(params, hand, mask=frame_mask, K=frame_K)) == pytest.approx(residual_mm,
                                                                                                     abs=0.05)
        batched = params.map(lambda v: np.asarray(v)[None])
        fitted = fit_to_silhouette(batched, frame_mask[None], frame_K[None], hand, STARTS_ONLY)
        assert distance_mm(fitted.joints[0]) == pytest.approx(residual_mm, abs=0.05)


def test_fitting_without_a_hand_layer_is_refused(tmp_path):
    """A runner with no torch hand layer (as the ONNX runtime) cannot fit or give hypotheses."""
    torch_model = Mask2Hand.from_pretrained(write_tiny_weights(tmp_path / "tiny.pt"))

    class NoHandRunner:  # the Runner protocol, as OnnxRunner has it: hand is None
        hand = None

        def __init__(self, runner):
            self.runner, self.numpy_hand = runner, runner.numpy_hand
            self.faces, self.input_size, self.input_crop = runner.faces, runner.input_size, runner.input_crop
            self.hand_identity, self.flat_hand_mean = runner.hand_identity, runner.flat_hand_mean

        def __call__(self, masks, K):
            return self.runner(masks, K)

    model = Mask2Hand(NoHandRunner(torch_model.runner), torch_model.model_identity)
    assert model.predict(blob_mask()).iou >= 0  # the network alone works
    for options in ({"fit": 4}, {"hypotheses": 2}):
        with pytest.raises(Mask2HandError, match="PyTorch hand layer"):
            model.predict(blob_mask(), **options)


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(["predict", *argv])
    return code, capsys.readouterr().err


@pytest.mark.slow
def test_cli_fit_and_hypotheses_write_the_files(weights, tmp_path, capsys):
    src = save_mask_png(tmp_path / "hand.png", blob_mask(90, 90))
    out = tmp_path / "out"
    code, err = run_cli(["--fit", str(src), "--checkpoint", str(weights), "--out", str(out), "--no-figure",
                         "--fit-steps", "6", "--hypotheses", "2"], capsys)
    assert code == 0, err
    data = json.loads((out / "hand.json").read_text())
    assert data["fit_steps"] <= 6 + FitConfig.detail_steps and data["iou"] >= data["iou_before_fit"]
    assert (out / "hand_hyp1.obj").is_file() and len(data["hypotheses"]) <= 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["inputs"][0]["fit_steps"] == data["fit_steps"] and "hyp1" in summary["inputs"][0]["outputs"]


@pytest.mark.parametrize("flags, phrase", [(["--fit", "-1"], "fit steps"), (["--fit-steps", "-1"], "fit steps"),
                                           (["--hypotheses", "0"], "hypotheses")])
def test_cli_bad_fit_settings_are_one_line(weights, tmp_path, capsys, flags, phrase):
    src = save_mask_png(tmp_path / "hand.png", blob_mask(64, 64))
    code, err = run_cli([str(src), "--checkpoint", str(weights), "--out", str(tmp_path / "o"), *flags], capsys)
    assert code == 2 and phrase in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_fit_without_steps_uses_the_default_and_sequences_are_refused(weights, tmp_path, capsys):
    from PIL import Image

    from mask2hand.commands.predict import FIT_STEPS, fold_fit_steps

    parser = cli.build_parser()
    args = parser.parse_args(["predict", "a.png", "--fit"])
    assert args.fit is True and args.fit_steps is None and args.hypotheses is None
    assert parser.parse_args(["predict", "a.png", "--fit-steps", "7"]).fit_steps == 7
    assert FIT_STEPS == FitConfig().steps
    # an integer after --fit is its steps; anything else is an input, wherever --fit stands
    assert fold_fit_steps(["predict", "a.png", "--fit", "7"]) == ["predict", "a.png", "--fit-steps", "7"]
    args = parser.parse_args(fold_fit_steps(["predict", "--fit", "examples/x.png", "--out", "o"]))
    assert args.fit is True and args.inputs == ["examples/x.png"]
    frames = [Image.fromarray(blob_mask(48, 48).astype(np.uint8) * 255) for _ in range(2)]
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:])
    code, err = run_cli([str(tmp_path / "clip.gif"), "--checkpoint", str(weights), "--out", str(tmp_path / "o"),
                         "--fit"], capsys)
    assert code == 2 and "sequences" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------- evaluation

@pytest.mark.slow
def test_evaluate_fitting_on_a_tiny_dataset(model, tmp_path):
    from mask2hand.data.dataset import MaskDataset
    from mask2hand.data.synthetic import BroadCorpus, generate_broad
    from mask2hand.evaluation.fitting import MODES, FitEvalSettings, evaluate_fitting

    folder = generate_broad(tmp_path / "data", corpus=BroadCorpus(train=0, val=0, test=3))
    dataset = MaskDataset(folder, split="test", distance_field=False)
    settings = FitEvalSettings(fit=replace(FAST, steps=4), k=2, prior_starts=2, num_samples=2, batch_size=2)
    report = evaluate_fitting(model, dataset, settings)
    assert report.num_samples == 2 and list(report.rows) == list(MODES) and report.refused == []
    for mode, row in report.rows.items():
        # flips are judged only on clearly facing palms (maybe none of 2), the oracle has no root-relative row
        optional = {"flip_rate"} | ({"joints_2d_px"} if mode not in ("network", "network + fit") else set()) \
            | ({"rr_mpjpe_cm"} if mode == "best of K (oracle)" else set())
        assert all(np.isfinite(v) for k, v in row.items() if not (k in optional and v is None))
        assert row["seconds_per_mask"] > 0 and row["flips_judged"] <= 2
    rows = report.rows
    assert rows["best of K (oracle)"]["pa_mpjpe_cm"] <= rows["top-1 of K"]["pa_mpjpe_cm"] + 1e-9
    assert rows["best of K (oracle)"]["miou"] >= rows["top-1 of K"]["miou"] - 1e-9
    assert rows["network + fit"]["miou"] >= rows["network"]["miou"] - 1e-9
    assert "network + fit" in report.table()
    # a mask predict refuses is left out of every row, and the others keep their own ground truth
    class Blanked:
        """The dataset with sample 1's mask emptied, or without sample 1."""

        def __init__(self, drop: bool):
            self.drop = drop

        def __len__(self):
            return 2 if self.drop else 3

        def __getattr__(self, name):
            return getattr(dataset, name)

        def load_batch(self, items):
            if self.drop:
                return dataset.load_batch([0 if i == 0 else 2 for i in items])
            batch = dataset.load_batch(items)
            batch.mask[[k for k, i in enumerate(items) if i == 1]] = 0
            return batch

    quick = replace(settings, modes=("network", "network + fit"), num_samples=None, batch_size=1)
    blanked = evaluate_fitting(model, Blanked(drop=False), quick)
    dropped = evaluate_fitting(model, Blanked(drop=True), quick)
    assert blanked.refused == [1] and blanked.num_samples == 2
    for mode in quick.modes:
        for key in ("mpjpe_cm", "pa_mpjpe_cm", "miou"):
            assert blanked.rows[mode][key] == pytest.approx(dropped.rows[mode][key], rel=1e-5), (mode, key)
    # at 6 x 6 pixels no hand has the pixels predict asks for: every mask is refused, clearly
    tiny = MaskDataset(folder, split="test", distance_field=False, resolution=6)
    with pytest.raises(Mask2HandError, match="refused all 2"):
        evaluate_fitting(model, tiny, replace(settings, modes=("network",)))


def test_a_fitted_answer_is_written_with_the_parameters_it_was_made_from(tmp_path):
    """A fitted hand is the layer's own: its parameters rebuild it exactly, with no offsets."""
    from mask2hand.hand import load_hand_model

    model = Mask2Hand.from_pretrained(write_tiny_weights(tmp_path / "tiny.pt"))
    result = model.predict(blob_mask(), focal=200.0, fit=6)
    if result.fit_steps == 0 or result.iou <= result.iou_before_fit:
        pytest.skip("the fit did not beat the network's answer on this random network")
    p = result.params
    layer = load_hand_model(result.hand["name"], flat_hand_mean=result.hand["flat_hand_mean"])
    with torch.no_grad():
        out = layer(*(torch.from_numpy(np.asarray(v, np.float32)[None]) for v in (p.global_orient, p.transl)),
                    hand_pose=torch.from_numpy(np.asarray(p.pose, np.float32)[None]),
                    betas=torch.from_numpy(np.asarray(p.betas, np.float32)[None]))
    assert np.allclose(out.vertices[0].numpy(), result.vertices, atol=1e-5)
    assert result.params_residual_mm == {"joints": 0.0, "vertices": 0.0} and not result.vertex_offsets.any()
