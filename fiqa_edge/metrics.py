"""Correlation metrics as the official Efficient-FIQA evaluation computes them.

PLCC and RMSE are taken after fitting the 4-parameter logistic
``y = b2 + (b1 - b2) / (1 + exp(-(x - b3) / |b4|))`` from predictions to labels
(scipy ``curve_fit`` from the official starting point); SRCC and KRCC use the
raw predictions. The challenge score is (SRCC + PLCC) / 2.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Logistic4", "Parity", "QualityMetrics", "fit_logistic", "parity", "quality_metrics"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Logistic4:
    """The fitted 4-parameter logistic; call it to map raw scores onto the label scale."""

    b1: float
    b2: float
    b3: float
    b4: float

    def __call__(self, x: np.ndarray | Sequence[float]) -> np.ndarray:
        from scipy.special import expit  # 1 / (1 + exp(-t)) without overflow

        x = np.asarray(x, dtype=np.float64)
        return self.b2 + (self.b1 - self.b2) * expit((x - self.b3) / abs(self.b4))

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_logistic(predictions: ArrayLike, labels: ArrayLike) -> Logistic4:
    """Fit :class:`Logistic4` from ``predictions`` to ``labels`` (official initialisation).

    Raises:
        RuntimeError: the least-squares fit did not converge.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)

    def f(v: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
        return Logistic4(b1, b2, b3, b4)(v)

    p0 = [np.max(y), np.min(y), np.mean(x), 0.5]
    with warnings.catch_warnings():  # the covariance estimate is not used
        warnings.simplefilter("ignore", OptimizeWarning)
        params, _ = curve_fit(f, x, y, p0=p0, maxfev=100_000_000)
    return Logistic4(*(float(p) for p in params))


@dataclass(frozen=True)
class QualityMetrics:
    """Agreement between predicted quality and labels."""

    srcc: float
    plcc: float
    krcc: float
    rmse: float
    n: int
    fitted: bool  # False when the logistic fit failed and PLCC/RMSE use raw predictions

    @property
    def score(self) -> float:
        """The challenge score, (SRCC + PLCC) / 2."""
        return (self.srcc + self.plcc) / 2.0

    def to_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "score": self.score}


def quality_metrics(predictions: ArrayLike, labels: ArrayLike) -> QualityMetrics:
    """SRCC, KRCC, PLCC and RMSE (after the logistic fit) and the challenge score.

    Raises:
        ValueError: fewer than three pairs, or the two sequences differ in length.
    """
    from scipy import stats

    x = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        msg = f"predictions and labels must be 1-D and equal in length, got {x.shape} and {y.shape}"
        raise ValueError(msg)
    if len(x) < 3:
        msg = f"need at least 3 predictions to correlate, got {len(x)}"
        raise ValueError(msg)
    try:
        mapped, fitted = fit_logistic(x, y)(x), True
    except (RuntimeError, ValueError) as exc:
        log.warning("logistic fit failed (%s); PLCC and RMSE use raw predictions", exc)
        mapped, fitted = x, False
    return QualityMetrics(
        srcc=float(stats.spearmanr(x, y)[0]),
        plcc=float(stats.pearsonr(mapped, y)[0]),
        krcc=float(stats.kendalltau(x, y)[0]),
        rmse=float(np.sqrt(np.mean((mapped - y) ** 2))),
        n=len(x),
        fitted=fitted,
    )


@dataclass(frozen=True)
class Parity:
    """How closely an artifact's scores follow the reference scores."""

    images: int
    max_abs: float
    mean_abs: float
    srcc: float
    plcc: float
    flip_rate: float  # share of all image pairs ranked in the opposite order (a pair tied on either side is no flip)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def parity(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Parity figures of ``candidate`` scores against ``reference`` scores (same images, same order)."""
    from scipy import stats

    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    if ref.shape != cand.shape or ref.ndim != 1 or len(ref) < 3:
        msg = f"need two equal 1-D score arrays of 3 or more, got {ref.shape} and {cand.shape}"
        raise ValueError(msg)
    diff = np.abs(ref - cand)
    return Parity(images=len(ref), max_abs=float(diff.max()), mean_abs=float(diff.mean()),
                  srcc=float(stats.spearmanr(ref, cand)[0]), plcc=float(stats.pearsonr(ref, cand)[0]),
                  flip_rate=flip_rate(ref, cand))


def _tied_pairs(*columns: np.ndarray) -> int:
    """Pairs of rows equal in every column."""
    _, counts = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    return int((counts * (counts - 1) // 2).sum())


def flip_rate(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of all pairs that the two score lists order oppositely, in O(n log n).

    Without ties this is (1 − Kendall's τ) / 2. With ties, τ-b gives the
    discordant count: C − D = τ_b · sqrt((P − T_r)(P − T_c)) and
    C + D = P − T_r − T_c + T_rc, where P counts all pairs, T_r and T_c the pairs
    tied in one list and T_rc those tied in both; a tied pair is never a flip.
    """
    from scipy import stats

    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    n = len(ref)
    pairs = n * (n - 1) // 2
    t_ref, t_cand, t_both = _tied_pairs(ref), _tied_pairs(cand), _tied_pairs(ref, cand)
    untied = pairs - t_ref - t_cand + t_both  # C + D
    if untied == 0:
        return 0.0
    tau_b = float(stats.kendalltau(ref, cand, variant="b")[0])
    diff = tau_b * np.sqrt(float(pairs - t_ref) * float(pairs - t_cand))  # C - D
    return round((untied - diff) / 2) / pairs
