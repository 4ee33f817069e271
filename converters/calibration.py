"""Calibration faces: preprocessed exactly as the runtime will preprocess them.

One small protocol serves every quantizer: :class:`CalibrationFaces` is an
iterable of ``(1, 3, N, N)`` float32 arrays; adapters turn it into what
onnxruntime (a ``CalibrationDataReader``) or NNCF (a ``Dataset``) expect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from fiqa_edge.errors import FiqaError, ImageError
from fiqa_edge.imaging import load_image
from fiqa_edge.preprocess import PreprocessSpec, preprocess

__all__ = ["CalibrationFaces"]

log = logging.getLogger(__name__)


class CalibrationFaces:
    """Decoded, preprocessed calibration images (unreadable files are named and left out).

    Raises:
        FiqaError: no readable image among ``paths``.
    """

    def __init__(self, paths: Sequence[Path], spec: PreprocessSpec) -> None:
        arrays, used = [], []
        for path in paths:
            try:
                arrays.append(preprocess(load_image(path), spec)[None])
                used.append(path)
            except ImageError as exc:
                log.warning("calibration: %s; left out", exc)
        if not arrays:
            raise FiqaError("no readable calibration image among " + ", ".join(map(str, paths[:3])) + ("…" if len(paths) > 3 else ""))
        self.arrays = arrays
        self.paths = used
        self.spec = spec

    def __len__(self) -> int:
        return len(self.arrays)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter(self.arrays)

    def batch(self) -> np.ndarray:
        """All faces as one (B, 3, N, N) array."""
        return np.concatenate(self.arrays)

    def onnxruntime_reader(self, input_name: str):
        """An ``onnxruntime.quantization.CalibrationDataReader`` over these faces."""
        from onnxruntime.quantization import CalibrationDataReader

        faces = self.arrays

        class _Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self._it = iter(faces)

            def get_next(self):
                x = next(self._it, None)
                return None if x is None else {input_name: x}

            def rewind(self) -> None:
                self._it = iter(faces)

        return _Reader()
