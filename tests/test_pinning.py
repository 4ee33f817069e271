"""Pinning an XNNPACK threadpool's threads, each to a CPU of its own (fiqa_edge.backends.pinning)."""

from __future__ import annotations

import os
import threading

import pytest

from fiqa_edge.backends.pinning import Pinning, pin_new_threads, usable_cpus

CPUS = usable_cpus()
needs_cpus = pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(CPUS) < 2,
                                reason="pinning needs Linux thread affinity and two CPUs or more")


def _start_threads(n: int, stop: threading.Event) -> list[int]:
    """``n`` threads that wait for ``stop``; their native ids."""
    started = []
    for _ in range(n):
        ready = threading.Event()
        thread = threading.Thread(target=lambda ready=ready: (ready.set(), stop.wait()), daemon=True)
        thread.start()
        ready.wait()
        started.append(thread.native_id)
    return started


@needs_cpus
def test_a_pool_of_one_thread_per_cpu_gets_a_cpu_each_and_the_caller_the_first_during_a_call():
    stop = threading.Event()
    try:
        workers, pinning = pin_new_threads(lambda: _start_threads(len(CPUS) - 1, stop), len(CPUS))
        assert pinning.caller_cpu == CPUS[0]
        assert [os.sched_getaffinity(tid) for tid in workers] == [{cpu} for cpu in CPUS[1:]]
        before = os.sched_getaffinity(0)
        with pinning.calling():
            assert os.sched_getaffinity(0) == {CPUS[0]}
        assert os.sched_getaffinity(0) == before
    finally:
        stop.set()


@needs_cpus
@pytest.mark.parametrize(("threads", "starts"), [(1, 0), (len(CPUS) + 1, len(CPUS)), (len(CPUS), len(CPUS))],
                         ids=["one-thread", "more-threads-than-cpus", "other-threads-started-too"])
def test_nothing_is_pinned_unless_the_pool_is_one_thread_per_cpu_and_alone(threads, starts):
    stop = threading.Event()
    try:
        workers, pinning = pin_new_threads(lambda: _start_threads(starts, stop), threads)
        assert pinning == Pinning()
        assert all(os.sched_getaffinity(tid) == set(CPUS) for tid in workers)
        with pinning.calling():
            assert os.sched_getaffinity(0) == set(CPUS)
    finally:
        stop.set()


@needs_cpus
def test_a_caller_kept_off_the_pools_cpu_by_its_application_stays_where_it_is():
    elsewhere = set(CPUS[1:])
    os.sched_setaffinity(0, elsewhere)
    try:
        with Pinning(CPUS[0]).calling():
            assert os.sched_getaffinity(0) == elsewhere
    finally:
        os.sched_setaffinity(0, set(CPUS))
