"""fiqa-edge: face image quality assessment from training to edge devices.

Importing this package loads numpy and Pillow only; torch and the inference
backends are imported where they are used. ``fiqa_edge.QualityScorer`` (the
scorer apps embed to score crops, :mod:`fiqa_edge.scorer`) and ``fiqa_edge.FaceScorer``
(every face of a photo, :mod:`fiqa_edge.faces`) are imported on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CheckpointError,
    ConversionError,
    FiqaError,
    ImageError,
    ManifestError,
    MissingDependencyError,
    ParityError,
    TargetUnavailableError,
    UnknownModelError,
)
from .preprocess import PreprocessSpec  # noqa: E402

__all__ = [
    "__version__",
    "FaceScorer",
    "QualityScorer",
    "CheckpointError",
    "ConversionError",
    "FiqaError",
    "ImageError",
    "ManifestError",
    "MissingDependencyError",
    "ParityError",
    "PreprocessSpec",
    "TargetUnavailableError",
    "UnknownModelError",
]


def __getattr__(name: str) -> object:
    if name == "QualityScorer":
        from .scorer import QualityScorer

        return QualityScorer
    if name == "FaceScorer":
        from .faces import FaceScorer

        return FaceScorer
    msg = f"module 'fiqa_edge' has no attribute {name!r}"
    raise AttributeError(msg)
