"""The bundle manifest, ``fiqa.json``: everything needed to score with a model file.

A bundle is a folder holding one model file and this manifest. Whoever has the
two can score a face with the right preprocessing on any backend. Later stages
(conversion, validation, benchmarks) add their figures under ``figures``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from ._atomic import atomic_write_text
from .errors import ManifestError
from .framing import Framing
from .preprocess import PreprocessSpec
from .score_scale import ScoreScale

__all__ = ["EMBEDDED_KEY", "MANIFEST_NAME", "SCHEMA_VERSION", "Manifest", "sha256_file"]

MANIFEST_NAME = "fiqa.json"
EMBEDDED_KEY = "fiqa"  # key of the manifest JSON inside model files' own metadata
SCHEMA_VERSION = 3  # 2: framing; 3: scale
PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    """What ``fiqa.json`` holds.

    Args:
        arch: registry name of the architecture (``fiqa_edgenext_xxs`` ...).
        preprocessing: the input contract.
        model_file: the model file's name inside the bundle.
        backend: the runtime that reads ``model_file`` (``torch``, ``onnxruntime`` ...).
        precision: one of ``fp32``, ``fp16``, ``bf16``, ``int8``.
        score_range: nominal [low, high] of the scores; higher is better.
        source_sha256: SHA-256 of the checkpoint the model was made from.
        figures: results added by later stages (parity, calibration, latency ...).
        framing: how the training faces were framed (``score --detect`` crops faces so); None: not recorded.
        scale: percentiles and the 0–100 scale of the source model's scores on reference faces; None: not measured.
    """

    arch: str
    preprocessing: PreprocessSpec
    model_file: str
    backend: str = "torch"
    precision: str = "fp32"
    score_range: tuple[float, float] = (0.0, 1.0)
    source_sha256: str | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    framing: Framing | None = None
    scale: ScoreScale | None = None
    schema_version: int = SCHEMA_VERSION
    created_by: str = f"fiqa-edge {__version__}"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            msg = f"precision must be one of {PRECISIONS}, got {self.precision!r}"
            raise ManifestError(msg)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "created_by": self.created_by,
            "arch": self.arch,
            "model_file": self.model_file,
            "backend": self.backend,
            "precision": self.precision,
            "input_size": self.preprocessing.input_size,
            "preprocessing": self.preprocessing.to_dict(),
            "score": {"range": list(self.score_range), "higher_is_better": True},
            "source": {"sha256": self.source_sha256},
            "framing": self.framing.to_dict() if self.framing else None,
            "scale": self.scale.to_dict() if self.scale else None,
            "figures": self.figures,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], origin: str = "manifest") -> Manifest:
        """Build from a parsed ``fiqa.json``; ``origin`` names it in errors."""
        try:
            version = int(d["schema_version"])
            if version > SCHEMA_VERSION:
                msg = (
                    f"{origin}: schema version {version} is newer than this fiqa-edge reads ({SCHEMA_VERSION}); "
                    "upgrade fiqa-edge"
                )
                raise ManifestError(
                    msg
                )
            return cls(
                arch=str(d["arch"]),
                preprocessing=PreprocessSpec.from_dict(d["preprocessing"]),
                model_file=str(d["model_file"]),
                backend=str(d["backend"]),
                precision=str(d["precision"]),
                score_range=tuple(float(v) for v in d["score"]["range"]),  # type: ignore[arg-type]
                source_sha256=d.get("source", {}).get("sha256"),
                figures=dict(d.get("figures", {})),
                framing=Framing.from_dict(d["framing"]) if d.get("framing") else None,
                scale=ScoreScale.from_dict(d["scale"]) if d.get("scale") else None,
                schema_version=version,
                created_by=str(d.get("created_by", "")),
            )
        except ManifestError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            msg = f"{origin}: invalid manifest ({type(exc).__name__}: {exc})"
            raise ManifestError(msg) from exc

    @classmethod
    def from_json(cls, text: str, origin: str = "manifest") -> Manifest:
        """Parse manifest JSON text; ``origin`` names it in errors."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"{origin}: unreadable manifest ({exc})"
            raise ManifestError(msg) from exc
        if not isinstance(data, dict):
            msg = f"{origin}: a manifest must be a JSON object"
            raise ManifestError(msg)
        return cls.from_dict(data, origin=origin)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``folder/fiqa.json`` atomically and return its path."""
        path = Path(folder) / MANIFEST_NAME
        atomic_write_text(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read a manifest from ``path`` (the file or its bundle folder)."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            msg = f"{path}: no such manifest"
            raise ManifestError(msg) from exc
        except (OSError, UnicodeDecodeError) as exc:
            msg = f"{path}: unreadable manifest ({exc})"
            raise ManifestError(msg) from exc
        return cls.from_json(text, origin=str(path))
