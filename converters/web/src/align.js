// Cropping a detected face to the model's framing, pixel for pixel what fiqa_edge.framing.align_face does with
// Pillow: a face larger than the frame is first shrunk with Pillow's antialiased bilinear resize, then one
// similarity transform (rotation, scale, shift) puts the eyes where the framing says, sampled as Pillow's
// bilinear affine transform samples (parts of the frame outside the image are black). No DOM.

import { crop, resizeBilinear, roundHalfEven } from './preprocess.js';

// Pillow's bilinear_filter32RGB after affine_transform: the sample at (xin, yin) of RGB `src` (w × h, `stride`
// values per pixel) into out[o..o+2]; points outside the image leave the output black.
function sample(src, w, h, stride, xin, yin, out, o) {
  if (xin < 0 || xin >= w || yin < 0 || yin >= h) return;
  const xs = xin - 0.5, ys = yin - 0.5;
  const x = Math.floor(xs), y = Math.floor(ys);
  const dx = xs - x, dy = ys - y;
  const x0 = (x < 0 ? 0 : x < w ? x : w - 1) * stride;
  const x1 = (x + 1 < 0 ? 0 : x + 1 < w ? x + 1 : w - 1) * stride;
  const row0 = (y < 0 ? 0 : y < h ? y : h - 1) * w * stride;
  const hasRow1 = y + 1 >= 0 && y + 1 < h;
  const row1 = (y + 1) * w * stride;
  for (let b = 0; b < 3; b++) {
    const a = src[row0 + x0 + b];
    let v1 = a + (src[row0 + x1 + b] - a) * dx;
    let v2 = v1;
    if (hasRow1) {
      const c = src[row1 + x0 + b];
      v2 = c + (src[row1 + x1 + b] - c) * dx;
    }
    v1 += (v2 - v1) * dy;
    out[o + b] = v1; // Uint8Array: truncated, as Pillow's (UINT8) cast
  }
}

/**
 * The framing.size square crop (RGB, 3 values per pixel) of `pixels` (width × height, `channels` 8-bit values per
 * pixel, RGB first) whose eyes (`eyes`: [[x, y] of the eye in the image's left, [x, y] of the other]) sit where
 * `framing` (the manifest's: size, eye_x, eye_y, eye_distance) puts them.
 */
export function alignFace(pixels, width, height, channels, eyes, framing) {
  let [left, right] = eyes.map(([x, y]) => [x, y]);
  let src = pixels, w = width, h = height, stride = channels;
  const size = framing.size;
  const distance = Math.max(Math.hypot(right[0] - left[0], right[1] - left[1]), 1e-6);
  let scale = (framing.eye_distance * size) / distance; // output pixels per input pixel
  if (scale < 1.0) {
    const reach = size / scale; // the output frame's extent in input pixels, whatever the rotation
    const mid = [(left[0] + right[0]) / 2, (left[1] + right[1]) / 2];
    const x0 = Math.max(0, Math.trunc(mid[0] - reach)), y0 = Math.max(0, Math.trunc(mid[1] - reach));
    const x1 = Math.min(width, Math.trunc(mid[0] + reach) + 1), y1 = Math.min(height, Math.trunc(mid[1] + reach) + 1);
    if (x1 > x0 && y1 > y0) {
      const rw = x1 - x0, rh = y1 - y0;
      const sw = Math.max(1, roundHalfEven(rw * scale)), sh = Math.max(1, roundHalfEven(rh * scale));
      src = resizeBilinear(crop(pixels, width, height, channels, x0, y0, rw, rh), rw, rh, 3, sw, sh);
      const sx = sw / rw, sy = sh / rh;
      [left, right] = [left, right].map(([x, y]) => [(x - x0) * sx, (y - y0) * sy]);
      w = sw; h = sh; stride = 3;
      scale = (framing.eye_distance * size) / Math.max(Math.hypot(right[0] - left[0], right[1] - left[1]), 1e-6);
    }
  }
  const angle = Math.atan2(right[1] - left[1], right[0] - left[0]);
  const cos = Math.cos(angle) / scale, sin = Math.sin(angle) / scale;
  const mid = [(left[0] + right[0]) / 2, (left[1] + right[1]) / 2];
  const cx = framing.eye_x * size, cy = framing.eye_y * size;
  // output (u, v) -> input: mid + R(angle) @ ((u, v) - (cx, cy)) / scale, at pixel centres as Pillow samples
  const a = [cos, -sin, mid[0] - cos * cx + sin * cy, sin, cos, mid[1] - sin * cx - cos * cy];
  const out = new Uint8Array(size * size * 3);
  for (let v = 0; v < size; v++) {
    for (let u = 0; u < size; u++) {
      const xu = u + 0.5, yv = v + 0.5;
      sample(src, w, h, stride, a[0] * xu + a[1] * yv + a[2], a[3] * xu + a[4] * yv + a[5], out, (v * size + u) * 3);
    }
  }
  return out;
}
