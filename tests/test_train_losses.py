"""The MSE + PLCC training loss."""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from fiqa_edge.train.losses import clean_pairs_loss, order_loss, plcc_loss, quality_loss, within_photo_loss


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


def test_within_photo_loss_rewards_the_labels_order_within_a_photo_only():
    y = torch.tensor([0.8, 0.6, 0.2, 0.7, 0.3])
    photo = torch.tensor([0, 0, 0, 1, 1])
    right = within_photo_loss(torch.tensor([0.9, 0.5, 0.1, 0.8, 0.2]), y, photo, 0.05)
    wrong = within_photo_loss(torch.tensor([0.1, 0.5, 0.9, 0.8, 0.2]), y, photo, 0.05)
    assert right.item() < 0.01 < 0.5 < wrong.item()
    # pairs of different photos are not compared: moving photo 1 as a whole changes nothing
    shifted = within_photo_loss(torch.tensor([0.9, 0.5, 0.1, 0.1, -0.5]), y, photo, 0.05)
    assert shifted.item() == pytest.approx(right.item(), abs=1e-7)
    # a label difference far under the scale asks for no order: either order costs about the same
    tiny = torch.tensor([0.500, 0.501])
    pair = torch.tensor([0, 0])
    assert within_photo_loss(torch.tensor([0.6, 0.4]), tiny, pair, 0.05).item() == pytest.approx(
        within_photo_loss(torch.tensor([0.4, 0.6]), tiny, pair, 0.05).item(), abs=0.02)


def test_within_photo_loss_without_pairs_is_zero_with_a_gradient():
    p = torch.tensor([0.3, 0.7], requires_grad=True)
    loss = within_photo_loss(p, torch.tensor([0.1, 0.9]), torch.tensor([0, 1]), 0.05)
    loss.backward()
    assert loss.item() == 0.0 and p.grad is not None


def test_clean_pairs_loss_orders_clean_images_and_leaves_degraded_ones_out():
    y = torch.tensor([0.7, 0.6, 0.5, 0.1, 0.05])
    clean = torch.tensor([True, True, True, False, False])
    right = clean_pairs_loss(torch.tensor([0.8, 0.6, 0.4, 0.9, 0.0]), y, clean, 0.05)
    wrong = clean_pairs_loss(torch.tensor([0.4, 0.6, 0.8, 0.0, 0.9]), y, clean, 0.05)
    assert right.item() < 0.05 < 0.3 < wrong.item()
    # degraded copies are not compared, with clean images or with each other
    moved = clean_pairs_loss(torch.tensor([0.8, 0.6, 0.4, -3.0, 5.0]), y, clean, 0.05)
    assert moved.item() == pytest.approx(right.item(), abs=1e-7)
    p = torch.tensor([0.3, 0.7], requires_grad=True)
    none = clean_pairs_loss(p, torch.tensor([0.1, 0.9]), torch.tensor([True, False]), 0.05)
    none.backward()
    assert none.item() == 0.0 and p.grad is not None


def test_order_loss_asks_the_stronger_copy_to_score_a_margin_lower():
    weaker = torch.tensor([0.8, 0.5, 0.3], requires_grad=True)
    assert order_loss(weaker, torch.tensor([0.7, 0.4, 0.2]), 0.02).item() == 0.0  # all far enough apart
    # one pair in the wrong order by 0.1 costs (0.1 + margin) / 3; one too close by 0.01 costs 0.01 / 3
    loss = order_loss(weaker, torch.tensor([0.9, 0.49, 0.2]), 0.02)
    assert loss.item() == pytest.approx((0.12 + 0.01) / 3, abs=1e-6)
    loss.backward()
    assert weaker.grad is not None and weaker.grad.tolist() == pytest.approx([-1 / 3, -1 / 3, 0.0])
