"""Validation after export: the artifact must score faces as the fp32 torch model does.

Parity is measured on the validation faces (max and mean |Δscore|, SRCC,
PLCC, share of face pairs whose order flips) and held to a bound per
precision; a miss raises :class:`ParityError` and the artifact is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass

from fiqa_edge.errors import ParityError
from fiqa_edge.metrics import Parity

__all__ = ["BOUNDS", "Bound", "enforce"]


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
                          + " (widen the bound if that is acceptable)")
