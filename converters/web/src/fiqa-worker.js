// The scorer's Web Worker: decodes, preprocesses and runs the model off the page's main thread.
// Messages in: {type: 'init', bundleUrl, backend, threads}, then {id, type: 'score' | 'tensor', blob}
// and {id, type: 'time', batch, n}. Every answer carries the request's id and a result or an error.

import { preprocess } from './preprocess.js';

// the decompression-bomb guard of fiqa_edge.imaging.DEFAULT_MAX_PIXELS (a test keeps the two equal)
const MAX_PIXELS = 89478485;
const KEPT = 8; // preprocessed faces kept for timing batches

let ort;
let session;
let manifest;
const kept = [];

async function get(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response;
}

async function init({ bundleUrl, backend, threads }) {
  const t0 = performance.now();
  manifest = await (await get(new URL('fiqa.json', bundleUrl))).json();
  if (backend === 'webgpu' && !manifest.figures?.web?.webgpu) {
    throw new Error("this bundle has no WebGPU runtime (convert it with --web-webgpu), or load it with backend 'wasm'");
  }
  if (backend === 'webgpu' && !('gpu' in navigator)) throw new Error("this browser has no WebGPU: load with backend 'wasm'");
  ort = await import(backend === 'webgpu' ? './ort/ort.webgpu.min.mjs' : './ort/ort.wasm.min.mjs');
  ort.env.wasm.wasmPaths = new URL('./ort/', import.meta.url).href;
  ort.env.wasm.numThreads = threads || (self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1);
  ort.env.wasm.proxy = false; // already off the main thread
  const model = await (await get(new URL(manifest.model_file, bundleUrl))).arrayBuffer();
  session = await ort.InferenceSession.create(model, { executionProviders: [backend], graphOptimizationLevel: 'all' });
  return {
    manifest, backend, threads: ort.env.wasm.numThreads, crossOriginIsolated: self.crossOriginIsolated,
    ortVersion: ort.env.versions?.web ?? null, loadMs: performance.now() - t0,
  };
}

async function decode(blob) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(blob, { imageOrientation: 'from-image', colorSpaceConversion: 'none',
                                             premultiplyAlpha: 'none' });
  } catch {
    throw new Error(blob.type && !blob.type.startsWith('image/')
      ? `not an image (${blob.type})` : 'not an image the browser can decode, or damaged');
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

async function toTensor(blob) {
  const t0 = performance.now();
  const image = await decode(blob);
  const t1 = performance.now();
  const data = preprocess(image.data, image.width, image.height, 4, manifest.preprocessing);
  return { data, decodeMs: t1 - t0, preprocessMs: performance.now() - t1 };
}

async function run(data, batch) {
  const n = manifest.preprocessing.input_size;
  const input = new ort.Tensor('float32', data, [batch, 3, n, n]);
  const out = await session.run({ [session.inputNames[0]]: input });
  return out[session.outputNames[0]].data;
}

async function score(blob) {
  const t0 = performance.now();
  const { data, decodeMs, preprocessMs } = await toTensor(blob);
  kept.push(data);
  if (kept.length > KEPT) kept.shift();
  const t1 = performance.now();
  const [value] = await run(data, 1);
  const inferenceMs = performance.now() - t1;
  return { score: value, ms: { decode: decodeMs, preprocess: preprocessMs, inference: inferenceMs,
                               total: performance.now() - t0 } };
}

// seconds of each of n model runs on a batch of the last scored faces (one untimed run first)
async function time(batch, n) {
  if (!kept.length) throw new Error('score a face before timing');
  const size = kept[0].length;
  const data = new Float32Array(batch * size);
  for (let i = 0; i < batch; i++) data.set(kept[i % kept.length], i * size);
  await run(data, batch);
  const seconds = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await run(data, batch);
    seconds.push((performance.now() - t0) / 1e3);
  }
  return seconds;
}

async function handle(msg) {
  try {
    let result;
    if (msg.type === 'init') result = await init(msg);
    else if (!session) throw new Error('the model is not loaded');
    else if (msg.type === 'score') result = await score(msg.blob);
    else if (msg.type === 'tensor') result = (await toTensor(msg.blob)).data;
    else if (msg.type === 'time') result = await time(msg.batch, msg.n);
    else throw new Error(`unknown request ${msg.type}`);
    self.postMessage({ id: msg.id, result });
  } catch (err) {
    self.postMessage({ id: msg.id, error: String(err?.message ?? err) });
  }
}

// one request at a time, in order, so each one's timings are its own
let queue = Promise.resolve();
self.onmessage = ({ data }) => { queue = queue.then(() => handle(data)); };
