"""The scorer apps embed: any backend, numpy preprocessing, safe on bad input.

>>> scorer = QualityScorer.load("bundles/onnx-int8")           # doctest: +SKIP
>>> scorer.score("face.jpg")                                    # doctest: +SKIP
0.71
>>> for r in scorer.score_paths(paths, batch_size=8, workers=2):  # doctest: +SKIP
...     print(r.path, r.score, r.error)

Preprocessing comes from the model's manifest only, so one bundle scores the
same on every backend (see docs/preprocessing.md for the exact steps).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .backends import Backend, open_backend
from .errors import ImageError
from .imaging import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, load_image, to_rgb
from .preprocess import PreprocessSpec, preprocess

__all__ = ["ImageInput", "QualityScorer", "ScoreResult", "collect_images"]

#: What :meth:`QualityScorer.score` accepts: a path, encoded bytes, a PIL image or an HxWx3 uint8 RGB array.
ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


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


class QualityScorer:
    """Scores face images with one model on one backend.

    Build it with :meth:`load`. Scores are on the model's label scale; higher
    means a better face image.
    """

    def __init__(self, backend: Backend, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.backend = backend
        self.max_pixels = max_pixels

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        backend: str = "auto",
        *,
        threads: int | None = None,
        device: str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        arch: str | None = None,
        input_size: int | None = None,
    ) -> QualityScorer:
        """Open a bundle folder or a model file.

        Args:
            path: bundle folder (model + ``fiqa.json``), ``.onnx``, OpenVINO
                ``.xml``, TensorRT ``.engine``/``.plan``, CoreML
                ``.mlpackage``, or a torch checkpoint (needs torch).
            backend: ``auto`` (the bundle's own backend; for a bare file, the
                installed backend that reads it), or a name from
                :data:`fiqa_edge.backends.BACKENDS`.
            threads: intra-op threads of the backend (default: its own choice).
            device: the backend's device name (``cpu``/``cuda`` for torch and
                onnxruntime, ``CPU``/``GPU`` for OpenVINO).
            max_pixels: larger images are refused with an error (decompression-bomb guard).
            arch, input_size: for torch checkpoints whose architecture is not recognised.

        Raises:
            CheckpointError: the model file is missing, damaged or of another kind.
            MissingDependencyError: the backend's package is not installed (names the extra).
        """
        engine = open_backend(backend, path, threads=threads, device=device, arch=arch, input_size=input_size)
        return cls(engine, max_pixels=max_pixels)

    @property
    def spec(self) -> PreprocessSpec:
        """The preprocessing this model expects (from its manifest)."""
        return self.backend.spec

    def decode(self, image: ImageInput) -> Image.Image:
        """Any accepted input as an upright 8-bit RGB PIL image.

        Paths and bytes go through :func:`fiqa_edge.imaging.load_image` (EXIF
        rotation applied); PIL images are converted to RGB as they are; arrays
        must be HxWx3 uint8 in RGB order.

        Raises:
            ImageError: the input cannot be decoded or has the wrong shape/type.
        """
        if isinstance(image, Image.Image):
            return to_rgb(image)
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
                msg = f"<array>: expected an HxWx3 uint8 RGB array, got shape {image.shape} of {image.dtype}"
                raise ImageError(msg)
            return Image.fromarray(np.ascontiguousarray(image), "RGB")
        if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview)):
            return load_image(image, max_pixels=self.max_pixels)
        msg = f"<{type(image).__name__}>: not an image input (path, bytes, PIL image or HxWx3 uint8 array)"
        raise ImageError(msg)

    def prepare(self, image: ImageInput) -> np.ndarray:
        """Decode and preprocess one input into the (3, N, N) float32 model input."""
        return preprocess(self.decode(image), self.spec)

    def score(self, image: ImageInput) -> float:
        """The quality score of one image."""
        return float(self.backend.predict(self.prepare(image)[None])[0])

    def score_batch(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Scores of several images, shape (len(images),), in one model call.

        Raises:
            ImageError: the first input that cannot be decoded (use
                :meth:`score_paths` to score the rest past bad files).
        """
        if not images:
            return np.zeros(0, dtype=np.float64)
        return self.backend.predict(np.stack([self.prepare(im) for im in images]))

    def score_paths(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        batch_size: int = 8,
        workers: int = 2,
    ) -> Iterator[ScoreResult]:
        """Score files, yielding one :class:`ScoreResult` per path, in order.

        Decoding and preprocessing run in ``workers`` threads while the model
        scores the previous batch; at most ``3 * batch_size + workers`` images
        are held in memory, so ``paths`` may be a generator of any length. A
        file that fails gives a result with ``error`` set and never stops the
        others. ``workers=0`` decodes in the calling thread.
        """
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}"
            raise ValueError(msg)
        if workers < 0:
            msg = f"workers must be 0 or more, got {workers}"
            raise ValueError(msg)
        window = 2 * batch_size + workers
        with ThreadPoolExecutor(max_workers=workers) if workers else _Inline() as pool:
            queued: deque[tuple[str, Future]] = deque()
            batch: list[tuple[str, np.ndarray | None, str | None]] = []
            ready = 0  # images in ``batch`` that decoded
            source = iter(paths)
            exhausted = False
            while True:
                while not exhausted and len(queued) < window:
                    try:
                        path = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    queued.append((str(path), pool.submit(self.prepare, path)))
                if not queued and not batch:
                    return
                if queued:
                    name, future = queued.popleft()
                    try:
                        batch.append((name, future.result(), None))
                        ready += 1
                    except ImageError as exc:
                        batch.append((name, None, str(exc)))
                if ready == batch_size or (exhausted and not queued):
                    yield from self._flush(batch)
                    batch.clear()
                    ready = 0

    def _flush(self, batch: list[tuple[str, np.ndarray | None, str | None]]) -> Iterator[ScoreResult]:
        inputs = [x for _, x, _ in batch if x is not None]
        scores = iter(self.backend.predict(np.stack(inputs)) if inputs else ())
        for name, x, error in batch:
            yield ScoreResult(name, None, error) if x is None else ScoreResult(name, float(next(scores)))


class _Inline:
    """A stand-in executor that runs each task at submission (``workers=0``)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def submit(self, fn: Callable[..., object], *args: object) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # delivered to the caller through the future, as a pool would
            future.set_exception(exc)
        return future
