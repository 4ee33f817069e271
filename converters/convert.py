"""``convert``: build, validate and write one bundle per target × precision.

Each bundle is a folder ``OUT/<target>-<precision>/`` with the model file and
``fiqa.json`` (also embedded in the model where the format allows). It is
assembled in a temporary folder and renamed only after validation passed, so
a failed or interrupted conversion leaves nothing under a final name.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fiqa_edge._atomic import atomic_path
from fiqa_edge._output import captured_output
from fiqa_edge.assets import SAMPLES_DIR, sample_faces
from fiqa_edge.errors import ConversionError, FiqaError, TargetUnavailableError
from fiqa_edge.manifest import MANIFEST_NAME, Manifest
from fiqa_edge.metrics import parity as metrics_parity
from fiqa_edge.zoo import LoadedModel, get_model_cfg

from .base import PRECISIONS, BuildContext, predict_batched
from .calibration import CalibrationFaces
from .targets import TARGETS
from .validate import BOUNDS, Bound, enforce

__all__ = ["ConvertResult", "convert"]

log = logging.getLogger(__name__)


@dataclass
class ConvertResult:
    """One artifact: where it is, how long it took, how it validated, or why it failed."""

    target: str
    precision: str
    bundle: Path | None
    seconds: float
    size_mb: float = 0.0  # model files of the bundle (an IR's .xml and .bin together)
    parity: dict = field(default_factory=dict)
    failure: FiqaError | None = None  # ParityError, ConversionError ...
    note: str | None = None

    @property
    def error(self) -> str | None:
        """The failure as one line, or None."""
        return " ".join(str(self.failure).split()) if self.failure else None


@contextmanager
def _as_conversion_error(what: str) -> Iterator[None]:
    """Exporters, quantizers and runtimes raise their own types: one :class:`ConversionError` naming the step."""
    try:
        yield
    except FiqaError:
        raise
    except Exception as exc:
        msg = f"{what}: {type(exc).__name__}: {exc}"
        raise ConversionError(msg) from exc


def _face_set(faces: CalibrationFaces, source: str) -> dict[str, Any]:
    """What a figure was measured on: how many faces, where from, and a hash of their file names."""
    names = "\n".join(sorted(p.name for p in faces.paths))
    return {"images": len(faces), "source": source, "names_sha256": hashlib.sha256(names.encode()).hexdigest()}


def convert(
    loaded: LoadedModel,
    targets: Sequence[str],
    *,
    out: Path,
    precisions: Sequence[str] = PRECISIONS,
    calibration: Sequence[Path] | None = None,
    validation: Sequence[Path] | None = None,
    bounds: Mapping[str, Bound] | None = None,
    options: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> list[ConvertResult]:
    """Build every requested target × precision the target supports; return one result each.

    Args:
        loaded: the source model (``fiqa_edge.zoo.load_model``).
        targets: keys of :data:`~fiqa_edge.converters.targets.TARGETS`.
        out: bundles go to ``out/<target>-<precision>/``.
        precisions: those a target does not build are skipped for it.
        calibration, validation: face images for int8 calibration and for the parity check. Default: the
            two identity-disjoint halves of the bundled sample faces. Overlapping sets are warned about
            and the overlap is recorded in the manifest.
        bounds: parity bound per precision (default :data:`~fiqa_edge.converters.validate.BOUNDS`).
        options: a target key to that target's options dataclass (default: its defaults).
        progress: show a progress bar.

    Raises:
        TargetUnavailableError: a target cannot be built on this machine (nothing is built).

    A build failure or parity miss is recorded in that result's ``failure`` (and
    logged); nothing is written under that bundle's final name, and the other
    artifacts still build.
    """
    from fiqa_edge.backends.torch_backend import TorchBackend
    from fiqa_edge.zoo.cost import model_cost

    for key in targets:
        reason = TARGETS[key].unavailable()
        if reason:
            msg = f"cannot build {key} here: {reason}"
            raise TargetUnavailableError(msg)
    bounds = bounds or BOUNDS
    options = options or {}
    calib_source = "bundled sample faces, calibration half (5 people)" if calibration is None else "given"
    valid_source = "bundled sample faces, validation half (5 other people)" if validation is None else "given"
    calib = CalibrationFaces(sample_faces("calibration") if calibration is None else calibration, loaded.spec)
    valid = CalibrationFaces(sample_faces("validation") if validation is None else validation, loaded.spec)
    overlap = len({p.resolve() for p in calib.paths} & {p.resolve() for p in valid.paths})
    if overlap:
        log.warning("%d of the %d validation faces are also calibration faces: int8 parity on them is in-sample",
                    overlap, len(valid))
    calib_figure = _face_set(calib, calib_source)
    valid_figure = {**_face_set(valid, valid_source), "also_in_calibration": overlap}

    faces = valid.batch()
    torch_backend = TorchBackend(loaded.model, loaded.spec, loaded.arch)
    reference = predict_batched(torch_backend, faces)
    # stored in every bundle so that a device without torch can check parity (``fiqa-edge bench``)
    samples = CalibrationFaces(sample_faces(), loaded.spec)
    sample_reference = {p.relative_to(SAMPLES_DIR).as_posix(): float(s)
                        for p, s in zip(samples.paths, predict_batched(torch_backend, samples.batch()))}
    cost = model_cost(loaded.model, loaded.input_size).to_dict()
    score_range = get_model_cfg(loaded.arch).score_range
    jobs = [(TARGETS[key], p) for key in targets for p in precisions if p in TARGETS[key].precisions]
    results = []
    with tempfile.TemporaryDirectory(prefix="fiqa-convert-") as work:
        ctx = BuildContext(loaded, calib, valid, Path(work))
        for converter, precision in tqdm(jobs, desc="converting", unit="artifact", disable=not progress):
            key = converter.key
            t0 = time.perf_counter()
            final = out / f"{key}-{precision}"
            try:
                with atomic_path(final, directory=True) as tmp, captured_output(f"{key} {precision}"):
                    settings = options.get(key) or converter.default_options()
                    file_name, backend = converter.artifact(settings)
                    model_file = tmp / file_name
                    with _as_conversion_error(f"{key} {precision}"):
                        built = converter.build(ctx, precision, model_file, settings)
                    manifest = Manifest(arch=loaded.arch, preprocessing=loaded.spec, model_file=file_name,
                                        backend=backend, precision=precision, score_range=score_range,
                                        source_sha256=loaded.sha256, framing=loaded.framing,
                                        scale=loaded.scale)
                    manifest.figures = {"cost": cost, **(built or {}),
                                        "reference_scores": {"faces": "bundled sample faces", "scores": sample_reference}}
                    if precision == "int8" and "calibration" not in manifest.figures:  # a build may say it used none
                        manifest.figures["calibration"] = calib_figure
                    manifest.save(tmp)
                    reason = converter.cannot_validate()
                    if reason is None:
                        with _as_conversion_error(f"{key} {precision} validation"):
                            scores, ran = converter.scores(ctx, tmp, settings)
                        measured = metrics_parity(reference, scores)
                        enforce(measured, bounds[precision], f"{key} {precision}")
                        parity = manifest.figures["parity_vs_torch_fp32"] = {**measured.to_dict(), "faces": valid_figure,
                                                                             **ran}
                        note = None
                    else:  # validate what can be validated without running it
                        parity = {}
                        with _as_conversion_error(f"{key} {precision} check"):
                            manifest.figures["checks"] = converter.inspect(model_file, manifest)
                        note = f"spec checked; parity not measured ({reason})"
                    manifest.save(tmp)
                    converter.embed_manifest(model_file, manifest)
                files = [f for f in final.rglob("*") if f.is_file() and f.name != MANIFEST_NAME]
                size = sum(f.stat().st_size for f in files) / 2**20
                results.append(ConvertResult(key, precision, final, time.perf_counter() - t0, size, parity, note=note))
                log.info("%s %s: %.1f s, %.2f MB -> %s", key, precision, results[-1].seconds, size, final)
            except FiqaError as exc:  # recorded per artifact; the others still build
                results.append(ConvertResult(key, precision, None, time.perf_counter() - t0, failure=exc))
                log.error("%s %s failed: %s", key, precision, results[-1].error)
    return results
