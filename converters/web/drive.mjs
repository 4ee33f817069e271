// Drives a headless Chromium for fiqa-edge (validation, benchmarks, page tests): Playwright with the
// system's browser, nothing downloaded. Usage: node drive.mjs CHROMIUM_PATH BASE_URL
// Reads one JSON request per line on stdin and writes one JSON answer per line ({result} or {error}).
// Every host but 127.0.0.1 is unresolvable and every request elsewhere is refused and recorded, so
// what works here works offline.
import readline from 'node:readline';
import { chromium } from 'playwright-core';

const [executablePath, baseUrl] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
         '--disable-component-update', '--no-first-run', '--disable-renderer-backgrounding',
         '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const context = await browser.newContext({ viewport: { width: 1000, height: 800 } });
const external = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith(baseUrl) || url.startsWith('blob:') || url.startsWith('data:')) return route.continue();
  external.push(url);
  return route.abort();
});
let page;
let problems = [];

async function openPage(path) {
  if (page) await page.close();
  problems = [];
  page = await context.newPage();
  page.on('pageerror', (err) => problems.push(String(err)));
  page.on('console', (msg) => { if (msg.type() === 'error') problems.push(msg.text()); });
  await page.goto(baseUrl + path);
}

const handlers = {
  // load a scorer from the bundle at `bundle` (a URL path) in a blank page
  async load({ bundle, backend = 'wasm', threads = 0 }) {
    await openPage('/blank.html');
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
  // the demo page: pick `files` (local paths), optionally run the reference check, report what it shows
  async demo({ path, files = [], reference = false, screenshot = null, timeoutMs = 120000 }) {
    await openPage(path);
    await page.waitForFunction(() => document.getElementById('status').dataset.state !== 'loading',
                               null, { timeout: timeoutMs });
    if (files.length) {
      await page.setInputFiles('#files', files);
      await page.waitForFunction((n) => document.querySelectorAll('#results tr').length >= n
                                        && document.body.dataset.pending === '0', files.length, { timeout: timeoutMs });
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
        file: tr.cells[1].textContent, score: tr.dataset.score ? Number(tr.dataset.score) : null,
        problem: tr.cells[4].textContent || null,
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
