// Drives a headless Chromium for fiqa-edge (validation, benchmarks, page tests): Playwright with the
// system's browser, nothing downloaded. Usage: node drive.mjs CHROMIUM_PATH BASE_URL [CAMERA.y4m]
// With a .y4m clip, the browser's camera is a fake one that plays it in a loop.
// Reads one JSON request per line on stdin and writes one JSON answer per line ({result} or {error}).
// Every host but 127.0.0.1 is unresolvable and every request elsewhere is refused and recorded, so
// what works here works offline.
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const [executablePath, baseUrl, camera] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
         '--disable-component-update', '--no-first-run', '--disable-renderer-backgrounding',
         '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
         ...(camera ? ['--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${camera}`] : [])],
});
const external = [];

// a browser context that reaches nothing but the base URL; `camera`: whether the page may use the camera
async function newContext(camera = false) {
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 800 }, permissions: camera ? ['camera'] : [] });
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(baseUrl) || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
    external.push(url);
    return route.abort();
  });
  return ctx;
}
let context = Object.assign(await newContext(), { camera: false });
let page;
let problems = [];
let logs = [];

async function openPage(path, camera = false) {
  if (page) await page.close();
  if (camera !== context.camera) {
    await context.close();
    context = await newContext(camera);
    context.camera = camera;
  }
  problems = [];
  logs = [];
  page = await context.newPage();
  page.on('pageerror', (err) => problems.push(String(err)));
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(msg.text());
    else if (msg.type() === 'log') logs.push(msg.text());
  });
  await page.goto(baseUrl + path);
}

const handlers = {
  // load a scorer from the bundle at `bundle` (a URL path) in a blank page (that may use the camera)
  async load({ bundle, backend = 'wasm', threads = 0, camera = false }) {
    await openPage('/blank.html', camera);
    return page.evaluate(async ({ bundle, backend, threads }) => {
      const { FaceQualityScorer } = await import(`${bundle}fiqa.js`);
      window.scorer = await FaceQualityScorer.load(bundle, { backend, threads });
      const { manifest, loadMs, ...info } = window.scorer;
      return { ...info, loadMs, precision: manifest.precision, scale: null };
    }, { bundle, backend, threads });
  },
  // scores of images (URL paths), in order: {score, ms} or {error}
  async score({ urls }) {
    return page.evaluate(async (urls) => {
      const out = [];
      for (const url of urls) {
        try { out.push(await window.scorer.score(url)); } catch (err) { out.push({ error: err.message }); }
      }
      return out;
    }, urls);
  },
  // every face of each image (URL paths), in order: {faces: [{box, keypoints, confidence, score, …}], ms} or {error}
  async faces({ urls, options = {} }) {
    return page.evaluate(async ({ urls, options }) => {
      const out = [];
      for (const url of urls) {
        try {
          const faces = await window.scorer.scoreFaces(url, options);
          out.push({ faces, ms: window.scorer.lastMs });
        } catch (err) { out.push({ error: err.message }); }
      }
      return out;
    }, { urls, options });
  },
  // the model input the page makes of one image, as a list of floats
  async tensor({ url }) {
    return page.evaluate(async (url) => Array.from(await window.scorer.tensor(url)), url);
  },
  async time({ batch, n }) {
    return page.evaluate(({ batch, n }) => window.scorer.time(batch, n), { batch, n });
  },
  // images per second scoring the files at `urls` one by one from memory (as a file picker hands them over:
  // decoding, preprocessing, inference), for at least `seconds` after one untimed pass
  async e2e({ urls, seconds }) {
    return page.evaluate(async ({ urls, seconds }) => {
      const blobs = await Promise.all(urls.map(async (u) => (await fetch(u)).blob()));
      const pass = async () => { let ok = 0; for (const b of blobs) { try { await window.scorer.score(b); ok++; } catch {} } return ok; };
      await pass();
      let done = 0;
      const t0 = performance.now();
      while (done === 0 || performance.now() - t0 < seconds * 1e3) done += await pass();
      return [done / ((performance.now() - t0) / 1e3), done];
    }, { urls, seconds });
  },
  // frames per second of scoreFaces on the camera's frames (640 × 480) for `seconds` after 5 untimed frames;
  // with the milliseconds of each step (medians) and the faces found per frame
  async cameraFps({ seconds, options = {} }) {
    return page.evaluate(async ({ seconds, options }) => {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
      const video = Object.assign(document.createElement('video'), { muted: true, srcObject: stream });
      await video.play();
      for (let i = 0; i < 5; i++) await window.scorer.scoreFaces(video, options);
      const steps = {}, faces = [];
      let frames = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < seconds * 1e3) {
        faces.push((await window.scorer.scoreFaces(video, options)).length);
        for (const [k, v] of Object.entries(window.scorer.lastMs)) (steps[k] ??= []).push(v);
        frames++;
      }
      const fps = frames / ((performance.now() - t0) / 1e3);
      stream.getTracks().forEach((t) => t.stop());
      const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
      return { fps, frames, size: [video.videoWidth, video.videoHeight], faces,
               ms: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, median(v)])) };
    }, { seconds, options });
  },
  // scorer.capture on a stream of a still image (a canvas redrawn 20 times a second): its reason, frames, quality
  async captureStill({ url, seconds = 1, ...options }) {
    return page.evaluate(async ({ url, seconds, options }) => {
      const image = await createImageBitmap(await (await fetch(url)).blob());
      const canvas = Object.assign(document.createElement('canvas'), { width: image.width, height: image.height });
      const draw = () => canvas.getContext('2d').drawImage(image, 0, 0);
      draw();
      const timer = setInterval(draw, 50);
      try {
        const shot = await window.scorer.capture(canvas.captureStream(20), { seconds, ...options });
        return { reason: shot.reason, frames: shot.frames, quality: shot.face?.quality ?? null,
                 crop: shot.crop ? { type: shot.crop.type, bytes: shot.crop.size } : null };
      } finally {
        clearInterval(timer);
      }
    }, { url, seconds, options });
  },
  // a page of the caller's (that may use the camera) until it sets window.done, or fails: what it logged
  async run({ path, camera = false, timeoutMs = 120000 }) {
    await openPage(path, camera);
    await page.waitForFunction(() => window.done === true, null, { timeout: timeoutMs }).catch((err) => {
      if (!problems.length) throw err;
    });
    return { logs: [...logs], pageErrors: [...problems], external: [...external] };
  },
  // the demo page's camera, in a context that grants it or not (`grant`): start it, watch `watchSeconds`, then
  // capture (unless `capture` is false); what the page shows
  async camera({ path, grant = true, watchSeconds = 0, capture = true, screenshot = null, timeoutMs = 120000 }) {
    await openPage(path, grant);
    await page.waitForFunction(() => document.getElementById('status').dataset.state !== 'loading', null, { timeout: timeoutMs });
    await page.click('#mode-camera');
    await page.click('#start');
    await page.waitForFunction(() => document.getElementById('camera-status').dataset.state !== 'off', null, { timeout: timeoutMs });
    const state = () => page.evaluate(() => document.getElementById('camera-status').dataset.state);
    if (await state() === 'live') {
      if (watchSeconds) await page.waitForTimeout(watchSeconds * 1e3);
      if (capture) {
        await page.click('#capture');
        await page.waitForFunction(() => document.getElementById('shot').dataset.frames !== undefined, null, { timeout: timeoutMs });
      }
    }
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    const shown = await page.evaluate(() => ({
      state: document.getElementById('camera-status').dataset.state,
      text: document.getElementById('camera-status').textContent,
      live: { ...document.getElementById('live').dataset, text: document.getElementById('live').textContent },
      shot: { ...document.getElementById('shot').dataset, text: document.getElementById('shot').textContent },
    }));
    return { ...shown, external: [...external], pageErrors: [...problems] };
  },
  // the demo page: pick `files` (local paths), optionally run the reference check, report what it shows
  async demo({ path, files = [], reference = false, screenshot = null, timeoutMs = 120000 }) {
    await openPage(path);
    await page.waitForFunction(() => document.getElementById('status').dataset.state !== 'loading',
                               null, { timeout: timeoutMs });
    if (files.length) {
      await page.setInputFiles('#files', files);
      await page.waitForFunction(() => document.body.dataset.pending === '0', null, { timeout: timeoutMs });
    }
    if (reference) {
      await page.click('#check');
      await page.waitForFunction(() => document.getElementById('parity').dataset.srcc !== undefined, null,
                                 { timeout: timeoutMs });
    }
    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    const shown = await page.evaluate(() => ({
      status: document.getElementById('status').textContent,
      state: document.getElementById('status').dataset.state,
      isolated: window.crossOriginIsolated,
      error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
      parity: { ...document.getElementById('parity').dataset, text: document.getElementById('parity').textContent },
      firstScoreMs: document.body.dataset.firstScoreMs ? Number(document.body.dataset.firstScoreMs) : null,
      rows: [...document.querySelectorAll('#results tr')].map((tr) => ({
        file: tr.dataset.file, face: tr.cells[2].textContent ? Number(tr.cells[2].textContent) : null,
        score: tr.dataset.score ? Number(tr.dataset.score) : null, problem: tr.cells[6].textContent || null,
        thumb: tr.cells[0].firstChild ? [tr.cells[0].firstChild.width, tr.cells[0].firstChild.height] : null,
        quality: tr.dataset.quality ? Number(tr.dataset.quality) : null,
        accepted: tr.dataset.accepted ? tr.dataset.accepted === 'true' : null,
      })),
    }));
    return { ...shown, external: [...external], pageErrors: [...problems] };
  },
};

const write = (answer) => process.stdout.write(JSON.stringify(answer) + '\n');
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { cmd, ...args } = JSON.parse(line);
  try {
    if (!handlers[cmd]) throw new Error(`unknown command ${cmd}`);
    write({ result: await handlers[cmd](args) });
  } catch (err) {
    write({ error: String(err?.message ?? err).split('\n')[0], page: problems.slice(-3) });
  }
}
await browser.close();
