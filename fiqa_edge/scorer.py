"""The scorer apps embed: any backend, numpy preprocessing, safe on bad input.

>>> scorer = QualityScorer.load("bundles/onnx-int8")           # doctest: +SKIP
>>> scorer.score("face.jpg")                                    # doctest: +SKIP
0.71
>>> for r in scorer.score_paths(paths, batch_size=8, workers=2):  # doctest: +SKIP
...     print(r.path, r.score, r.error)

Preprocessing comes from the model's manifest only, so one bundle scores the
same on every backend (see docs/preprocessing.md for the exact steps). This
scorer scores images as given (face crops); finding faces in photos is the face
layer above it (:class:`fiqa_edge.faces.FaceScorer`), videos above that.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ._pool import decode_pool
from .backends import Backend, open_backend
from .curation import Threshold
from .errors import ImageError
from .framing import Framing
from .imaging import DEFAULT_MAX_PIXELS, load_image, to_rgb
from .preprocess import PreprocessSpec, preprocess
from .score_scale import ScoreScale

__all__ = ["ImageInput", "QualityScorer", "ScoreResult"]

#: What :meth:`QualityScorer.score` accepts: a path, encoded bytes, a PIL image or an HxWx3 uint8 RGB array.
ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


@dataclass(frozen=True)
class ScoreResult:
    """One file's score, or the reason it has none; its percentile among the model's reference faces and its
    0–100 value when the model has a :class:`~fiqa_edge.score_scale.ScoreScale`, and whether it passes the
    scorer's :attr:`~QualityScorer.min_quality` when one is set (None otherwise)."""

    path: str
    score: float | None
    error: str | None = None
    percentile: float | None = None
    quality: float | None = None
    accepted: bool | None = None


class QualityScorer:
    """Scores face images with one model on one backend.

    Build it with :meth:`load`. Scores are on the model's label scale; higher
    means a better face image.
    """

    def __init__(self, backend: Backend, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> None:
        self.backend = backend
        self.max_pixels = max_pixels
        self._threshold: Threshold | None = None

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str],
        *,
        backend: str = "auto",
        threads: int | None = None,
        device: str | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        arch: str | None = None,
        input_size: int | None = None,
        pin_threads: bool = True,
    ) -> QualityScorer:
        """Open a bundle folder or a model file.

        Args:
            model: bundle folder (model + ``fiqa.json``), ``.onnx``, OpenVINO
                ``.xml``, TensorRT ``.engine``/``.plan``, CoreML
                ``.mlpackage``, a torch checkpoint (needs torch), or a bundled
                model's name (``demo``, ``demo-v2``, ``demo-v1``: :data:`fiqa_edge.assets.BUNDLED_MODELS`).
            backend: ``auto`` (the bundle's own backend; for a bare file, the
                installed backend that reads it), or a name from
                :data:`fiqa_edge.backends.BACKENDS`.
            threads: intra-op threads of the backend (default: its own choice).
            device: the backend's device name (``cpu``/``cuda`` for torch and
                onnxruntime, ``CPU``/``GPU`` for OpenVINO).
            max_pixels: larger images are refused with an error (decompression-bomb guard).
            arch: the architecture of a torch checkpoint whose keys do not tell it.
            input_size: the input size of such a checkpoint.
            pin_threads: the LiteRT and ExecuTorch backends, with one thread per
                CPU (their default), keep each thread on a CPU of its own
                (:mod:`fiqa_edge.backends.pinning`).

        Raises:
            CheckpointError: the model file is missing, damaged or of another kind.
            MissingDependencyError: the backend's package is not installed (names the extra).
        """
        engine = open_backend(model, backend=backend, threads=threads, device=device, arch=arch, input_size=input_size,
                              pin_threads=pin_threads)
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
        window = 2 * batch_size + workers
        with decode_pool(workers) as pool:
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

    @property
    def scale(self) -> ScoreScale | None:
        """The model's score scale (percentiles, 0–100), when its manifest or checkpoint records one."""
        return self._recorded("scale")

    @property
    def min_quality(self) -> Threshold | None:
        """The threshold results are judged by (their ``accepted``); None: not judged."""
        return self._threshold

    @min_quality.setter
    def min_quality(self, value: str | Threshold | None) -> None:
        """Set from ``0.62`` (a raw score), ``30p`` (a percentile) or ``55q`` (a 0–100 quality), or None.

        Raises:
            FiqaError: not a number, outside the range, or a percentile/quality for a model without a scale.
        """
        if isinstance(value, str):
            manifest = getattr(self.backend, "manifest", None)
            value = Threshold.parse(value, self.scale, manifest.score_range if manifest is not None else (0.0, 1.0))
        self._threshold = value

    def place(self, score: float) -> tuple[float | None, float | None, bool | None]:
        """(percentile, 0–100 quality, accepted) of a raw ``score``; Nones without a scale or a threshold."""
        scale = self.scale
        percentile, quality = (scale.percentile(score), scale.quality(score)) if scale is not None else (None, None)
        accepted = self._threshold.accepts(score, percentile, quality) if self._threshold is not None else None
        return percentile, quality, accepted

    @property
    def framing(self) -> Framing | None:
        """How the model's training faces were framed, when its manifest or checkpoint records it."""
        return self._recorded("framing")

    def _recorded(self, name: str) -> Any:
        """A record of the bundle's manifest, or of the checkpoint the torch backend loaded."""
        manifest = getattr(self.backend, "manifest", None)
        return getattr(manifest if manifest is not None else self.backend, name, None)

    def _flush(self, batch: list[tuple[str, np.ndarray | None, str | None]]) -> Iterator[ScoreResult]:
        inputs = [x for _, x, _ in batch if x is not None]
        scores = iter(self.backend.predict(np.stack(inputs)) if inputs else ())
        for name, x, error in batch:
            if x is None:
                yield ScoreResult(name, None, error)
            else:
                score = float(next(scores))
                yield ScoreResult(name, score, None, *self.place(score))
