"""``fiqa-edge bench --profile``: where an artifact's inference time goes, by operator type and by node.

Each artifact runs in its own process on one preprocessed sample face (batch
1, the artifact's input size), under its runtime's own profiler:
onnxruntime's session profiler (kernel time per node), OpenVINO's
performance counters (``PERF_COUNT``, real time per executed layer) and
``torch.profiler`` (self CPU time per operator, and per generated kernel
under ``torch.compile``) and ExecuTorch's ETDump read by its ``Inspector``
(every XNNPACK operator and every portable kernel left outside the
delegate). LiteRT's Python API has no per-operator profiler: each operator
of its batch-1 signature is timed alone, as a one-operator model fed with the
values a full run gave it, under the same XNNPACK threads; each time includes
its own call's overhead, so the sum approximates, not measures, a full call.
Runtimes without a
per-operator profiler in their Python API are listed with the reason.
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
import re
import tempfile
import time
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


#: ExecuTorch's events that enclose others: their time is their children's and the call's own
_ET_ENCLOSING = {"Method::execute", "OPERATOR_CALL", "DELEGATE_CALL"}
#: XNNPACK numbers each operator of a kind ("Convolution (NHWC, F32) DWConv #3"): the kind is the op type
_NUMBERED = re.compile(r" #\d+$")


def _executorch(backend: Any, x: np.ndarray, runs: int) -> list[tuple[str, str, float]]:
    """From a backend loaded with ``etdump``: each XNNPACK operator (typed by its XNNPACK kernel, which names its
    precision), each portable kernel, and the delegate's time between its operators."""
    from executorch.devtools import Inspector

    for _ in range(WARMUP + runs):
        backend.predict(x)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "run.etdp"
        backend.program.write_etdump_result_to_file(str(dump), str(Path(tmp) / "debug.bin"))
        inspector = Inspector(etdump_path=str(dump))
    rows, delegated, calls = [], 0.0, 0.0
    for block in inspector.event_blocks:
        for event in block.events:
            if block.name != "Execute" or event.perf_data is None:
                continue
            ms = float(np.sum(event.perf_data.raw[-runs:]))  # the last ``runs`` calls: the first ones were warm-up
            if event.name == "DELEGATE_CALL":
                calls += ms
            elif event.is_delegated_op:
                rows.append((event.name, "XNNPACK " + _NUMBERED.sub("", event.name), ms))
                delegated += ms
            elif event.name not in _ET_ENCLOSING:
                rows.append((event.name, event.name.removeprefix("native_call_"), ms))
    if calls > delegated:
        rows.append(("XNNPACK delegate calls", "XNNPACK between its operators", calls - delegated))
    return rows


def _one_op_model(model: Any, subgraph: Any, op: Any) -> tuple[bytes, list[int], list[int]]:
    """``op`` of ``subgraph`` as a model of its own: (flatbuffer, its inputs' and outputs' indices in ``subgraph``)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    used = [i for i in (*op.inputs, *op.outputs) if i >= 0]
    index = {t: k for k, t in enumerate(dict.fromkeys(used))}
    buffers, tensors = [schema.BufferT()], []
    for t in index:
        tensor = copy.copy(subgraph.tensors[t])
        if tensor.buffer and model.buffers[tensor.buffer].data is not None:  # a constant: its data comes along
            buffers.append(model.buffers[tensor.buffer])
            tensor.buffer = len(buffers) - 1
        else:
            tensor.buffer = 0
        tensors.append(tensor)
    fed = [t for t in dict.fromkeys(i for i in op.inputs if i >= 0) if not tensors[index[t]].buffer]
    one = copy.copy(op)
    one.inputs = [index[i] if i >= 0 else -1 for i in op.inputs]
    one.outputs = [index[i] for i in op.outputs]
    graph = schema.SubGraphT()
    graph.tensors, graph.operators = tensors, [one]
    graph.inputs, graph.outputs = [index[t] for t in fed], [index[t] for t in op.outputs]
    small = schema.ModelT()
    small.version, small.operatorCodes, small.buffers, small.subgraphs = model.version, model.operatorCodes, buffers, [graph]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(small)), fed, list(op.outputs)


def _litert(path: Path, x: np.ndarray, runs: int, threads: int | None) -> list[tuple[str, str, float]]:
    """(first output's name, op, ms over ``runs``) for each operator of the batch-1 signature, each timed alone."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    (k,) = [s.subgraphIndex for s in model.signatureDefs if s.signatureKey in (b"serving_default", "serving_default")]
    subgraph = model.subgraphs[k]
    # every intermediate value, from one run on the reference kernels (XNNPACK keeps its own inside the delegate)
    reference = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    runner = reference.get_signature_runner("serving_default")
    (name,) = reference.get_signature_list()["serving_default"]["inputs"]
    runner(**{name: np.ascontiguousarray(x.transpose(0, 2, 3, 1))})
    rows = []
    for op in subgraph.operators:
        content, fed, outputs = _one_op_model(model, subgraph, op)
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.allocate_tensors()
        for slot, t in zip(interpreter.get_input_details(), fed):
            interpreter.set_tensor(slot["index"], reference.get_tensor(t, subgraph_index=k))
        for _ in range(WARMUP):
            interpreter.invoke()
        start = time.perf_counter()
        for _ in range(runs):
            interpreter.invoke()
        ms = (time.perf_counter() - start) * 1e3
        out_name = subgraph.tensors[outputs[0]].name
        label = _module_path((out_name.decode() if isinstance(out_name, bytes) else out_name).split(";")[0])
        rows.append((label, flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) or "?", ms))
    return rows


def _module_path(name: str) -> str:
    """The torch module path in a tensor name litert-torch wrote (``pkg.Class_attr/pkg.Class_attr/...``)."""
    attrs = [segment.rpartition(".")[2].partition("_")[2] for segment in name.split("/")]
    return ".".join(a for a in attrs if a and a != "wrapped") or name


_PROFILERS = {"onnxruntime": _onnxruntime, "executorch": _executorch, "openvino": _openvino, "torch": _torch,
              "torch-compile": _torch}


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
        elif artifact.backend == "executorch":  # so is ExecuTorch's: when the program is loaded
            from fiqa_edge.backends.executorch_backend import ExecuTorchBackend

            backend = ExecuTorchBackend.load(artifact.path, threads=threads, etdump=True)
        else:
            backend = open_backend(artifact.path, backend=artifact.backend, threads=threads)
        x = preprocess(load_image(sample_faces()[0]), backend.spec)[None]
        if artifact.backend == "litert":  # from its file: each operator becomes a model of its own
            from fiqa_edge.backends import model_path

            rows = _litert(model_path(artifact.path), x, runs, threads)
        else:
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
        if reason is None and artifact.backend not in {*_PROFILERS, "litert"}:
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
