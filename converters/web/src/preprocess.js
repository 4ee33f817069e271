// The manifest's preprocessing in plain JavaScript (docs/preprocessing.md), pixel for pixel what
// fiqa_edge.preprocess does with Pillow: resize the shorter side with Pillow's antialiased bilinear
// filter (its fixed-point arithmetic included), centre crop, normalise in float32 arithmetic, NCHW.
// No DOM: it runs in the page's Web Worker and in Node.

const PRECISION_BITS = 32 - 8 - 2; // Pillow's Resample.c
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

/** (width, height) after resizing the shorter side to `short` (the longer side truncated). */
export function resizedSize(width, height, short) {
  if (width <= height) return [short, Math.trunc((short * height) / width)];
  return [Math.trunc((short * width) / height), short];
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the triangle (bilinear) filter.
function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1.0);
  const support = 1.0 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterScale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const t = Math.abs((x + xmin - center + 0.5) * ss);
      const w = t < 1.0 ? 1.0 - t : 0.0;
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      if (ww !== 0.0) kk[xx * ksize + x] /= ww;
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const fixed = new Int32Array(kk.length);
  for (let i = 0; i < kk.length; i++) {
    fixed[i] = kk[i] < 0 ? Math.trunc(-0.5 + kk[i] * ONE) : Math.trunc(0.5 + kk[i] * ONE);
  }
  return { ksize, bounds, k: fixed };
}

function clip8(acc) {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// One of Pillow's 8-bit passes along an axis (ImagingResampleHorizontal/Vertical_8bpc): output pixel b of
// line l sums the taps from src[l * lineStride + bounds[2b] * tapStride] on, tapStride apart, into
// out[l * outLineStride + b * outStep] (RGB).
function resamplePass(src, lines, lineStride, tapStride, { ksize, bounds, k }, size, outLineStride, outStep) {
  const out = new Uint8Array(lines * size * 3);
  for (let l = 0; l < lines; l++) {
    for (let b = 0; b < size; b++) {
      const taps = bounds[b * 2 + 1];
      let p = l * lineStride + bounds[b * 2] * tapStride;
      let r = HALF, g = HALF, bl = HALF;
      for (let t = 0; t < taps; t++, p += tapStride) {
        const w = k[b * ksize + t];
        r += src[p] * w;
        g += src[p + 1] * w;
        bl += src[p + 2] * w;
      }
      const o = l * outLineStride + b * outStep;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(bl);
    }
  }
  return out;
}

/**
 * Resize 8-bit RGB pixels (`src`, `channels` values per pixel, the first three used) to dw x dh with
 * Pillow's BILINEAR: horizontal pass first, then vertical, each rounded to 8 bits (without a box, the
 * vertical pass reads every row, so the horizontal one covers them all). Returns RGB (3 per pixel).
 */
export function resizeBilinear(src, sw, sh, channels, dw, dh) {
  let img = src;
  let stride = channels;
  if (dw !== sw) {
    img = resamplePass(src, sh, sw * channels, channels, coefficients(sw, dw), dw, dw * 3, 3);
    stride = 3;
  }
  if (dh === sh) return img;
  return resamplePass(img, dw, stride, dw * stride, coefficients(sh, dh), dh, 3, dw * 3);
}

/**
 * The w × h region at (x0, y0) of `pixels` (width × height, `channels` values per pixel, RGB first) as RGB, black
 * where it reaches beyond the image (as Pillow's crop).
 */
export function crop(pixels, width, height, channels, x0, y0, w, h) {
  const out = new Uint8Array(w * h * 3);
  const cw = Math.min(w, width - x0), ch = Math.min(h, height - y0);
  for (let y = 0; y < ch; y++) {
    for (let x = 0; x < cw; x++) {
      const p = ((y + y0) * width + x + x0) * channels, o = (y * w + x) * 3;
      out[o] = pixels[p]; out[o + 1] = pixels[p + 1]; out[o + 2] = pixels[p + 2];
    }
  }
  return out;
}

// Python's round(): halves to even (crop offsets are integers or halves).
export function roundHalfEven(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function normalisationTable(mean, std) {
  const table = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(mean[c]);
    const s = Math.fround(std[c]);
    for (let v = 0; v < 256; v++) {
      table[c * 256 + v] = Math.fround(Math.fround(Math.fround(v / 255) - m) / s);
    }
  }
  return table;
}

/**
 * The model input for one decoded image: `pixels` holds `channels` (3 or 4) 8-bit values per pixel,
 * RGB first; `spec` is the manifest's preprocessing block. Returns a Float32Array of 3 x N x N (`layout` 'CHW') or
 * N x N x 3 ('HWC').
 */
export function preprocess(pixels, width, height, channels, spec, layout = 'CHW') {
  const n = spec.input_size;
  const [rw, rh] = resizedSize(width, height, spec.resize ?? n);
  let rgb = pixels;
  let stride = channels;
  if (rw !== width || rh !== height) {
    rgb = resizeBilinear(pixels, width, height, channels, rw, rh);
    stride = 3;
  }
  const top = roundHalfEven((rh - n) / 2);
  const left = roundHalfEven((rw - n) / 2);
  const table = normalisationTable(spec.mean, spec.std);
  const out = new Float32Array(3 * n * n);
  // where a pixel's channel c goes: CHW planes, or HWC's three values side by side
  const [pixelStep, channelStep] = layout === 'HWC' ? [3, 1] : [1, n * n];
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const p = ((y + top) * rw + (x + left)) * stride;
      const o = (y * n + x) * pixelStep;
      out[o] = table[rgb[p]];
      out[o + channelStep] = table[256 + rgb[p + 1]];
      out[o + 2 * channelStep] = table[512 + rgb[p + 2]];
    }
  }
  return out;
}
