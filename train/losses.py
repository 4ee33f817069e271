"""Training loss of the Efficient-FIQA recipe: MSE plus a PLCC-based term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["plcc_loss", "quality_loss"]


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
