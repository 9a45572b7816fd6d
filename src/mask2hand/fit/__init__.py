"""Test-time fitting of hands to silhouettes, network-free fitting, and hypotheses.

    from mask2hand.fit import FitConfig, fit_to_silhouette, fit_from_prior, hypotheses

    result = fit_to_silhouette(params, masks, K, hand, FitConfig(steps=40))  # a start, e.g. the network's
    result.iou_before, result.iou, result.steps
    alone = fit_from_prior(mask, K, hand, n_starts=8)                         # no network
    ranked = hypotheses(prediction, hand=hand, k=5)                           # distinct hands, best first

Modules: core (the fit), priors (joint limits, shape), starts (placement from a mask,
palm flip, finger swaps), search (many starts: prior fitting, hypotheses). The fit inside
`Mask2Hand.predict` is mask2hand.inference.fitting; its evaluation on a dataset is
mask2hand.evaluation.fitting.
"""

from mask2hand.fit.core import FitConfig, FitResult, fit_to_silhouette
from mask2hand.fit.search import Hypothesis, fit_from_prior, hypotheses, hypotheses_batch

__all__ = ["FitConfig", "FitResult", "Hypothesis", "fit_from_prior", "fit_to_silhouette", "hypotheses",
           "hypotheses_batch"]
