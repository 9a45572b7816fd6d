"""Many starts, one fit each, then a choice: network-free fitting and ranked hypotheses.

`fit_from_prior(masks, K, hand, n_starts)`: no network. Each mask gets `n_starts` hands
placed on it (mask2hand.fit.starts.place_on_mask: both ends of the principal axis, palm
toward and away from the camera; the relaxed archetype, then pose-prior samples), all
fitted in one batch; the best score (IoU minus the plausibility penalty) is kept.

`hypotheses(start, mask, K, hand, k)`: several distinct hands that explain one silhouette.
Starts: the given answer ("network"), its palm flip (its depth twin, see
starts.palm_flip), the answer with neighbouring fingers' flexions swapped, and prior
poses at the answer's and the flipped rotation. Each is fitted; they are ranked by score
(IoU - plausibility_weight x prior penalty, FitConfig), and a hand closer than
`min_distance_cm` (mean joint distance after subtracting the root joint) to a
better-ranked one is dropped as a duplicate. Root-relative, not Procrustes-aligned:
Procrustes alignment (with or without reflection) maps a nearly flat hand onto its
palm-flipped twin, which is exactly the ambiguity the hypotheses must keep apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from mask2hand.errors import Mask2HandError
from mask2hand.fit.core import FitConfig, FitResult, as_K_array, as_mask_list, fit_to_silhouette, start_tensors
from mask2hand.fit.starts import (NEIGHBOURS, ORIENTATION_CANDIDATES, palm_flip, place_on_mask, prior_poses,
                                  swap_flexion, with_poses)
from mask2hand.hand.params import HandParams


def _concat(items: list[HandParams]) -> HandParams:
    return HandParams.stack(items, lambda values: np.concatenate([np.asarray(v, np.float32) for v in values]))


def _take(params: HandParams, index) -> HandParams:
    return params.map(lambda v: np.asarray(v)[index])


def _repeat_each(values: list, times: list[int]) -> list:
    return [v for v, t in zip(values, times) for _ in range(t)]


def check_count(value: Any, what: str) -> int:
    """A validated count >= 1 (Mask2HandError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise Mask2HandError(f"{what} must be a whole number >= 1, got {value!r}")
    return int(value)


# ---------------------------------------------------------------------- network-free

def prior_starts(hand, mask: np.ndarray, K: np.ndarray, n_starts: int, seed: int = 0) -> HandParams:
    """n_starts hands placed on one mask: orientation i % 4 of ORIENTATION_CANDIDATES, pose i // 4
    of prior_poses (the relaxed archetype, then prior samples)."""
    count = len(ORIENTATION_CANDIDATES)
    poses = prior_poses((n_starts + count - 1) // count, seed=seed)
    orientations = [ORIENTATION_CANDIDATES[i % count] for i in range(n_starts)]
    return place_on_mask(hand, mask, K, poses[[i // count for i in range(n_starts)]], orientations)


def fit_from_prior(masks: Any, K: Any, hand, n_starts: int = 8, config: FitConfig | None = None,
                   seed: int = 0) -> FitResult:
    """Network-free fitting: the best of `n_starts` fits per mask (see the module docstring).

    masks: one (H,W) mask, (B,H,W) or a list of (H,W) masks; K: (3,3) or (B,3,3). Returns
    a FitResult with one hand per mask (B = 1 for one mask); its iou_before is the chosen
    start's.
    """
    config = (config or FitConfig()).check()
    n_starts = check_count(n_starts, "n_starts")
    if not isinstance(masks, (list, tuple)) and np.ndim(masks) == 2:
        masks = [masks]
    mask_list = as_mask_list(masks)
    K_np = as_K_array(K, len(mask_list))
    starts = _concat([prior_starts(hand, m, k, n_starts, seed) for m, k in zip(mask_list, K_np)])
    result = fit_to_silhouette(starts, _repeat_each(mask_list, [n_starts] * len(mask_list)),
                               np.repeat(K_np, n_starts, axis=0), hand, config)
    scores = result.score(config.plausibility_weight).reshape(len(mask_list), n_starts)
    chosen = np.arange(len(mask_list)) * n_starts + scores.argmax(axis=1)
    return take_result(result, chosen)


def take_result(result: FitResult, index) -> FitResult:
    """The rows `index` of a FitResult."""
    return FitResult(params=_take(result.params, index), vertices=result.vertices[index],
                     joints=result.joints[index], iou_before=result.iou_before[index], iou=result.iou[index],
                     steps=result.steps[index], prior_penalty=result.prior_penalty[index],
                     kept_start=result.kept_start[index])


# ---------------------------------------------------------------------- hypotheses

@dataclass
class Hypothesis:
    """One hand that explains the silhouette. params: HandParams (numpy, one hand);
    vertices (V,3), joints (21,3): meters, camera space; iou: exact IoU with the mask;
    prior_penalty: the weighted joint-limit and shape terms; score: iou minus
    plausibility_weight x prior_penalty (higher is better); start: which start it was
    fitted from ("network", "palm flip", "swap index-middle", "prior 2", ...); steps:
    Adam updates made."""

    params: HandParams
    vertices: np.ndarray
    joints: np.ndarray
    iou: float
    prior_penalty: float
    score: float
    start: str
    steps: int = 0


def hypothesis_starts(hand, params: HandParams, n_prior: int = 4, seed: int = 0) -> tuple[HandParams, list[str]]:
    """Starts (S,...) and their names for one answer (params with a batch of 1): the answer, its
    palm flip, three neighbour-flexion swaps, n_prior prior poses alternating between the
    answer's and the flipped rotation."""
    flipped = palm_flip(params)
    items, names = [params, flipped], ["network", "palm flip"]
    for first, second in NEIGHBOURS:
        items.append(swap_flexion(hand, params, first, second))
        names.append(f"swap {first}-{second}")
    poses = prior_poses(n_prior, seed=seed, first=None)
    for i in range(n_prior):
        base = params if i % 2 == 0 else flipped
        items.append(with_poses(hand, base, poses[i:i + 1]))
        names.append(f"prior {i}" + (" flipped" if i % 2 else ""))
    return _concat(items), names


def _root_relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean joint distance (meters) of two (21,3) joint sets after subtracting their root joints."""
    return float(np.linalg.norm((a - a[:1]) - (b - b[:1]), axis=-1).mean())


def rank_hypotheses(result: FitResult, names: list[str], k: int, plausibility_weight: float,
                    min_distance_cm: float) -> list[Hypothesis]:
    """Fits of one mask's starts -> the k best distinct Hypotheses, best first."""
    scores = result.score(plausibility_weight)
    order = np.argsort(-scores, kind="stable")
    chosen: list[Hypothesis] = []
    for i in order:
        if any(_root_relative_distance(result.joints[i], h.joints) * 100 < min_distance_cm for h in chosen):
            continue
        chosen.append(Hypothesis(params=_take(result.params, i), vertices=result.vertices[i],
                                 joints=result.joints[i], iou=float(result.iou[i]),
                                 prior_penalty=float(result.prior_penalty[i]), score=float(scores[i]),
                                 start=names[i], steps=int(result.steps[i])))
        if len(chosen) == k:
            break
    return chosen


def hypotheses_batch(params: HandParams, masks: Any, K: Any, hand, k: int = 5, config: FitConfig | None = None,
                     n_prior: int | None = None, min_distance_cm: float = 1.0, seed: int = 0
                     ) -> list[list[Hypothesis]]:
    """Hypotheses for a batch: params batched (B leading, numpy or torch), masks (B,H,W) or a list,
    K (3,3) or (B,3,3). Returns B lists of at most k Hypotheses, best score first (fewer
    when the fits collapse onto fewer than k distinct hands). All starts of all masks are
    fitted in one batch. n_prior: prior-pose starts per mask (None: max(4, 2k - 5), so that
    there are at least 2k starts for k hands)."""
    config = (config or FitConfig()).check()
    k = check_count(k, "the number of hypotheses k")
    if n_prior is None:
        n_prior = max(4, 2 * k - 5)
    if isinstance(n_prior, bool) or not isinstance(n_prior, (int, np.integer)) or n_prior < 0:
        raise Mask2HandError(f"n_prior must be a whole number >= 0, got {n_prior!r}")
    if not min_distance_cm >= 0:
        raise Mask2HandError(f"min_distance_cm must be >= 0, got {min_distance_cm}")
    mask_list = as_mask_list(masks)
    K_np = as_K_array(K, len(mask_list))
    with torch.no_grad():
        base = HandParams(**{name: value.cpu().numpy()
                             for name, value in start_tensors(params, hand, hand.faces.device).items()},
                          flat_hand_mean=hand.flat_hand_mean)
    per_mask = [hypothesis_starts(hand, _take(base, slice(b, b + 1)), n_prior, seed) for b in range(len(mask_list))]
    counts = [len(names) for _, names in per_mask]
    result = fit_to_silhouette(_concat([starts for starts, _ in per_mask]), _repeat_each(mask_list, counts),
                               np.repeat(K_np, counts, axis=0), hand, config)
    out, offset = [], 0
    for (_, names), count in zip(per_mask, counts):
        part = take_result(result, np.arange(offset, offset + count))
        out.append(rank_hypotheses(part, names, k, config.plausibility_weight, min_distance_cm))
        offset += count
    return out


class FramedAnswer(Protocol):
    """An answer that knows the frame its parameters live in (a mask2hand.inference.result.Prediction)."""

    def network_frame(self) -> tuple[HandParams, np.ndarray, np.ndarray]:
        """(params of one hand, its mask (H,W), K (3,3)) in the frame the params live in."""


def hypotheses(start: HandParams | FramedAnswer, mask: Any = None, K: Any = None, hand=None, k: int = 5,
               config: FitConfig | None = None, n_prior: int | None = None, min_distance_cm: float = 1.0,
               seed: int = 0) -> list[Hypothesis]:
    """Up to k distinct hands that explain one silhouette, best score first.

    start: HandParams of one hand (unbatched), or a Prediction (its params, and its mask and
    K when not given, all in the frame its params live in: for a left hand the mirrored
    picture, and so are the hypotheses). mask (H,W), K (3,3), hand: a HandModel of the params'
    hand model, in either pose convention (the params are converted to its convention, and the
    hypotheses' params are in it). See the module docstring.
    """
    if hand is None:
        raise Mask2HandError("hypotheses needs the hand model the parameters belong to (hand=...)")
    params = start
    if not isinstance(start, HandParams):
        params, frame_mask, frame_K = start.network_frame()
        mask = frame_mask if mask is None else mask
        K = frame_K if K is None else K
    if mask is None or K is None:
        raise Mask2HandError("hypotheses needs the mask and K (or a Prediction that carries them)")
    batched = params.map(lambda v: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)[None])
    return hypotheses_batch(batched, [np.asarray(mask)], np.asarray(K)[None], hand, k=k, config=config,
                            n_prior=n_prior, min_distance_cm=min_distance_cm, seed=seed)[0]
