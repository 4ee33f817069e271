// The demo page: score dropped or picked photos, and check the bundle against its reference faces.
import { FaceQualityScorer } from './fiqa.js';

const $ = (id) => document.getElementById(id);
const results = $('results');
let scorer;
let pending = 0;

function setPending(delta) {
  pending += delta;
  document.body.dataset.pending = String(pending);
}

function addRow(name, thumbUrl) {
  const row = results.insertRow();
  row.innerHTML = '<td></td><td></td><td class="num score">…</td><td class="num ms"></td><td class="problem"></td>'
    + '<td class="num quality"></td>';
  row.cells[1].textContent = name;
  if (thumbUrl) {
    const img = new Image();
    img.className = 'thumb';
    img.alt = '';
    img.onerror = () => img.remove();
    img.src = thumbUrl;
    row.cells[0].append(img);
  }
  return row;
}

async function scoreOne(source, name, thumbUrl) {
  const row = addRow(name, thumbUrl);
  setPending(1);
  try {
    const { score, ms, quality, percentile, accepted } = await scorer.score(source);
    row.cells[2].textContent = score.toFixed(4);
    if (quality !== null) {
      const verdict = accepted === null ? '' : accepted ? ' accepted' : ' rejected';
      row.cells[5].textContent = `${quality.toFixed(0)} (${percentile.toFixed(0)}th percentile)${verdict}`;
      row.dataset.quality = String(quality);
      if (accepted !== null) row.dataset.accepted = String(accepted);
    }
    row.cells[3].textContent = `${ms.inference.toFixed(1)} / ${ms.total.toFixed(1)}`;
    row.dataset.score = String(score);
    document.body.dataset.firstScoreMs ??= String(performance.now()); // since navigation started
    return score;
  } catch (err) {
    row.className = 'bad';
    row.cells[2].textContent = '–';
    row.cells[4].textContent = err.message;
    return null;
  } finally {
    setPending(-1);
  }
}

async function scoreFiles(files) {
  await Promise.all([...files].map((f) => scoreOne(f, f.name, URL.createObjectURL(f))));
}

function ranks(values) {
  const order = values.map((v, i) => [v, i]).sort((a, b) => a[0] - b[0]);
  const r = new Array(values.length);
  for (let i = 0; i < order.length;) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2;
    i = j + 1;
  }
  return r;
}

function pearson(a, b) {
  const mean = (x) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(a), mb = mean(b);
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

async function checkReference() {
  const stored = scorer.manifest.figures?.reference_scores?.scores ?? {};
  const names = Object.keys(stored).sort();
  $('parity').textContent = `scoring ${names.length} reference faces…`;
  const got = await Promise.all(names.map((n) => scoreOne(`reference/${n}`, n, `reference/${n}`)));
  const ok = names.map((n, i) => [stored[n], got[i]]).filter(([, g]) => g !== null);
  const want = ok.map(([s]) => s), have = ok.map(([, g]) => g);
  const maxAbs = Math.max(...ok.map(([s, g]) => Math.abs(s - g)));
  const srcc = pearson(ranks(want), ranks(have));
  $('parity').textContent = `${ok.length} of ${names.length} reference faces: max |Δscore| ${maxAbs.toExponential(2)} `
    + `against the stored fp32 scores, SRCC ${srcc.toFixed(5)}`;
  $('parity').dataset.maxAbs = String(maxAbs);
  $('parity').dataset.srcc = String(srcc);
}

async function main() {
  setPending(0);
  try {
    // ?minQuality=55q (or 30p, 0.62) on the page's address judges each face as `score --min-quality` does
    scorer = await FaceQualityScorer.load(undefined, { minQuality: new URLSearchParams(location.search).get('minQuality') });
  } catch (err) {
    $('error').hidden = false;
    $('error').textContent = `The model could not be loaded: ${err.message}`;
    $('status').dataset.state = 'failed';
    $('status').textContent = '';
    return;
  }
  const m = scorer.manifest;
  $('status').textContent = `${m.arch}, ${m.precision}, ${m.preprocessing.input_size} px: onnxruntime-web `
    + `${scorer.ortVersion ?? ''} ${scorer.backend}, ${scorer.threads} thread(s), loaded in ${scorer.loadMs.toFixed(0)} ms`;
  $('status').dataset.state = 'ready';
  $('files').addEventListener('change', (e) => scoreFiles(e.target.files));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); scoreFiles(e.dataTransfer.files); });
  $('check').disabled = false;
  $('check').addEventListener('click', checkReference);
}

main();
