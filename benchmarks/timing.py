"""Latency measurement that compares artifacts fairly on a shared, noisy machine.

Each artifact is warmed up, then timed in rounds that interleave the
artifacts (round r times artifact 1, 2, ... then round r + 1 in rotated
order), so a slow spell of the machine lands on every artifact alike rather
than on whichever ran last. Each turn starts with one untimed call, so the
caches and thread pools another runtime just used are warm again before the
clock runs. Statistics are over every timed call.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["Latency", "interleaved_latency"]

#: p90 / p50 above this marks a run as too noisy to trust.
NOISE_BOUND = 1.5


@dataclass(frozen=True)
class Latency:
    """Per-call wall time statistics, milliseconds."""

    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    calls: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Latency":
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(float(ms.min()), float(p50), float(p90), float(p99), float(ms.mean()), len(ms))

    @property
    def noisy(self) -> bool:
        """True when the spread (p90 / p50) is above :data:`NOISE_BOUND`."""
        return self.p90_ms > NOISE_BOUND * self.p50_ms

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def interleaved_latency(
    calls: Sequence[Callable[[], object]], *, warmup: int = 5, rounds: int = 10, per_round: int = 5
) -> list[Latency]:
    """Latency of each callable, timed in interleaved rounds (see the module doc).

    Every callable is called ``warmup`` times first, then ``per_round`` timed
    times in each of ``rounds`` rounds.
    """
    for call in calls:
        for _ in range(warmup):
            call()
    samples: list[list[float]] = [[] for _ in calls]
    n = len(calls)
    for r in range(rounds):
        for k in range(n):
            i = (r + k) % n
            call = calls[i]
            call()  # re-warm after the other artifacts' turns
            for _ in range(per_round):
                t0 = time.perf_counter()
                call()
                samples[i].append(time.perf_counter() - t0)
    return [Latency.of(s) for s in samples]
