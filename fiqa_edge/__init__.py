"""fiqa-edge: face image quality assessment from training to edge devices.

Importing this package loads numpy and Pillow only; torch and the inference
backends are imported where they are used. ``fiqa_edge.QualityScorer`` (the
scorer apps embed, :mod:`fiqa_edge.scorer`) is imported on first use.
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
    msg = f"module 'fiqa_edge' has no attribute {name!r}"
    raise AttributeError(msg)
