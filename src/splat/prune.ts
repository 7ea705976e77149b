/**
 * Gaussian budgets: a cloud larger than its budget keeps a share of its Gaussians in every region of its body, and
 * the kept ones grow to cover what went. Importance is what a Gaussian can add to a picture: its opacity times the
 * area of its largest cross-section (the two largest axes), so a faint speck goes before an opaque sheet. A cut by
 * importance alone empties whole regions of a surface whose Gaussians are alike: on a preview's inflated surface
 * the tilted sides outscore the flat front and back by a little, the front and back went first, and the body was
 * see-through. So the cut is stratified: a Gaussian that outweighs its fair share of the budget stays as it is;
 * the rest, in the order of a space-filling curve (nearby in the order is nearby in space), are cut into runs of
 * equal importance, each keeping its most important few, widened in their own plane by the run's importance over
 * theirs (at most MAX_WIDEN in area) so the run's coverage stays. The frame the validator normalises by is kept:
 * the Gaussians at the bounding box's faces always stay, and places move between runs so the mean does not move.
 * The kept Gaussians stay in their order; the input is not changed. No per-Gaussian objects.
 */
import { selectGaussians, type GaussianCloud } from './cloud.js';

/** How importance weighs a Gaussian's size: the area of its largest cross-section, or its volume. */
export type ImportanceMeasure = 'area' | 'volume';

/** log(opacity x size) of every Gaussian, opacity after the sigmoid, size from the log-scales. */
export function importance(cloud: GaussianCloud, measure: ImportanceMeasure = 'area'): Float32Array {
  const { opacity, scale_0, scale_1, scale_2 } = cloud.columns;
  const out = new Float32Array(cloud.count);
  for (let i = 0; i < cloud.count; i++) {
    const o = opacity[i];
    // log(sigmoid(o)), stable on both sides.
    const logAlpha = o < 0 ? o - Math.log1p(Math.exp(o)) : -Math.log1p(Math.exp(-o));
    const a = scale_0[i],
      b = scale_1[i],
      c = scale_2[i];
    const size = measure === 'volume' ? a + b + c : a + b + c - Math.min(a, b, c);
    out[i] = logAlpha + size;
  }
  return out;
}

export interface PruneResult {
  cloud: GaussianCloud;
  /** Gaussians dropped (0 when the cloud was within its budget: then `cloud` is the input itself). */
  dropped: number;
}

/**
 * Most a kept Gaussian's cross-section grows (area factor): a run of faint specks around one kept Gaussian must not
 * turn it into a veil.
 */
const MAX_WIDEN = 8;

/**
 * Keeps `budget` Gaussians of `cloud` (all of them when it has no more than that), a share of every region, the
 * kept ones widened to cover their region's dropped ones. The input is not changed.
 */
export function pruneToBudget(cloud: GaussianCloud, budget: number, measure: ImportanceMeasure = 'area'): PruneResult {
  if (!(budget >= 0) || !Number.isInteger(budget)) throw new RangeError(`a Gaussian budget is a whole number, got ${budget}`);
  if (cloud.count <= budget) return { cloud, dropped: 0 };
  const weights = linearWeights(importance(cloud, measure));
  const keep = new Uint8Array(cloud.count);
  // The Gaussians that set the bounding box stay: the extent, which the validator rescales by, is kept.
  let places = budget;
  for (const i of extremes(cloud)) {
    if (keep[i] || places === 0) continue;
    keep[i] = 1;
    places--;
  }
  const runs = stratify(cloud, weights, keep, places);
  keepCentroid(cloud, weights, runs, keep);
  const out = selectGaussians(cloud, keep);
  widen(out, keep, runs);
  return { cloud: out, dropped: cloud.count - out.count };
}

/** exp(score - max score) in double precision: importance on a linear scale, the largest 1 (NaN counts as 0). */
function linearWeights(scores: Float32Array): Float64Array {
  let top = -Infinity;
  for (let i = 0; i < scores.length; i++) if (scores[i] > top) top = scores[i];
  const out = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) {
    // Every score infinite: the +Infinity ones (if any) are the only ones that count.
    const w = Number.isFinite(top) ? Math.exp(scores[i] - top) : scores[i] === Infinity ? 1 : 0;
    out[i] = Number.isNaN(w) ? 0 : w;
  }
  return out;
}

/** Places each run has: a run is this many shares of the importance left to spread, and keeps as many Gaussians. */
const RUN_PLACES = 2;
/** Passes that settle the water level; past them, a Gaussian over its share is one of its run's members. */
const WATER_PASSES = 16;

/**
 * The runs of a cut: consecutive stretches of the Morton order, each of RUN_PLACES shares of importance. `run[i]`
 * is the run of Gaussian i (-1 for one kept as it is: an extreme, or one heavier than a share), `weight[r]` the
 * importance of run r's members, `keptWeight[r]` that of its kept ones.
 */
interface Runs {
  run: Int32Array;
  weight: Float64Array;
  keptWeight: Float64Array;
}

/**
 * Marks `places` more Gaussians in `keep`. Those that outweigh a fair share of what is left stay as they are (the
 * share is recomputed as they leave the pool, until none does); the rest, in Morton order, are cut into runs of
 * RUN_PLACES shares each (by the midpoint of each Gaussian's cumulative interval), and each run keeps its
 * RUN_PLACES most important. Consecutive midpoints are less than a share apart, so a run has about as many
 * members as places or more; the few places left by a run with fewer go to the most important of the rest.
 */
function stratify(cloud: GaussianCloud, weights: Float64Array, keep: Uint8Array, places: number): Runs {
  const n = cloud.count;
  const run = new Int32Array(n).fill(-1);
  const none: Runs = { run, weight: new Float64Array(0), keptWeight: new Float64Array(0) };
  if (places <= 0) return none;
  // Water level: a Gaussian at or over its share of the importance the others leave stays as it is. Each pass
  // lowers the share (those leaving the pool outweigh it) and so may take in more; a few passes settle it.
  let total = 0;
  for (let i = 0; i < n; i++) if (!keep[i]) total += weights[i];
  let share = total / places;
  let heavy = Infinity,
    k = 0;
  for (let pass = 0; pass < WATER_PASSES && share > 0; pass++) {
    let count = 0,
      sum = 0;
    for (let i = 0; i < n; i++)
      if (!keep[i] && weights[i] >= share) {
        count++;
        sum += weights[i];
      }
    if (count === k) break;
    heavy = share;
    k = count;
    share = count < places ? (total - sum) / (places - count) : 0;
  }
  if (!(share > 0)) {
    // Nothing left to spread (the budget is all heavy Gaussians, or the rest weigh nothing): the most important stay.
    keepHeaviest(weights, keep, places);
    return none;
  }
  const spread = places - k;
  const runCount = Math.ceil(spread / RUN_PLACES);
  const weight = new Float64Array(runCount);
  const keptWeight = new Float64Array(runCount);
  const order = mortonOrder(cloud);
  // The pool in Morton order, and where each run starts in it.
  const pooled = new Uint32Array(n);
  const starts = new Uint32Array(runCount + 1);
  let length = 0,
    cumulative = 0;
  for (let o = 0; o < n; o++) {
    const i = order[o];
    if (keep[i]) continue;
    const w = weights[i];
    if (w >= heavy) {
      keep[i] = 1;
      continue;
    }
    const r = Math.min(runCount - 1, Math.floor((cumulative + w / 2) / (RUN_PLACES * share)));
    cumulative += w;
    run[i] = r;
    weight[r] += w;
    starts[r + 1] = ++length;
    pooled[length - 1] = i;
  }
  for (let r = 1; r <= runCount; r++) if (starts[r] < starts[r - 1]) starts[r] = starts[r - 1];
  let short = 0;
  for (let r = 0; r < runCount; r++) {
    const own = Math.min(RUN_PLACES, spread - r * RUN_PLACES);
    const end = starts[r + 1];
    // The run's `own` most important, by as many scans (a run of many specks is long; `own` is small).
    for (let p = starts[r]; p < Math.min(end, starts[r] + own); p++) {
      let best = p;
      for (let q = p + 1; q < end; q++) if (weights[pooled[q]] > weights[pooled[best]]) best = q;
      const i = pooled[best];
      pooled[best] = pooled[p];
      pooled[p] = i;
      keep[i] = 1;
      keptWeight[r] += weights[i];
    }
    short += Math.max(0, own - (end - starts[r]));
  }
  for (const i of keepHeaviest(weights, keep, short)) keptWeight[run[i]] += weights[i];
  return { run, weight, keptWeight };
}

/** Marks the `count` heaviest Gaussians not yet kept (ties in order) and returns them. */
function keepHeaviest(weights: Float64Array, keep: Uint8Array, count: number): number[] {
  const out: number[] = [];
  if (count <= 0) return out;
  let size = 0;
  for (let i = 0; i < weights.length; i++) if (!keep[i]) size++;
  const rest = new Float64Array(size);
  for (let i = 0, j = 0; i < weights.length; i++) if (!keep[i]) rest[j++] = weights[i];
  const threshold = rest.sort()[size - Math.min(count, size)];
  for (let i = 0; i < weights.length && out.length < count; i++) if (!keep[i] && weights[i] > threshold) out.push(i);
  for (let i = 0; i < weights.length && out.length < count; i++) if (!keep[i] && weights[i] === threshold) out.push(i);
  for (const i of out) keep[i] = 1;
  return out;
}

/** Rounds of exchanges that move the kept set's mean back. */
const EXCHANGE_ROUNDS = 8;

/**
 * Moves the kept set's mean coordinate back onto the whole cloud's. The validator centres every asset on the
 * scalar mean of all its coordinates, and importance is not spread as the Gaussians are: a mean moved by a
 * hundredth of the extent shifts every view by pixels, which costs far more than the Gaussians themselves. Each
 * round, a run that keeps two or more may give its least important kept Gaussian's place to the most important
 * dropped one of another run, of about the same importance (the same power of two), so every run keeps some
 * and the kept importance barely changes; the pairs that move the mean furthest are taken until it is back.
 */
function keepCentroid(cloud: GaussianCloud, weights: Float64Array, runs: Runs, keep: Uint8Array): void {
  const runCount = runs.weight.length;
  if (runCount === 0) return;
  const n = cloud.count;
  const { x, y, z } = cloud.columns;
  let sum = 0,
    keptSum = 0,
    kept = 0,
    lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const s = x[i] + y[i] + z[i];
    sum += s;
    if (s < lo) lo = s;
    if (s > hi) hi = s;
    if (keep[i]) {
      keptSum += s;
      kept++;
    }
  }
  // Error of the kept sum against `kept` Gaussians at the whole cloud's mean; a millionth of the cloud's range
  // is a thousandth of a pixel in any view.
  let error = keptSum - (kept * sum) / n;
  const tolerance = 1e-6 * (hi - lo) * kept;
  const lightest = new Int32Array(runCount);
  const heaviest = new Int32Array(runCount);
  const keptCount = new Uint32Array(runCount);
  for (let round = 0; round < EXCHANGE_ROUNDS && Math.abs(error) > tolerance; round++) {
    const direction = error > 0 ? -1 : 1;
    const along = (i: number) => direction * (x[i] + y[i] + z[i]);
    lightest.fill(-1);
    heaviest.fill(-1);
    keptCount.fill(0);
    for (let i = 0; i < n; i++) {
      const r = runs.run[i];
      if (r < 0) continue;
      if (keep[i]) {
        keptCount[r]++;
        if (lightest[r] < 0 || weights[i] < weights[lightest[r]]) lightest[r] = i;
      } else if (heaviest[r] < 0 || weights[i] > weights[heaviest[r]]) heaviest[r] = i;
    }
    // Each class of importance (a power of two) pairs the one whose leaving moves the mean most with the one
    // whose joining does, and so on down both lists.
    const out = candidatesByClass(lightest, keptCount, 2, weights, along, 1);
    const into = candidatesByClass(heaviest, keptCount, 0, weights, along, -1);
    const outs: number[] = [],
      ins: number[] = [];
    for (let a = 0, b = 0; a < out.order.length && b < into.order.length; ) {
      if (out.power[a] !== into.power[b]) {
        if (out.power[a] < into.power[b]) a++;
        else b++;
        continue;
      }
      const power = out.power[a];
      for (; a < out.order.length && b < into.order.length && out.power[a] === power && into.power[b] === power; a++, b++) {
        if (along(into.order[b]) <= along(out.order[a])) break;
        outs.push(out.order[a]);
        ins.push(into.order[b]);
      }
      while (a < out.order.length && out.power[a] === power) a++;
      while (b < into.order.length && into.power[b] === power) b++;
    }
    const pairs = outs.map((_, p) => p);
    let remaining = Math.abs(error);
    let exchanged = false;
    for (const p of sortedAlong(pairs, (p) => along(ins[p]) - along(outs[p]), -1)) {
      const i = outs[p],
        j = ins[p];
      const gain = along(j) - along(i);
      // Largest gains first; one that would overshoot is passed over for smaller ones.
      if (gain > remaining) continue;
      keep[i] = 0;
      keep[j] = 1;
      runs.keptWeight[runs.run[i]] -= weights[i];
      runs.keptWeight[runs.run[j]] += weights[j];
      error += direction * gain;
      remaining -= gain;
      exchanged = true;
      if (remaining <= tolerance) return;
    }
    // No pair fits what is left: another round would find the same ones.
    if (!exchanged) return;
  }
}

/** Lowest power of two of importance told apart when pairing: lighter Gaussians share one class. */
const LIGHTEST_CLASS = -60;

/**
 * The runs' candidates (`chosen[r]`, where run r has at least `least` kept, and one), ordered by class of importance
 * (its power of two, from the lightest) and within a class by `along` (ascending for 1, descending for -1).
 */
function candidatesByClass(
  chosen: Int32Array,
  keptCount: Uint32Array,
  least: number,
  weights: Float64Array,
  along: (i: number) => number,
  direction: 1 | -1,
): { order: Uint32Array; power: Int32Array } {
  const indices: number[] = [];
  for (let r = 0; r < chosen.length; r++) if (chosen[r] >= 0 && keptCount[r] >= least) indices.push(chosen[r]);
  const classOf = (i: number) =>
    weights[i] > 0 ? Math.max(LIGHTEST_CLASS, Math.min(0, Math.floor(Math.log2(weights[i])))) : LIGHTEST_CLASS;
  let lo = Infinity,
    hi = -Infinity;
  for (const i of indices) {
    const v = direction * along(i);
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  // Packed (class, along, place) doubles, sorted as numbers: 6 + 21 bits of key above 26 bits of place.
  const scale = hi > lo && Number.isFinite(hi - lo) ? (2 ** 21 - 1) / (hi - lo) : 0;
  const packed = new Float64Array(indices.length);
  for (let k = 0; k < indices.length; k++) {
    const q = (direction * along(indices[k]) - lo) * scale;
    packed[k] = ((classOf(indices[k]) - LIGHTEST_CLASS) * 2 ** 21 + Math.floor(q >= 0 ? q : 0)) * 2 ** 26 + k;
  }
  packed.sort();
  const order = new Uint32Array(indices.length);
  const power = new Int32Array(indices.length);
  for (let k = 0; k < packed.length; k++) {
    order[k] = indices[packed[k] % 2 ** 26];
    power[k] = classOf(order[k]);
  }
  return { order, power };
}

/** Grows each run's kept Gaussians (in `out`, which holds the kept ones in order) by its weight over theirs. */
function widen(out: GaussianCloud, keep: Uint8Array, runs: Runs): void {
  const { scale_0, scale_1, scale_2 } = out.columns;
  for (let i = 0, j = 0; i < keep.length; i++) {
    if (!keep[i]) continue;
    const r = runs.run[i];
    if (r >= 0 && runs.keptWeight[r] > 0) {
      const factor = Math.min(MAX_WIDEN, Math.max(1, runs.weight[r] / runs.keptWeight[r]));
      // Area grows by `factor`: each of the two largest axes by its square root (log-scales: half its log).
      const grow = 0.5 * Math.log(factor);
      const a = scale_0[j],
        b = scale_1[j],
        c = scale_2[j];
      const thinnest = a <= b && a <= c ? 0 : b <= c ? 1 : 2;
      if (thinnest !== 0) scale_0[j] = a + grow;
      if (thinnest !== 1) scale_1[j] = b + grow;
      if (thinnest !== 2) scale_2[j] = c + grow;
    }
    j++;
  }
}

/** Gaussian indices ordered along a Morton (Z-order) curve over the bounding cube, 1024 cells a side. */
function mortonOrder(cloud: GaussianCloud): Uint32Array {
  const n = cloud.count;
  const { x, y, z } = cloud.columns;
  let x0 = Infinity,
    y0 = Infinity,
    z0 = Infinity,
    x1 = -Infinity,
    y1 = -Infinity,
    z1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const a = x[i],
      b = y[i],
      c = z[i];
    if (a < x0) x0 = a;
    if (a > x1) x1 = a;
    if (b < y0) y0 = b;
    if (b > y1) y1 = b;
    if (c < z0) z0 = c;
    if (c > z1) z1 = c;
  }
  const side = Math.max(x1 - x0, y1 - y0, z1 - z0);
  const cells = side > 0 && Number.isFinite(side) ? 1023.999 / side : 0;
  const cell = (v: number) => Math.min(1023, Math.max(0, Math.floor(v * cells))) || 0;
  const codes = new Uint32Array(n);
  for (let i = 0; i < n; i++)
    codes[i] = (spreadBits(cell(x[i] - x0)) | (spreadBits(cell(y[i] - y0)) << 1) | (spreadBits(cell(z[i] - z0)) << 2)) >>> 0;
  return radixOrder(codes);
}

/** The 10 low bits of v, two zero bits between each. */
function spreadBits(v: number): number {
  v = (v | (v << 16)) & 0x030000ff;
  v = (v | (v << 8)) & 0x0300f00f;
  v = (v | (v << 4)) & 0x030c30c3;
  return (v | (v << 2)) & 0x09249249;
}

/** Indices sorted by 30-bit codes (stable LSD radix sort, two 15-bit digits). */
function radixOrder(codes: Uint32Array): Uint32Array {
  const n = codes.length;
  let order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  let next = new Uint32Array(n);
  const counts = new Uint32Array(1 << 15);
  for (let shift = 0; shift < 30; shift += 15) {
    counts.fill(0);
    for (let k = 0; k < n; k++) counts[(codes[k] >>> shift) & 0x7fff]++;
    for (let d = 0, sum = 0; d < counts.length; d++) {
      const c = counts[d];
      counts[d] = sum;
      sum += c;
    }
    for (let k = 0; k < n; k++) {
      const i = order[k];
      next[counts[(codes[i] >>> shift) & 0x7fff]++] = i;
    }
    [order, next] = [next, order];
  }
  return order;
}

/** Indices of the Gaussians at the least and the most x, y and z. */
function extremes(cloud: GaussianCloud): number[] {
  const out: number[] = [];
  for (const column of [cloud.columns.x, cloud.columns.y, cloud.columns.z]) {
    let lo = 0,
      hi = 0;
    for (let i = 1; i < cloud.count; i++) {
      if (column[i] < column[lo]) lo = i;
      if (column[i] > column[hi]) hi = i;
    }
    out.push(lo, hi);
  }
  return out;
}

/**
 * Indices ordered by `key` (ascending for 1, descending for -1), to within 2^-21 of the keys' range: the keys,
 * quantised, and the indices' places packed into doubles and sorted as numbers (no comparator calls).
 */
function sortedAlong(indices: readonly number[], key: (i: number) => number, direction: 1 | -1): Uint32Array {
  const m = indices.length;
  const keys = new Float64Array(m);
  let lo = Infinity,
    hi = -Infinity;
  for (let k = 0; k < m; k++) {
    const v = direction * key(indices[k]);
    keys[k] = v;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const scale = hi > lo && Number.isFinite(hi - lo) ? (2 ** 21 - 1) / (hi - lo) : 0;
  const packed = new Float64Array(m);
  for (let k = 0; k < m; k++) {
    const q = (keys[k] - lo) * scale;
    packed[k] = Math.floor(q >= 0 ? q : 0) * 2 ** 32 + k;
  }
  packed.sort();
  const out = new Uint32Array(m);
  for (let k = 0; k < m; k++) out[k] = indices[packed[k] % 2 ** 32];
  return out;
}
