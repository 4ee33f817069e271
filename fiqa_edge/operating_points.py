"""What rejecting low-quality faces buys a face recogniser: operating points from identity pairs.

A pair's quality is the lower of its two faces' scores, so rejecting every face
scoring below ``t`` discards exactly the pairs whose quality is below ``t``. For
each false match rate (FMR) the comparison threshold is fixed on all impostor
pairs (as in :func:`fiqa_edge.edc.edc`); for each discard rate ``d`` the
operating point records ``t`` (the pair quality below which the share ``d`` of
pairs lies), the share of faces scoring below ``t``, and the false non-match
rate (FNMR) of the genuine pairs before and after discarding.

Pairs come from an LFW ``pairs.txt`` or a CSV ``image_a,image_b,same[,distance]``;
comparison distances from the CSV's ``distance`` column or from face embeddings
(an ``.npz`` with ``images`` and ``vectors`` arrays, as ``fiqa-edge label embed``
writes).
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .edc import edc
from .errors import FiqaError

__all__ = ["DISCARDS", "FMRS", "OperatingPoint", "OperatingPoints", "Pair", "load_embeddings", "pair_distances",
           "read_pairs"]

log = logging.getLogger(__name__)

#: the discard rates and false match rates operating points are measured at by default
DISCARDS = (0.05, 0.1, 0.2)
FMRS = (1e-2, 1e-3)
_TRUE = {"1", "true", "yes", "genuine"}
_FALSE = {"0", "false", "no", "impostor"}


@dataclass(frozen=True)
class Pair:
    """Two images (relative to the image root), whether they show one person, and their distance if given."""

    a: str
    b: str
    same: bool
    distance: float | None = None


def _lfw_pairs(lines: list[str]) -> list[Pair]:
    pairs = []
    for line in lines[1:]:  # the first line counts folds and pairs
        parts = line.split()
        if len(parts) == 3:
            n, i, j = parts
            pairs.append(Pair(f"{n}/{n}_{int(i):04d}.jpg", f"{n}/{n}_{int(j):04d}.jpg", True))
        elif len(parts) == 4:
            n1, i, n2, j = parts
            pairs.append(Pair(f"{n1}/{n1}_{int(i):04d}.jpg", f"{n2}/{n2}_{int(j):04d}.jpg", False))
    return pairs


def _csv_pairs(path: Path, lines: list[str]) -> list[Pair]:
    pairs = []
    for n, row in enumerate(csv.reader(lines), start=1):
        if not row:
            continue
        same = row[2].strip().lower() if len(row) > 2 else ""
        if same not in _TRUE | _FALSE:
            if n == 1:
                continue  # a header
            msg = f"{path}:{n}: expected image_a,image_b,same[,distance] with same = 1/0, got {row!r}"
            raise FiqaError(msg)
        try:
            distance = float(row[3]) if len(row) > 3 and row[3].strip() else None
        except ValueError:
            msg = f"{path}:{n}: distance {row[3]!r} is not a number"
            raise FiqaError(msg) from None
        pairs.append(Pair(row[0].strip(), row[1].strip(), same in _TRUE, distance))
    return pairs


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """The pairs of an LFW ``pairs.txt`` (whitespace-separated) or a CSV ``image_a,image_b,same[,distance]``.

    Raises:
        FiqaError: unreadable file, a malformed row, no pairs.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"{path}: cannot read pairs ({exc})"
        raise FiqaError(msg) from exc
    pairs = _csv_pairs(path, lines) if any("," in line for line in lines[:3]) else _lfw_pairs(lines)
    if not pairs:
        msg = f"{path}: no pairs (expected LFW pairs.txt lines or CSV rows image_a,image_b,same[,distance])"
        raise FiqaError(msg)
    return pairs


def load_embeddings(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Image -> embedding from an ``.npz`` with arrays ``images`` (N names) and ``vectors`` (N x D).

    Raises:
        FiqaError: unreadable file, missing arrays or mismatched lengths.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            images, vectors = data["images"].tolist(), np.asarray(data["vectors"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as exc:
        msg = f"{path}: not an embeddings file with arrays 'images' and 'vectors' ({exc})"
        raise FiqaError(msg) from exc
    if vectors.ndim != 2 or len(images) != len(vectors):
        msg = f"{path}: {len(images)} images but vectors of shape {vectors.shape}"
        raise FiqaError(msg)
    return dict(zip(images, vectors))


def pair_distances(pairs: list[Pair], embeddings: dict[str, np.ndarray] | None, metric: str = "euclidean",
                   origin: str = "pairs") -> tuple[list[Pair], np.ndarray]:
    """The pairs that have a distance (given, or from both images' embeddings) and those distances.

    Pairs whose images have no embedding are named in the log and left out.

    Raises:
        FiqaError: a pair has neither a distance nor embeddings; ``metric`` is unknown.
    """
    if metric not in ("euclidean", "cosine"):
        msg = f"distance metric must be euclidean or cosine, got {metric!r}"
        raise FiqaError(msg)
    kept, distances = [], []
    for p in pairs:
        if p.distance is not None:
            kept.append(p)
            distances.append(p.distance)
            continue
        if embeddings is None:
            msg = f"{origin}: the pair {p.a}, {p.b} has no distance column and no embeddings were given"
            raise FiqaError(msg)
        missing = [r for r in (p.a, p.b) if r not in embeddings]
        if missing:
            log.warning("%s: no embedding for %s; pair left out", origin, ", ".join(missing))
            continue
        u, v = embeddings[p.a], embeddings[p.b]
        if metric == "euclidean":
            distances.append(float(np.linalg.norm(u - v)))
        else:
            distances.append(float(1.0 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))))
        kept.append(p)
    return kept, np.asarray(distances, dtype=np.float64)


@dataclass(frozen=True)
class OperatingPoint:
    """Rejecting faces scoring below ``threshold`` discards ``discard`` of the pairs (and ``rejected`` of the
    faces); FNMR at the threshold giving ``fmr`` goes from ``fnmr_before`` to ``fnmr_after``."""

    fmr: float
    discard: float
    threshold: float
    rejected: float
    fnmr_before: float
    fnmr_after: float

    @property
    def fnmr_fall(self) -> float:
        """Relative fall of FNMR (0.25 = a quarter fewer false non-matches)."""
        return (self.fnmr_before - self.fnmr_after) / self.fnmr_before if self.fnmr_before > 0 else 0.0


@dataclass(frozen=True)
class OperatingPoints:
    """Operating points measured on ``pairs`` comparisons (``genuine`` of them same-person) of ``reference``."""

    reference: str
    pairs: int
    genuine: int
    distance: str
    points: tuple[OperatingPoint, ...]

    @classmethod
    def measure(cls, distance: np.ndarray, same: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
                faces: np.ndarray, *, reference: str, metric: str, fmrs: tuple[float, ...] = FMRS,
                discards: tuple[float, ...] = DISCARDS) -> OperatingPoints:
        """Operating points from comparison distances, both faces' quality scores per pair, and the scores of
        the distinct faces the pairs use (for the share of faces each threshold rejects).

        Raises:
            FiqaError: no genuine or no impostor pairs.
        """
        same = np.asarray(same, dtype=bool)
        if same.all() or not same.any():
            msg = f"{reference}: operating points need both same-person and different-person pairs"
            raise FiqaError(msg)
        pair_q = np.minimum(score_a, score_b)
        ordered = np.sort(pair_q)
        points = []
        for fmr in fmrs:
            curve = edc(distance, same, pair_q, fmr=fmr, discard=np.array((0.0, *discards)))
            for d, fnmr in zip(discards, curve.fnmr[1:]):
                threshold = float(ordered[min(round(d * len(ordered)), len(ordered) - 1)])
                points.append(OperatingPoint(fmr, d, threshold, float(np.mean(faces < threshold)),
                                             float(curve.fnmr[0]), float(fnmr)))
        return cls(reference, len(same), int(same.sum()), metric, tuple(points))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["points"] = [asdict(p) for p in self.points]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OperatingPoints:
        return cls(str(d["reference"]), int(d["pairs"]), int(d["genuine"]), str(d["distance"]),
                   tuple(OperatingPoint(**{k: float(v) for k, v in p.items()}) for p in d["points"]))
