"""One artifact in its own process, driven by the bench through a pipe.

The child loads the artifact, scores every benchmark image (streaming, so
memory stays bounded), keeps one input batch per batch size for timing, and
then answers commands: time n calls, measure the end-to-end pipeline, stop
(reporting its peak resident memory).
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ArtifactWorker"]

def _peak_rss_mb() -> float | None:
    """High-water resident memory of this process, MB (Linux VmHWM; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _end_to_end(scorer, files: Sequence[Path], batch: int, workers: int, seconds: float) -> tuple[float, int]:
    """Images/s of ``score_paths`` over ``files``: one untimed pass, then passes until ``seconds`` have run."""
    def one_pass() -> int:
        return sum(1 for r in scorer.score_paths(files, batch_size=batch, workers=workers) if r.error is None)

    one_pass()
    done, t0 = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - t0 < seconds:
        done += one_pass()
    return done / (time.perf_counter() - t0), done


def _serve(conn, path: str, backend: str, threads: int | None, refs: list[str], root: str | None,
           batch_sizes: list[int], sample_names: list[str]) -> None:
    from fiqa_edge.assets import SAMPLES_DIR
    from fiqa_edge.degrade import open_image_ref
    from fiqa_edge.preprocess import preprocess
    from fiqa_edge.scorer import QualityScorer

    from .timing import time_calls

    try:
        scorer = QualityScorer.load(path, backend=backend, threads=threads)
        scores: list[np.ndarray] = []
        kept: list[np.ndarray] = []
        chunk = max(batch_sizes)  # the largest batch asked for, so the peak memory is that batch's
        for i in range(0, len(refs), chunk):
            x = np.stack([preprocess(open_image_ref(r, root), scorer.spec) for r in refs[i : i + chunk]])
            scores.append(scorer.backend.predict(x))
            kept.extend(x[: max(batch_sizes) - len(kept)])
        base = np.stack(kept)
        inputs = {b: np.ascontiguousarray(np.resize(base, (b, *base.shape[1:]))) for b in batch_sizes}
        manifest = getattr(scorer.backend, "manifest", None)
        info: dict[str, Any] = {
            "scores": np.concatenate(scores),
            "precision": manifest.precision if manifest else "fp32",
            "figures": manifest.figures if manifest else {},
            "source_sha256": manifest.source_sha256 if manifest else None,
            "sample_scores": scorer.score_batch([SAMPLES_DIR / n for n in sample_names]) if sample_names else None,
            "cost": _cost(scorer, manifest),
            "pinned": getattr(getattr(scorer.backend, "pinning", None), "caller_cpu", None) is not None,
        }
    except Exception as exc:  # reported to the parent as this artifact's failure
        conn.send(("error", " ".join(f"{type(exc).__name__}: {exc}".split())[:300]))
        return
    conn.send(("ready", info))
    while True:
        command, *args = conn.recv()
        if command == "time":
            batch, n = args
            x = inputs[batch]
            conn.send(time_calls(partial(scorer.backend.predict, x), n))
        elif command == "e2e":
            conn.send(_end_to_end(scorer, *args))
        elif command == "stop":
            conn.send(_peak_rss_mb())
            return


def _cost(scorer, manifest) -> dict[str, Any] | None:
    """Params and GFLOPs: the bundle's stored figures, else counted with torch when it is installed."""
    if manifest is not None and "cost" in manifest.figures:
        return manifest.figures["cost"]
    from fiqa_edge._deps import is_available

    if not (is_available("torch") and is_available("fvcore")):
        return None
    from fiqa_edge.zoo import create_model
    from fiqa_edge.zoo.cost import model_cost

    model = getattr(scorer.backend, "model", None)
    model = getattr(model, "_orig_mod", model) or create_model(scorer.backend.arch)
    return model_cost(model, scorer.spec.input_size).to_dict()


class ArtifactWorker:
    """The parent's handle on one artifact's process."""

    def __init__(self, path: Path, backend: str, threads: int | None, refs: list[str], root: Path | None,
                 batch_sizes: Sequence[int], sample_names: Sequence[str] = ()) -> None:
        ctx = mp.get_context("spawn")  # a fresh interpreter: only this artifact's runtime is loaded
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, daemon=True, args=(
            child, str(path), backend, threads, list(refs), str(root) if root else None, list(batch_sizes),
            list(sample_names)))
        self.process.start()
        child.close()

    def ready(self) -> dict[str, Any]:
        """Wait until loaded and scored; the scores and facts, or raise with the child's error."""
        try:
            status, payload = self.conn.recv()
        except EOFError:
            msg = f"the benchmark process died (exit code {self.process.exitcode})"
            raise RuntimeError(msg) from None
        if status == "error":
            raise RuntimeError(payload)
        return payload

    def time(self, batch: int, n: int) -> list[float]:
        self.conn.send(("time", batch, n))
        return self.conn.recv()

    def end_to_end(self, files: Sequence[Path], batch: int, workers: int, seconds: float = 3.0) -> tuple[float, int]:
        self.conn.send(("e2e", list(files), batch, workers, seconds))
        return self.conn.recv()

    def stop(self) -> float | None:
        """End the process; its peak resident memory in MB."""
        try:
            self.conn.send(("stop",))
            peak = self.conn.recv()
        except (EOFError, BrokenPipeError, OSError):
            peak = None
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()
        return peak
