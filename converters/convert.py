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
from tqdm import tqdm

from fiqa_edge._atomic import atomic_path
from fiqa_edge._deps import require
from fiqa_edge.assets import SAMPLES_DIR, sample_faces
from fiqa_edge.backends import open_backend
from fiqa_edge.manifest import MANIFEST_NAME, Manifest
from fiqa_edge.metrics import parity as metrics_parity
from fiqa_edge.zoo import LoadedModel

from .calibration import CalibrationFaces
from .targets import TARGETS
from .validate import BOUNDS, Bound, enforce

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
    note: str | None = None


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
    options: dict[str, dict] | None = None,
    progress: bool = False,
) -> list[ConvertResult]:
    """Build every requested target × precision the target supports; return one result each.

    ``options`` maps a target key to keyword arguments of its ``build``.

    A parity miss or build failure is recorded in the result's ``error`` (and
    logged); nothing is written under that bundle's final name.
    """
    from fiqa_edge.backends.torch_backend import TorchBackend
    from fiqa_edge.benchmarks.cost import model_cost

    bounds = bounds or BOUNDS
    validation = CalibrationFaces(validation_paths, loaded.spec)
    faces = validation.batch()
    torch_backend = TorchBackend(loaded.model, loaded.spec, loaded.arch)
    reference = _scores(torch_backend, faces)
    # stored in every bundle so that a device without torch can check parity (``fiqa-edge bench``)
    samples = CalibrationFaces(sample_faces(), loaded.spec)
    sample_reference = {p.relative_to(SAMPLES_DIR).as_posix(): float(s)
                        for p, s in zip(samples.paths, _scores(torch_backend, samples.batch()))}
    cost = model_cost(loaded.model, loaded.input_size).to_dict()
    calibration = CalibrationFaces(calibration_paths, loaded.spec)
    jobs = [(TARGETS[key], precision) for key in targets for precision in precisions if precision in TARGETS[key].precisions]
    results = []
    with tempfile.TemporaryDirectory(prefix="fiqa-convert-") as work:
        for target, precision in tqdm(jobs, desc="converting", unit="artifact", disable=not progress):
            key = target.key
            converter = target.load()
            require(target.package, f"--to {key}")
            t0 = time.perf_counter()
            final = out / f"{key}-{precision}"
            try:
                with atomic_path(final, directory=True) as tmp:
                    model_file = tmp / target.model_file
                    kwargs = dict((options or {}).get(key, {}))
                    if kwargs.get("max_drop") is not None:  # accuracy-controlled quantization scores the validation faces
                        kwargs["validation"] = validation
                    converter.build(loaded, precision, model_file, calibration, Path(work), **kwargs)
                    manifest = Manifest(arch=loaded.arch, preprocessing=loaded.spec, model_file=target.model_file,
                                        backend=target.backend, precision=precision, source_sha256=loaded.sha256)
                    manifest.figures = {"cost": cost,
                                        "reference_scores": {"faces": "bundled sample faces", "scores": sample_reference}}
                    if precision == "int8":
                        manifest.figures["calibration"] = {"images": len(calibration)}
                    manifest.save(tmp)
                    if getattr(converter, "runs_here", lambda: True)():
                        measured = metrics_parity(reference, _scores(open_backend(target.backend, tmp), faces))
                        enforce(measured, bounds[precision], f"{key} {precision}")
                        parity = manifest.figures["parity_vs_torch_fp32"] = measured.to_dict()
                        note = None
                    else:  # validate what can be validated without running it
                        parity = {}
                        manifest.figures["checks"] = converter.inspect(model_file, manifest)
                        note = f"spec checked; parity not measured ({target.backend} does not run on this machine)"
                    manifest.save(tmp)
                    converter.embed_manifest(model_file, manifest)
                files = [f for f in final.rglob("*") if f.is_file() and f.name != MANIFEST_NAME]
                size = sum(f.stat().st_size for f in files) / 2**20
                results.append(ConvertResult(key, precision, final, time.perf_counter() - t0, size, parity, note=note))
                log.info("%s %s: %.1f s, %.2f MB -> %s", key, precision, results[-1].seconds, size, final)
            except Exception as exc:  # recorded per artifact; the others still build
                message = " ".join(str(exc).split())
                results.append(ConvertResult(key, precision, None, time.perf_counter() - t0, error=message))
                log.error("%s %s failed: %s", key, precision, message)
    return results
