// fiqa-edge in the browser: faces found (BlazeFace), aligned and scored with LiteRT.js (or the quality model on
// onnxruntime-web, for bundles converted with --web-runtime onnxruntime), in a Web Worker, so the page never freezes.
//
//   import { FaceQualityScorer } from './fiqa.js';
//   const scorer = await FaceQualityScorer.load(undefined, { minQuality: '55q' }); // the bundle this file is in
//   for (const face of await scorer.scoreFaces(file)) {  // a File, Blob, URL, ImageBitmap, <video> or <canvas>
//     console.log(face.box, face.quality, face.accepted);
//   }
//   const shot = await scorer.capture(await navigator.mediaDevices.getUserMedia({ video: true }), { seconds: 3 });
//   if (shot.crop) document.querySelector('img').src = URL.createObjectURL(shot.crop); else alert(shot.reason);
//
// The bundle's fiqa.json says how crops are preprocessed and detect/settings.json how faces are found; the worker
// does both exactly as the Python package does (Pillow's resizes included), so results match the other runtimes.

import { ScoreScale, parseMinQuality, place } from './scale.js';

/** What `capture` looks for by default: the short-range model on the whole frame, a face near the camera. */
export const CAMERA = { detector: 'short', tiles: false };

function threshold(text, scale, range) {
  return text === null || text === undefined || text === '' ? null : parseMinQuality(text, scale, range);
}

export class FaceQualityScorer {
  #worker;
  #threshold = null;
  #minQuality = null;
  /** The model's score scale (percentiles and 0-100 quality), or null when its manifest records none. */
  scale = null;
  /** How faces are found (detect/settings.json), or null when the bundle has no face detection. */
  detection = null;
  /** Milliseconds of each step of the last `scoreFaces` call: decode, detect, align, score, total. */
  lastMs = null;
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
   * backend: 'wasm' (default) or 'webgpu' (bundles built with --web-runtime onnxruntime --web-webgpu, browsers with WebGPU).
   * threads: WebAssembly threads (default: up to 4 when the page is cross-origin isolated, else 1).
   * minQuality: accept faces at or above it (see `minQuality`).
   */
  static async load(bundleUrl = new URL('.', import.meta.url), { backend = 'wasm', threads = 0, minQuality = null } = {}) {
    const worker = new Worker(new URL('./fiqa-worker.js', import.meta.url));
    const scorer = new FaceQualityScorer(worker);
    const info = await scorer.#call({ type: 'init', bundleUrl: new URL(bundleUrl, location.href).href, backend, threads });
    Object.assign(scorer, info); // manifest, backend, runtime, runtimeVersion, threads, crossOriginIsolated, loadMs, detection
    scorer.scale = info.manifest.scale ? new ScoreScale(info.manifest.scale) : null;
    scorer.minQuality = minQuality;
    return scorer;
  }

  /** The minimum quality in the CLI's forms: a score (0.62), a percentile (30p) or a 0-100 quality (55q); null: none. */
  get minQuality() { return this.#minQuality; }

  set minQuality(text) {
    this.#threshold = threshold(text, this.scale, this.#range);
    this.#minQuality = this.#threshold ? String(text) : null;
  }

  get #range() { return this.manifest.score?.range ?? [0, 1]; }

  #call(message, transfer = []) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id }, transfer);
    });
  }

  // a Blob or ImageBitmap the worker can decode: URLs are fetched, frames of videos and canvases copied
  static async #image(source) {
    if (source instanceof Blob || source instanceof ImageBitmap) return source;
    if (typeof HTMLVideoElement !== 'undefined' && source instanceof HTMLVideoElement) {
      if (source.readyState < 2) throw new Error('the video has no frame yet');
      return createImageBitmap(source);
    }
    if ((typeof HTMLCanvasElement !== 'undefined' && source instanceof HTMLCanvasElement)
        || (typeof HTMLImageElement !== 'undefined' && source instanceof HTMLImageElement)
        || source instanceof ImageData) return createImageBitmap(source);
    const response = await fetch(source);
    if (!response.ok) throw new Error(`${source}: HTTP ${response.status}`);
    return response.blob();
  }

  async #send(type, source, more = {}) {
    const image = await FaceQualityScorer.#image(source);
    return this.#call({ type, image, ...more }, image instanceof ImageBitmap ? [image] : []);
  }

  /**
   * The whole image scored as one face (it should already be cropped to the model's framing):
   * {score, percentile, quality, accepted, ms: {decode, preprocess, inference, total}}; percentile and quality are
   * null when the model records no scale, accepted when no minQuality is set. Rejects with the problem for bad input.
   */
  async score(source) {
    const result = await this.#send('score', source);
    return { ...result, ...place(result.score, this.scale, this.#threshold) };
  }

  /**
   * Every face in an image, most confident first: [{box: [x0, y0, x1, y1], keypoints: six [x, y] (the eye on the
   * image's left, the other eye, nose tip, mouth, ear, ear), confidence, score, percentile, quality, accepted,
   * crop}], in the image's pixels; [] when there is none.
   * detector: 'both' (default, as `fiqa-edge score --detect`), 'short' (faces near the camera) or 'full';
   * tiles: also search tiles of a large image (default true, as Python); minFace: drop faces narrower (px);
   * maxFaces: keep the most confident; crops: also return each aligned crop as an ImageBitmap (`crop`);
   * minQuality: judge these faces by it instead of the scorer's.
   */
  async scoreFaces(source, { detector = 'both', tiles = true, minFace = 0, maxFaces = null, crops = false,
                             minQuality } = {}) {
    return this.#faces(source, { detector, tiles, minFace, maxFaces, crops }, this.#limit(minQuality));
  }

  #limit(minQuality) {
    return minQuality === undefined ? this.#threshold : threshold(minQuality, this.scale, this.#range);
  }

  async #faces(source, options, limit) {
    const { faces, ms } = await this.#send('faces', source, options);
    this.lastMs = ms;
    return faces.map((f) => ({ ...f, ...place(f.score, this.scale, limit) }));
  }

  /**
   * Watch a camera for `seconds` and keep the best face: `source` is a MediaStream or a playing <video>.
   * Frames with exactly one face count; the best is the highest score at or above minQuality (default: the
   * scorer's; a form `minQuality` takes, or null for none). Resolves to {crop: Blob (PNG of the aligned face) or
   * null, face: its result or null, frame: an ImageBitmap of the whole frame or null, frames, reason: why nothing
   * was kept, or null}. onFrame({faces, frame, best}) is called after each frame (e.g. to draw an overlay; the
   * faces' crops are closed after it returns); detector and tiles default to CAMERA.
   */
  async capture(source, { seconds = 3, minQuality, onFrame = null, detector = CAMERA.detector,
                          tiles = CAMERA.tiles } = {}) {
    const limit = this.#limit(minQuality);
    const video = await playing(source);
    let best = null, frames = 0, single = 0, several = 0, seen = null;
    const end = performance.now() + seconds * 1e3;
    try {
      while (performance.now() < end) {
        const frame = await createImageBitmap(video);
        const copy = await createImageBitmap(frame); // `frame` goes to the worker; this stays in case it is the best
        const faces = await this.#faces(frame, { detector, tiles, crops: true }, limit);
        frames++;
        let done = [copy, ...faces.map((f) => f.crop)];
        if (faces.length > 1) several++;
        if (faces.length === 1) {
          single++;
          const [face] = faces;
          if (!seen || face.score > seen.score) seen = face;
          if (face.accepted !== false && (!best || face.score > best.face.score)) {
            done = best ? [best.frame, best.face.crop] : [];
            best = { face, frame: copy };
          }
        }
        onFrame?.({ faces, frame: frames, best: best?.face ?? null });
        done.forEach((bitmap) => bitmap.close());
        await new Promise((r) => setTimeout(r, 0));
      }
    } finally {
      if (!(source instanceof HTMLVideoElement)) video.srcObject = null;
    }
    if (!best) {
      const reason = !frames ? 'no frame was read from the camera'
        : !single && several ? `several faces were in view in every frame (${frames} frames): one person at a time`
          : !single ? `no face was found in ${frames} frames`
            : `no face reached the minimum ${limit.kind} ${limit.value} in ${frames} frames `
              + `(best: quality ${seen.quality?.toFixed(0) ?? '–'}, score ${seen.score.toFixed(3)})`;
      return { crop: null, face: null, frame: null, frames, reason };
    }
    const canvas = new OffscreenCanvas(best.face.crop.width, best.face.crop.height);
    canvas.getContext('2d').drawImage(best.face.crop, 0, 0);
    return { crop: await canvas.convertToBlob({ type: 'image/png' }), face: best.face, frame: best.frame, frames, reason: null };
  }

  /** The model input for `source`: a Float32Array of 3 × N × N, as the manifest's preprocessing makes it. */
  async tensor(source) {
    return this.#send('tensor', source);
  }

  /** Seconds of each of `n` model runs on a batch of the last scored faces (for benchmarks). */
  async time(batch = 1, n = 10) {
    return this.#call({ type: 'time', batch, n });
  }

  close() {
    this.#worker.terminate();
  }
}

// a <video> playing `source` (a MediaStream, or a <video> already)
async function playing(source) {
  if (source instanceof HTMLVideoElement) {
    if (source.readyState < 2) await new Promise((r) => source.addEventListener('loadeddata', r, { once: true }));
    return source;
  }
  const video = document.createElement('video');
  video.muted = true;
  video.playsInline = true;
  video.srcObject = source;
  await video.play();
  if (video.readyState < 2) await new Promise((r) => video.addEventListener('loadeddata', r, { once: true }));
  return video;
}
