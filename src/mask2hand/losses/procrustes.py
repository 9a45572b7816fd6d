"""Batched similarity (Procrustes) alignment of a predicted point set onto a target.

The one alignment of the project, following the paper's four steps (section 3.2) and the
FreiHAND evaluation (`align_w_scale` in lmb-freiburg/freihand, `eval.py`):

1. centre both sets on their means;
2. divide each by its Frobenius norm (plus 1e-8, as FreiHAND does, so that a set whose
   points all coincide gives finite numbers);
3. solve the orthogonal Procrustes problem min_R ||A R - B||_F for the normalised target A
   and prediction B: with A^T B = U S V^T, R = U V^T and the scale s is the sum of the
   singular values (scipy.linalg.orthogonal_procrustes);
4. map the prediction back: aligned = (B R^T) * s * ||target|| + mean(target).

`allow_reflection` chooses between the two variants of step 3:

- True: exactly scipy's `orthogonal_procrustes`, which may return an improper R (det -1,
  a reflection) when that fits better. The published metrics (PA-MPJPE, PA-MPVPE, aligned
  AUCs in `mask2hand.evaluation.metrics`) use this, as the FreiHAND benchmark does.
- False: R restricted to rotations (Kabsch/Umeyama sign correction: the last singular
  vector is flipped when det(U V^T) < 0, and the scale uses the signed singular values).
  The aligned training losses (`mask2hand.losses.objective`) use this: a reflected hand is not a
  hand, and the rotation is a smooth function of the points away from degenerate sets.

Gradients: the rotation goes through a custom backward written for the polar factor
U V^T, whose derivative only involves 1/(s_i + s_j); PyTorch's generic SVD backward
involves 1/(s_i^2 - s_j^2) and gives inf/NaN whenever two singular values coincide
(for example when every point is equal). Denominators are clamped so the gradient stays
finite for degenerate sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# FreiHAND adds this to both Frobenius norms (in whatever unit the points are in).
NORM_EPS = 1e-8
# Lower bound on s_i + s_j in the rotation's backward. The matrices are built from
# unit-norm point sets, so singular values are at most 1 and this is a relative bound:
# it only acts when the rotation is (nearly) undetermined, e.g. collinear or equal points.
_GRAD_DENOM_EPS = 1e-6


@dataclass
class ProcrustesResult:
    """Output of `procrustes_align`.

    aligned (B,N,3): the prediction after alignment, in the target's units and frame.
    rotation (B,3,3): R, applied to row vectors as x @ R^T (det -1 possible only with
        allow_reflection=True).
    scale (B,): overall scale factor c.
    translation (B,3): t, such that aligned = c * pred @ R^T + t (up to rounding).
    """

    aligned: torch.Tensor
    rotation: torch.Tensor
    scale: torch.Tensor
    translation: torch.Tensor


class _ProcrustesRotation(torch.autograd.Function):
    """R = U D V^T from the SVD M = U S V^T of (B,3,3) matrices; D flips the last column
    when a rotation is required and det(U V^T) < 0. Computed in float64 internally.

    Backward: with V' = V D and signed singular values s' = D s, dR = U K V'^T where
    K_ij = (X_ij - X_ji) / (s'_i + s'_j) and X = U^T dM V'. Hence, for an upstream
    gradient G, dL/dM = U Z V'^T with Z = (H - H^T) / (s'_i + s'_j), H = U^T G V'.
    """

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, allow_reflection: bool) -> torch.Tensor:  # type: ignore[override]
        m64 = matrix.detach().to(torch.float64)
        u, sigma, vh = torch.linalg.svd(m64)
        v = vh.mT.clone()
        if not allow_reflection:
            # det(U V^T) is +-1; where it is -1, flip the last singular pair.
            sign = torch.sign(torch.linalg.det(u @ vh))
            sign = torch.where(sign == 0, torch.ones_like(sign), sign)
            v[..., :, 2] = v[..., :, 2] * sign[..., None]
            sigma = sigma.clone()
            sigma[..., 2] = sigma[..., 2] * sign
        rotation = u @ v.mT
        ctx.save_for_backward(u, sigma, v)
        return rotation.to(matrix.dtype)

    @staticmethod
    def backward(ctx, grad_rotation: torch.Tensor):  # type: ignore[override]
        u, sigma, v = ctx.saved_tensors
        h = u.mT @ grad_rotation.to(torch.float64) @ v
        denom = (sigma[..., :, None] + sigma[..., None, :]).clamp_min(_GRAD_DENOM_EPS)
        z = (h - h.mT) / denom
        grad_matrix = u @ z @ v.mT
        return grad_matrix.to(grad_rotation.dtype), None


def procrustes_align(pred: torch.Tensor, target: torch.Tensor, *, allow_reflection: bool) -> ProcrustesResult:
    """Align `pred` onto `target` by translation, orthogonal transform and uniform scale.

    pred, target: (B,N,3) tensors (any unit, same unit for both; float32 or float64).
    allow_reflection: True reproduces scipy/FreiHAND (metrics); False gives a proper
        rotation (losses). There is deliberately no default: every caller says which.
    Returns a `ProcrustesResult` on the inputs' device and dtype. Differentiable w.r.t.
    both inputs; all points equal in either set gives finite values and gradients (the
    aligned set is then the target's mean repeated).
    """
    if pred.ndim != 3 or pred.shape[-1] != 3 or pred.shape != target.shape:
        raise ValueError(
            f"procrustes_align expects two (B,N,3) tensors of the same shape, got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    if pred.dtype != target.dtype:
        raise ValueError(f"procrustes_align: dtypes differ ({pred.dtype} and {target.dtype})")

    target_mean = target.mean(dim=1, keepdim=True)
    pred_mean = pred.mean(dim=1, keepdim=True)
    target_c = target - target_mean
    pred_c = pred - pred_mean
    target_norm = torch.linalg.vector_norm(target_c, dim=(1, 2), keepdim=True) + NORM_EPS
    pred_norm = torch.linalg.vector_norm(pred_c, dim=(1, 2), keepdim=True) + NORM_EPS
    a = target_c / target_norm
    b = pred_c / pred_norm

    m = a.mT @ b  # (B,3,3) = A^T B
    rotation = _ProcrustesRotation.apply(m, allow_reflection)
    # Sum of the (signed) singular values = trace(R^T M).
    s = (rotation * m).sum(dim=(1, 2))

    aligned = (b @ rotation.mT) * s[:, None, None] * target_norm + target_mean

    scale = s * (target_norm / pred_norm).reshape(-1)
    translation = target_mean[:, 0] - scale[:, None] * (pred_mean @ rotation.mT)[:, 0]
    return ProcrustesResult(aligned=aligned, rotation=rotation, scale=scale, translation=translation)
