// fiqa-edge in the browser: face image quality scores with onnxruntime-web, computed in a Web Worker.
//
//   import { FaceQualityScorer } from './fiqa.js';
//   const scorer = await FaceQualityScorer.load();        // the bundle this file is in
//   const { score } = await scorer.score(file);           // a File, Blob or URL; higher is better
//   scorer.minQuality = '55q';                             // as the CLI: a score (0.62), 30p or 55q
//   const { quality, percentile, accepted } = await scorer.score(file);
//
// The bundle's fiqa.json says how images are preprocessed; the worker does it exactly as the Python
// scorer does (Pillow's resize included), so scores match the other runtimes.

import { ScoreScale, parseMinQuality, place } from './scale.js';

export class FaceQualityScorer {
  #worker;
  #threshold = null;
  #minQuality = null;
  /** The model's score scale (percentiles and 0-100 quality), or null when its manifest records none. */
  scale = null;
  #pending = new Map();
  #next = 0;

  constructor(worker) {
    this.#worker = worker;
    worker.onmessage = ({ data }) => {
      const call = this.#pending.get(data.id);
      this.#pending.delete(data.id);
      if (data.error !== undefined) call.reject(new Error(data.error));
      else call.resolve(data.result);
    };
    worker.onerror = (event) => {
      for (const call of this.#pending.values()) call.reject(new Error(event.message || 'the scoring worker failed'));
      this.#pending.clear();
    };
  }

  /**
   * Load the bundle at `bundleUrl` (default: this module's folder).
   * backend: 'wasm' (default) or 'webgpu' (bundles built with --web-webgpu, browsers with WebGPU).
   * threads: WebAssembly threads (default: up to 4 when the page is cross-origin isolated, else 1).
   * minQuality: accept faces at or above it (see `minQuality`).
   */
  static async load(bundleUrl = new URL('.', import.meta.url), { backend = 'wasm', threads = 0, minQuality = null } = {}) {
    const worker = new Worker(new URL('./fiqa-worker.js', import.meta.url), { type: 'module' });
    const scorer = new FaceQualityScorer(worker);
    const info = await scorer.#call({ type: 'init', bundleUrl: new URL(bundleUrl, location.href).href, backend, threads });
    Object.assign(scorer, info); // manifest, backend, threads, crossOriginIsolated, ortVersion, loadMs
    scorer.scale = info.manifest.scale ? new ScoreScale(info.manifest.scale) : null;
    scorer.minQuality = minQuality;
    return scorer;
  }

  /** The minimum quality in the CLI's forms: a score (0.62), a percentile (30p) or a 0-100 quality (55q); null: none. */
  get minQuality() { return this.#minQuality; }

  set minQuality(text) {
    this.#threshold = text === null || text === undefined || text === ''
      ? null : parseMinQuality(text, this.scale, this.manifest.score?.range ?? [0, 1]);
    this.#minQuality = this.#threshold ? String(text) : null;
  }

  #call(message) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id });
    });
  }

  static async #blob(source) {
    if (source instanceof Blob) return source;
    const response = await fetch(source);
    if (!response.ok) throw new Error(`${source}: HTTP ${response.status}`);
    return response.blob();
  }

  /**
   * {score, percentile, quality, accepted, ms: {decode, preprocess, inference, total}}; percentile and quality are
   * null when the model records no scale, accepted when no minQuality is set. Rejects with the problem for bad input.
   */
  async score(source) {
    const result = await this.#call({ type: 'score', blob: await FaceQualityScorer.#blob(source) });
    return { ...result, ...place(result.score, this.scale, this.#threshold) };
  }

  /** The model input for `source`: a Float32Array of 3 × N × N, as the manifest's preprocessing makes it. */
  async tensor(source) {
    return this.#call({ type: 'tensor', blob: await FaceQualityScorer.#blob(source) });
  }

  /** Seconds of each of `n` model runs on a batch of the last scored faces (for benchmarks). */
  async time(batch = 1, n = 10) {
    return this.#call({ type: 'time', batch, n });
  }

  close() {
    this.#worker.terminate();
  }
}
