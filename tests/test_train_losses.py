"""The MSE + PLCC training loss."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from fiqa_edge.train.losses import plcc_loss, quality_loss


def test_plcc_loss_is_a_function_of_correlation():
    g = torch.Generator().manual_seed(0)
    y = torch.rand(64, generator=g)
    for noise in (0.0, 0.1, 0.5, 2.0):
        p = 3 * y + 1 + noise * torch.randn(64, generator=g)
        rho = stats.pearsonr(p.numpy(), y.numpy())[0]
        expected = (1 - rho) / 4 + (1 - rho**2) / 8
        assert plcc_loss(p, y).item() == pytest.approx(expected, abs=1e-5)
    assert plcc_loss(2 * y + 5, y).item() == pytest.approx(0.0, abs=1e-6)
    assert plcc_loss(-y, y).item() == pytest.approx(0.5, abs=1e-5)


def test_quality_loss_weights_and_gradients():
    y = torch.linspace(0, 1, 16)
    p = (y * 0.5).clone().requires_grad_(True)
    loss = quality_loss(p.view(-1, 1), y, mse_weight=1.0, plcc_weight=0.0)
    assert loss.item() == pytest.approx(torch.mean((0.5 * y - y) ** 2).item())
    loss.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
