"""``convert``: build, validate and write one bundle per target × precision.

Each bundle is a folder ``OUT/<target>-<precision>/`` with the model file and
``fiqa.json`` (also embedded in the model where the format allows). It is
assembled in a temporary folder and renamed only after validation passed, so
a failed or interrupted conversion leaves nothing under a final name.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from fiqa_edge._atomic import atomic_path
from fiqa_edge._deps import require
from fiqa_edge.backends import open_backend
from fiqa_edge.manifest import MANIFEST_NAME, Manifest
from fiqa_edge.zoo import LoadedModel

from .calibration import CalibrationFaces
from .targets import TARGETS
from .validate import BOUNDS, Bound, compare, enforce

__all__ = ["ConvertResult", "convert"]

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    """One artifact: where it is, how long it took, how it validated."""

    target: str
    precision: str
    bundle: Path | None
    seconds: float
    size_mb: float = 0.0  # model files of the bundle (an IR's .xml and .bin together)
    parity: dict = field(default_factory=dict)
    error: str | None = None


def _scores(backend, faces: np.ndarray, batch: int = 16) -> np.ndarray:
    return np.concatenate([backend.predict(faces[i : i + batch]) for i in range(0, len(faces), batch)])


def convert(
    loaded: LoadedModel,
    targets: Sequence[str],
    precisions: Sequence[str],
    calibration_paths: Sequence[Path],
    validation_paths: Sequence[Path],
    out: Path,
    *,
    bounds: dict[str, Bound] | None = None,
) -> list[ConvertResult]:
    """Build every requested target × precision the target supports; return one result each.

    A parity miss or build failure is recorded in the result's ``error`` (and
    logged); nothing is written under that bundle's final name.
    """
    from fiqa_edge.backends.torch_backend import TorchBackend

    bounds = bounds or BOUNDS
    validation = CalibrationFaces(validation_paths, loaded.spec)
    faces = validation.batch()
    reference = _scores(TorchBackend(loaded.model, loaded.spec, loaded.arch), faces)
    calibration = CalibrationFaces(calibration_paths, loaded.spec)
    samples = validation.paths[:8]
    results = []
    with tempfile.TemporaryDirectory(prefix="fiqa-convert-") as work:
        for key in targets:
            target = TARGETS[key]
            require(target.package, f"--to {key}")
            for precision in (p for p in precisions if p in target.precisions):
                t0 = time.perf_counter()
                final = out / f"{key}-{precision}"
                try:
                    with atomic_path(final, directory=True) as tmp:
                        model_file = tmp / target.model_file
                        converter = target.load()
                        converter.build(loaded, precision, model_file, calibration, Path(work))
                        manifest = Manifest(arch=loaded.arch, preprocessing=loaded.spec, model_file=target.model_file,
                                            backend=target.backend, precision=precision, source_sha256=loaded.sha256)
                        manifest.save(tmp)
                        backend = open_backend(target.backend, tmp)
                        parity = compare(reference, _scores(backend, faces))
                        enforce(parity, bounds[precision], f"{key} {precision}")
                        manifest.figures = {
                            "parity_vs_torch_fp32": parity.to_dict(),
                            "reference_scores": {p.name: float(s) for p, s in zip(samples, reference)},
                        }
                        if precision == "int8":
                            manifest.figures["calibration"] = {"images": len(calibration)}
                        manifest.save(tmp)
                        converter.embed_manifest(model_file, manifest)
                    size = sum(f.stat().st_size for f in final.iterdir() if f.name != MANIFEST_NAME) / 2**20
                    results.append(ConvertResult(key, precision, final, time.perf_counter() - t0, size, parity.to_dict()))
                    log.info("%s %s: %.1f s, %.2f MB -> %s", key, precision, results[-1].seconds, size, final)
                except Exception as exc:  # recorded per artifact; the others still build
                    results.append(ConvertResult(key, precision, None, time.perf_counter() - t0, error=str(exc)))
                    log.error("%s %s failed: %s", key, precision, exc)
    return results
