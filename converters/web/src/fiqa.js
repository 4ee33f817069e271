// fiqa-edge in the browser: face image quality scores with onnxruntime-web, computed in a Web Worker.
//
//   import { FaceQualityScorer } from './fiqa.js';
//   const scorer = await FaceQualityScorer.load();        // the bundle this file is in
//   const { score } = await scorer.score(file);           // a File, Blob or URL; higher is better
//
// The bundle's fiqa.json says how images are preprocessed; the worker does it exactly as the Python
// scorer does (Pillow's resize included), so scores match the other runtimes.

export class FaceQualityScorer {
  #worker;
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
   */
  static async load(bundleUrl = new URL('.', import.meta.url), { backend = 'wasm', threads = 0 } = {}) {
    const worker = new Worker(new URL('./fiqa-worker.js', import.meta.url), { type: 'module' });
    const scorer = new FaceQualityScorer(worker);
    const info = await scorer.#call({ type: 'init', bundleUrl: new URL(bundleUrl, location.href).href, backend, threads });
    Object.assign(scorer, info); // manifest, backend, threads, crossOriginIsolated, ortVersion, loadMs
    return scorer;
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

  /** {score, ms: {decode, preprocess, inference, total}}; rejects with the problem for bad input. */
  async score(source) {
    return this.#call({ type: 'score', blob: await FaceQualityScorer.#blob(source) });
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
