"""Silhouette losses and mask metrics: the paper's contour loss, BCE, IoU and Dice.

The contour loss follows the paper's five steps (section 3.2) as the reference code
(github lijenchang/Mask2Hand, loss.py and dataset.py) computes them:

1. `contour_distance_field`: the ground-truth contour is the set of background pixels
   with a 4-neighbour hand pixel (the pixels where OpenCV's 3x3 Laplacian of the 0/1
   mask is positive); the field is the Euclidean distance from each pixel center to the
   nearest contour pixel center (0 on the contour), computed once per mask.
2. Differentiable binarization b = 1 / (1 + exp(-100 (x - 0.5))) of the silhouette x.
3. Values above the threshold 0.5 are zeroed: b <- b * [b < 0.5]. Read literally (and
   the reference does exactly this), the interior of the rendered hand becomes 0, so
   only pixels whose soft value is a little below 0.5 (x in about (0.45, 0.5)) remain:
   a thin ring just outside the rendered boundary.
4. Laplacian with the 3x3 kernel [[0,1,0],[1,-4,1],[0,1,0]] (zero padding), then
   contour = tanh(max(Laplacian, 0)).
5. Product with the distance field, summed over the pixels of each image, averaged over
   the batch.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mask2hand.errors import Mask2HandError
from mask2hand.utils.checks import check_shape

_LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))


def contour_pixels(mask: np.ndarray) -> np.ndarray:
    """Boolean (H,W): background pixels with at least one 4-neighbour hand pixel."""
    hand = np.asarray(mask) > 0
    near = np.zeros_like(hand)
    near[1:, :] |= hand[:-1, :]
    near[:-1, :] |= hand[1:, :]
    near[:, 1:] |= hand[:, :-1]
    near[:, :-1] |= hand[:, 1:]
    return near & ~hand


def contour_distance_field(masks: np.ndarray) -> np.ndarray:
    """Distance in pixels (float32, same shape) from every pixel to the mask's contour.

    masks: (H,W) or (B,H,W), hand = nonzero. Raises Mask2HandError for a mask without a
    contour (empty, or hand everywhere).
    """
    masks = np.asarray(masks)
    if masks.ndim not in (2, 3):
        raise Mask2HandError(f"masks must have shape (H,W) or (B,H,W), got {masks.shape}")
    batch = masks[None] if masks.ndim == 2 else masks
    fields = np.empty(batch.shape, dtype=np.float32)
    for i, mask in enumerate(batch):
        contour = contour_pixels(mask)
        if not contour.any():
            raise Mask2HandError(f"mask {i} has no contour (it is empty or all hand); "
                                 "a silhouette loss needs a mask with both hand and background")
        # DIST_MASK_PRECISE is the exact Euclidean distance transform.
        fields[i] = cv2.distanceTransform((~contour).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return fields[0] if masks.ndim == 2 else fields


def _check_pair(a: torch.Tensor, b: torch.Tensor, first: str, second: str) -> None:
    """Both (B,H,W) with the same B, H and W."""
    check_shape(b, ["B", "H", "W"], second, check_shape(a, ["B", "H", "W"], first))


def contour_term(silhouette: torch.Tensor) -> torch.Tensor:
    """Steps 2-4 of the contour loss: the rendered contour (B,H,W) in [0,1)."""
    binary = torch.sigmoid(100.0 * (silhouette - 0.5))  # = 1 / (1 + exp(-100 (x - 0.5)))
    binary = binary * (binary < 0.5)
    kernel = torch.tensor(_LAPLACIAN, dtype=silhouette.dtype, device=silhouette.device).view(1, 1, 3, 3)
    laplacian = F.conv2d(binary.unsqueeze(1), kernel, padding=1).squeeze(1)
    return torch.tanh(laplacian.clamp_min(0.0))


def contour_loss(silhouette: torch.Tensor, distance_field: torch.Tensor) -> torch.Tensor:
    """The paper's contour loss (scalar): sum over pixels of the rendered contour times the
    ground-truth contour's distance field, averaged over the batch.

    silhouette (B,H,W) soft silhouette in [0,1]; distance_field (B,H,W) pixels, from
    `contour_distance_field`.
    """
    _check_pair(silhouette, distance_field, "silhouette", "distance_field")
    distance_field = distance_field.to(silhouette)
    return (contour_term(silhouette) * distance_field).sum() / silhouette.shape[0]


def silhouette_bce(silhouette: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy (scalar, mean over all pixels) of a soft silhouette (B,H,W) in [0,1]
    against a 0/1 mask (B,H,W). log(0) is clamped at -100 as in torch."""
    mask = torch.as_tensor(mask, device=silhouette.device)
    _check_pair(silhouette, mask, "silhouette", "mask")
    return F.binary_cross_entropy(silhouette, (mask > 0.5).to(silhouette.dtype))


