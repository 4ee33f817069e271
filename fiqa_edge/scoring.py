"""Score image files in batches; a bad file is reported and the rest go on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from .backends import Backend
from .errors import ImageError
from .imaging import IMAGE_SUFFIXES, load_image
from .preprocess import preprocess

__all__ = ["ScoreResult", "collect_images", "score_paths"]


@dataclass(frozen=True)
class ScoreResult:
    """One file's score, or the reason it has none."""

    path: str
    score: float | None
    error: str | None = None


def collect_images(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders (recursively, image suffixes only, sorted); keep files as given.

    A path that does not exist is kept, so that it is reported as an error row.
    """
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found.extend(sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            found.append(item)
    return found


def score_paths(
    paths: Sequence[Path], backend: Backend, *, batch_size: int = 8, progress: bool = True
) -> Iterator[ScoreResult]:
    """Yield a :class:`ScoreResult` per path, in order.

    Files are decoded and preprocessed one at a time; a file that fails gives
    a result with ``error`` set and never stops the others.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    pending: list[tuple[int, np.ndarray]] = []
    results: list[ScoreResult | None] = [None] * len(paths)
    emitted = 0

    def flush() -> None:
        scores = backend.predict(np.stack([x for _, x in pending]))
        for (i, _), s in zip(pending, scores):
            results[i] = ScoreResult(str(paths[i]), float(s))
        pending.clear()

    bar = tqdm(total=len(paths), unit="img", disable=not progress or len(paths) < 2, desc="scoring")
    for i, path in enumerate(paths):
        try:
            pending.append((i, preprocess(load_image(path), backend.spec)))
        except ImageError as exc:
            results[i] = ScoreResult(str(path), None, str(exc))
        if len(pending) == batch_size or i == len(paths) - 1:
            if pending:
                flush()
            while emitted <= i and results[emitted] is not None:
                bar.update(1)
                yield results[emitted]  # type: ignore[misc]
                emitted += 1
    bar.close()
