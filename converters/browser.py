"""A headless Chromium that loads web bundles: validation after ``convert --to web``, bench rows, page tests.

The browser is the system's own (Debian's ``chromium``, or the one
``FIQA_EDGE_CHROMIUM`` names), driven by Playwright from Node
(``web/drive.mjs``; ``playwright-core`` and ``onnxruntime-web`` come from
``web/package-lock.json`` through ``npm ci``). Pages are served from a local
folder by a static HTTP server that sends the cross-origin isolation headers,
so onnxruntime-web may use WebAssembly threads.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from fiqa_edge.errors import FiqaError

__all__ = ["WEB_DIR", "BrowserSession", "StaticServer", "browser_unavailable", "find_chromium", "npm_package_dir"]

#: the npm project: package.json, its lockfile, the page's sources (src/) and the driver
WEB_DIR = Path(__file__).parent / "web"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: headers that make a page cross-origin isolated (SharedArrayBuffer, hence WebAssembly threads)
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def npm_package_dir(name: str) -> Path | None:
    """The installed npm package ``name`` of :data:`WEB_DIR`, or None before ``npm ci``."""
    path = WEB_DIR / "node_modules" / name
    return path if (path / "package.json").is_file() else None


def npm_missing() -> str | None:
    """Why the npm packages are not there, or None."""
    missing = [n for n in ("onnxruntime-web", "@litertjs/core", "playwright-core") if npm_package_dir(n) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (npm ci --ignore-scripts --prefix {WEB_DIR})"
    return None


def find_chromium() -> str | None:
    """The browser to drive: ``FIQA_EDGE_CHROMIUM``, else the first Chromium or Chrome on the PATH."""
    named = os.environ.get("FIQA_EDGE_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    return next((p for p in map(shutil.which, BROWSER_NAMES) if p), None)


def browser_unavailable() -> str | None:
    """Why web bundles cannot be run in a browser here, or None."""
    if shutil.which("node") is None:
        return "Node.js is not installed (apt-get install nodejs npm)"
    if reason := npm_missing():
        return reason
    if find_chromium() is None:
        return "no Chromium found (apt-get install chromium, or set FIQA_EDGE_CHROMIUM)"
    return None


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                      ".json": "application/json"}

    def end_headers(self) -> None:
        for key, value in ISOLATION_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticServer:
    """Serves ``folder`` over HTTP on ``host:port`` (0: a free port) in a background thread, with the
    cross-origin isolation headers, until :meth:`close`."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = functools.partial(_Handler, directory=str(folder))
        self._server = http.server.ThreadingHTTPServer((host, port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://{host}:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class BrowserSession:
    """Chromium driven through :meth:`call`, on pages of ``serve``: a folder (served here on 127.0.0.1 with the
    cross-origin isolation headers; it gets a ``blank.html`` to load bundles from) or the URL of a server.
    Paths in requests are URL paths under it. With ``camera`` (a .y4m clip), the browser's camera plays it in a loop.

    Raises:
        FiqaError: the browser is not available.
    """

    def __init__(self, serve: Path | str, camera: Path | None = None) -> None:
        if reason := browser_unavailable():
            msg = f"cannot run a browser: {reason}"
            raise FiqaError(msg)
        self._server: StaticServer | None = None
        if isinstance(serve, Path):
            (serve / "blank.html").write_text("<!doctype html><title>fiqa-edge</title>\n")
            self._server = StaticServer(serve)
        self.url = (self._server.url if self._server else str(serve)).rstrip("/")
        self._stderr = tempfile.TemporaryFile("w+")
        fake_camera = [str(camera.resolve())] if camera is not None else []
        self._node = subprocess.Popen(["node", str(WEB_DIR / "drive.mjs"), str(find_chromium()), self.url, *fake_camera],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
                                      cwd=WEB_DIR)

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one request to the driver (see ``web/drive.mjs``); its result.

        Raises:
            FiqaError: the request failed in the page, or the driver died.
        """
        assert self._node.stdin is not None and self._node.stdout is not None
        try:
            self._node.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self._node.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._node.stdout.readline()
        if not line:
            self._node.wait(timeout=30)
            self._stderr.seek(0)
            err = [e for e in self._stderr.read().splitlines() if e.strip()]
            msg = f"the browser driver stopped: {err[-1].strip() if err else 'no message'}"
            raise FiqaError(msg)
        answer = json.loads(line)
        if "error" in answer:
            page = "; ".join(answer.get("page") or [])
            raise FiqaError(f"in the browser: {answer['error']}" + (f" (page: {page})" if page else ""))
        return answer["result"]

    def scores(self, urls: list[str], names: list[str]) -> np.ndarray:
        """The loaded scorer's scores of the images at ``urls`` (float64).

        Raises:
            FiqaError: an image failed in the page (the first one is named by ``names``, and how many failed).
        """
        results = self.call("score", urls=urls)
        failed = [(name, r["error"]) for name, r in zip(names, results) if "error" in r]
        if failed:
            msg = f"the page could not score {failed[0][0]}: {failed[0][1]}" + (
                f" (and {len(failed) - 1} more)" if len(failed) > 1 else "")
            raise FiqaError(msg)
        return np.array([r["score"] for r in results], dtype=np.float64)

    def close(self) -> None:
        """Close the browser and stop serving."""
        if self._node.poll() is None:
            try:
                self._node.communicate(input="", timeout=30)
            except subprocess.TimeoutExpired:
                self._node.kill()
                self._node.communicate()
        self._stderr.close()
        if self._server is not None:
            self._server.close()

    def __enter__(self) -> BrowserSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
