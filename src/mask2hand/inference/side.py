"""Which hand a silhouette shows, when the user does not say: `side="auto"`.

A left hand's silhouette is the mirror image of a right hand's, and a right hand seen from the
palm casts nearly the silhouette of a left hand seen from the back: from the outline alone the
side and the palm/back reading are confounded. So the honest answer is a scored choice. Both
readings (the mask as a right hand, and mirrored as a left hand) go through the network; the
one whose answer's exact silhouette agrees better with the mask (IoU) is returned, with the
margin between the two, and called ambiguous when the margin is below AMBIGUOUS_MARGIN. How
often that is right, and how often it is ambiguous, on synthetic natural views of both hands:
`benchmarks/side.py` and the model card.

Fitting both readings was measured too and separates them less (it raises the worse reading's
IoU more), so the choice uses the network's answers, with or without a fit afterwards.
"""

from __future__ import annotations

from dataclasses import replace

from mask2hand.errors import Mask2HandError
from mask2hand.inference.prepare import PreparedInput, prepare_mask
from mask2hand.inference.result import Prediction

AMBIGUOUS_MARGIN = 0.015
"""IoU difference between the two readings below which the side is called ambiguous (the
benchmark's figures for this threshold are in the model card)."""


def left_reading(item: PreparedInput, size: int, crop_margin: float | None) -> PreparedInput:
    """The left-hand reading of a right-hand reading of the same mask: the cleaned mask mirrored
    and prepared again for a network of input side `size` (and its crop margin), the camera
    and the warnings kept."""
    mask = prepare_mask(item.mask.mask, size, crop_margin=crop_margin, side="left", name=item.source)
    return replace(item, mask=replace(mask, warnings=item.mask.warnings), side="left")


def choose_side(right: Prediction | Mask2HandError, left: Prediction | Mask2HandError) -> Prediction | Mask2HandError:
    """The reading whose silhouette agrees better with the mask, with side_margin and
    side_ambiguous set (a reading that failed, e.g. an AnswerError, loses; both failed: the right one's error)."""
    if isinstance(right, Mask2HandError) and isinstance(left, Mask2HandError):
        return right
    if isinstance(left, Mask2HandError):
        return replace(right, side_margin=1.0, side_ambiguous=False)
    if isinstance(right, Mask2HandError):
        return replace(left, side_margin=1.0, side_ambiguous=False)
    chosen, other = (right, left) if right.iou >= left.iou else (left, right)
    margin = float(chosen.iou - other.iou)
    notes = chosen.notes
    if margin < AMBIGUOUS_MARGIN:
        notes = notes + [f"the side is ambiguous: as a {other.side} hand the mask is explained almost as well "
                         f"(IoU {other.iou:.3f} against {chosen.iou:.3f}); give --side if you know it"]
    return replace(chosen, side_margin=margin, side_ambiguous=margin < AMBIGUOUS_MARGIN, notes=notes)
