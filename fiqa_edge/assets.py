"""Files shipped inside the package: sample faces and the default model."""

from __future__ import annotations

from pathlib import Path

from .errors import FiqaError

__all__ = ["SAMPLES_DIR", "DEFAULT_MODEL", "default_model_path", "sample_faces"]

_HERE = Path(__file__).parent
SAMPLES_DIR = _HERE / "samples" / "lfw40"
DEFAULT_MODEL = _HERE / "weights" / "fiqa_edgenext_xxs_demo.safetensors"


def sample_faces() -> list[Path]:
    """The 40 bundled LFW faces (10 people × 4 images), sorted."""
    return sorted(SAMPLES_DIR.glob("*/*.jpg"))


def default_model_path() -> Path:
    """The bundled default model.

    Raises:
        FiqaError: this install carries no default model.
    """
    if not DEFAULT_MODEL.is_file():
        raise FiqaError(
            f"no bundled default model ({DEFAULT_MODEL.name} is not in this install): pass --model CHECKPOINT"
        )
    return DEFAULT_MODEL
