// The scorer's Web Worker: decodes, finds faces, aligns and scores them off the page's main thread.
// Messages in: {type: 'init', bundleUrl, backend, threads}, then {id, type: 'score' | 'tensor', image},
// {id, type: 'faces', image, detector, tiles, minFace, maxFaces, crops} and {id, type: 'time', batch, n}; `image` is
// a Blob or an ImageBitmap. Every answer carries the request's id and a result or an error.
// A classic worker (LiteRT.js loads its WebAssembly with importScripts), importing the ES modules it needs.

// the decompression-bomb guard of fiqa_edge.imaging.DEFAULT_MAX_PIXELS (a test keeps the two equal)
const MAX_PIXELS = 89478485;
const KEPT = 8; // preprocessed faces kept for timing batches

let model; // the quality model: {run(data, batch), layout, threads, runtime, version}
let manifest;
let preprocess;
let liteRt; // {lr, threaded, compile}: LiteRT.js, loaded once for the model and the detectors
let faces; // {settings, models: {name: {…settings, run}}, detect: detect.js, alignFace}
const kept = [];

async function get(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

// LiteRT.js, its threaded build (relaxed SIMD, shared memory) where the page allows it
async function loadLiteRt(threads) {
  if (liteRt) return liteRt;
  const lr = await import('./litert/core.js');
  const dir = new URL('./litert/', self.location.href).href;
  const threaded = self.crossOriginIsolated && threads > 1 && await lr.supportsFeature('relaxedSimd');
  const script = dir + (threaded ? 'litert_wasm_threaded_internal.js' : 'litert_wasm_compat_internal.js');
  // Emscripten finds its .wasm (and its threads their script) beside the worker unless told where they are; its
  // log lines (INFO, and a WARNING that no NPU is there) stay out of the page's console, its errors do not
  const quiet = (line) => { if (!/^(INFO|WARNING): /.test(line)) console.error(line); };
  self.Module = { locateFile: (file) => dir + file, mainScriptUrlOrBlob: script, print: quiet, printErr: quiet };
  await (threaded ? lr.loadLiteRt(dir, { threads: true }) : lr.loadLiteRt(script));
  liteRt = { lr, threaded, compile: (bytes) => lr.loadAndCompile(bytes, { accelerator: 'wasm',
                                                                         cpuOptions: { numThreads: threaded ? threads : 1 } }) };
  return liteRt;
}

// the bundle's BlazeFace models on LiteRT.js, when the bundle has them (detect/settings.json)
async function loadDetection(bundleUrl, threads) {
  const response = await fetch(new URL('detect/settings.json', bundleUrl));
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`detect/settings.json: HTTP ${response.status}`);
  const settings = await response.json();
  const [{ lr, compile, threaded }, detect, { alignFace }] = await Promise.all(
    [loadLiteRt(threads), import('./detect.js'), import('./align.js')]);
  const models = {};
  for (const [name, model] of Object.entries(settings.models)) {
    const compiled = await compile(new Uint8Array(await (await get(new URL(`detect/${model.file}`, bundleUrl))).arrayBuffer()));
    const n = model.input;
    const run = async (input) => {
      const tensor = new lr.Tensor(input, [1, n, n, 3]);
      const outputs = await compiled.run([tensor]);
      tensor.delete();
      const arrays = outputs.map((t) => t.toTypedArray().slice());
      outputs.forEach((t) => t.delete());
      arrays.sort((a, b) => a.length - b.length); // one logit per anchor, then 16 offsets per anchor
      return { scores: arrays[0], boxes: arrays[1] };
    };
    models[name] = { ...model, anchorCentres: detect.anchors(model.grids), run };
  }
  return { settings, models, detect, alignFace, threaded };
}

function unloadable(runtime, err) {
  throw new Error(`${manifest.model_file}: not a model ${runtime} can load (${String(err?.message ?? err).trim()})`);
}

// the LiteRT target's .tflite: NHWC input, one signature per batch size (the manifest's io.signatures); a batch
// runs as the largest signatures that fit, as fiqa_edge.backends.predict_in_sizes does
async function liteRtModel(bytes, threads) {
  const { lr, threaded, compile } = await loadLiteRt(threads);
  const compiled = await compile(bytes).catch((err) => unloadable('LiteRT.js', err));
  const sizes = Object.entries(manifest.figures.io.signatures).map(([name, shape]) => [shape[0], name])
    .sort((a, b) => b[0] - a[0]);
  const n = manifest.preprocessing.input_size;
  const run = async (data, batch) => {
    const scores = new Float32Array(batch);
    for (let start = 0; start < batch;) {
      const [size, name] = sizes.find(([b]) => b <= batch - start);
      const tensor = new lr.Tensor(data.subarray(start * 3 * n * n, (start + size) * 3 * n * n), [size, n, n, 3]);
      const [out] = await compiled.run(name, [tensor]);
      tensor.delete();
      scores.set(out.toTypedArray().subarray(0, size), start);
      out.delete();
      start += size;
    }
    return scores;
  };
  return { run, layout: 'HWC', threads: threaded ? threads : 1, runtime: 'LiteRT.js', version: manifest.figures.web?.litertjs ?? null };
}

// the ONNX target's graph on onnxruntime-web (NCHW input, any batch size)
async function onnxRuntimeModel(bytes, backend, threads) {
  const ort = await import(backend === 'webgpu' ? './ort/ort.webgpu.min.mjs' : './ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = new URL('./ort/', self.location.href).href;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false; // already off the main thread
  const session = await ort.InferenceSession.create(bytes, { executionProviders: [backend], graphOptimizationLevel: 'all' })
    .catch((err) => unloadable('onnxruntime-web', err));
  const n = manifest.preprocessing.input_size;
  const run = async (data, batch) => {
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', data, [batch, 3, n, n]) });
    return out[session.outputNames[0]].data;
  };
  return { run, layout: 'CHW', threads: ort.env.wasm.numThreads, runtime: 'onnxruntime-web', version: ort.env.versions?.web ?? null };
}

async function init({ bundleUrl, backend, threads }) {
  const t0 = performance.now();
  ({ preprocess } = await import('./preprocess.js'));
  manifest = await (await get(new URL('fiqa.json', bundleUrl))).json();
  const onLiteRt = manifest.backend === 'litert-web';
  if (backend === 'webgpu' && (onLiteRt || !manifest.figures?.web?.webgpu)) {
    throw new Error("this bundle has no WebGPU runtime (convert it with --web-runtime onnxruntime --web-webgpu), "
                    + "or load it with backend 'wasm'");
  }
  if (backend === 'webgpu' && !('gpu' in navigator)) throw new Error("this browser has no WebGPU: load with backend 'wasm'");
  threads = threads || (self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
  const bytes = new Uint8Array(await (await get(new URL(manifest.model_file, bundleUrl))).arrayBuffer());
  model = onLiteRt ? await liteRtModel(bytes, threads) : await onnxRuntimeModel(bytes, backend, threads);
  faces = await loadDetection(bundleUrl, threads);
  return {
    manifest, backend, runtime: model.runtime, runtimeVersion: model.version, threads: model.threads,
    crossOriginIsolated: self.crossOriginIsolated, loadMs: performance.now() - t0,
    detection: faces ? { ...faces.settings, threaded: faces.threaded } : null,
  };
}

async function decode(image) {
  let bitmap = image;
  if (!(image instanceof ImageBitmap)) {
    try {
      bitmap = await createImageBitmap(image, { imageOrientation: 'from-image', colorSpaceConversion: 'none',
                                                premultiplyAlpha: 'none' });
    } catch {
      throw new Error(image.type && !image.type.startsWith('image/')
        ? `not an image (${image.type})` : 'not an image the browser can decode, or damaged');
    }
  }
  const { width, height } = bitmap;
  if (width * height > MAX_PIXELS) {
    bitmap.close();
    throw new Error(`${width}×${height} is ${(width * height).toLocaleString('en')} pixels, over the limit of `
                    + `${MAX_PIXELS.toLocaleString('en')} (a decompression-bomb guard)`);
  }
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  return ctx.getImageData(0, 0, width, height, { colorSpace: 'srgb' });
}

// the model input for `image`, in the model's layout unless another is asked for
async function toTensor(image, layout = model.layout) {
  const t0 = performance.now();
  const decoded = await decode(image);
  const t1 = performance.now();
  const data = preprocess(decoded.data, decoded.width, decoded.height, 4, manifest.preprocessing, layout);
  return { data, decodeMs: t1 - t0, preprocessMs: performance.now() - t1 };
}

function keep(data) {
  kept.push(data);
  if (kept.length > KEPT) kept.shift();
}

async function score(image) {
  const t0 = performance.now();
  const { data, decodeMs, preprocessMs } = await toTensor(image);
  keep(data);
  const t1 = performance.now();
  const [value] = await model.run(data, 1);
  const inferenceMs = performance.now() - t1;
  return { score: value, ms: { decode: decodeMs, preprocess: preprocessMs, inference: inferenceMs,
                               total: performance.now() - t0 } };
}

// an RGB crop as an ImageBitmap the page can draw
function bitmapOf(rgb, size) {
  const rgba = new Uint8ClampedArray(size * size * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    rgba[j] = rgb[i]; rgba[j + 1] = rgb[i + 1]; rgba[j + 2] = rgb[i + 2]; rgba[j + 3] = 255;
  }
  const canvas = new OffscreenCanvas(size, size);
  canvas.getContext('2d').putImageData(new ImageData(rgba, size, size), 0, 0);
  return canvas.transferToImageBitmap();
}

// every face found in the image, aligned to the model's framing and scored, most confident first
async function scoreFaces({ image, detector = 'both', tiles = true, minFace = 0, maxFaces = null, crops = false }) {
  if (!faces) throw new Error('this bundle has no face detection (convert it again with this fiqa-edge)');
  const t0 = performance.now();
  const { data, width, height } = await decode(image);
  const t1 = performance.now();
  const names = detector === 'both' ? Object.keys(faces.models) : [detector];
  if (!names.every((n) => n in faces.models)) {
    throw new Error(`unknown detector ${detector}; choose from both, ${Object.keys(faces.models).join(', ')}`);
  }
  const found = [];
  for (const name of names) {
    const model = faces.models[name];
    found.push(await faces.detect.candidates(model.run, model, data, width, height, 4, { tiles }));
  }
  let chosen = faces.detect.merge(found, faces.settings).filter((f) => f.box[2] - f.box[0] >= minFace);
  if (maxFaces !== null) chosen = chosen.slice(0, maxFaces);
  const t2 = performance.now();
  const framing = faces.settings.framing;
  const aligned = chosen.map((f) => faces.alignFace(data, width, height, 4, f.landmarks.slice(0, 2), framing));
  const t3 = performance.now();
  let scores = [];
  if (aligned.length) {
    const size = 3 * manifest.preprocessing.input_size ** 2;
    const batch = new Float32Array(aligned.length * size);
    aligned.forEach((rgb, i) => {
      const input = preprocess(rgb, framing.size, framing.size, 3, manifest.preprocessing, model.layout);
      batch.set(input, i * size);
      keep(input);
    });
    scores = Array.from(await model.run(batch, aligned.length));
  }
  const t4 = performance.now();
  const result = chosen.map((f, i) => ({
    box: f.box, keypoints: f.landmarks, confidence: f.confidence, score: scores[i],
    crop: crops ? bitmapOf(aligned[i], framing.size) : null,
  }));
  return { faces: result, width, height,
           ms: { decode: t1 - t0, detect: t2 - t1, align: t3 - t2, score: t4 - t3, total: t4 - t0 } };
}

// seconds of each of n model runs on a batch of the last scored faces (one untimed run first)
async function time(batch, n) {
  if (!kept.length) throw new Error('score a face before timing');
  const size = kept[0].length;
  const data = new Float32Array(batch * size);
  for (let i = 0; i < batch; i++) data.set(kept[i % kept.length], i * size);
  await model.run(data, batch);
  const seconds = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await model.run(data, batch);
    seconds.push((performance.now() - t0) / 1e3);
  }
  return seconds;
}

async function handle(msg) {
  try {
    let result;
    if (msg.type === 'init') result = await init(msg);
    else if (!model) throw new Error('the model is not loaded');
    else if (msg.type === 'score') result = await score(msg.image);
    else if (msg.type === 'tensor') result = (await toTensor(msg.image, 'CHW')).data;
    else if (msg.type === 'faces') result = await scoreFaces(msg);
    else if (msg.type === 'time') result = await time(msg.batch, msg.n);
    else throw new Error(`unknown request ${msg.type}`);
    const transfer = msg.type === 'faces' ? result.faces.map((f) => f.crop).filter(Boolean) : [];
    self.postMessage({ id: msg.id, result }, transfer);
  } catch (err) {
    self.postMessage({ id: msg.id, error: String(err?.message ?? err) });
  }
}

// one request at a time, in order, so each one's timings are its own
let queue = Promise.resolve();
self.onmessage = ({ data }) => { queue = queue.then(() => handle(data)); };
