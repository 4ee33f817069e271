"""The thread pool that decodes inputs beside the model, or none (``workers=0``: in the calling thread)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor

__all__ = ["decode_pool"]


def decode_pool(workers: int) -> Executor:
    """``workers`` threads, or an executor that runs each task as it is submitted when ``workers`` is 0.

    Raises:
        ValueError: ``workers`` is negative.
    """
    if workers < 0:
        msg = f"workers must be 0 or more, got {workers}"
        raise ValueError(msg)
    return ThreadPoolExecutor(max_workers=workers) if workers else _Inline()


class _Inline(Executor):
    """Runs each task at submission; its result or exception is delivered through the future, as a pool's is."""

    def submit(self, fn: Callable[..., object], /, *args: object, **kwargs: object) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered to the caller through the future, as a pool would
            future.set_exception(exc)
        return future
