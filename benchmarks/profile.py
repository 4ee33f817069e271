"""``fiqa-edge bench --profile``: where an artifact's inference time goes, by operator type and by node.

Each artifact runs in its own process on one preprocessed sample face (batch
1, the artifact's input size), under its runtime's own profiler:
onnxruntime's session profiler (kernel time per node), OpenVINO's
performance counters (``PERF_COUNT``, real time per executed layer) and
``torch.profiler`` (self CPU time per operator, and per generated kernel
under ``torch.compile``). Runtimes without a
per-operator profiler in their Python API are listed with the reason.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_edge.errors import FiqaError, first_line

from .harness import Artifact

__all__ = ["Profile", "profile_artifacts", "profile_table"]

#: untimed runs first (OpenVINO compiles some kernels on their first calls)
WARMUP = 10


@dataclass
class Profile:
    """Time per run (ms) by operator type and by node, as the runtime's profiler counts it."""

    target: str
    backend: str
    precision: str
    input_size: int | None = None
    runs: int = 0
    total_ms: float = 0.0  # the operators' time per run (the runtime's overhead between them is not in it)
    by_op: dict[str, float] = field(default_factory=dict)  # op type -> ms per run, largest first
    nodes: list[tuple[str, str, float]] = field(default_factory=list)  # (node, op type, ms per run), largest first
    reason: str | None = None  # why it was not profiled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _onnxruntime(backend: Any, x: np.ndarray, runs: int) -> list[tuple[str, str, float]]:
    """(node, op type, ms over ``runs``) from a backend loaded with a ``profile_prefix``."""
    for _ in range(WARMUP + runs):
        backend.predict(x)
    events = json.loads(Path(backend.session.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node[(e["name"].removesuffix("_kernel_time"), e["args"]["op_name"])].append(e["dur"] / 1e3)
    # the last ``runs`` calls of each node: the first ones were warm-up
    return [(name, op, float(np.sum(times[-runs:]))) for (name, op), times in per_node.items()]


def _openvino(backend: Any, x: np.ndarray, runs: int) -> list[tuple[str, str, float]]:
    static = backend.model.clone()
    static.reshape(list(x.shape))
    compiled = backend.core.compile_model(static, backend.device, {**backend.config, "PERF_COUNT": "YES"})
    request = compiled.create_infer_request()
    for _ in range(WARMUP):
        request.infer([x])
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for _ in range(runs):
        request.infer([x])
        for info in request.profiling_info:
            if info.status.name == "EXECUTED":
                totals[(info.node_name, info.node_type)] += info.real_time.total_seconds() * 1e3
    return [(name, op, ms) for (name, op), ms in totals.items()]


def _torch(backend: Any, x: np.ndarray, runs: int) -> list[tuple[str, str, float]]:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(WARMUP):
        backend.predict(x)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(runs):
            backend.predict(x)
    rows = []
    for event in prof.key_averages(group_by_input_shape=True):
        if event.self_cpu_time_total > 0:  # self time: nested ops are not counted twice
            shapes = str(event.input_shapes)[:60] if event.input_shapes else ""
            rows.append((f"{event.key} {shapes}".strip(), event.key, event.self_cpu_time_total / 1e3))
    return rows


_PROFILERS = {"onnxruntime": _onnxruntime, "openvino": _openvino, "torch": _torch, "torch-compile": _torch}


def _profile_in_process(artifact: Artifact, threads: int | None, runs: int) -> dict[str, Any]:
    from fiqa_edge._output import captured_output
    from fiqa_edge.assets import sample_faces
    from fiqa_edge.backends import open_backend
    from fiqa_edge.imaging import load_image
    from fiqa_edge.preprocess import preprocess

    # the profilers' native notices are shown with -v only
    with captured_output(f"profile {artifact.target}"), tempfile.TemporaryDirectory() as tmp:
        if artifact.backend == "onnxruntime":  # profiling is a session option: set when the session is made
            from fiqa_edge.backends.onnxruntime_backend import OnnxRuntimeBackend

            backend: Any = OnnxRuntimeBackend.load(artifact.path, threads=threads, device="cpu",
                                                   profile_prefix=str(Path(tmp) / "ort"))
        else:
            backend = open_backend(artifact.path, backend=artifact.backend, threads=threads)
        x = preprocess(load_image(sample_faces()[0]), backend.spec)[None]
        rows = _PROFILERS[artifact.backend](backend, x, runs)
    by_op: dict[str, float] = defaultdict(float)
    for _, op, ms in rows:
        by_op[op] += ms / runs
    nodes = sorted(((name, op, ms / runs) for name, op, ms in rows), key=lambda r: -r[2])
    return {"input_size": backend.spec.input_size, "total_ms": sum(by_op.values()), "nodes": nodes,
            "by_op": dict(sorted(by_op.items(), key=lambda kv: -kv[1]))}


def profile_artifacts(artifacts: list[Artifact], *, threads: int | None = None, runs: int = 30) -> list[Profile]:
    """A :class:`Profile` per artifact (each profiled in a fresh process)."""
    from fiqa_edge.backends import cannot_run

    profiles = []
    ctx = mp.get_context("spawn")
    for artifact in artifacts:
        profile = Profile(artifact.target, artifact.backend, artifact.precision, runs=runs)
        reason = cannot_run(artifact.backend)
        if reason is None and artifact.backend not in _PROFILERS:
            reason = f"{artifact.backend} has no per-operator profiler in its Python API"
        if reason:
            profile.reason = reason
        else:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                try:
                    found = pool.submit(_profile_in_process, artifact, threads, runs).result()
                except (FiqaError, RuntimeError, OSError) as exc:
                    profile.reason = f"profiling failed: {first_line(exc)}"
                else:
                    for key, value in found.items():
                        setattr(profile, key, value)
        profiles.append(profile)
    return profiles


def profile_table(profiles: list[Profile], top: int = 10) -> str:
    """Per artifact: ms per run by operator type (with its share) and the ``top`` nodes."""
    lines = []
    for p in profiles:
        head = f"{Path(p.target).name} ({p.backend} {p.precision}"
        if p.reason:
            lines += [f"{head}): not profiled: {p.reason}", ""]
            continue
        lines.append(f"{head}, {p.input_size} px, batch 1, {p.runs} runs): {p.total_ms:.2f} ms per run in operators")
        width = max(len(op) for op in p.by_op)
        shown = {op: ms for op, ms in p.by_op.items() if ms >= 0.01 * p.total_ms}
        lines += [f"  {op:<{width}}  {ms:7.3f} ms  {100 * ms / p.total_ms:5.1f} %" for op, ms in shown.items()]
        if len(shown) < len(p.by_op):
            rest = p.total_ms - sum(shown.values())
            lines.append(f"  {f'{len(p.by_op) - len(shown)} others':<{width}}  {rest:7.3f} ms  {100 * rest / p.total_ms:5.1f} %")
        lines.append(f"  top {min(top, len(p.nodes))} nodes:")
        lines += [f"    {ms:7.3f} ms  {op:<{width}}  {name}" for name, op, ms in p.nodes[:top]]
        lines.append("")
    return "\n".join(lines)
