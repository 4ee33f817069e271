"""Validation after export: the artifact must score faces as the fp32 torch model does.

Parity is measured on the validation faces (max and mean |Δscore|, SRCC,
PLCC, share of face pairs whose order flips) and held to a bound per
precision; a miss raises :class:`ParityError` and the artifact is not kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from fiqa_edge.errors import FiqaError

__all__ = ["BOUNDS", "Bound", "Parity", "ParityError", "compare", "enforce"]


class ParityError(FiqaError):
    """An artifact scores faces outside its parity bound."""


@dataclass(frozen=True)
class Bound:
    """Limits a precision must meet against the fp32 torch model (None: not checked)."""

    max_abs: float | None = None
    srcc: float | None = None
    plcc: float | None = None


BOUNDS: dict[str, Bound] = {
    "fp32": Bound(max_abs=1e-4, srcc=0.9999),
    "fp16": Bound(srcc=0.999),
    "int8": Bound(srcc=0.995, plcc=0.995),
}


@dataclass(frozen=True)
class Parity:
    """How closely an artifact's scores follow the reference scores."""

    images: int
    max_abs: float
    mean_abs: float
    srcc: float
    plcc: float
    flipped_pairs: float  # share of image pairs ranked in the opposite order

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def compare(reference: np.ndarray, candidate: np.ndarray) -> Parity:
    """Parity figures of ``candidate`` scores against ``reference`` scores (same images, same order)."""
    from scipy import stats

    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    if ref.shape != cand.shape or ref.ndim != 1 or len(ref) < 3:
        raise ValueError(f"need two equal 1-D score arrays of 3 or more, got {ref.shape} and {cand.shape}")
    diff = np.abs(ref - cand)
    i, j = np.triu_indices(len(ref), k=1)
    order_ref, order_cand = np.sign(ref[i] - ref[j]), np.sign(cand[i] - cand[j])
    return Parity(images=len(ref), max_abs=float(diff.max()), mean_abs=float(diff.mean()),
                  srcc=float(stats.spearmanr(ref, cand)[0]), plcc=float(stats.pearsonr(ref, cand)[0]),
                  flipped_pairs=float(np.mean(order_ref * order_cand < 0)))


def enforce(parity: Parity, bound: Bound, what: str) -> None:
    """Raise :class:`ParityError` naming every limit ``parity`` misses."""
    misses = []
    if bound.max_abs is not None and parity.max_abs > bound.max_abs:
        misses.append(f"max |Δscore| {parity.max_abs:.2e} > {bound.max_abs:.0e}")
    if bound.srcc is not None and parity.srcc < bound.srcc:
        misses.append(f"SRCC {parity.srcc:.5f} < {bound.srcc}")
    if bound.plcc is not None and parity.plcc < bound.plcc:
        misses.append(f"PLCC {parity.plcc:.5f} < {bound.plcc}")
    if misses:
        raise ParityError(f"{what}: parity outside its bound on {parity.images} faces: " + "; ".join(misses)
                          + " (widen it with --max-abs/--min-srcc/--min-plcc if that is acceptable)")
