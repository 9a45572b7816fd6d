"""Fitting and hypotheses inside `Mask2Hand.predict`: between the network and `finish`.

The network's answer (NetworkResult) lives in the frame the network saw: the input's own
camera for a right hand, the mirrored picture for a left hand (mask2hand.inference.mirror). The
fit runs in that same frame, on the cleaned full-resolution mask (`PreparedMask.mask`,
mirrored for a left hand) with the matching K, and hands back a NetworkResult that the last
stage (mask2hand.inference.finish) places in the input's image exactly as it does the
network's. Both answers are scored there; the fitted one replaces the network's only where its
IoU with the input is higher (the fit starts from the network's parametric, preliminary hand,
while the network's final answer may be its refined mesh), and only the kept one is finished.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from mask2hand.errors import AnswerError, Mask2HandError
from mask2hand.fit.core import FitConfig, fit_to_silhouette
from mask2hand.fit.search import Hypothesis, check_count, hypotheses_batch
from mask2hand.inference.finish import build_predictions, place_answers
from mask2hand.inference.mirror import mirror_points
from mask2hand.inference.prepare import PreparedInput
from mask2hand.inference.result import Prediction
from mask2hand.inference.runner import NetworkResult


def resolve_fit(fit: Any) -> FitConfig | None:
    """`predict(fit=...)`: None/False (no fit), True (defaults), a number of steps (int >= 0) or a
    FitConfig. Raises Mask2HandError for anything else."""
    if fit is None or fit is False:
        return None
    if fit is True:
        return FitConfig()
    if isinstance(fit, FitConfig):
        return fit.check()
    if isinstance(fit, (int, np.integer)):
        if fit < 0:
            raise Mask2HandError(f"fit steps must be >= 0, got {fit}")
        return replace(FitConfig(), steps=int(fit)).check()
    raise Mask2HandError(f"fit must be None, a number of steps or a FitConfig, got {fit!r}")


MAX_HYPOTHESES = 20
"""Most hypotheses `predict` returns per mask: each costs about two fits of the mask (and their
memory), so a larger count is a mistake rather than a wish."""


def resolve_hypotheses(hypotheses: Any) -> int | None:
    """`predict(hypotheses=...)`: None (none) or a count k from 1 to MAX_HYPOTHESES."""
    if hypotheses is None:
        return None
    k = check_count(hypotheses, "hypotheses (the number of hands to return)")
    if k > MAX_HYPOTHESES:
        raise Mask2HandError(f"hypotheses must be at most {MAX_HYPOTHESES} (each costs about two fits), got {k}")
    return k


def network_frame(items: Sequence[PreparedInput]) -> tuple[list[np.ndarray], np.ndarray]:
    """Masks (full resolution, bool) and K (B,3,3) of the frame the network saw (mirrored for left hands)."""
    return [item.mask.mask for item in items], np.stack([item.network_camera.K for item in items])


def fit_network_result(items: Sequence[PreparedInput], raw: NetworkResult, hand, config: FitConfig
                       ) -> tuple[NetworkResult, np.ndarray]:
    """The network's batch fitted to its masks: (a NetworkResult with the fitted hands, steps (B,))."""
    masks, Ks = network_frame(items)
    result = fit_to_silhouette(raw.hand_params(), masks, Ks, hand, config)
    p = result.params
    fitted = replace(raw, vertices=result.vertices, joints=result.joints, global_orient=p.global_orient,
                     transl=p.transl, pose=p.pose, betas=p.betas, pose_pcs=None, flat_hand_mean=p.flat_hand_mean,
                     parametric=True)
    return fitted, result.steps


def _as_written(hypothesis: Hypothesis, left: bool, hand) -> Hypothesis:
    """A hypothesis as a Prediction carries it: vertices and joints in the input's frame, params
    in the flat_hand_mean=True convention (mask2hand.inference.rebuild), in the network's frame."""
    params = hand.in_convention(hypothesis.params, flat_hand_mean=True)
    if not left:
        return replace(hypothesis, params=params)
    return replace(hypothesis, params=params, vertices=mirror_points(hypothesis.vertices),
                   joints=mirror_points(hypothesis.joints))


def within_hand(config: FitConfig, hand) -> FitConfig:
    """`config` with its pose PCs (num_pcs) at most the hand layer's: a network of few pose PCs (the
    paper-synthetic model's 6) is fitted in all of them with the default settings."""
    return replace(config, num_pcs=min(config.num_pcs, hand.num_pose_pcs))


def predictions_with_fit(model, hand, items: Sequence[PreparedInput], raw: NetworkResult,
                         fit: FitConfig | None, k: int | None) -> list[Prediction | AnswerError]:
    """Per input of a network batch, its Prediction with test-time fitting (fit) and/or k
    hypotheses, or the AnswerError of an unusable answer; model: the Mask2Hand whose runner gave
    `raw`; hand: the network's HandModel (the fit's num_pcs is capped at its pose PCs: within_hand).

    Each Prediction is the fitted hand where that raised the IoU, else the network's;
    iou_before_fit and fit_steps are set when fitting, hypotheses (vertices and joints in
    the input's frame, params in the network's, like Prediction.params) when k is given.
    """
    placed = place_answers(items, raw, model.faces)
    if fit is None:
        results = build_predictions(model, items, raw, placed)
    else:
        fit = within_hand(fit, hand)
        fitted_raw, steps = fit_network_result(items, raw, hand, fit)
        fitted = place_answers(items, fitted_raw, model.faces)
        use_fit = [fitted.errors[b] is None and (placed.errors[b] is not None or fitted.ious[b] > placed.ious[b])
                   for b in range(len(items))]
        results: list[Prediction | AnswerError] = [None] * len(items)  # type: ignore[list-item]
        for answers, where, chosen in ((fitted_raw, fitted, True), (raw, placed, False)):
            rows = [b for b in range(len(items)) if use_fit[b] == chosen]
            if not rows:
                continue
            built = build_predictions(model, [items[b] for b in rows], answers.take(rows), where.take(rows))
            for b, result in zip(rows, built):
                results[b] = result if isinstance(result, AnswerError) else replace(
                    result, iou_before_fit=placed.ious[b], fit_steps=int(steps[b]))
    if k is not None:
        masks, Ks = network_frame(items)
        ranked = hypotheses_batch(raw.hand_params(), masks, Ks, hand, k=k,
                                  config=fit or within_hand(FitConfig(), hand))
        results = [result if isinstance(result, AnswerError) else
                   replace(result, hypotheses=[_as_written(h, item.side == "left", hand) for h in hyps])
                   for result, item, hyps in zip(results, items, ranked)]
    return results
