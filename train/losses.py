"""Training loss of the Efficient-FIQA recipe (MSE plus a PLCC-based term) and optional ranking terms (within a photo,
between clean photos, between copies of one photo degraded less and more)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["clean_pairs_loss", "order_loss", "plcc_loss", "quality_loss", "within_photo_loss"]


def plcc_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """PLCC loss as in the official code: standardise both, then average two MSE terms.

    ``mse(p̂, ŷ)/4`` is (1 - ρ)/2 for standardised vectors; ``mse(ρ p̂, ŷ)/4`` is
    (1 - ρ²)/4. Zero for a perfect linear fit, larger as correlation falls.
    """
    pred, target = pred.reshape(-1).float(), target.reshape(-1).float()
    p_std, p_mean = torch.std_mean(pred, unbiased=False)
    t_std, t_mean = torch.std_mean(target, unbiased=False)
    p = (pred - p_mean) / (p_std + eps)
    t = (target - t_mean) / (t_std + eps)
    rho = torch.mean(p * t)
    return (F.mse_loss(p, t) / 4 + F.mse_loss(rho * p, t) / 4) / 2


def quality_loss(pred: torch.Tensor, target: torch.Tensor, mse_weight: float = 1.0, plcc_weight: float = 1.0) -> torch.Tensor:
    """``mse_weight`` · MSE + ``plcc_weight`` · PLCC loss."""
    pred, target = pred.reshape(-1).float(), target.reshape(-1).float()
    return mse_weight * F.mse_loss(pred, target) + plcc_weight * plcc_loss(pred, target)


def within_photo_loss(pred: torch.Tensor, target: torch.Tensor, photo: torch.Tensor, scale: float) -> torch.Tensor:
    """Fidelity loss over the pairs of a batch that are copies of one photo (its clean and degraded versions).

    For each such pair the label difference gives a target probability that the first ranks above the second,
    Φ((y_i - y_j) / scale), and the score difference a predicted one, Φ((s_i - s_j) / scale); the fidelity loss
    1 - √(p̄p) - √((1-p̄)(1-p)) is 0 where they agree. Label differences well under ``scale`` ask for no order,
    so the noise in small ones is not learnt as an order. Pairs of different photos are not compared; a batch
    without such pairs gives 0.
    """
    i, j = torch.triu_indices(len(photo), len(photo), offset=1, device=photo.device)
    return _fidelity(pred, target, i, j, photo[i] == photo[j], scale)


def clean_pairs_loss(pred: torch.Tensor, target: torch.Tensor, clean: torch.Tensor, scale: float) -> torch.Tensor:
    """The same fidelity loss over the pairs of a batch's undegraded images (``clean``: a bool per image), so the
    order of clean photos, all Error-versus-Discard curves on clean pairs see, is asked for in its own right
    rather than drowned by the wide spread of the degraded copies' labels. Fewer than two clean images give 0."""
    i, j = torch.triu_indices(len(clean), len(clean), offset=1, device=clean.device)
    return _fidelity(pred, target, i, j, clean[i] & clean[j], scale)


def order_loss(weaker: torch.Tensor, stronger: torch.Tensor, margin: float) -> torch.Tensor:
    """Hinge loss asking each more strongly degraded copy to score at least ``margin`` below its weaker twin
    (``torch.nn.functional.margin_ranking_loss``); 0 once every pair is that far apart in the right order."""
    weaker, stronger = weaker.reshape(-1).float(), stronger.reshape(-1).float()
    return F.margin_ranking_loss(weaker, stronger, torch.ones_like(weaker), margin=margin)


def _fidelity(pred: torch.Tensor, target: torch.Tensor, i: torch.Tensor, j: torch.Tensor, keep: torch.Tensor,
              scale: float) -> torch.Tensor:
    pred, target = pred.reshape(-1).float(), target.reshape(-1).float()
    if not bool(keep.any()):
        return pred.sum() * 0.0
    i, j = i[keep], j[keep]
    normal = torch.distributions.Normal(0.0, 1.0)
    wanted = normal.cdf((target[i] - target[j]) / scale)
    got = normal.cdf((pred[i] - pred[j]) / scale)
    eps = 1e-8
    return torch.mean(1 - torch.sqrt(wanted * got + eps) - torch.sqrt((1 - wanted) * (1 - got) + eps))
