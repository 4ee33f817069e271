"""``fiqa-edge bench --model M...``: cost, latency, parity and accuracy of artifacts, side by side.

Targets are bundle folders, folders of bundles, model files or torch
checkpoints (a checkpoint gives two rows: torch eager and ``torch.compile``).
Every artifact runs in its own process (:mod:`.worker`), scores the same
images, and is timed in interleaved turns (:mod:`.timing`). Parity is measured against the
fp32 torch model when torch and the source checkpoint are at hand, otherwise
against the reference scores stored in the bundle at convert time.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from fiqa_edge._deps import is_available
from fiqa_edge.assets import DEFAULT_MODEL, SAMPLES_DIR, resolve_model
from fiqa_edge.backends import WEB_BACKENDS, backend_for, cannot_run
from fiqa_edge.converters.browser import browser_unavailable
from fiqa_edge.degrade import open_image_ref, parse_ref
from fiqa_edge.errors import FiqaError
from fiqa_edge.image_lists import Item
from fiqa_edge.manifest import MANIFEST_NAME, Manifest, sha256_file
from fiqa_edge.metrics import parity, quality_metrics

from .browser_worker import BrowserWorker
from .timing import Latency, interleaved_latency
from .worker import ArtifactWorker

__all__ = ["Artifact", "BenchReport", "BenchResult", "find_artifacts", "run_bench"]

log = logging.getLogger(__name__)

@dataclass
class Artifact:
    """One thing to measure: a model on one backend."""

    target: str
    path: Path
    backend: str
    precision: str = "fp32"


def find_artifacts(targets: Sequence[str | os.PathLike[str]]) -> list[Artifact]:
    """Expand targets into artifacts (a folder of bundles gives each bundle, sorted; a bundled model's name its file).

    Raises:
        FiqaError: a target does not exist or is of no known kind (as ``score`` knows them).
    """
    found: list[Artifact] = []
    for target in map(resolve_model, targets):
        if not target.exists():
            msg = f"{target}: no such bundle, model file or folder"
            raise FiqaError(msg)
        if target.is_dir() and target.suffix != ".mlpackage":
            bundles = [target] if (target / MANIFEST_NAME).is_file() else sorted(
                d for d in target.iterdir() if (d / MANIFEST_NAME).is_file())
            if not bundles:
                msg = f"{target}: neither a bundle ({MANIFEST_NAME}) nor a folder of bundles"
                raise FiqaError(msg)
            for b in bundles:
                m = Manifest.load(b)
                found.append(Artifact(str(b), b, m.backend, m.precision))
        elif backend_for(target) == "torch":  # a checkpoint: eager and compiled
            found += [Artifact(str(target), target, "torch"), Artifact(str(target), target, "torch-compile")]
        else:
            found.append(Artifact(str(target), target, backend_for(target)))
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
    runtime: dict[str, Any] | None = None  # how a browser row ran (browser, backend, threads, load times)
    pinned: bool = False  # its threads each kept a CPU of their own (fiqa_edge.backends.pinning)

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


def _model_size_mb(artifact: Artifact) -> float:
    path = artifact.path
    if path.is_dir():
        files = [f for f in path.rglob("*") if f.is_file() and f.name != MANIFEST_NAME]
    elif path.suffix == ".xml":
        files = [path, path.with_suffix(".bin")]
    else:
        files = [path]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


class _Inputs:
    """The benchmark images that decode (each named and left out otherwise), their labels and plain files."""

    def __init__(self, items: Sequence[Item], root: Path | None) -> None:
        self.items = []
        for item in tqdm(items, desc="checking images", unit="img", disable=len(items) < 50):
            try:
                open_image_ref(item.image, root)
                self.items.append(item)
            except FiqaError as exc:
                log.warning("%s; left out", exc)
        if not self.items:
            msg = "none of the benchmark images could be read"
            raise FiqaError(msg)
        self.refs = [item.image for item in self.items]
        self.files = [(root / ref if root else Path(ref)) for ref in self.refs if parse_ref(ref)[1] is None]
        self.labels = np.array([item.score for item in self.items], dtype=np.float64)


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
    rounds: int = 50,
    per_round: int = 2,
    pause: float = 0.1,
) -> BenchReport:
    """Measure every artifact of ``targets`` on ``items`` (accuracy too when every item has a label)."""
    artifacts = find_artifacts(targets)
    inputs = _Inputs(items, root)
    results = [BenchResult(a.target, a.backend, a.precision) for a in artifacts]
    sizes = sorted(set(batch_sizes) | {1})
    samples = sorted(p.relative_to(SAMPLES_DIR).as_posix() for p in SAMPLES_DIR.glob("*/*.jpg"))
    running: dict[int, ArtifactWorker | BrowserWorker] = {}
    for i, artifact in enumerate(artifacts):
        in_browser = artifact.backend in WEB_BACKENDS
        reason = browser_unavailable() if in_browser else cannot_run(artifact.backend)
        if reason:
            results[i].status, results[i].reason = "skipped", reason
        elif in_browser:
            running[i] = BrowserWorker(artifact.path, threads, inputs.refs, root, samples)
        else:
            running[i] = ArtifactWorker(artifact.path, artifact.backend, threads, inputs.refs, root, sizes, samples)
    facts: dict[int, dict[str, Any]] = {}
    try:
        for i, worker in tqdm(list(running.items()), desc="loading and scoring", unit="artifact"):
            try:
                facts[i] = worker.ready()
            except RuntimeError as exc:
                results[i].status, results[i].reason = "failed", str(exc)
                worker.stop()
        for i in list(running):
            if i not in facts:
                del running[i]
        order = list(running)
        for b in tqdm(sizes, desc="timing batch sizes", unit="size"):
            turns = [lambda n, w=running[i], b=b: w.time(b, n) for i in order]
            for i, lat in zip(order, interleaved_latency(turns, warmup=warmup, rounds=rounds, per_round=per_round, pause=pause)):
                if b == 1:
                    results[i].latency = lat
                if b in batch_sizes:
                    results[i].throughput_ips[str(b)] = b / (lat.p50_ms / 1e3)
        e2e_batch = max(batch_sizes)
        for i in order if inputs.files else []:
            time.sleep(pause)
            ips, done = running[i].end_to_end(inputs.files, e2e_batch, workers)
            model_ips = results[i].throughput_ips.get(str(e2e_batch))
            results[i].end_to_end = {"batch_size": e2e_batch, "workers": workers, "images": len(inputs.files),
                                     "scored_in_timed_passes": done, "ips": ips,
                                     "model_only_ips": model_ips, "ratio": ips / model_ips if model_ips else None}
    finally:
        peaks = {i: w.stop() for i, w in running.items()}
    for i, info in facts.items():
        r = results[i]
        r.precision, r.size_mb, r.rss_mb = info["precision"], _model_size_mb(artifacts[i]), peaks.get(i)
        r.runtime, r.pinned = info.get("runtime"), info.get("pinned", False)
        if info["cost"]:
            r.params, r.gflops, r.gflops_torch = (info["cost"][k] for k in ("params", "gflops", "gflops_torch"))
    _parity(artifacts, results, facts, inputs, root, reference, samples)
    if not np.isnan(inputs.labels).any():
        _accuracy(results, {i: info["scores"] for i, info in facts.items()}, inputs.labels)
    settings = {"batch_sizes": list(batch_sizes), "threads": threads, "workers": workers, "warmup": warmup,
                "rounds": rounds, "per_round": per_round, "pause_s": pause,
                "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                "python": platform.python_version()}
    return BenchReport(images=len(inputs.refs), results=results, settings=settings)


def _sha(path: Path) -> str:
    """SHA-256 of a checkpoint, hashed once however many rows share it (until the file changes)."""
    stat = path.stat()
    return _sha_of(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=32)
def _sha_of(path: Path, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def _source_sha(artifact: Artifact, info: dict[str, Any]) -> str | None:
    return _sha(artifact.path) if artifact.backend in ("torch", "torch-compile") else info["source_sha256"]


def _parity(artifacts, results, facts, inputs: _Inputs, root: Path | None, reference: Path | None,
            samples: list[str]) -> None:
    """Parity against fp32 torch on the bench images when its checkpoint is at hand, else the stored scores."""
    torch_scores: dict[str, np.ndarray] = {}
    for i, info in facts.items():
        if artifacts[i].backend == "torch":
            torch_scores.setdefault(_sha(artifacts[i].path), info["scores"])
    wanted = {_source_sha(artifacts[i], info) for i, info in facts.items()} - set(torch_scores)
    if is_available("torch"):
        for ckpt in (reference, DEFAULT_MODEL):
            if ckpt is not None and ckpt.is_file() and _sha(ckpt) in wanted:
                worker = ArtifactWorker(ckpt, "torch", None, inputs.refs, root, [1])
                try:
                    torch_scores[_sha(ckpt)] = worker.ready()["scores"]
                finally:
                    worker.stop()
    for i, info in facts.items():
        sha = _source_sha(artifacts[i], info)
        stored = (info["figures"].get("reference_scores") or {}).get("scores")
        if sha in torch_scores:
            results[i].parity = {"reference": "torch fp32", **_parity_dict(torch_scores[sha], info["scores"])}
        elif stored and info["sample_scores"] is not None:
            names = [n for n in samples if n in stored]
            got = dict(zip(samples, info["sample_scores"]))
            results[i].parity = {"reference": "stored scores of the bundled sample faces",
                                 **_parity_dict(np.array([stored[n] for n in names]), np.array([got[n] for n in names]))}


def _parity_dict(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    p = parity(reference, candidate).to_dict()
    return {"images": p.pop("images"), **p}


def _accuracy(results: list[BenchResult], scores: dict[int, np.ndarray], labels: np.ndarray) -> None:
    """Quality metrics against the labels, and the change from the fp32 torch row (else the backend's fp32)."""
    accuracy = {i: quality_metrics(s, labels).to_dict() for i, s in scores.items()}
    fp32 = next((accuracy[i] for i in scores if results[i].backend == "torch"), None)
    for i, row in accuracy.items():
        base = fp32 or next((accuracy[j] for j in scores if results[j].precision == "fp32"
                             and results[j].backend == results[i].backend), None)
        if base is not None:
            row["delta_srcc_vs_fp32"] = row["srcc"] - base["srcc"]
            row["delta_plcc_vs_fp32"] = row["plcc"] - base["plcc"]
        results[i].accuracy = row
