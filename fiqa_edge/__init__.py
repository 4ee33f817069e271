"""fiqa-edge: face image quality assessment from training to edge devices.

Importing this package loads numpy and Pillow only; torch and the inference
backends are imported where they are used.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CheckpointError,
    FiqaError,
    ImageError,
    ManifestError,
    MissingDependencyError,
    UnknownModelError,
)
from .preprocess import PreprocessSpec  # noqa: E402

__all__ = [
    "__version__",
    "CheckpointError",
    "FiqaError",
    "ImageError",
    "ManifestError",
    "MissingDependencyError",
    "PreprocessSpec",
    "UnknownModelError",
]
