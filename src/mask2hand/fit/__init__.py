"""Test-time fitting of hands to silhouettes (`fit_to_silhouette`), network-free fitting from
the pose prior (`fit_from_prior`), and ranked hypotheses for ambiguous silhouettes
(`hypotheses`)."""

from mask2hand.fit.core import FitConfig, FitResult, fit_to_silhouette
from mask2hand.fit.search import Hypothesis, fit_from_prior, hypotheses, hypotheses_batch

__all__ = ["FitConfig", "FitResult", "Hypothesis", "fit_from_prior", "fit_to_silhouette", "hypotheses",
           "hypotheses_batch"]
