"""Each thread of an XNNPACK threadpool on a core of its own (Linux), for steady latency.

LiteRT and ExecuTorch run their operators on XNNPACK's threadpool
(pthreadpool): the calling thread and ``threads - 1`` workers, which spin
between operators and sleep between calls. A call that wakes them often finds
a worker placed on the caller's core, where the two stay for the whole call:
it then takes as long as on one thread, or longer, and batch-1 latency turns
bimodal. OpenVINO pins its own threads for this reason
(``ENABLE_CPU_PINNING``); XNNPACK's runtimes have no such setting, so these
backends pin: each worker to a CPU of its own, and the calling thread, for
the length of each call, to the CPU left (its own affinity comes back after).
Measured on a 2-core machine, ExecuTorch int8 at 352 px, three processes of
25 rounds (a 0.1 s pause, then three calls), p50: 12.8, 8.4 and 9.6 ms
unpinned, 7.4, 7.1 and 6.6 pinned (docs/benchmarking.md).

Pinning applies only where it cannot crowd threads onto a few cores: when the
pool has exactly one thread per CPU the process may use (the default thread
count). With fewer threads (``threads=``), as when processes share a machine,
nothing is pinned.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Pinning", "pin_new_threads", "usable_cpus"]

T = TypeVar("T")


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _thread_ids() -> set[int]:
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:  # not Linux
        return set()


@dataclass(frozen=True)
class Pinning:
    """Where a pool's calling thread runs during a call; ``caller_cpu`` None: the pool is not pinned."""

    caller_cpu: int | None = None

    @contextmanager
    def calling(self) -> Iterator[None]:
        """Run the body with the calling thread on :attr:`caller_cpu` (unless its affinity excludes that CPU)."""
        if self.caller_cpu is None or self.caller_cpu not in (saved := os.sched_getaffinity(0)):
            yield
            return
        os.sched_setaffinity(0, {self.caller_cpu})
        try:
            yield
        finally:
            os.sched_setaffinity(0, saved)


def pin_new_threads(start: Callable[[], T], threads: int) -> tuple[T, Pinning]:
    """Run ``start``, which creates a threadpool of ``threads`` threads (the caller and ``threads - 1`` workers), and
    pin the workers it started to the usable CPUs after the first, which is left to the caller.

    Nothing is pinned where threads cannot be pinned (not Linux), where ``threads`` is not the number of usable CPUs,
    or where ``start`` did not start exactly ``threads - 1`` threads (then they are not only the pool's).
    """
    cpus = usable_cpus()
    before = _thread_ids()
    result = start()
    started = sorted(_thread_ids() - before)
    if not before or threads != len(cpus) or threads < 2 or len(started) != threads - 1:
        return result, Pinning()
    try:
        for tid, cpu in zip(started, cpus[1:]):
            os.sched_setaffinity(tid, {cpu})
    except OSError:  # a worker gone already, or a sandbox that refuses: leave the pool as the runtime made it
        return result, Pinning()
    return result, Pinning(cpus[0])
