"""The face layer: every face of a photo found, aligned to the model's framing and scored.

>>> faces = FaceScorer(QualityScorer.load("bundles/onnx-int8"))  # doctest: +SKIP
>>> for face in faces.score("group.jpg"):                     # doctest: +SKIP
...     print(face.box, face.confidence, face.score)

:class:`FaceScorer` holds a :class:`~fiqa_edge.detect.FaceFinder` (detection and
alignment) and a :class:`~fiqa_edge.scorer.QualityScorer` (which scores crops and
knows nothing of detection); videos (:mod:`fiqa_edge.video`) sit above it.
Needs ``pip install 'fiqa-edge[detect]'``.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field

from PIL import Image

from ._pool import decode_pool
from .detect import Face, FaceFinder
from .errors import ImageError
from .framing import LFW_FRAMING
from .scorer import ImageInput, QualityScorer

__all__ = ["NO_FACE", "FaceScore", "FaceScorer"]

#: the error of a photo in which the detector found no face
NO_FACE = "no face found"


@dataclass(frozen=True)
class FaceScore:
    """One face of a photo: where it is, the detector's confidence, its quality score.

    ``face`` counts the photo's faces from 0, most confident first; a photo with no face (or that
    cannot be read) gives one result with ``face = -1`` and ``error`` set. ``crop`` is the aligned
    face the model scored; ``percentile``, ``quality`` and ``accepted`` are as in
    :class:`~fiqa_edge.scorer.ScoreResult`.
    """

    path: str
    face: int
    box: tuple[float, float, float, float] | None
    confidence: float | None
    score: float | None
    error: str | None = None
    crop: Image.Image | None = field(default=None, repr=False, compare=False)
    percentile: float | None = None
    quality: float | None = None
    accepted: bool | None = None


class FaceScorer:
    """Scores every face ``finder`` keeps in a photo with ``scorer``.

    Args:
        scorer: the crop scorer (its ``min_quality`` judges each face).
        finder: detection and alignment; default: a :class:`~fiqa_edge.detect.FaceFinder` with the
            model's recorded framing, else :data:`fiqa_edge.framing.LFW_FRAMING` (the bundled model's).
    """

    def __init__(self, scorer: QualityScorer, finder: FaceFinder | None = None) -> None:
        self.scorer = scorer
        self.finder = finder if finder is not None else FaceFinder(framing=scorer.framing or LFW_FRAMING)

    def score(self, image: ImageInput) -> list[FaceScore]:
        """Every face in one image, cropped to its framing and scored (no face: ``[]``).

        Raises:
            ImageError: the input cannot be decoded.
        """
        found = self._crops(image)
        return self._scored(_name_of(image), found) if found else []

    def score_paths(self, paths: Iterable[str | os.PathLike[str]], *, workers: int = 2) -> Iterator[FaceScore]:
        """:meth:`score` over files, in order: decoding, detection and alignment run in ``workers``
        threads while the model scores the previous photo's faces; at most ``2 + workers`` photos are in
        memory. A photo with no face, or one that fails, gives one result with ``error`` set."""
        with decode_pool(workers) as pool:
            queued: deque[tuple[str, Future]] = deque()
            source = iter(paths)
            while True:
                for path in source:
                    queued.append((str(path), pool.submit(self._crops, path)))
                    if len(queued) > workers:
                        break
                if not queued:
                    return
                name, future = queued.popleft()
                try:
                    found = future.result()
                except ImageError as exc:
                    yield FaceScore(name, -1, None, None, None, str(exc))
                    continue
                if not found:
                    yield FaceScore(name, -1, None, None, None, f"{name}: {NO_FACE}")
                    continue
                yield from self._scored(name, found)

    def _crops(self, image: ImageInput) -> list[tuple[Face, Image.Image]]:
        return self.finder(self.scorer.decode(image))

    def _scored(self, name: str, found: list[tuple[Face, Image.Image]]) -> list[FaceScore]:
        scores = self.scorer.score_batch([crop for _, crop in found])
        return [FaceScore(name, i, face.box, face.confidence, float(score), None, crop, *self.scorer.place(float(score)))
                for i, ((face, crop), score) in enumerate(zip(found, scores))]


def _name_of(image: ImageInput) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else f"<{type(image).__name__}>"
