"""Accuracy and cost of fitting and hypotheses on a dataset with 3-D ground truth.

    from mask2hand.evaluation.fitting import FitEvalSettings, evaluate_fitting

    report = evaluate_fitting(Mask2Hand.from_pretrained(), MaskDataset("data/broad", split="test"),
                              FitEvalSettings(num_samples=200))
    print(report.table())

Rows (`MODES`), each with MPJPE, root-relative MPJPE and PA-MPJPE (cm; mask2hand.evaluation.metrics:
FreiHAND's protocol, Procrustes with reflections for PA), the palm/back flip rate, mIoU (exact
silhouette at the mask's resolution vs the mask, or vs the hand-only mask where the dataset has
one: masks with a forearm) and seconds per mask (wall clock, whole batches, divided by the
number of masks; modes that start from the network include its time). The dataset may come
from another hand model than the network's (Anny): the joints are compared, as FreiHAND's are
with MANO's.
- "network": the network alone (`Mask2Hand.predict` without fitting);
- "network + fit": the network's answer fitted (`Mask2Hand.finish(..., fit=...)`, as `predict(fit=...)`);
- "prior fit": no network, the best of `prior_starts` fits from the pose prior
  (fit.search.fit_from_prior);
- "top-1 of K": the best-scored of the K hypotheses (fit.search.hypotheses_batch);
- "best of K (oracle)": per sample and per metric, the best of the K hypotheses (lowest
  MPJPE, lowest PA-MPJPE, highest IoU, each chosen separately), as multi-hypothesis pose
  papers report it; its time is that of the hypotheses.
Masks are fed at the dataset's own resolution with its K, as a user would give them; a mask
that `predict` refuses (at a low sensor resolution, a hand of fewer than
mask2hand.image.masks.MIN_HAND_PIXELS pixels) is left out of every row and counted in `refused`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mask2hand.errors import Mask2HandError
from mask2hand.fit.core import FitConfig

MODES = ("network", "network + fit", "prior fit", "top-1 of K", "best of K (oracle)")


@dataclass
class FitEvalSettings:
    """fit: the FitConfig of every fit; k: hypotheses per mask; prior_starts: starts of the
    network-free fit; num_samples: the first N samples of the dataset (None: all);
    batch_size: masks per batch; modes: which rows of MODES to run."""

    fit: FitConfig = field(default_factory=FitConfig)
    k: int = 5
    prior_starts: int = 8
    num_samples: int | None = 200
    batch_size: int = 16
    modes: tuple[str, ...] = MODES

    def check(self) -> "FitEvalSettings":
        from mask2hand.fit.search import check_count

        self.fit.check()
        check_count(self.k, "k")
        check_count(self.prior_starts, "prior_starts")
        check_count(self.batch_size, "batch_size")
        if self.num_samples is not None:
            check_count(self.num_samples, "num_samples")
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise Mask2HandError(f"unknown evaluation modes {unknown}; choose from {MODES}")
        return self


@dataclass
class FitEvaluation:
    """rows: mode -> {"mpjpe_cm", "rr_mpjpe_cm", "pa_mpjpe_cm", "flip_rate", "flips_judged", "joints_2d_px"
    (the network's modes), "miou", "seconds_per_mask"}; num_samples: the
    masks measured; refused: dataset indices `predict` refused (left out); settings: the
    settings as a dict."""

    rows: dict[str, dict[str, float]]
    num_samples: int
    settings: dict[str, Any]
    refused: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"num_samples": self.num_samples, "refused": self.refused, "settings": self.settings,
                "rows": self.rows}

    def table(self) -> str:
        """The rows as an aligned text table."""
        columns = [("mode", None), ("MPJPE (cm)", "mpjpe_cm"), ("RR-MPJPE (cm)", "rr_mpjpe_cm"),
                   ("PA-MPJPE (cm)", "pa_mpjpe_cm"), ("2-D (px)", "joints_2d_px"), ("flips", "flip_rate"),
                   ("mIoU", "miou"),
                   ("s/mask", "seconds_per_mask")]
        lines = [[name] + [_cell(self.rows[name].get(key)) for _, key in columns[1:]] for name in self.rows]
        header = [title for title, _ in columns]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
        out = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines]
        return "\n".join(out)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3f}"


class _Accumulator:
    """Per-sample joint errors (cm) and IoU of one mode, its palm flips, and its seconds."""

    def __init__(self) -> None:
        self.mpjpe: list[np.ndarray] = []
        self.pa_mpjpe: list[np.ndarray] = []
        self.rr_mpjpe: list[np.ndarray] = []
        self.joints_2d_px: list[np.ndarray] = []
        self.iou: list[np.ndarray] = []
        self.flipped = 0
        self.judged = 0
        self.seconds = 0.0

    def add(self, mpjpe: np.ndarray, pa_mpjpe: np.ndarray, iou: np.ndarray, seconds: float) -> None:
        """One batch: per-sample errors (B,) in cm, IoU (B,), and the batch's seconds."""
        self.mpjpe.append(np.asarray(mpjpe))
        self.pa_mpjpe.append(np.asarray(pa_mpjpe))
        self.iou.append(np.asarray(iou, dtype=np.float64))
        self.seconds += seconds

    def add_joints(self, joints: np.ndarray, iou: np.ndarray, target: np.ndarray, seconds: float,
                   K: np.ndarray | None = None) -> None:
        """One batch of predicted joints (B,21,3) with their IoU (B,), against target (B,21,3); meters;
        also the root-relative errors and the palm flips, which need the joints themselves, and with
        the masks' intrinsics K (B,3,3) the 2-D joint error in pixels."""
        from mask2hand.evaluation.metrics import palm_flips, point_errors
        from mask2hand.render.exact import project_points

        self.add(*joint_errors_cm(joints, target), iou, seconds)
        joints, target = np.asarray(joints, np.float64), np.asarray(target, np.float64)
        if K is not None:
            K = np.asarray(K, np.float64)
            pixels = np.linalg.norm(project_points(joints, K) - project_points(target, K), axis=-1)
            self.joints_2d_px.append(pixels.mean(axis=1))
        self.rr_mpjpe.append(point_errors(joints - joints[:, :1], target - target[:, :1]).mean(dim=1).numpy() * 100)
        flipped, judged = palm_flips(joints, target)
        self.flipped += flipped
        self.judged += judged

    def row(self, n: int) -> dict[str, float | None]:
        rr = np.concatenate(self.rr_mpjpe).mean() if self.rr_mpjpe else None  # the oracle row has none
        return {"mpjpe_cm": float(np.concatenate(self.mpjpe).mean()),
                "rr_mpjpe_cm": None if rr is None else float(rr),
                "pa_mpjpe_cm": float(np.concatenate(self.pa_mpjpe).mean()),
                "flip_rate": self.flipped / self.judged if self.judged else None, "flips_judged": self.judged,
                "joints_2d_px": float(np.concatenate(self.joints_2d_px).mean()) if self.joints_2d_px else None,
                "miou": float(np.concatenate(self.iou).mean()), "seconds_per_mask": self.seconds / n}


def joint_errors_cm(pred: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample mean joint error (B,) in cm, unaligned and Procrustes-aligned (FreiHAND's
    protocol, reflections allowed), of joints (B,21,3) vs (B,21,3) in meters."""
    from mask2hand.evaluation.metrics import point_errors

    unaligned = point_errors(pred, target).mean(dim=1).numpy() * 100
    aligned = point_errors(pred, target, aligned=True).mean(dim=1).numpy() * 100
    return unaligned, aligned


def evaluate_fitting(model, dataset, settings: FitEvalSettings | None = None, progress=None) -> FitEvaluation:
    """Run the MODES rows of `settings` over the first samples of `dataset` (see the module docstring).

    model: a mask2hand.inference.api.Mask2Hand; dataset: a mask2hand.data.dataset.MaskDataset
    with ground-truth joints (any hand model; no augmentation or noise unless that is what is
    measured); progress: optional callable(done, total).
    """
    settings = (settings or FitEvalSettings()).check()
    total = len(dataset) if settings.num_samples is None else min(settings.num_samples, len(dataset))
    if total == 0:
        raise Mask2HandError("the dataset has no samples to evaluate")
    if not dataset.labelled:
        raise Mask2HandError("the dataset holds unlabelled masks (no joints or vertices): there is nothing to "
                             "evaluate against")
    hand = model.hand_layer("evaluating fitting")
    acc = {mode: _Accumulator() for mode in MODES if mode in settings.modes}
    refused: list[int] = []
    for start in range(0, total, settings.batch_size):
        stop = min(start + settings.batch_size, total)
        batch = dataset.load_batch(list(range(start, stop)))
        items, kept, batch_refused = _prepare_masks(model, batch)
        refused += batch_refused
        if items:
            target = batch.joints.numpy()[kept].astype(np.float64)
            hand_masks = None if batch.hand_mask is None else batch.hand_mask.numpy()[kept] > 0.5
            _measure_batch(model, hand, items, target, settings, acc, hand_masks)
        if progress is not None:
            progress(stop, total)
    measured = total - len(refused)
    if measured == 0:
        raise Mask2HandError(f"predict refused all {total} masks (too small a hand at this resolution?)")
    settings_dict = asdict(settings)
    settings_dict["modes"] = list(settings.modes)
    return FitEvaluation(rows={mode: row.row(measured) for mode, row in acc.items()}, num_samples=measured,
                         settings=settings_dict, refused=refused)


def _prepare_masks(model, batch) -> tuple[list, list[int], list[int]]:
    """`model.prepare` each mask of a HandBatch with its own K, as a user would give it.

    Returns the prepared inputs, the batch rows they come from, and the dataset indices refused.
    """
    items, kept, refused = [], [], []
    for row, (mask, k, index) in enumerate(zip(batch.mask.numpy(), batch.K.numpy(), batch.index)):
        try:
            items.append(model.prepare((mask > 0.5).astype(np.uint8) * 255, K=k.astype(np.float64),
                                       name=f"<sample {int(index)}>"))
            kept.append(row)
        except Mask2HandError:
            refused.append(int(index))
    return items, kept, refused


def _measure_batch(model, hand, items: list, target: np.ndarray, settings: FitEvalSettings,
                   acc: dict[str, _Accumulator], hand_masks: np.ndarray | None = None) -> None:
    """Run each mode of `acc` on one batch of prepared inputs; hand: the model's hand layer;
    target: the inputs' joints (B,21,3), meters; hand_masks: (B,H,W) bool hand-only masks that the
    IoU of the network's modes is measured against, or None (the input masks)."""
    from mask2hand.inference.fitting import network_frame
    from mask2hand.fit.search import fit_from_prior

    t0 = time.perf_counter()
    raw = model.run_network(items)
    network = model.finish(items, raw)
    network_seconds = time.perf_counter() - t0
    Ks = np.stack([item.camera.K for item in items])
    if "network" in acc:
        acc["network"].add_joints(*_joints_and_iou(network, hand_masks), target, network_seconds, Ks)
    if "network + fit" in acc:
        t0 = time.perf_counter()
        fitted = model.finish(items, raw, fit=settings.fit)
        acc["network + fit"].add_joints(*_joints_and_iou(fitted, hand_masks), target,
                                        network_seconds + time.perf_counter() - t0, Ks)
    fit_masks, fit_K = network_frame(items)
    if "prior fit" in acc:
        t0 = time.perf_counter()
        prior = fit_from_prior(fit_masks, fit_K, hand, n_starts=settings.prior_starts, config=settings.fit)
        acc["prior fit"].add_joints(prior.joints, prior.iou, target, time.perf_counter() - t0)
    if "top-1 of K" in acc or "best of K (oracle)" in acc:
        _measure_hypotheses(hand, raw, fit_masks, fit_K, target, settings, acc, network_seconds)


def _joints_and_iou(predictions: list, hand_masks: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Joints (B,21,3) and IoU (B,) of a list of Predictions (or Hypotheses): their own IoU with
    the input, or that of their rendered masks with `hand_masks` (B,H,W)."""
    from mask2hand.render.exact import mask_iou

    joints = np.stack([p.joints for p in predictions])
    if hand_masks is None:
        return joints, np.array([p.iou for p in predictions])
    return joints, np.array([float(mask_iou(p.rendered_mask[None], m[None])[0]) for p, m in zip(predictions, hand_masks)])


def _measure_hypotheses(hand, raw, fit_masks: list[np.ndarray], fit_K: np.ndarray, target: np.ndarray,
                        settings: FitEvalSettings, acc: dict[str, _Accumulator], network_seconds: float) -> None:
    """The "top-1 of K" and "best of K (oracle)" rows of one batch, from the K hypotheses of the
    network's answer `raw` (a NetworkResult) in the network's frame (fit_masks, fit_K (B,3,3));
    both take the hypotheses' time plus the network's."""
    from mask2hand.fit.search import hypotheses_batch

    t0 = time.perf_counter()
    ranked = hypotheses_batch(raw.hand_params(), fit_masks, fit_K, hand, k=settings.k, config=settings.fit)
    seconds = network_seconds + time.perf_counter() - t0
    if "top-1 of K" in acc:
        acc["top-1 of K"].add_joints(*_joints_and_iou([hyps[0] for hyps in ranked]), target, seconds)
    if "best of K (oracle)" in acc:
        acc["best of K (oracle)"].add(*_oracle_errors(ranked, target), seconds)


def _oracle_errors(ranked: list, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per sample, the lowest MPJPE, the lowest PA-MPJPE (cm) and the highest IoU among its hypotheses,
    each chosen separately; ranked: per sample a list of hypotheses; target (B,21,3), meters."""
    best = np.zeros((len(ranked), 3))
    for b, hyps in enumerate(ranked):
        joints = np.stack([h.joints for h in hyps])
        unaligned, aligned = joint_errors_cm(joints, np.repeat(target[b:b + 1], len(hyps), axis=0))
        best[b] = unaligned.min(), aligned.min(), max(h.iou for h in hyps)
    return best[:, 0], best[:, 1], best[:, 2]
