"""Test-time fitting of hands to silhouettes, network-free fitting from the pose prior, and
several hypotheses for ambiguous silhouettes."""

from mask2hand.fit.core import FitConfig, FitResult, fit_to_silhouette

__all__ = ["FitConfig", "FitResult", "fit_to_silhouette"]
