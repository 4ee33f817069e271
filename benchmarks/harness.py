"""``fiqa-edge bench TARGETS``: cost, latency, parity and accuracy of artifacts, side by side.

Targets are bundle folders, folders of bundles, model files or torch
checkpoints (a checkpoint gives two rows: torch eager and ``torch.compile``).
Every artifact is loaded in this process, timed in interleaved rounds (see
:mod:`.timing`), and scores the same images. Parity is measured against the
fp32 torch model when torch and the source checkpoint are at hand, otherwise
against the reference scores stored in the bundle at convert time.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from fiqa_edge._deps import EXTRA_FOR, is_available
from fiqa_edge.assets import DEFAULT_MODEL, SAMPLES_DIR
from fiqa_edge.backends import BACKENDS
from fiqa_edge.errors import FiqaError
from fiqa_edge.manifest import MANIFEST_NAME, Manifest, sha256_file
from fiqa_edge.metrics import parity, quality_metrics
from fiqa_edge.preprocess import PreprocessSpec, preprocess
from fiqa_edge.scorer import QualityScorer
from fiqa_edge.train.degrade import open_image_ref, parse_ref
from fiqa_edge.train.labels import Item

from .timing import Latency, interleaved_latency

__all__ = ["Artifact", "BenchReport", "BenchResult", "find_artifacts", "run_bench"]

log = logging.getLogger(__name__)

_CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors")
_FILE_BACKEND = {".onnx": "onnxruntime", ".xml": "openvino", ".engine": "tensorrt", ".plan": "tensorrt",
                 ".mlpackage": "coreml"}


@dataclass
class Artifact:
    """One thing to measure: a model on one backend."""

    target: str
    path: Path
    backend: str
    precision: str = "fp32"


def find_artifacts(targets: Sequence[str | os.PathLike[str]]) -> list[Artifact]:
    """Expand targets into artifacts (a folder of bundles gives each bundle, sorted).

    Raises:
        FiqaError: a target does not exist or is of no known kind.
    """
    found: list[Artifact] = []
    for target in map(Path, targets):
        if not target.exists():
            raise FiqaError(f"{target}: no such bundle, model file or folder")
        if target.is_dir() and target.suffix != ".mlpackage":
            bundles = [target] if (target / MANIFEST_NAME).is_file() else sorted(
                d for d in target.iterdir() if (d / MANIFEST_NAME).is_file())
            if not bundles:
                raise FiqaError(f"{target}: neither a bundle ({MANIFEST_NAME}) nor a folder of bundles")
            for b in bundles:
                m = Manifest.load(b)
                found.append(Artifact(str(b), b, m.backend, m.precision))
        elif target.suffix in _CHECKPOINT_SUFFIXES:
            found += [Artifact(str(target), target, "torch"), Artifact(str(target), target, "torch-compile")]
        elif target.suffix in _FILE_BACKEND:
            found.append(Artifact(str(target), target, _FILE_BACKEND[target.suffix]))
        else:
            raise FiqaError(f"{target}: not a bundle, model file ({', '.join(_FILE_BACKEND)}) or checkpoint")
    return found


@dataclass
class BenchResult:
    """The measured figures of one artifact (``None``: not measured, with ``reason``)."""

    target: str
    backend: str
    precision: str
    status: str = "ok"  # ok | skipped | failed
    reason: str | None = None
    size_mb: float | None = None
    params: int | None = None
    gflops: float | None = None
    gflops_torch: float | None = None
    rss_mb: float | None = None
    latency: Latency | None = None
    throughput_ips: dict[str, float] = field(default_factory=dict)
    end_to_end: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    accuracy: dict[str, Any] | None = None

    @property
    def noisy(self) -> bool:
        return self.latency is not None and self.latency.noisy

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["latency"] = self.latency.to_dict() if self.latency else None
        d["noisy"] = self.noisy
        return d


@dataclass
class BenchReport:
    """Every result of one run, with the conditions it ran under."""

    images: int
    results: list[BenchResult]
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "settings": self.settings, "results": [r.to_dict() for r in self.results]}


def _skip_reason(artifact: Artifact) -> str | None:
    package = BACKENDS[artifact.backend][0] if artifact.backend in BACKENDS else artifact.backend
    if not is_available(package):
        return f"{package} is not installed (pip install 'fiqa-edge[{EXTRA_FOR.get(package, 'all')}]')"
    if artifact.backend == "coreml" and sys.platform != "darwin":
        return "CoreML models run only on macOS"
    if artifact.backend == "tensorrt" and not _has_nvidia_gpu():
        return "TensorRT needs an NVIDIA GPU"
    return None


def _has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() and any(Path("/proc/driver/nvidia/gpus").iterdir())


def _rss_mb() -> float | None:
    """Resident memory of this process (Linux), MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _model_size_mb(artifact: Artifact) -> float:
    path = artifact.path
    if path.is_dir():
        files = [f for f in path.rglob("*") if f.is_file() and f.name != MANIFEST_NAME]
    elif path.suffix == ".xml":
        files = [path, path.with_suffix(".bin")]
    else:
        files = [path]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def _source_sha(artifact: Artifact, scorer: QualityScorer) -> str | None:
    if artifact.backend in ("torch", "torch-compile"):
        return sha256_file(artifact.path)
    manifest = getattr(scorer.backend, "manifest", None)
    return manifest.source_sha256 if manifest else None


def _cost(scorer: QualityScorer) -> dict[str, Any] | None:
    """Params and GFLOPs: the bundle's stored figures, else counted with torch when it is installed."""
    manifest = getattr(scorer.backend, "manifest", None)
    if manifest is not None and "cost" in manifest.figures:
        return manifest.figures["cost"]
    if not (is_available("torch") and is_available("fvcore")):
        return None
    from fiqa_edge.zoo import create_model

    from .cost import model_cost

    model = getattr(scorer.backend, "model", None)
    model = getattr(model, "_orig_mod", model) or create_model(scorer.backend.arch)
    return model_cost(model, scorer.spec.input_size).to_dict()


def _scores(scorer: QualityScorer, inputs: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([scorer.backend.predict(inputs[i : i + batch]) for i in range(0, len(inputs), batch)])


class _Inputs:
    """Decoded images, preprocessed once per preprocessing spec."""

    def __init__(self, items: Sequence[Item], root: Path | None) -> None:
        self.items, self.images = [], []
        for item in tqdm(items, desc="decoding", unit="img", disable=len(items) < 50):
            try:
                self.images.append(open_image_ref(item.image, root))
                self.items.append(item)
            except FiqaError as exc:
                log.warning("%s; left out", exc)
        if not self.images:
            raise FiqaError("none of the benchmark images could be read")
        self.files = [(root / item.image if root else Path(item.image)) for item in self.items
                      if parse_ref(item.image)[1] is None]
        self._by_spec: dict[PreprocessSpec, np.ndarray] = {}

    def batch(self, spec: PreprocessSpec) -> np.ndarray:
        if spec not in self._by_spec:
            self._by_spec[spec] = np.stack([preprocess(im, spec) for im in self.images])
        return self._by_spec[spec]

    @property
    def labels(self) -> np.ndarray:
        return np.array([item.score for item in self.items], dtype=np.float64)


def run_bench(
    targets: Sequence[str | os.PathLike[str]],
    items: Sequence[Item],
    *,
    root: Path | None = None,
    batch_sizes: Sequence[int] = (1, 8),
    threads: int | None = None,
    workers: int = 2,
    reference: Path | None = None,
    warmup: int = 5,
    rounds: int = 10,
    per_round: int = 5,
) -> BenchReport:
    """Measure every artifact of ``targets`` on ``items`` (labels used when they are numbers)."""
    artifacts = find_artifacts(targets)
    inputs = _Inputs(items, root)
    has_labels = not np.isnan(inputs.labels).any()
    results = [BenchResult(a.target, a.backend, a.precision) for a in artifacts]
    scorers: dict[int, QualityScorer] = {}
    for i, (artifact, result) in enumerate(zip(artifacts, results)):
        reason = _skip_reason(artifact)
        if reason:
            result.status, result.reason = "skipped", reason
            continue
        try:
            before = _rss_mb()
            scorer = QualityScorer.load(artifact.path, artifact.backend, threads=threads)
            scorer.backend.predict(inputs.batch(scorer.spec)[:1])
            after = _rss_mb()
        except Exception as exc:  # one artifact failing to load never stops the comparison
            result.status, result.reason = "failed", " ".join(str(exc).split())[:300]
            continue
        scorers[i] = scorer
        manifest = getattr(scorer.backend, "manifest", None)
        result.precision = manifest.precision if manifest else result.precision
        result.size_mb = _model_size_mb(artifact)
        result.rss_mb = None if before is None or after is None else after - before
        cost = _cost(scorer)
        if cost:
            result.params, result.gflops, result.gflops_torch = cost["params"], cost["gflops"], cost["gflops_torch"]

    order = list(scorers)
    for b in sorted(set(batch_sizes) | {1}):
        log.info("timing batch %d", b)
        calls = [_call(scorers[i], inputs.batch(scorers[i].spec), b) for i in order]
        for i, lat in zip(order, interleaved_latency(calls, warmup=warmup, rounds=rounds, per_round=per_round)):
            if b == 1:
                results[i].latency = lat
            if b in batch_sizes:
                results[i].throughput_ips[str(b)] = b / (lat.p50_ms / 1e3)

    e2e_batch = max(batch_sizes)
    scores: dict[int, np.ndarray] = {}
    for i in order:
        scorer = scorers[i]
        scores[i] = _scores(scorer, inputs.batch(scorer.spec))
        if inputs.files:
            t0 = time.perf_counter()
            done = sum(1 for r in scorer.score_paths(inputs.files, batch_size=e2e_batch, workers=workers) if r.error is None)
            ips = done / (time.perf_counter() - t0)
            model_ips = results[i].throughput_ips.get(str(e2e_batch))
            results[i].end_to_end = {"batch_size": e2e_batch, "workers": workers, "images": done, "ips": ips,
                                     "model_only_ips": model_ips, "ratio": ips / model_ips if model_ips else None}

    _parity(artifacts, results, scorers, scores, inputs, reference)
    if has_labels:
        _accuracy(results, scores, inputs.labels)
    settings = {"batch_sizes": list(batch_sizes), "threads": threads, "workers": workers, "warmup": warmup,
                "rounds": rounds, "per_round": per_round, "cpu": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(), "python": platform.python_version()}
    return BenchReport(images=len(inputs.images), results=results, settings=settings)


def _call(scorer: QualityScorer, inputs: np.ndarray, batch: int):
    x = np.ascontiguousarray(np.resize(inputs, (batch, *inputs.shape[1:])))
    return lambda: scorer.backend.predict(x)


def _parity(artifacts, results, scorers, scores, inputs: _Inputs, reference: Path | None) -> None:
    """Parity of each artifact against fp32 torch on the bench images, else its stored reference scores."""
    torch_refs: dict[str, np.ndarray] = {}
    for i, scorer in scorers.items():
        if artifacts[i].backend == "torch":
            torch_refs.setdefault(sha256_file(artifacts[i].path), scores[i])
    if is_available("torch"):
        for ckpt in [reference, DEFAULT_MODEL]:
            if ckpt is not None and ckpt.is_file() and sha256_file(ckpt) not in torch_refs:
                sha = sha256_file(ckpt)
                if any(_source_sha(artifacts[i], s) == sha for i, s in scorers.items()):
                    ref_scorer = QualityScorer.load(ckpt, "torch")
                    torch_refs[sha] = _scores(ref_scorer, inputs.batch(ref_scorer.spec))
    for i, scorer in scorers.items():
        sha = _source_sha(artifacts[i], scorer)
        if sha in torch_refs:
            results[i].parity = {"reference": "torch fp32", **_parity_dict(torch_refs[sha], scores[i])}
            continue
        manifest = getattr(scorer.backend, "manifest", None)
        stored = manifest.figures.get("reference_scores", {}).get("scores") if manifest else None
        if stored:
            names = [n for n in stored if (SAMPLES_DIR / n).is_file()]
            got = scorer.score_batch([SAMPLES_DIR / n for n in names])
            results[i].parity = {"reference": "stored scores of the bundled sample faces",
                                 **_parity_dict(np.array([stored[n] for n in names]), got)}


def _parity_dict(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    p = parity(reference, candidate).to_dict()
    return {"images": p.pop("images"), **p}


def _accuracy(results: list[BenchResult], scores: dict[int, np.ndarray], labels: np.ndarray) -> None:
    """Quality metrics against the labels, and the change from the fp32 row of the same target family."""
    for i, s in scores.items():
        results[i].accuracy = quality_metrics(s, labels).to_dict()
    fp32 = next((results[i].accuracy for i in scores if results[i].backend == "torch"), None)
    for i in scores:
        base = fp32 or next((results[j].accuracy for j in scores if results[j].precision == "fp32"
                             and results[j].backend == results[i].backend), None)
        if base is not None:
            results[i].accuracy["delta_srcc_vs_fp32"] = results[i].accuracy["srcc"] - base["srcc"]
            results[i].accuracy["delta_plcc_vs_fp32"] = results[i].accuracy["plcc"] - base["plcc"]
