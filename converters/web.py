"""The browser: a static web bundle that finds, aligns and scores faces (LiteRT.js, WebAssembly).

The bundle is the quality model with ``fiqa.json`` and what a page needs to
find faces and score them, offline and from any static host:

- ``model.tflite``: the LiteRT target's model (its NHWC signatures, large
  depthwise convolutions in bands, int8 full integer), run by LiteRT.js
  (``--web-runtime litert``, the default); or ``model.onnx``, the ONNX
  target's graph run by onnxruntime-web (``--web-runtime onnxruntime``);
- ``fiqa.js``: the module an app imports (``FaceQualityScorer``: ``scoreFaces``,
  ``capture`` from a camera); the work runs in ``fiqa-worker.js``, a Web
  Worker, so the page never freezes;
- ``detect/``: the BlazeFace models of :mod:`fiqa_edge.detect`, unchanged, and
  ``settings.json`` (:func:`fiqa_edge.detect.detector_settings` and the
  model's framing), which ``detect.js`` and ``align.js`` follow as Python does;
- ``litert/``: LiteRT.js, which runs the ``.tflite`` models as
  ``ai-edge-litert`` does in Python (XNNPACK in WebAssembly), copied from the
  npm package pinned in ``web/package-lock.json``: its threaded build (relaxed
  SIMD, cross-origin isolated pages) and its compatible one. Converting the
  detectors to ONNX instead was tried: ``tflite2onnx`` converts the short
  range model but has no DENSIFY or DEPTH_TO_SPACE for the full range one;
- ``preprocess.js``: the manifest's preprocessing, Pillow's (its antialiased
  bilinear resize in fixed point included; docs/preprocessing.md says where
  it differs), after the browser's own image decoding, in the model's layout;
- ``ort/`` (``--web-runtime onnxruntime`` only): onnxruntime-web's ES module,
  its Emscripten loader and its WebAssembly binary, copied from the npm
  package pinned in ``web/package-lock.json`` (the WebGPU build too with
  ``--web-webgpu``);
- ``index.html`` + ``demo.js``: a page to drop photos and see each face's
  quality, to capture the best face from a camera, and to check the bundle
  against ``reference/``, the bundled sample faces whose fp32 scores the
  manifest stores.

LiteRT.js is the default because it ran the model faster in Chromium here
(2 threads, batch 1, p50 ms; docs/bench/web352-litertjs-run*.*,
web224-litertjs.*), and it was already in the bundle for the detectors:

=========================  ==============  ===========
model                      352 px (v1)     224 px (v3)
=========================  ==============  ===========
LiteRT.js int8 (static)    27.94, 22.51    17.12
LiteRT.js fp32             33.50, 26.08    20.03
onnxruntime-web int8       48.61, 36.28    22.49
native onnxruntime int8    15.74, 11.58    7.89
=========================  ==============  ===========

onnxruntime-web's WebAssembly kernels have no fast int8 convolution, and its
profile at 352 px put 37 % of the int8 model's time in float GELU and
depthwise convolutions; XNNPACK's WebAssembly build runs the full-integer
convolutions and fully connected layers, and the banded depthwise ones, with
its own SIMD kernels.

int8 (``--web-int8``; ``auto``, the default, takes the faster mode of each
runtime):

- LiteRT.js: ``static`` (full integer, calibrated; the LiteRT target's
  default). ``dynamic`` ran 98 ms against 29 for static at 352 px: LiteRT.js
  has no fast path for activations quantized at run time.
- onnxruntime-web: ``dynamic``: int8 weights for the MatMul and Gemm layers
  (the pointwise convolutions and the head), activations quantized at run
  time (``onnxruntime.quantization.quantize_dynamic``), no calibration.
  ``static`` (the ONNX target's calibrated QDQ graph) ran 5.9 against 4.2 ms
  for dynamic (demo model, 128 px; SRCC 0.9979 against 0.9994).

Validation runs the bundle in a headless Chromium (:mod:`.browser`): the page
decodes and scores the validation image files and the scores are held to the
precision's bound against fp32 torch, as for every target. fp16 halves the
model download and validates; WebAssembly has no float16 arithmetic, so
LiteRT dequantizes its float16 weights at load and onnxruntime-web's float16
graph ran 18.7 ms against about 5 ms for fp32 (demo model, 128 px). The
WebGPU build (``--web-runtime onnxruntime --web-webgpu``) cannot be
validated without a GPU.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fiqa_edge._deps import is_available
from fiqa_edge.assets import SAMPLES_DIR
from fiqa_edge.backends import WEB_BACKENDS
from fiqa_edge.detect import detector_settings
from fiqa_edge.detect.blazeface import MODELS_DIR, box_iou
from fiqa_edge.errors import FiqaError
from fiqa_edge.faces import FaceScorer
from fiqa_edge.framing import LFW_FRAMING, Framing
from fiqa_edge.manifest import Manifest
from fiqa_edge.scorer import QualityScorer

from .base import BuildContext, Converter, cli_option
from .browser import WEB_DIR, BrowserSession, browser_unavailable, npm_missing, npm_package_dir
from .litert import LiteRtConverter, LiteRtOptions
from .onnx import OnnxConverter, OnnxOptions

__all__ = ["RUNTIMES", "WebConverter", "WebOptions", "browser_root"]

#: ``--web-runtime`` -> the target whose model the page runs (LiteRT.js: LiteRT's, onnxruntime-web: ONNX's)
RUNTIMES: dict[str, type[Converter]] = {"litert": LiteRtConverter, "onnxruntime": OnnxConverter}
#: each runtime's int8 when none is asked for: the fastest in the browser here
DEFAULT_INT8 = {"litert": "static", "onnxruntime": "dynamic"}

#: onnxruntime-web files a bundle needs: always, and for the WebGPU backend
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ORT_WEBGPU_FILES = ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
#: LiteRT.js files a bundle needs (``litert/``), from the npm packages @litertjs/core and its @litertjs/wasm-utils
LITERT_FILES = ("core.js", "wasm-utils.js", "litert_wasm_threaded_internal.js", "litert_wasm_threaded_internal.wasm",
                "litert_wasm_compat_internal.js", "litert_wasm_compat_internal.wasm")
#: the import of @litertjs/core's ES module that the bundle points at its copy of @litertjs/wasm-utils
LITERT_IMPORT = ('from "@litertjs/wasm-utils"', 'from "./wasm-utils.js"')
REFERENCE_DIR = "reference"
#: the least overlap of a face the page finds with the one Python finds (validation)
MIN_IOU = 0.95


@dataclass(frozen=True)
class WebOptions:
    """Web bundle settings."""

    runtime: str = cli_option("litert", "runtime",
                              "Web: what runs the quality model in the page: litert (LiteRT.js, the LiteRT target's "
                              ".tflite; fastest here) or onnxruntime (onnxruntime-web, the ONNX target's graph; "
                              "needed for --web-webgpu).", choices=tuple(RUNTIMES))
    webgpu: bool = cli_option(False, "webgpu",
                              "Web: also ship onnxruntime-web's WebGPU build (+27 MB) so pages can ask for "
                              "backend 'webgpu' (with --web-runtime onnxruntime; not validated here: headless "
                              "Chromium has no GPU).")
    int8_mode: str = cli_option("auto", "int8",
                                "Web int8: static (activations calibrated on the calibration faces) or dynamic "
                                "(activations quantized at run time); auto: static for litert, dynamic for "
                                "onnxruntime, the faster of the two in each.", choices=("auto", "dynamic", "static"))
    threads: int = 0  # WebAssembly threads for validation (0: the page's default)

    @property
    def int8(self) -> str:
        """The int8 mode these settings build."""
        return DEFAULT_INT8[self.runtime] if self.int8_mode == "auto" else self.int8_mode


def browser_root(bundle: Path, images: list[Path], root: Path) -> list[str]:
    """Lay out ``root`` for a :class:`BrowserSession`: ``bundle/`` and ``faces/<i>`` linked in; the faces' URL paths."""
    (root / "bundle").symlink_to(bundle.resolve(), target_is_directory=True)
    (root / "faces").mkdir()
    urls = []
    for i, path in enumerate(images):
        name = f"{i}{path.suffix.lower()}"
        (root / "faces" / name).symlink_to(path.resolve())
        urls.append(f"/faces/{name}")
    return urls


def _copy_litert(bundle: Path) -> str:
    """``litert/``: LiteRT.js, from the pinned npm packages; its version."""
    core, utils = npm_package_dir("@litertjs/core"), npm_package_dir("@litertjs/wasm-utils")
    assert core is not None and utils is not None  # unavailable() said so otherwise
    (bundle / "litert").mkdir()
    for name in LITERT_FILES[2:]:
        shutil.copyfile(core / "wasm" / name, bundle / "litert" / name)
    shutil.copyfile(utils / "dist" / "index.js", bundle / "litert" / "wasm-utils.js")
    source = (core / "dist" / "index.js").read_text()
    if source.count(LITERT_IMPORT[0]) != 1:
        msg = f"{core}: expected one import of @litertjs/wasm-utils in dist/index.js; this LiteRT.js is not the pinned one"
        raise RuntimeError(msg)
    (bundle / "litert" / "core.js").write_text(source.replace(*LITERT_IMPORT))
    return json.loads((core / "package.json").read_text())["version"]


def _copy_onnxruntime(bundle: Path, webgpu: bool) -> str:
    """``ort/``: onnxruntime-web (its WebGPU build too with ``webgpu``), from the pinned npm package; its version."""
    ort_dir = npm_package_dir("onnxruntime-web")
    assert ort_dir is not None  # unavailable() said so otherwise
    (bundle / "ort").mkdir()
    for name in ORT_FILES + (ORT_WEBGPU_FILES if webgpu else ()):
        shutil.copyfile(ort_dir / "dist" / name, bundle / "ort" / name)
    return json.loads((ort_dir / "package.json").read_text())["version"]


def _copy_detection(bundle: Path, framing: Framing) -> None:
    """``detect/``: the BlazeFace models and how Python uses them, with ``framing``."""
    settings = {**detector_settings(), "framing": framing.to_dict()}
    (bundle / "detect").mkdir()
    for model in settings["models"].values():
        shutil.copyfile(MODELS_DIR / model["file"], bundle / "detect" / model["file"])
    (bundle / "detect" / "settings.json").write_text(json.dumps(settings, indent=1) + "\n")


def _faces_vs_python(bundle: Path, paths: list[Path], page: list[dict]) -> dict[str, Any]:
    """The page's faces of ``paths`` held against :class:`fiqa_edge.faces.FaceScorer` on the bundle's own graph, run
    natively: the same faces, boxes IoU >= :data:`MIN_IOU`; a record of the comparison (how far the scores are too).

    Raises:
        FiqaError: the page found other faces.
    """
    if not is_available("ai_edge_litert"):
        return {"compared": False, "why": "ai-edge-litert is not installed (pip install 'fiqa-edge[detect]')"}
    python = FaceScorer(QualityScorer.load(bundle))
    ious: list[float] = []
    pairs: list[tuple[float, float]] = []
    for path, found in zip(paths, page):
        want = python.score(path)
        got = found.get("faces", [])
        if "error" in found or len(got) != len(want):
            problem = found.get("error") or f"{len(got)} faces in the page, {len(want)} in Python"
            msg = f"the page's faces of {path} differ: {problem}"
            raise FiqaError(msg)
        for w, g in zip(want, got):
            assert w.box is not None and w.score is not None  # score() gives found faces only
            ious.append(box_iou(w.box, g["box"]))
            pairs.append((w.score, g["score"]))
    record: dict[str, Any] = {"compared": True, "images": len(paths), "faces": len(pairs)}
    if pairs:
        python_scores, page_scores = (np.array(v, dtype=np.float64) for v in zip(*pairs))
        record.update(min_iou=round(min(ious), 6), max_abs=float(np.abs(python_scores - page_scores).max()))
        if record["min_iou"] < MIN_IOU:
            msg = f"the page's face boxes differ from Python's: IoU {record['min_iou']:.4f} < {MIN_IOU}"
            raise FiqaError(msg)
    return record


def _in_browser(target: type[Converter]) -> tuple[str, str]:
    """The model file of ``target`` and the backend a web bundle of it names (:data:`WEB_BACKENDS`)."""
    return target.model_file, next(web for web, native in WEB_BACKENDS.items() if native == target.backend)


class WebConverter(Converter[WebOptions]):
    """``--to web``: a static bundle that finds, aligns and scores faces in the browser."""

    key, package = "web", "litert_torch"
    model_file, backend = _in_browser(LiteRtConverter)
    options_type = WebOptions
    embeds_manifest = True

    def unavailable(self) -> str | None:
        return super().unavailable() or npm_missing()

    def cannot_validate(self) -> str | None:
        return browser_unavailable()

    def artifact(self, options: WebOptions) -> tuple[str, str]:
        return _in_browser(RUNTIMES[options.runtime])

    def build(self, ctx: BuildContext, precision: str, dst: Path, options: WebOptions) -> dict[str, Any]:
        """The quality model (the LiteRT or the ONNX target's build, with this target's int8 mode), the page's
        sources, the runtimes' files and the reference faces."""
        if options.webgpu and options.runtime != "onnxruntime":
            msg = "--web-webgpu ships onnxruntime-web's WebGPU build: convert with --web-runtime onnxruntime"
            raise FiqaError(msg)
        if options.runtime == "litert":
            figures = LiteRtConverter().build(ctx, precision, dst, LiteRtOptions(int8_mode=options.int8))
        else:
            figures = OnnxConverter().build(ctx, precision, dst, OnnxOptions(int8_mode=options.int8)) or {}
        bundle = dst.parent
        for src in sorted((WEB_DIR / "src").iterdir()):
            shutil.copyfile(src, bundle / src.name)
        litertjs = _copy_litert(bundle)
        _copy_detection(bundle, ctx.loaded.framing or LFW_FRAMING)
        web: dict[str, Any] = {"runtime": options.runtime, "litertjs": litertjs}
        if options.runtime == "onnxruntime":
            web.update(onnxruntime_web=_copy_onnxruntime(bundle, options.webgpu), webgpu=options.webgpu)
        for face in sorted(SAMPLES_DIR.glob("*/*.jpg")):
            target = bundle / REFERENCE_DIR / face.relative_to(SAMPLES_DIR)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(face, target)
        runtime = sum(f.stat().st_size for d in ("ort", "litert") if (bundle / d).is_dir() for f in (bundle / d).iterdir())
        figures["web"] = {**web, "runtime_mb": round(runtime / 2**20, 2)}
        return figures

    def scores(self, ctx: BuildContext, bundle: Path, options: WebOptions) -> tuple[np.ndarray, dict[str, Any]]:
        """The page's scores of the validation image files in headless Chromium, and how it ran them."""
        paths = list(ctx.validation.paths)
        with tempfile.TemporaryDirectory(prefix="fiqa-web-") as tmp:
            urls = browser_root(bundle, paths, Path(tmp))
            with BrowserSession(Path(tmp)) as browser:
                info = browser.call("load", bundle="/bundle/", threads=options.threads)
                scores = browser.scores(urls, [str(p) for p in paths])
                faces = browser.call("faces", urls=urls)
        ran = {"browser": "headless Chromium", "runtime": info["runtime"], "backend": info["backend"],
               "threads": info["threads"], "preprocessing": "in the page (fiqa-worker.js)",
               "faces_vs_python": _faces_vs_python(bundle, paths, faces)}
        return scores, ran

    def inspect(self, model_file: Path, manifest: Manifest) -> dict[str, Any]:
        """Without a browser: the model file loads (LiteRT's interpreter or the ONNX checker) and every file the page
        loads is there."""
        bundle = model_file.parent
        needed = ([src.name for src in (WEB_DIR / "src").iterdir()] + [f"litert/{n}" for n in LITERT_FILES]
                  + ["detect/settings.json"] + [f"detect/{m['file']}" for m in detector_settings()["models"].values()])
        if model_file.suffix == ".onnx":
            import onnx

            onnx.checker.check_model(str(model_file), full_check=True)
            checks: dict[str, Any] = {"onnx_checker": "passed"}
            needed += [f"ort/{n}" for n in ORT_FILES]
        else:
            from ai_edge_litert.interpreter import Interpreter

            signatures = sorted(Interpreter(model_path=str(model_file)).get_signature_list())
            checks = {"litert_signatures": signatures}
        missing = [n for n in needed if not (bundle / n).is_file()]
        if missing:
            msg = f"{bundle}: the web bundle lacks {', '.join(missing)}"
            raise RuntimeError(msg)
        return {**checks, "files": "complete"}

    def embed_manifest(self, model_file: Path, manifest: Manifest) -> None:
        RUNTIMES[WEB_BACKENDS[manifest.backend]]().embed_manifest(model_file, manifest)
