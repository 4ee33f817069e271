"""Error-versus-Discard Characteristic (EDC): how quality scores help face recognition.

The comparison threshold is fixed where the false match rate (FMR) over all
impostor pairs equals the target; then the pairs whose lower quality score is
among the lowest are discarded, a growing fraction at a time, and the false
non-match rate (FNMR) of the remaining genuine pairs is measured at that fixed
threshold. A useful quality measure makes FNMR fall as more is discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EdcCurve", "edc"]


@dataclass(frozen=True)
class EdcCurve:
    """FNMR at each discarded fraction, at the threshold giving ``fmr``."""

    fmr: float
    threshold: float
    discard: np.ndarray
    fnmr: np.ndarray

    def fnmr_at(self, fraction: float) -> float:
        """FNMR with ``fraction`` of the pairs discarded (interpolated)."""
        return float(np.interp(fraction, self.discard, self.fnmr))

    def reduction_at(self, fraction: float) -> float:
        """Relative fall of FNMR from no discard to ``fraction`` discarded (0.3 = 30 % fewer errors)."""
        start = self.fnmr[0]
        return float((start - self.fnmr_at(fraction)) / start) if start > 0 else 0.0


def edc(
    distance: np.ndarray,
    genuine: np.ndarray,
    quality: np.ndarray,
    *,
    fmr: float = 1e-2,
    discard: np.ndarray | None = None,
) -> EdcCurve:
    """EDC of comparisons.

    Args:
        distance: comparison distance per pair (lower = more alike).
        genuine: True for same-person pairs.
        quality: quality per pair (usually the lower of the two images' scores).
        fmr: the false match rate the threshold is set at.
        discard: fractions of pairs to discard (default 0 to 0.5 in steps of 0.01).
    """
    distance, genuine, quality = map(np.asarray, (distance, genuine, quality))
    genuine = genuine.astype(bool)
    impostor = np.sort(distance[~genuine])
    if len(impostor) == 0 or not genuine.any():
        msg = "need both genuine and impostor pairs"
        raise ValueError(msg)
    # largest threshold with at most fmr of impostors at or below it
    k = int(np.floor(fmr * len(impostor)))
    threshold = float(impostor[k]) if k < len(impostor) else float(impostor[-1])
    fractions = np.round(np.arange(0, 0.51, 0.01), 2) if discard is None else np.asarray(discard, dtype=float)
    order = np.argsort(quality, kind="stable")  # lowest quality first
    fnmr = []
    for f in fractions:
        kept = order[int(round(f * len(order))) :]
        g = kept[genuine[kept]]
        fnmr.append(float(np.mean(distance[g] >= threshold)) if len(g) else 0.0)
    return EdcCurve(fmr=fmr, threshold=threshold, discard=fractions, fnmr=np.array(fnmr))
