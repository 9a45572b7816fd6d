"""Many inputs, an outcome each (Mask2Hand.predict_each): order, typed errors, one network pass per
input, bounded batches, and the strict `predict` / `finish` built on the same stages."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mask2hand import AnswerError, CameraError, InputError, Mask2Hand, Mask2HandError, MaskInput, ModelFileError
from mask2hand.inference.pipeline import read_input
from tiny_model import blob_mask, save_mask_png, write_tiny_weights


class CountingRunner:
    """Wraps a runner and records the batch size of every network pass."""

    def __init__(self, runner, behind: set[int] = frozenset()):
        self.runner, self.calls, self.behind, self.seen = runner, [], behind, 0

    def __getattr__(self, name):
        return getattr(self.runner, name)

    def __call__(self, masks, K):
        self.calls.append(len(masks))
        raw = self.runner(masks, K)
        flip = np.array([1.0 if self.seen + b not in self.behind else -1.0 for b in range(len(masks))],
                        dtype=np.float32)[:, None, None]
        self.seen += len(masks)
        flip_z = np.concatenate([np.ones_like(flip), np.ones_like(flip), flip], axis=-1)
        return replace(raw, vertices=raw.vertices * flip_z, joints=raw.joints * flip_z)


def counting(model: Mask2Hand, behind: set[int] = frozenset()) -> tuple[Mask2Hand, CountingRunner]:
    runner = CountingRunner(model.runner, behind)
    return Mask2Hand(runner, model.model_identity), runner


def test_the_error_kinds_are_mask2hand_errors():
    for kind in (InputError, CameraError, AnswerError, ModelFileError):
        assert issubclass(kind, Mask2HandError) and kind is not Mask2HandError


def test_each_input_gets_its_outcome_in_order_with_a_typed_error(model, tmp_path):
    good = save_mask_png(tmp_path / "good.png", blob_mask(80, 120))
    (tmp_path / "broken.png").write_bytes(b"not an image")
    inputs = [good, tmp_path / "missing.png", tmp_path / "broken.png",
              MaskInput(blob_mask(), K=np.eye(3) * 0.5, name="tiny focal"), MaskInput(np.zeros((64, 64))),
              MaskInput(blob_mask(), focal=200.0)]
    outcomes = list(model.predict_each(inputs, batch_size=2))
    assert [o.index for o in outcomes] == list(range(len(inputs)))
    assert [o.ok for o in outcomes] == [True, False, False, False, False, True]
    kinds = [type(o.error) for o in outcomes if not o.ok]
    assert kinds == [InputError, InputError, CameraError, InputError]
    assert outcomes[1].message.startswith(f"{tmp_path / 'missing.png'}: file not found")
    assert outcomes[3].name == "tiny focal" and outcomes[4].name == "<array 4>"
    # the same answer as predict gives for the input alone
    alone = model.predict(good)
    np.testing.assert_allclose(outcomes[0].prediction.joints, alone.joints, atol=1e-6)


def test_an_unusable_answer_costs_no_other_input_a_second_network_pass(model):
    watched, runner = counting(model, behind={1})
    inputs = [MaskInput(blob_mask(), focal=200.0) for _ in range(4)]
    outcomes = list(watched.predict_each(inputs, batch_size=4))
    assert runner.calls == [4]
    assert [o.ok for o in outcomes] == [True, False, True, True]
    assert isinstance(outcomes[1].error, AnswerError) and "behind the camera" in str(outcomes[1].error)
    # the strict form names the input and raises the same kind
    watched, _ = counting(model, behind={0})
    with pytest.raises(AnswerError, match=r"<array 0>: the answer puts the hand behind the camera"):
        watched.predict(blob_mask(), focal=200.0)


def test_batches_are_bounded_by_count_and_by_pixels(model):
    watched, runner = counting(model)
    list(watched.predict_each([MaskInput(blob_mask(), focal=200.0) for _ in range(5)], batch_size=2))
    assert runner.calls == [2, 2, 1]
    watched, runner = counting(model)
    pixels = blob_mask().size
    list(watched.predict_each([MaskInput(blob_mask(), focal=200.0) for _ in range(5)], batch_size=64,
                              pixel_budget=2 * pixels))
    assert runner.calls == [2, 2, 1]


def test_inputs_are_read_as_they_are_needed(model):
    read = []

    def inputs():
        for i in range(6):
            read.append(i)
            yield MaskInput(blob_mask(), focal=200.0)

    outcomes = model.predict_each(inputs(), batch_size=2)
    first = next(outcomes)
    assert first.index == 0 and read == [0, 1]  # one batch read, the rest not yet
    assert len(list(outcomes)) == 5


def test_settings_are_checked_before_any_input_is_read(model):
    def inputs():
        raise AssertionError("read")
        yield

    for settings in ({"side": "both"}, {"batch_size": 0}, {"pixel_budget": 0}, {"hypotheses": 0}):
        with pytest.raises(Mask2HandError):
            model.predict_each(inputs(), **settings)


def test_the_reader_turns_an_unforeseen_failure_into_an_input_error(model, monkeypatch):
    import mask2hand.inference.api as api

    def broken(*args, **kwargs):
        raise ValueError("decoder bug")

    monkeypatch.setattr(api, "prepare_mask", broken)
    with pytest.raises(InputError, match=r"cannot read this input \(ValueError: decoder bug\)"):
        read_input(model, MaskInput(blob_mask()))


def test_the_network_resamples_other_sizes_by_the_rule_predict_uses(model):
    """A mask of another size given to the network directly is prepared as `predict` prepares it."""
    import torch

    mask = blob_mask(80, 120)
    item = model.prepare(mask, focal=200.0)
    network = model.runner.network
    with torch.inference_mode():
        direct = network(torch.from_numpy(mask[None].astype(np.float32)), torch.from_numpy(item.camera.K[None]),
                         exact_silhouette=True)
        prepared = network(torch.from_numpy(item.mask.model_input[None]),
                           torch.from_numpy(item.model_camera.K[None]).float(), exact_silhouette=True)
    torch.testing.assert_close(direct.final_vertices, prepared.final_vertices)


def test_side_auto_returns_the_reading_that_explains_the_mask_better(model):
    from mask2hand.inference.side import AMBIGUOUS_MARGIN

    watched, runner = counting(model)
    mask = blob_mask(80, 120)
    (outcome,) = watched.predict_each([MaskInput(mask, focal=200.0)], side="auto")
    assert runner.calls == [2]  # both readings in one network pass
    right, left = (model.predict(mask, focal=200.0, side=side) for side in ("right", "left"))
    chosen = outcome.prediction
    assert chosen.side == ("right" if right.iou >= left.iou else "left")
    assert chosen.side_margin == pytest.approx(abs(right.iou - left.iou))
    assert chosen.side_ambiguous == (chosen.side_margin < AMBIGUOUS_MARGIN)
    assert right.side_margin is None and right.side_ambiguous is None
    np.testing.assert_allclose(chosen.joints, (right if chosen.side == "right" else left).joints, atol=1e-6)


def test_a_changed_input_comes_with_the_camera_that_sees_the_hand_there():
    from mask2hand.image.camera import Camera
    from mask2hand.inference.confidence import Variant, changed_input

    mask = np.zeros((32, 32), np.float32)
    mask[10:20, 8:14] = 1
    camera = Camera.centered((32, 32), 40.0)
    shifted, moved = changed_input(mask, camera, Variant(shift=(2.0, -1.0)))
    assert np.array_equal(shifted[9:19, 10:16], mask[10:20, 8:14]) and shifted.sum() == mask.sum()
    point = np.array([0.01, 0.02, 0.5])
    np.testing.assert_allclose(moved.project(point), camera.project(point) + [2.0, -1.0])
    scaled, zoomed = changed_input(mask, camera, Variant(scale=1.5))
    np.testing.assert_allclose(zoomed.project(point) - 16.0, 1.5 * (camera.project(point) - 16.0))
    grown, _ = changed_input(mask, camera, Variant(grow=1))
    assert grown.sum() > mask.sum() and (grown >= mask).all()


def test_joint_confidence_is_one_where_the_answer_never_moves(model):
    steady, _ = counting(model)
    steady.runner.__class__ = type("Steady", (CountingRunner,), {
        "__call__": lambda self, masks, K: replace(self.runner(masks[:1], K[:1]).take([0] * len(masks)))})
    prediction = steady.predict(blob_mask(), focal=200.0, confidence=True)
    np.testing.assert_allclose(prediction.joint_confidence, 1.0)
    varying = model.predict(blob_mask(), focal=200.0, confidence=True)
    assert varying.joint_confidence.shape == (21,) and (varying.joint_confidence <= 1).all()
    assert (varying.joint_confidence > 0).all() and varying.joint_confidence.min() < 1
    assert model.predict(blob_mask(), focal=200.0).joint_confidence is None


def test_parameters_are_rebuilt_when_first_read_once_per_batch(model, monkeypatch):
    import mask2hand.inference.rebuild as rebuild

    calls = []
    original = rebuild.rebuild_params
    monkeypatch.setattr(rebuild, "rebuild_params", lambda *args: calls.append(len(args[2])) or original(*args))
    first, second = model.predict([blob_mask(), blob_mask(80, 120)], focal=200.0)
    assert calls == []  # predicting alone does not fit the parameters
    params = first.params
    assert calls == [2] and first.params_residual_mm["joints"] >= 0 and first.vertex_offsets.shape == (
        len(first.vertices), 3)
    assert second.params is not None and calls == [2]  # the batch was rebuilt once
    layer = model.runner.numpy_hand
    flat = layer.in_convention(params.map(lambda v: np.asarray(v, dtype=np.float64)[None]))
    _, joints = layer.forward(flat.global_orient, flat.transl, flat.pose, flat.betas)
    assert np.abs(joints[0] - first.joints).max() < 0.01  # the parameters rebuild the answer


def test_side_auto_reports_a_batch_out_of_memory_as_the_inputs_error(model, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(model, "run_network", no_memory)
    (outcome,) = model.predict_each([MaskInput(blob_mask(), focal=200.0)], side="auto")
    assert isinstance(outcome.error, InputError) and "not enough memory" in str(outcome.error)
