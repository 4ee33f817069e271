// The score scale a bundle's fiqa.json records, as fiqa_edge/score_scale.py reads it: a score's percentile among
// the model's reference faces, its 0-100 quality, and minimum-quality thresholds in the command line's forms
// (fiqa_edge/curation.py): a score (0.62), a percentile (30p) or a 0-100 quality (55q).

const LEVELS = Array.from({ length: 99 }, (_, i) => i + 1);

/** np.interp: y at x on the polyline (xs, ys), xs ascending; flat beyond the ends. */
function interp(x, xs, ys) {
  if (x <= xs[0]) return ys[0];
  if (x >= xs[xs.length - 1]) return ys[ys.length - 1];
  let hi = 1;
  while (xs[hi] < x) hi++;
  const lo = hi - 1;
  // numpy takes the right end of a flat run of equal xs
  if (xs[hi] === x) { while (hi + 1 < xs.length && xs[hi + 1] === x) hi++; return ys[hi]; }
  return ys[lo] + ((x - xs[lo]) * (ys[hi] - ys[lo])) / (xs[hi] - xs[lo]);
}

export class ScoreScale {
  /** `scale`: the manifest's `scale` ({percentiles: the 1st … 99th, minimum, maximum, …}). */
  constructor({ percentiles, minimum, maximum }) {
    if (!Array.isArray(percentiles) || percentiles.length !== 99) throw new Error('a score scale needs the percentiles 1-99');
    this.percentiles = percentiles;
    this.minimum = minimum;
    this.maximum = maximum;
  }

  get median() { return this.percentiles[49]; }

  /** The share of reference faces scoring below `score`, in percent. */
  percentile(score) {
    return interp(score, [this.minimum, ...this.percentiles, this.maximum], [0, ...LEVELS, 100]);
  }

  /** The 0-100 quality of `score`: a logistic centred on the reference median, 25 and 75 at the quartiles. */
  quality(score) {
    const spread = (this.percentiles[74] - this.percentiles[24]) / (2 * Math.log(3));
    if (spread <= 0) return score === this.median ? 50 : score > this.median ? 100 : 0;
    const z = (score - this.median) / spread;
    return 100 / (1 + Math.exp(-Math.max(Math.min(z, 700), -700)));
  }
}

/** A minimum quality ({kind, value}) from `0.62`, `30p` or `55q`; throws what is wrong with it, as the CLI does. */
export function parseMinQuality(text, scale, scoreRange = [0, 1]) {
  const raw = String(text).trim();
  const end = raw.slice(-1).toLowerCase();
  const suffix = end === 'p' || end === 'q' ? end : '';
  const number = raw.slice(0, raw.length - suffix.length);
  const value = Number(number);
  if (number === '' || !Number.isFinite(value)) {
    throw new Error(`minimum quality '${raw}': expected a score (0.62), a percentile (30p) or a 0-100 quality (55q)`);
  }
  const kind = { p: 'percentile', q: 'quality', '': 'score' }[suffix];
  if (kind !== 'score' && !scale) {
    throw new Error(`minimum quality ${raw}: the model records no score scale (run fiqa-edge calibrate on its checkpoint)`);
  }
  const [low, high] = kind === 'score' ? scoreRange : [0, 100];
  if (!(value >= low && value <= high)) throw new Error(`minimum quality ${raw}: outside the ${kind} range [${low}, ${high}]`);
  return { kind, value };
}

/** {percentile, quality, accepted} of `score` (null where the model has no scale, or no threshold is set). */
export function place(score, scale, threshold) {
  const percentile = scale ? scale.percentile(score) : null;
  const quality = scale ? scale.quality(score) : null;
  const measured = threshold ? { score, percentile, quality }[threshold.kind] : null;
  return { percentile, quality, accepted: threshold ? measured !== null && measured >= threshold.value : null };
}
