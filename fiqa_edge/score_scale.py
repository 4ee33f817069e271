"""What a raw score means: its percentile among reference faces, and a 0–100 quality scale.

A model's raw scores have a range of their own, which moves a little from
fp32 to int8. :class:`ScoreScale` is measured once on the source model's
scores of a stated set of reference faces and copied into every bundle made
from it, so every precision maps a face to the same percentile and 0–100 value:

- ``percentile(score)``: the share of reference faces scoring lower, 0–100,
  interpolated linearly between the stored percentiles 1…99 (below the 1st: 0 to 1,
  above the 99th: 99 to 100, from the reference minimum and maximum);
- ``quality(score)``: ``100 / (1 + exp(-(score - median) / s))`` with
  ``s = IQR / (2 ln 3)``, the logistic with the reference faces' median and
  interquartile range: monotone, defined for every score, and equal to the
  percentile wherever the scores are logistic-distributed.

Where the reference faces come with identity pairs, the scale also carries
:class:`~fiqa_edge.operating_points.OperatingPoints`: thresholds and what
rejecting below each buys a face recogniser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .errors import FiqaError
from .operating_points import OperatingPoints

__all__ = ["MIN_REFERENCE_FACES", "ScoreScale"]

#: fewer reference faces than this are refused: the 1st and 99th percentiles would rest on one face each
MIN_REFERENCE_FACES = 100
_LEVELS = np.arange(1, 100)


@dataclass(frozen=True)
class ScoreScale:
    """Percentiles 1…99 of the reference faces' scores, their extremes, where they came from, and the
    operating points measured on identity pairs (None: no pairs were given)."""

    reference: str
    faces: int
    percentiles: tuple[float, ...]  # the 1st … 99th
    minimum: float
    maximum: float
    operating_points: OperatingPoints | None = None

    @classmethod
    def from_scores(cls, scores: Sequence[float] | np.ndarray, reference: str) -> ScoreScale:
        """Measure the scale on ``scores`` of the faces ``reference`` describes.

        Raises:
            FiqaError: fewer than :data:`MIN_REFERENCE_FACES` scores, or scores that are not finite.
        """
        values = np.asarray(scores, dtype=np.float64).reshape(-1)
        if values.size < MIN_REFERENCE_FACES:
            msg = (f"{reference}: {values.size} faces scored, too few for percentiles 1-99 "
                   f"(at least {MIN_REFERENCE_FACES})")
            raise FiqaError(msg)
        if not np.isfinite(values).all():
            msg = f"{reference}: some scores are not finite"
            raise FiqaError(msg)
        return cls(reference, int(values.size), tuple(float(v) for v in np.percentile(values, _LEVELS)),
                   float(values.min()), float(values.max()))

    @property
    def median(self) -> float:
        return self.percentiles[49]

    def percentile(self, score: float) -> float:
        """The share of reference faces scoring below ``score``, in percent."""
        levels = np.concatenate([[0.0], _LEVELS, [100.0]])
        values = np.concatenate([[self.minimum], self.percentiles, [self.maximum]])
        return float(np.interp(score, values, levels))

    def quality(self, score: float) -> float:
        """The 0–100 value of ``score`` (the reference's logistic; see the module doc)."""
        spread = (self.percentiles[74] - self.percentiles[24]) / (2 * math.log(3))
        if spread <= 0:
            return 50.0 if score == self.median else (100.0 if score > self.median else 0.0)
        z = (score - self.median) / spread
        return float(100.0 / (1.0 + math.exp(-max(min(z, 700.0), -700.0))))

    def with_operating_points(self, points: OperatingPoints) -> ScoreScale:
        return replace(self, operating_points=points)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["percentiles"] = list(self.percentiles)
        d["operating_points"] = self.operating_points.to_dict() if self.operating_points else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreScale:
        percentiles = tuple(float(v) for v in d["percentiles"])
        if len(percentiles) != len(_LEVELS):
            msg = f"a score scale needs the percentiles 1-99, got {len(percentiles)} values"
            raise ValueError(msg)
        points = d.get("operating_points")
        return cls(str(d["reference"]), int(d["faces"]), percentiles, float(d["minimum"]), float(d["maximum"]),
                   OperatingPoints.from_dict(points) if points else None)
