"""Metrics as the official evaluation computes them (logistic fit before PLCC and RMSE)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from fiqa_edge.metrics import Logistic4, fit_logistic, quality_metrics


def test_logistic_fit_recovers_a_known_curve():
    rng = np.random.default_rng(0)
    x = rng.uniform(-3, 3, 200)
    truth = Logistic4(b1=0.9, b2=0.1, b3=0.4, b4=0.7)
    fitted = fit_logistic(x, truth(x))
    assert np.allclose(fitted(x), truth(x), atol=1e-6)
    assert abs(abs(fitted.b4) - 0.7) < 1e-4


def test_metrics_on_a_monotone_nonlinear_relation():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 300)
    y = Logistic4(1.0, 0.0, 0.5, 0.1)(x)
    m = quality_metrics(x, y)
    assert m.fitted
    assert m.srcc == pytest.approx(1.0) and m.krcc == pytest.approx(1.0)
    assert m.plcc == pytest.approx(1.0, abs=1e-9)  # linear PLCC of raw x would be lower
    assert stats.pearsonr(x, y)[0] < 0.99
    assert m.rmse < 1e-6
    assert m.score == pytest.approx((m.srcc + m.plcc) / 2)


def test_metrics_match_scipy_on_noisy_data():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 1, 500)
    x = y + rng.normal(0, 0.2, 500)
    m = quality_metrics(x, y)
    assert m.srcc == pytest.approx(stats.spearmanr(x, y)[0])
    assert m.krcc == pytest.approx(stats.kendalltau(x, y)[0])
    fitted = fit_logistic(x, y)(x)
    assert m.plcc == pytest.approx(stats.pearsonr(fitted, y)[0])
    assert m.rmse == pytest.approx(np.sqrt(np.mean((fitted - y) ** 2)))
    assert 0.7 < m.srcc < 0.95
    assert set(m.to_dict()) >= {"srcc", "plcc", "krcc", "rmse", "score", "n"}


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="equal in length"):
        quality_metrics([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        quality_metrics([1, 2], [1, 2])


def _flips_by_pairs(a: np.ndarray, b: np.ndarray) -> float:
    i, j = np.triu_indices(len(a), k=1)
    return float(np.mean(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) < 0))


def test_flip_rate_equals_the_pairwise_count_with_and_without_ties():
    from fiqa_edge.metrics import flip_rate

    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(3, 80))
        if trial % 2:  # continuous scores: (1 - tau) / 2
            a = rng.normal(size=n)
            b = a + rng.normal(0, 0.5, n)
            assert flip_rate(a, b) == pytest.approx((1 - stats.kendalltau(a, b)[0]) / 2)
        else:  # few distinct values: many ties, which never count as flips
            a = rng.integers(0, 4, n).astype(float)
            b = a + rng.integers(-2, 3, n)
        assert flip_rate(a, b) == pytest.approx(_flips_by_pairs(a, b), abs=1e-12)
    assert flip_rate(np.ones(10), np.arange(10.0)) == 0
