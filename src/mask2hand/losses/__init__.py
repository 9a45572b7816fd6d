"""Training objectives: the Mask2Hand loss (`objective`) and Procrustes alignment (`procrustes`),
which the evaluation metrics share."""

from mask2hand.losses.objective import LossTerms, LossWeights, mask2hand_loss
from mask2hand.losses.procrustes import ProcrustesResult, procrustes_align

__all__ = ["LossTerms", "LossWeights", "ProcrustesResult", "mask2hand_loss", "procrustes_align"]
