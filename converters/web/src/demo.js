// The demo page: faces of dropped photos scored one row each, a camera that captures its best face, and a check
// of the bundle against its reference faces. ?minQuality=55q (or 30p, 0.62) judges faces as `score --min-quality`
// does; ?whole=1 scores each photo as one already-cropped face.
import { CAMERA, FaceQualityScorer } from './fiqa.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const results = $('results');
let scorer;
let pending = 0;

function setPending(delta) {
  pending += delta;
  document.body.dataset.pending = String(pending);
}

function verdict(accepted) {
  return accepted === null ? '' : accepted ? 'accepted' : 'rejected';
}

function describe({ quality, percentile, accepted }) {
  return quality === null ? '' : `${quality.toFixed(0)} (percentile ${percentile.toFixed(0)})`
    + (accepted === null ? '' : ` ${verdict(accepted)}`);
}

function addRow(name, face) {
  const row = results.insertRow();
  row.innerHTML = '<td></td><td></td><td class="num face"></td><td class="num quality"></td><td class="num score">…</td>'
    + '<td class="num ms"></td><td class="problem"></td>';
  row.cells[1].textContent = name;
  row.dataset.file = name;
  row.cells[2].textContent = face ?? '';
  return row;
}

function thumb(row, bitmap) {
  const canvas = document.createElement('canvas');
  canvas.className = 'thumb';
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  canvas.getContext('2d').drawImage(bitmap, 0, 0);
  bitmap.close();
  row.cells[0].append(canvas);
}

function fill(row, result, ms) {
  row.cells[3].textContent = describe(result);
  if (result.accepted !== null) row.cells[3].className = `num quality ${verdict(result.accepted)}`;
  row.cells[4].textContent = result.score.toFixed(4);
  row.cells[5].textContent = ms;
  row.dataset.score = String(result.score);
  if (result.quality !== null) row.dataset.quality = String(result.quality);
  if (result.accepted !== null) row.dataset.accepted = String(result.accepted);
}

function fail(row, message) {
  row.className = 'bad';
  row.cells[4].textContent = '–';
  row.cells[6].textContent = message;
}

// one already-cropped face: the whole image scored
async function scoreWhole(source, name, thumbUrl) {
  const row = addRow(name);
  setPending(1);
  try {
    const result = await scorer.score(source);
    if (thumbUrl) {
      const img = Object.assign(new Image(), { className: 'thumb', alt: '', src: thumbUrl });
      img.onerror = () => img.remove();
      row.cells[0].append(img);
    }
    fill(row, result, `${result.ms.inference.toFixed(1)} / ${result.ms.total.toFixed(1)}`);
    document.body.dataset.firstScoreMs ??= String(performance.now()); // since navigation started
    return result.score;
  } catch (err) {
    fail(row, err.message);
    return null;
  } finally {
    setPending(-1);
  }
}

// every face of a photo: one row each, with the aligned crop the model scored
async function scorePhoto(file) {
  setPending(1);
  try {
    const faces = await scorer.scoreFaces(file, { crops: true });
    const ms = scorer.lastMs.total.toFixed(0);
    if (!faces.length) fail(addRow(file.name), 'no face found');
    faces.forEach((face, i) => {
      const row = addRow(file.name, i + 1);
      thumb(row, face.crop);
      fill(row, face, ms);
    });
    document.body.dataset.firstScoreMs ??= String(performance.now());
  } catch (err) {
    fail(addRow(file.name), err.message);
  } finally {
    setPending(-1);
  }
}

async function scoreFiles(files) {
  const whole = $('whole').checked;
  setPending(1); // until the last file is done
  for (const f of files) await (whole ? scoreWhole(f, f.name, URL.createObjectURL(f)) : scorePhoto(f));
  setPending(-1);
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
  const got = await Promise.all(names.map((n) => scoreWhole(`reference/${n}`, n, `reference/${n}`)));
  const ok = names.map((n, i) => [stored[n], got[i]]).filter(([, g]) => g !== null);
  const want = ok.map(([s]) => s), have = ok.map(([, g]) => g);
  const maxAbs = Math.max(...ok.map(([s, g]) => Math.abs(s - g)));
  const srcc = pearson(ranks(want), ranks(have));
  $('parity').textContent = `${ok.length} of ${names.length} reference faces: max |Δscore| ${maxAbs.toExponential(2)} `
    + `against the stored fp32 scores, SRCC ${srcc.toFixed(5)}`;
  $('parity').dataset.maxAbs = String(maxAbs);
  $('parity').dataset.srcc = String(srcc);
}

// --- the camera -------------------------------------------------------------------------------------------------

let stream = null;
let capturing = false;

function cameraStatus(state, text) {
  $('camera-status').dataset.state = state;
  $('camera-status').textContent = text;
  $('camera-status').className = ['denied', 'nocamera', 'error'].includes(state) ? 'warn' : 'muted';
}

function draw(faces) {
  const video = $('video'), canvas = $('overlay');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d');
  ctx.lineWidth = Math.max(2, canvas.width / 200);
  ctx.font = `${Math.max(14, canvas.width / 30)}px system-ui, sans-serif`;
  for (const f of faces) {
    const [x0, y0, x1, y1] = f.box;
    ctx.strokeStyle = ctx.fillStyle = f.accepted === false ? '#e33' : '#3c3';
    ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
    ctx.fillText(f.quality === null ? f.score.toFixed(3) : `quality ${f.quality.toFixed(0)}`, x0, Math.max(16, y0 - 6));
  }
}

function hint(faces) {
  return !faces.length ? 'No face in view.'
    : faces.length > 1 ? `${faces.length} faces in view: one person at a time, please.`
      : describe(faces[0]) || `score ${faces[0].score.toFixed(3)}`;
}

async function live() {
  let frames = 0, t0 = performance.now();
  while (stream) {
    if (!capturing) {
      try {
        const faces = await scorer.scoreFaces($('video'), CAMERA);
        draw(faces);
        $('live').textContent = hint(faces);
        $('live').dataset.faces = String(faces.length);
        frames++;
      } catch (err) {
        $('live').textContent = err.message;
      }
      const seconds = (performance.now() - t0) / 1e3;
      if (seconds > 2) {
        $('live').dataset.fps = String(frames / seconds);
        frames = 0;
        t0 = performance.now();
      }
    }
    await new Promise((r) => requestAnimationFrame(r));
  }
}

async function startCamera() {
  if (!navigator.mediaDevices?.getUserMedia) {
    cameraStatus('nocamera', 'This browser gives the page no camera (a camera needs a secure page, or localhost).');
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } } });
  } catch (err) {
    if (err.name === 'NotAllowedError') cameraStatus('denied', 'Camera permission was refused: allow the camera for this page and try again.');
    else if (err.name === 'NotFoundError' || err.name === 'OverconstrainedError') cameraStatus('nocamera', 'No camera was found.');
    else cameraStatus('error', `The camera could not be started: ${err.message}`);
    return;
  }
  const video = $('video');
  video.srcObject = stream;
  await video.play();
  $('stage').hidden = false;
  $('start').disabled = true;
  $('capture').disabled = false;
  cameraStatus('live', `Camera on (${video.videoWidth}×${video.videoHeight}). Look at the camera, then capture.`);
  live();
}

async function capture() {
  capturing = true;
  $('capture').disabled = true;
  cameraStatus('capturing', 'Hold still: keeping the best frame of the next 3 seconds…');
  try {
    const shot = await scorer.capture($('video'), { seconds: 3, onFrame: ({ faces }) => { draw(faces); $('live').textContent = hint(faces); } });
    const box = $('shot');
    box.hidden = false;
    box.replaceChildren();
    box.dataset.frames = String(shot.frames);
    if (!shot.crop) {
      box.dataset.reason = shot.reason;
      box.append(Object.assign(document.createElement('p'), { className: 'warn', textContent: `Nothing captured: ${shot.reason}.` }));
      cameraStatus('live', 'Camera on. Try again.');
      return;
    }
    delete box.dataset.reason;
    Object.assign(box.dataset, { score: shot.face.score, quality: shot.face.quality ?? '', accepted: shot.face.accepted ?? '' });
    // the captured frame's top-left pixel, for tests that mark their frames
    const corner = new OffscreenCanvas(1, 1).getContext('2d');
    corner.drawImage(shot.frame, 0, 0, 1, 1, 0, 0, 1, 1);
    box.dataset.corner = Array.from(corner.getImageData(0, 0, 1, 1).data.slice(0, 3)).join(',');
    const url = URL.createObjectURL(shot.crop);
    const link = Object.assign(document.createElement('a'), { href: url, download: 'face.png', textContent: 'Download the face (PNG)' });
    box.append(Object.assign(new Image(), { src: url, alt: 'the captured face' }),
               Object.assign(document.createElement('p'), { textContent: `Best of ${shot.frames} frames: ${describe(shot.face) || `score ${shot.face.score.toFixed(3)}`}` }),
               link);
    cameraStatus('live', 'Captured. Camera on.');
  } catch (err) {
    cameraStatus('error', `Capture failed: ${err.message}`);
  } finally {
    capturing = false;
    $('capture').disabled = false;
  }
}

function mode(name) {
  $('photos').hidden = name !== 'photos';
  $('camera').hidden = name !== 'camera';
  $('mode-photos').setAttribute('aria-pressed', String(name === 'photos'));
  $('mode-camera').setAttribute('aria-pressed', String(name === 'camera'));
}

async function main() {
  setPending(0);
  try {
    scorer = await FaceQualityScorer.load(undefined, { minQuality: params.get('minQuality') });
  } catch (err) {
    $('error').hidden = false;
    $('error').textContent = `The model could not be loaded: ${err.message}`;
    $('status').dataset.state = 'failed';
    $('status').textContent = '';
    return;
  }
  const m = scorer.manifest;
  $('status').textContent = `${m.arch}, ${m.precision}, ${m.preprocessing.input_size} px: ${scorer.runtime} `
    + `${scorer.runtimeVersion ?? ''} ${scorer.backend}, ${scorer.threads} thread(s), loaded in ${scorer.loadMs.toFixed(0)} ms`;
  $('status').dataset.state = 'ready';
  $('whole').checked = params.get('whole') === '1' || !scorer.detection;
  $('whole').disabled = !scorer.detection;
  $('files').addEventListener('change', (e) => scoreFiles(e.target.files));
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); scoreFiles(e.dataTransfer.files); });
  $('check').disabled = false;
  $('check').addEventListener('click', checkReference);
  $('mode-photos').addEventListener('click', () => mode('photos'));
  $('mode-camera').addEventListener('click', () => mode('camera'));
  $('start').disabled = !scorer.detection;
  $('start').addEventListener('click', startCamera);
  $('capture').addEventListener('click', capture);
  if (params.get('mode') === 'camera') mode('camera');
}

main();
