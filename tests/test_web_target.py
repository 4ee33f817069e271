"""The web target: LiteRT.js and onnxruntime-web bundles validated in headless Chromium, their page, bad input there,
bench rows.

Tests that need the browser skip with the reason where Chromium, Node or the npm packages are missing;
``.ci/run`` installs them, so CI runs them all.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fiqa_edge.assets import SAMPLES_DIR, default_model_path
from fiqa_edge.cli import main
from fiqa_edge.converters.browser import WEB_DIR, BrowserSession, browser_unavailable, npm_missing
from fiqa_edge.converters.convert import convert
from fiqa_edge.converters.validate import BOUNDS
from fiqa_edge.converters.web import ORT_FILES, WebConverter, WebOptions, browser_root
from fiqa_edge.errors import FiqaError
from fiqa_edge.imaging import DEFAULT_MAX_PIXELS, load_image
from fiqa_edge.manifest import Manifest
from fiqa_edge.preprocess import PreprocessSpec, preprocess
from fiqa_edge.scorer import QualityScorer
from fiqa_edge.zoo import load_model

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
needs_npm = pytest.mark.skipif(npm_missing() is not None, reason=f"web: {npm_missing()}")
needs_browser = pytest.mark.skipif(browser_unavailable() is not None, reason=f"web: {browser_unavailable()}")


def _in_node(tmp_path: Path, call: str, cases: list[dict], extra: dict | None = None) -> list[bytes]:
    """``call`` (a JS expression of ``c``, the case, its ``px`` pixels and ``req``) for each case, run by Node on
    preprocess.js; the raw bytes of each result."""
    (tmp_path / "cases.json").write_text(json.dumps({"cases": cases, **(extra or {})}))
    script = tmp_path / "run.mjs"
    script.write_text(
        f"import {{ preprocess, resizeBilinear }} from {json.dumps((WEB_DIR / 'src' / 'preprocess.js').as_uri())};\n"
        "import fs from 'node:fs';\n"
        "const req = JSON.parse(fs.readFileSync(process.argv[2]));\n"
        "console.log(JSON.stringify(req.cases.map((c) => { const px = Uint8Array.from(Buffer.from(c.pixels, 'base64'));\n"
        f"  const r = {call}; return Buffer.from(r.buffer, r.byteOffset, r.byteLength).toString('base64'); }})));\n")
    out = subprocess.run(["node", str(script), str(tmp_path / "cases.json")], capture_output=True, text=True, check=True)
    return [base64.b64decode(e) for e in json.loads(out.stdout)]


def _case(rgb: np.ndarray, channels: int, **more) -> dict:
    pixels = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], 2) if channels == 4 else rgb
    return {"w": rgb.shape[1], "h": rgb.shape[0], "ch": channels, "pixels": base64.b64encode(pixels.tobytes()).decode(),
            **more}


@needs_node
def test_javascript_preprocessing_is_pillows_bit_for_bit(tmp_path):
    """preprocess.js against fiqa_edge.preprocess on random pixels: down- and upscaling, odd sizes, RGBA input."""
    spec = PreprocessSpec(input_size=128, resize=176)
    rng = np.random.default_rng(0)
    sizes = [(250, 250), (6, 4), (176, 176), (177, 300), (640, 480), (1000, 177), (129, 500), (2000, 1333)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for w, h in sizes]
    # the browser hands over RGBA; 3 channels cover plain RGB callers
    cases = [_case(rgb, 4 if i % 2 else 3) for i, rgb in enumerate(images)]
    got = _in_node(tmp_path, "preprocess(px, c.w, c.h, c.ch, req.spec)", cases, {"spec": spec.to_dict()})
    hwc = _in_node(tmp_path, "preprocess(px, c.w, c.h, c.ch, req.spec, 'HWC')", cases, {"spec": spec.to_dict()})
    for rgb, raw, raw_hwc in zip(images, got, hwc):
        want = preprocess(Image.fromarray(rgb), spec)
        np.testing.assert_array_equal(np.frombuffer(raw, np.float32).reshape(3, 128, 128), want, err_msg=f"{rgb.shape}")
        np.testing.assert_array_equal(np.frombuffer(raw_hwc, np.float32).reshape(128, 128, 3), want.transpose(1, 2, 0))


@needs_node
def test_javascript_resize_is_pillows_along_either_axis_alone(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    sizes = [(50, 23), (31, 40), (50, 97), (80, 70), (13, 9)]  # vertical only, horizontal only, up, both ways
    cases = [_case(rgb, 4 if i % 2 else 3, dw=w, dh=h) for i, (w, h) in enumerate(sizes)]
    got = _in_node(tmp_path, "resizeBilinear(px, c.w, c.h, c.ch, c.dw, c.dh)", cases)
    for (w, h), raw in zip(sizes, got):
        want = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(np.frombuffer(raw, np.uint8).reshape(h, w, 3), want, err_msg=f"{(w, h)}")


@needs_node
def test_javascript_quality_and_thresholds_are_pythons(tmp_path):
    """scale.js against fiqa_edge.score_scale and fiqa_edge.curation: the bundled model's scale, and one whose
    percentiles repeat; every score from below the minimum to above the maximum; the CLI's threshold forms."""
    from fiqa_edge.curation import Threshold
    from fiqa_edge.score_scale import ScoreScale

    bundled = QualityScorer.load(default_model_path("onnxruntime")).scale
    flat = ScoreScale("flat", 200, tuple(sorted([0.2] * 30 + list(np.linspace(0.2, 0.8, 69)))), 0.1, 0.9)
    scores = [float(v) for v in np.linspace(-0.1, 1.1, 241)] + [flat.percentiles[10], bundled.percentiles[40]]
    texts = ["0.62", "30p", "55q", "0", "100q", "1.2", "abc", "101p", ""]
    script = tmp_path / "scale.mjs"
    script.write_text(
        f"import {{ ScoreScale, parseMinQuality }} from {json.dumps((WEB_DIR / 'src' / 'scale.js').as_uri())};\n"
        "import fs from 'node:fs';\n"
        "const req = JSON.parse(fs.readFileSync(process.argv[2]));\n"
        "const out = req.scales.map((s) => { const sc = new ScoreScale(s);\n"
        "  return req.scores.map((x) => [sc.percentile(x), sc.quality(x)]); });\n"
        "const parsed = req.texts.map((t) => { try { return parseMinQuality(t, new ScoreScale(req.scales[0])); }\n"
        "  catch (e) { return { error: e.message }; } });\n"
        "console.log(JSON.stringify({ out, parsed }));\n")
    scales = [{"percentiles": list(s.percentiles), "minimum": s.minimum, "maximum": s.maximum} for s in (bundled, flat)]
    (tmp_path / "req.json").write_text(json.dumps({"scales": scales, "scores": scores, "texts": texts}))
    got = json.loads(subprocess.run(["node", str(script), str(tmp_path / "req.json")], capture_output=True, text=True,
                                    check=True).stdout)
    for scale, values in zip((bundled, flat), got["out"]):
        for x, (percentile, quality) in zip(scores, values):
            assert percentile == pytest.approx(scale.percentile(x), abs=1e-9), (scale.reference, x)
            assert quality == pytest.approx(scale.quality(x), abs=1e-9), (scale.reference, x)
    for text, parsed in zip(texts, got["parsed"]):
        try:
            want = Threshold.parse(text, bundled, (0.0, 1.0))
        except (FiqaError, IndexError) as exc:
            assert "error" in parsed, (text, exc)
            continue
        assert parsed == {"kind": want.kind, "value": want.value}, text


def test_the_page_refuses_images_over_the_python_pixel_limit():
    worker = (WEB_DIR / "src" / "fiqa-worker.js").read_text()
    assert int(re.search(r"const MAX_PIXELS = (\d+);", worker)[1]) == DEFAULT_MAX_PIXELS


@pytest.fixture(scope="module")
def web_bundles(default_bundles):
    """The main job's fp32 and int8 web bundles of the bundled model, validated in the browser on held-out faces."""
    if browser_unavailable():
        pytest.skip(f"web: {browser_unavailable()}")
    return {p: default_bundles[f"web-{p}"] for p in ("fp32", "int8")}


@pytest.mark.heavy
@needs_browser
def test_web_bundles_pass_their_bounds_in_the_browser(web_bundles):
    for precision, r in web_bundles.items():
        assert r.error is None, r.error
        figure = Manifest.load(r.bundle).figures["parity_vs_torch_fp32"]
        assert figure["browser"] == "headless Chromium" and figure["backend"] == "wasm", figure
        assert figure["images"] == 26 and figure["faces"]["also_in_calibration"] == 0
        assert figure["srcc"] >= BOUNDS[precision].srcc
        assert figure["runtime"] == "LiteRT.js" and figure["threads"] == min(4, os.cpu_count() or 1), figure
    assert web_bundles["fp32"].parity["max_abs"] <= 1e-4  # the page's decoding and resize match Pillow's
    assert web_bundles["int8"].parity["plcc"] >= 0.995
    assert web_bundles["int8"].parity["max_abs"] > 1e-4  # really the int8 graph
    fp32 = web_bundles["fp32"].bundle
    assert (fp32 / "model.tflite").is_file() and not (fp32 / "ort").exists()  # onnxruntime-web only when asked for
    for page_file in ("index.html", "demo.js", "fiqa.js", "fiqa-worker.js", "preprocess.js"):
        assert "http" not in (fp32 / page_file).read_text(), f"{page_file} reaches outside the bundle"


def _face_tensors_in_page(bundle: Path, images: list[Path], tmp_path: Path) -> list[np.ndarray]:
    urls = browser_root(bundle, images, tmp_path)
    with BrowserSession(tmp_path) as browser:
        browser.call("load", bundle="/bundle/")
        return [np.asarray(browser.call("tensor", url=u), dtype=np.float32) for u in urls]


@pytest.mark.heavy
@needs_browser
def test_page_decodes_and_preprocesses_as_python_does(web_bundles, odd_images, tmp_path):
    """The browser's own decoding, EXIF orientation included, then preprocess.js: Python's tensor exactly."""
    bundle = web_bundles["fp32"].bundle
    spec = Manifest.load(bundle).preprocessing
    same = [SAMPLES_DIR / "Adrien_Brody" / "Adrien_Brody_0001.jpg", odd_images["exif_rot"], odd_images["grey"],
            odd_images["wide"], odd_images["palette"], odd_images["cmyk"]]
    for path, got in zip(same, _face_tensors_in_page(bundle, same, tmp_path)):
        want = preprocess(load_image(path), spec).ravel()
        np.testing.assert_array_equal(got, want, err_msg=str(path))


def _http_server(folder: Path):
    """``python -m http.server`` in ``folder``, as docs/integration.md says to open a bundle; (process, URL)."""
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    port = re.search(r"port (\d+)", proc.stdout.readline())[1]
    return proc, f"http://127.0.0.1:{port}"


@pytest.mark.heavy
@needs_browser
def test_demo_page_scores_photos_and_names_bad_files(web_bundles, bad_files, tmp_path):
    bundle = web_bundles["fp32"].bundle
    stored = Manifest.load(bundle).figures["reference_scores"]["scores"]
    scale = QualityScorer.load(bundle).scale
    good = sorted(SAMPLES_DIR.glob("*/*.jpg"))[:5]
    huge = tmp_path / "huge.jpg"
    Image.new("RGB", (10000, 9000), (120, 90, 80)).save(huge, quality=30)
    bad = {bad_files["text"]: "not an image", bad_files["truncated"]: "not an image the browser can decode, or damaged",
           huge: "10000×9000 is 90,000,000 pixels, over the limit of 89,478,485"}
    server, url = _http_server(bundle)
    try:
        with BrowserSession(url) as browser:
            shown = browser.call("demo", path="/index.html?minQuality=55q&whole=1", files=[str(p) for p in [*good[:2], *bad, *good[2:]]],
                                 reference=True, screenshot=str(tmp_path / "demo.png"))
    finally:
        server.terminate()
        server.wait()
    assert shown["state"] == "ready" and shown["error"] is None and shown["pageErrors"] == []
    assert shown["external"] == []  # nothing fetched from anywhere but the bundle's own server
    assert not shown["isolated"] and "1 thread(s)" in shown["status"]  # a plain static server: no wasm threads
    rows = {row["file"]: row for row in shown["rows"]}
    for path in good:  # picked files score as the stored fp32 reference does
        name = path.relative_to(SAMPLES_DIR).as_posix()
        assert rows[path.name]["problem"] is None
        assert rows[path.name]["score"] == pytest.approx(stored[name], abs=1e-4)
        assert rows[name]["score"] == pytest.approx(stored[name], abs=1e-4)  # and again in the reference check
        quality = scale.quality(rows[path.name]["score"])  # the 0-100 value and verdict, as `score --min-quality 55q`
        assert rows[path.name]["quality"] == pytest.approx(quality, abs=1e-6)
        assert rows[path.name]["accepted"] is (quality >= 55)
    for path, problem in bad.items():
        assert rows[path.name]["score"] is None and problem in rows[path.name]["problem"], rows[path.name]
    assert float(shown["parity"]["maxAbs"]) <= 1e-4 and float(shown["parity"]["srcc"]) >= 0.9999
    assert "40 of 40 reference faces" in shown["parity"]["text"]
    with Image.open(tmp_path / "demo.png") as shot:  # the whole page: 48 rows under the header
        assert shot.width == 1000 and shot.height > 2500


@pytest.mark.heavy
@needs_browser
def test_web_bundle_model_scores_natively_too(web_bundles, faces):
    bundle = web_bundles["fp32"].bundle
    stored = Manifest.load(bundle).figures["reference_scores"]["scores"]
    result = CliRunner().invoke(main, ["score", str(faces[0]), "--model", str(bundle), "--json", "-", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backend"] == "litert"  # the page's model.tflite, on ai-edge-litert
    (row,) = report["results"]
    assert row["score"] == pytest.approx(stored[faces[0].relative_to(SAMPLES_DIR).as_posix()], abs=1e-4)


@needs_npm
def test_without_a_browser_the_bundle_is_built_and_says_it_was_not_validated(monkeypatch, tmp_path):
    monkeypatch.setenv("FIQA_EDGE_CHROMIUM", str(tmp_path / "no-such-browser"))
    loaded = load_model(default_model_path("checkpoint"))
    (result,) = convert(loaded, ["web"], out=tmp_path / "out", precisions=["fp32"])
    assert result.error is None and result.parity == {}
    assert "parity not measured (no Chromium found" in result.note
    manifest = Manifest.load(result.bundle)
    assert manifest.figures["checks"] == {"litert_signatures": ["batch_8", "serving_default"], "files": "complete"}
    assert "parity_vs_torch_fp32" not in manifest.figures


@pytest.mark.heavy
@needs_browser
def test_bench_has_a_browser_row_beside_the_native_ones(web_bundles):
    from fiqa_edge.assets import DEFAULT_BUNDLE
    from fiqa_edge.benchmarks.bench_report import table
    from fiqa_edge.benchmarks.harness import run_bench
    from fiqa_edge.image_lists import Item

    items = [Item(str(p)) for p in sorted(SAMPLES_DIR.glob("*/*.jpg"))[:6]] + [
        Item(f"{sorted(SAMPLES_DIR.glob('*/*.jpg'))[0]}#blur=2")]  # a degraded copy reaches the page as a PNG
    t0 = time.perf_counter()
    report = run_bench([web_bundles["int8"].bundle, DEFAULT_BUNDLE], items, batch_sizes=(1,), rounds=3, per_round=2,
                       warmup=1)
    web, native = report.results
    assert web.status == "ok" and web.backend == "litert-web", web.reason
    assert web.latency is not None and web.latency.calls == 6 and web.latency.p50_ms > 0
    assert web.parity["images"] == 7 and web.parity["srcc"] >= 0.99  # against fp32 torch on the same 7 images
    assert web.runtime["threads"] >= 1 and web.runtime["first_score_ms"] > web.runtime["load_ms"] > 0
    assert native.status == "ok" and native.backend == "onnxruntime"
    version = Manifest.load(web_bundles["int8"].bundle).figures["web"]["litertjs"]
    assert re.search(rf"litert-web int8: headless Chromium, wasm, \d thread\(s\), LiteRT\.js {re.escape(version)}, timed",
                     table(report))
    assert time.perf_counter() - t0 < 120


@pytest.mark.heavy
@needs_browser
def test_serve_command_makes_the_page_cross_origin_isolated(web_bundles):
    server = subprocess.Popen([sys.executable, "-m", "fiqa_edge", "serve", str(web_bundles["int8"].bundle), "--port", "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout is not None
        url = re.search(r"at (http://\S+)/ ", server.stdout.readline())[1]
        with BrowserSession(url) as browser:
            shown = browser.call("demo", path="/index.html", files=[str(sorted(SAMPLES_DIR.glob("*/*.jpg"))[0])])
    finally:
        server.terminate()
        server.wait()
    assert shown["isolated"] and shown["error"] is None and shown["rows"][0]["score"] is not None
    threads = int(re.search(r"(\d+) thread\(s\)", shown["status"])[1])
    assert threads >= min(2, os.cpu_count() or 1)  # the page's default: up to 4 where isolated


@pytest.mark.heavy
@needs_browser
def test_demo_page_names_a_broken_bundle(web_bundles, tmp_path):
    from fiqa_edge.converters.browser import StaticServer

    broken = tmp_path / "broken"
    shutil.copytree(web_bundles["fp32"].bundle, broken)
    (broken / "model.tflite").write_bytes(b"not a model")
    server = StaticServer(broken)
    try:
        with BrowserSession(server.url) as browser:
            shown = browser.call("demo", path="/index.html")
            (broken / "model.tflite").unlink()
            missing = browser.call("demo", path="/index.html")
    finally:
        server.close()
    assert shown["state"] == "failed" and "model.tflite: not a model LiteRT.js can load" in shown["error"], shown["error"]
    assert missing["state"] == "failed" and missing["error"].endswith("/model.tflite: HTTP 404")


@pytest.mark.heavy
@needs_browser
def test_a_face_the_page_cannot_score_is_named(web_bundles, bad_files, faces, tmp_path):

    images = [faces[0], bad_files["text"], bad_files["truncated"]]
    urls = browser_root(web_bundles["fp32"].bundle, images, tmp_path)
    with BrowserSession(tmp_path) as browser:
        browser.call("load", bundle="/bundle/")
        assert browser.scores(urls[:1], ["good"])[0] > 0
        with pytest.raises(FiqaError, match=r"could not score notes.jpg: not an image .* \(and 1 more\)"):
            browser.scores(urls, [p.name for p in images])


def test_webgpu_needs_the_onnxruntime_runtime(tmp_path):
    with pytest.raises(FiqaError, match="--web-webgpu ships onnxruntime-web's WebGPU build: convert with --web-runtime onnxruntime"):
        WebConverter().build(None, "fp32", tmp_path / "model.tflite", WebOptions(webgpu=True))  # type: ignore[arg-type]


@pytest.mark.heavy
@needs_browser
def test_onnxruntime_web_bundles_pass_their_bounds_in_the_browser(tmp_path):
    """--web-runtime onnxruntime: the ONNX target's graph on onnxruntime-web, int8 dynamic by default."""
    results = convert(load_model(default_model_path("checkpoint")), ["web"], out=tmp_path, precisions=["fp32", "int8"],
                      options={"web": WebOptions(runtime="onnxruntime")})
    for r in results:
        assert r.error is None, r.error
        manifest = Manifest.load(r.bundle)
        assert manifest.backend == "onnxruntime-web" and manifest.model_file == "model.onnx"
        assert manifest.figures["parity_vs_torch_fp32"]["runtime"] == "onnxruntime-web"
        assert all((r.bundle / "ort" / name).is_file() for name in ORT_FILES)
        assert not list((r.bundle / "ort").glob("*webgpu*"))  # WebGPU only when asked for
    fp32, int8 = results
    assert fp32.parity["max_abs"] <= 1e-4 and int8.parity["srcc"] >= BOUNDS["int8"].srcc
    assert Manifest.load(int8.bundle).figures["quantization"]["mode"] == "dynamic"
