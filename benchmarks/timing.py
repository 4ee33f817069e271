"""Latency measurement that compares artifacts fairly on a shared, noisy machine.

Each artifact runs in its own process (so no other runtime's thread pool
lives beside it) and the processes take turns: round r times artifact 1, 2, ...
then round r + 1 in rotated order, so a slow spell of the machine lands on
every artifact alike. A turn starts after a pause (the previous runtime's
threads stop spinning) with one untimed call (caches warm again). Statistics
are over every timed call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Latency", "NOISE_BOUND", "interleaved_latency", "time_calls"]

#: p90 / p50 above this marks a run as too noisy to trust.
NOISE_BOUND = 1.5


@dataclass(frozen=True)
class Latency:
    """Per-call wall time statistics, milliseconds."""

    min_ms: float
    p10_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    calls: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Latency:
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        p10, p50, p90, p99 = np.percentile(ms, [10, 50, 90, 99])
        return cls(float(ms.min()), float(p10), float(p50), float(p90), float(p99), float(ms.mean()), len(ms))

    @property
    def noisy(self) -> bool:
        """True when the spread (p90 / p50) is above :data:`NOISE_BOUND`."""
        return self.p90_ms > NOISE_BOUND * self.p50_ms

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def time_calls(call: Callable[[], object], n: int) -> list[float]:
    """One untimed call, then the wall time of ``n`` calls, seconds each."""
    call()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return times


def interleaved_latency(
    turns: Sequence[Callable[[int], list[float]]], *, warmup: int = 5, rounds: int = 50, per_round: int = 2,
    pause: float = 0.1,
) -> list[Latency]:
    """Latency of each artifact; ``turns[i](n)`` times ``n`` calls of artifact i (see :func:`time_calls`).

    Each artifact first runs ``warmup`` untimed calls, then ``per_round`` timed
    calls in each of ``rounds`` interleaved rounds, ``pause`` seconds after the
    previous turn.
    """
    for turn in turns:
        turn(warmup)
    samples: list[list[float]] = [[] for _ in turns]
    n = len(turns)
    for r in range(rounds):
        for k in range(n):
            i = (r + k) % n
            time.sleep(pause)
            samples[i].extend(turns[i](per_round))
    return [Latency.of(s) for s in samples]
