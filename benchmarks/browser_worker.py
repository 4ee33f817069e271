"""A web bundle in headless Chromium, driven by the bench like an :class:`~.worker.ArtifactWorker`.

The page scores the benchmark images itself (the browser decodes them; a
degraded copy is written as a lossless PNG first), so its scores include the
JavaScript preprocessing. Latencies are measured inside the page
(``performance.now()`` around the model's run, on LiteRT.js or onnxruntime-web).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_edge.converters.browser import BrowserSession
from fiqa_edge.converters.web import browser_root
from fiqa_edge.degrade import open_image_ref, parse_ref
from fiqa_edge.manifest import Manifest

__all__ = ["BrowserWorker"]


class BrowserWorker:
    """One web bundle in its own browser page: the same commands as an ``ArtifactWorker``."""

    def __init__(self, path: Path, threads: int | None, refs: list[str], root: Path | None,
                 sample_names: Sequence[str] = ()) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fiqa-bench-web-")
        serve = Path(self._tmp.name)
        files = []
        for i, ref in enumerate(refs):
            plain, kind, _ = parse_ref(ref)
            if kind is None:
                files.append(root / plain if root else Path(plain))
            else:
                files.append(serve / f"degraded-{i}.png")
                open_image_ref(ref, root).save(files[-1])
        self._urls = browser_root(path, files, serve)
        self._plain = [u for u, ref in zip(self._urls, refs) if parse_ref(ref)[1] is None]
        self._first = str(files[0].resolve())
        self._path, self._threads, self._samples, self._refs = path, threads or 0, list(sample_names), list(refs)
        self._browser: BrowserSession | None = None

    def ready(self) -> dict[str, Any]:
        """Open the demo page once (its time to first score), then load and score everything; raise on failure."""
        try:
            self._browser = BrowserSession(Path(self._tmp.name))
            first = self._browser.call("demo", path="/bundle/index.html", files=[self._first])
            info = self._browser.call("load", bundle="/bundle/", threads=self._threads)
            scores = self._browser.scores(self._urls, self._refs)
            samples = self._browser.call("score", urls=[f"/bundle/reference/{n}" for n in self._samples])
        except Exception as exc:
            raise RuntimeError(" ".join(f"{type(exc).__name__}: {exc}".split())[:300]) from exc
        manifest = Manifest.load(self._path)
        return {
            "scores": scores,
            "precision": manifest.precision,
            "figures": manifest.figures,
            "source_sha256": manifest.source_sha256,
            "sample_scores": np.array([r.get("score", np.nan) for r in samples], dtype=np.float64) if samples else None,
            "cost": manifest.figures.get("cost"),
            "runtime": {"browser": "headless Chromium", "backend": info["backend"], "threads": info["threads"],
                        # bundles made before LiteRT.js could run the model name onnxruntime-web's version only
                        "runtime": f"{info.get('runtime', 'onnxruntime-web')} {info.get('runtimeVersion', info.get('ortVersion'))}",
                        "load_ms": info["loadMs"],
                        "first_score_ms": first["firstScoreMs"]},
        }

    def time(self, batch: int, n: int) -> list[float]:
        assert self._browser is not None
        return self._browser.call("time", batch=batch, n=n)

    def end_to_end(self, files: Sequence[Path], batch: int, workers: int, seconds: float = 3.0) -> tuple[float, int]:
        """Images/s of the page scoring the plain image files one by one from memory (decode, preprocessing, model)."""
        assert self._browser is not None
        ips, done = self._browser.call("e2e", urls=self._plain, seconds=seconds)
        return ips, done

    def stop(self) -> float | None:
        """Close the browser; no peak memory figure (the page's memory is the browser's)."""
        if self._browser is not None:
            self._browser.close()
        self._tmp.cleanup()
        return None
