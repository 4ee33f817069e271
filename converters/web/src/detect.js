// BlazeFace face detection around the models' runs, as fiqa_edge/detect/blazeface.py does it: letterbox the image
// (or a tile of it) into the model's square input (values in [-1, 1]), decode the SSD anchors' offsets, weighted
// non-maximum suppression, and the calibrated rules for what is a face. Every number (inputs, anchors, thresholds,
// overlaps) comes from the bundle's detect/settings.json, written from the Python package. No DOM: the model runs
// are a function the caller passes.

import { crop, resizeBilinear, roundHalfEven } from './preprocess.js';

/** Anchor centres, [x0, y0, x1, y1, …] in [0, 1]: each cell's centre, repeated per anchor, row by row. */
export function anchors(grids) {
  const out = [];
  for (const [cells, perCell] of grids) {
    for (let y = 0; y < cells; y++) {
      for (let x = 0; x < cells; x++) {
        for (let k = 0; k < perCell; k++) out.push(Math.fround((x + 0.5) / cells), Math.fround((y + 0.5) / cells));
      }
    }
  }
  return Float32Array.from(out);
}

/** Tile origins along one axis: every `step`, the last tile flush with the end. */
export function starts(length, side, step) {
  if (length <= side) return [0];
  const out = new Set();
  for (let s = 0; s < length - side; s += step) out.add(s);
  out.add(length - side);
  return [...out].sort((a, b) => a - b);
}

/**
 * The model input for an image: shrunk (Pillow's bilinear) to fit the n × n square, centred, black around,
 * values v / 127.5 - 1 (float32, NHWC), and where the image sits: {input, scale, ox, oy}.
 */
export function letterbox(pixels, width, height, channels, n) {
  const scale = n / Math.max(width, height);
  const w = Math.max(1, roundHalfEven(width * scale)), h = Math.max(1, roundHalfEven(height * scale));
  const ox = Math.floor((n - w) / 2), oy = Math.floor((n - h) / 2);
  const rgb = w === width && h === height && channels === 3 ? pixels : resizeBilinear(pixels, width, height, channels, w, h);
  const stride = w === width && h === height ? channels : 3;
  const input = new Float32Array(n * n * 3).fill(-1);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const p = (y * w + x) * stride, o = ((y + oy) * n + x + ox) * 3;
      for (let c = 0; c < 3; c++) input[o + c] = Math.fround(Math.fround(rgb[p + c] / 127.5) - 1);
    }
  }
  return { input, scale, ox, oy };
}

/**
 * Every box of one model above a threshold, before merging: {boxes: [[x0, y0, x1, y1]], confidence, landmarks:
 * [[[x, y] × 6]], sure}. `run(input)` runs the model on an n × n × 3 input and resolves to {scores, boxes}
 * (Float32Arrays, one logit and 16 offsets per anchor). With `tiles`, an image more than twice the input's size is
 * also searched in overlapping square tiles, as in Python.
 */
export async function candidates(run, model, pixels, width, height, channels, { tiles = true } = {}) {
  const found = { boxes: [], confidence: [], landmarks: [], sure: [] };
  const pass = async (px, w, h, ch, x0, y0, tile) => {
    const n = model.input;
    const { input, scale, ox, oy } = letterbox(px, w, h, ch, n);
    const raw = await run(input);
    const alone = model.min_confidence.alone[tile], agreed = model.min_confidence.agreed[tile];
    const least = Math.min(alone, agreed);
    const centres = model.anchorCentres;
    for (let i = 0; i < raw.scores.length; i++) {
      const logit = Math.max(-100, Math.min(100, raw.scores[i]));
      const confidence = 1 / (1 + Math.exp(-logit));
      if (!(confidence >= least)) continue;
      const r = raw.boxes.subarray(i * 16, i * 16 + 16);
      const ax = Math.fround(centres[2 * i] * n), ay = Math.fround(centres[2 * i + 1] * n);
      const px2 = (v, a, o, origin) => (Math.fround(v + a) - o) / scale + origin;
      const cx = px2(r[0], ax, ox, x0), cy = px2(r[1], ay, oy, y0);
      const hw = Math.fround(Math.fround(r[2] / scale) / 2), hh = Math.fround(Math.fround(r[3] / scale) / 2);
      found.boxes.push([cx - hw, cy - hh, cx + hw, cy + hh]);
      found.confidence.push(confidence);
      const marks = [];
      for (let k = 0; k < 6; k++) marks.push([px2(r[4 + 2 * k], ax, ox, x0), px2(r[5 + 2 * k], ay, oy, y0)]);
      found.landmarks.push(marks);
      found.sure.push(confidence >= alone);
    }
  };
  await pass(pixels, width, height, channels, 0, 0, 0);
  const n = model.input, longest = Math.max(width, height);
  if (tiles && longest > 2 * n) {
    const side = Math.max(2 * n, Math.floor(longest / 3)), step = Math.floor(side / 2);
    for (const y of starts(height, side, step)) {
      for (const x of starts(width, side, step)) {
        await pass(crop(pixels, width, height, channels, x, y, side, side), side, side, 3, x, y, 1);
      }
    }
  }
  return found;
}

function area(b) { return (b[2] - b[0]) * (b[3] - b[1]); }

function intersection(a, b) {
  return Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
}

/** Intersection over union of two [x0, y0, x1, y1] boxes. */
export function iou(a, b) {
  const inter = intersection(a, b);
  return inter / Math.max(area(a) + area(b) - inter, 1e-9);
}

function contained(a, b) {
  return intersection(a, b) / Math.max(Math.min(area(a), area(b)), 1e-9);
}

/**
 * Faces from the candidates of one or more models over one image, most confident first ({box, confidence,
 * landmarks}): weighted NMS over all of them; a group is a face when one of its boxes is sure on its own, or when
 * boxes of two models are in it; a face mostly inside a more confident one, or mostly holding it, is dropped.
 */
export function merge(all, { nms_iou: nmsIou, contained: containedShare }) {
  const boxes = [], confidence = [], landmarks = [], sure = [], model = [];
  all.forEach((c, k) => {
    boxes.push(...c.boxes); confidence.push(...c.confidence); landmarks.push(...c.landmarks); sure.push(...c.sure);
    model.push(...c.confidence.map(() => k));
  });
  let order = confidence.map((_, i) => i).sort((a, b) => confidence[b] - confidence[a]);
  const faces = [];
  while (order.length) {
    const top = boxes[order[0]];
    const overlap = order.map((i) => iou(top, boxes[i]));
    const group = order.filter((_, j) => overlap[j] >= nmsIou);
    order = order.filter((_, j) => overlap[j] < nmsIou);
    const total = group.reduce((s, i) => s + confidence[i], 0);
    const box = [0, 0, 0, 0], marks = landmarks[group[0]].map(() => [0, 0]);
    for (const i of group) {
      const w = confidence[i] / total;
      for (let c = 0; c < 4; c++) box[c] += boxes[i][c] * w;
      landmarks[i].forEach(([x, y], k) => { marks[k][0] += x * w; marks[k][1] += y * w; });
    }
    if (!group.some((i) => sure[i]) && new Set(group.map((i) => model[i])).size < 2) continue;
    if (faces.every((f) => contained(box, f.box) < containedShare)) {
      faces.push({ box, confidence: confidence[group[0]], landmarks: marks });
    }
  }
  return faces;
}
