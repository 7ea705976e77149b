/**
 * Gaussian budgets: a cloud larger than its budget keeps its most important Gaussians and drops the rest.
 * Importance is what a Gaussian can add to a picture: its opacity times the area of its largest cross-section
 * (the two largest axes), so a faint speck goes before an opaque sheet. Scores are computed in log space (no
 * overflow for large log-scales) into one Float32Array; the cut is an O(n) selection (Floyd-Rivest) on a copy,
 * and the kept Gaussians stay in their order. The frame the validator normalises by is kept: the Gaussians at
 * the bounding box's faces always stay, and a few near the cut are exchanged so the centroid does not move.
 * No per-Gaussian objects.
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
    const a = scale_0[i], b = scale_1[i], c = scale_2[i];
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

/** Keeps the `budget` most important Gaussians of `cloud` (all of them when it has no more than that). */
export function pruneToBudget(cloud: GaussianCloud, budget: number, measure: ImportanceMeasure = 'area'): PruneResult {
  if (!(budget >= 0) || !Number.isInteger(budget)) throw new RangeError(`a Gaussian budget is a whole number, got ${budget}`);
  if (cloud.count <= budget) return { cloud, dropped: 0 };
  const scores = importance(cloud, measure);
  // The Gaussians that set the bounding box stay: the extent, which the validator rescales by, is kept.
  for (const i of extremes(cloud)) scores[i] = Infinity;
  const threshold = kthLargest(scores.slice(), budget);
  const keep = new Uint8Array(cloud.count);
  let kept = 0;
  for (let i = 0; i < cloud.count; i++) if (scores[i] > threshold) { keep[i] = 1; kept++; }
  // Ties at the threshold fill the rest, in order, so the count is exactly the budget.
  for (let i = 0; i < cloud.count && kept < budget; i++) if (scores[i] === threshold) { keep[i] = 1; kept++; }
  keepCentroid(cloud, scores, keep, budget);
  return { cloud: selectGaussians(cloud, keep), dropped: cloud.count - kept };
}

/** Indices of the Gaussians at the least and the most x, y and z. */
function extremes(cloud: GaussianCloud): number[] {
  const out: number[] = [];
  for (const column of [cloud.columns.x, cloud.columns.y, cloud.columns.z]) {
    let lo = 0, hi = 0;
    for (let i = 1; i < cloud.count; i++) {
      if (column[i] < column[lo]) lo = i;
      if (column[i] > column[hi]) hi = i;
    }
    out.push(lo, hi);
  }
  return out;
}

/** Share of the budget near the cut whose Gaussians may be exchanged to keep the centroid. */
const EXCHANGE_SHARE = 0.1;
const EXCHANGE_ROUNDS = 4;

/**
 * Moves the kept set's centroid back onto the whole cloud's by exchanging Gaussians on either side of the cut
 * (the least important kept for the most important dropped, of nearly equal importance). The validator centres
 * every asset on its mean: a centroid moved by a hundredth of the extent shifts every view by pixels, which
 * costs far more than the Gaussians themselves.
 */
function keepCentroid(cloud: GaussianCloud, scores: Float32Array, keep: Uint8Array, budget: number): void {
  const n = cloud.count;
  const { x, y, z } = cloud.columns;
  const m = Math.min(budget, n - budget, Math.max(64, Math.round(EXCHANGE_SHARE * budget)));
  if (m <= 0) return;
  const sorted = scores.slice();
  const high = kthLargest(sorted, Math.max(1, budget - m));
  const low = kthLargest(sorted, Math.min(n, budget + m));
  let sx = 0, sy = 0, sz = 0, kx = 0, ky = 0, kz = 0;
  for (let i = 0; i < n; i++) {
    sx += x[i]; sy += y[i]; sz += z[i];
    if (keep[i]) { kx += x[i]; ky += y[i]; kz += z[i]; }
  }
  // Error of the kept sum against `budget` Gaussians at the whole cloud's centroid.
  const error = [kx - (budget * sx) / n, ky - (budget * sy) / n, kz - (budget * sz) / n];
  const out: number[] = [];
  const into: number[] = [];
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(scores[i])) continue;
    if (keep[i] && scores[i] < high) out.push(i);
    else if (!keep[i] && scores[i] >= low) into.push(i);
  }
  for (let round = 0; round < EXCHANGE_ROUNDS; round++) {
    const size = Math.hypot(error[0], error[1], error[2]);
    if (size < 1e-9 * budget) return;
    const ux = -error[0] / size, uy = -error[1] / size, uz = -error[2] / size;
    const along = (i: number) => x[i] * ux + y[i] * uy + z[i] * uz;
    // Sorted by position along u: typed arrays of keys, so the sorts compare numbers, not call closures.
    const leaving = sortedAlong(out.filter((i) => keep[i]), along, 1);
    const joining = sortedAlong(into.filter((i) => !keep[i]), along, -1);
    let remaining = size;
    for (let k = 0; k < Math.min(leaving.length, joining.length); k++) {
      const i = leaving[k], j = joining[k];
      const gain = along(j) - along(i);
      // Stop before overshooting: each exchange moves the error by `gain` along u.
      if (gain <= 0 || gain > 2 * remaining) break;
      keep[i] = 0;
      keep[j] = 1;
      error[0] += x[j] - x[i]; error[1] += y[j] - y[i]; error[2] += z[j] - z[i];
      remaining -= gain;
    }
  }
}

/** The k-th largest value (k >= 1) of `values`, which it reorders. NaN counts as the smallest. */
export function kthLargest(values: Float32Array, k: number): number {
  if (k < 1 || k > values.length) throw new RangeError(`k must be in 1..${values.length}, got ${k}`);
  for (let i = 0; i < values.length; i++) if (values[i] !== values[i]) values[i] = -Infinity;
  // Descending order: the k-th largest sits at index k - 1.
  select(values, k - 1, 0, values.length - 1);
  return values[k - 1];
}

/** Floyd-Rivest selection, descending: afterwards values[k] is in its sorted place, larger ones before it. */
function select(a: Float32Array, k: number, left: number, right: number): void {
  while (right > left) {
    if (right - left > 600) {
      // Narrow to a sample's neighbourhood of k first: expected n + min(k, n - k) comparisons.
      const n = right - left + 1;
      const m = k - left + 1;
      const z = Math.log(n);
      const s = 0.5 * Math.exp((2 * z) / 3);
      const sd = 0.5 * Math.sqrt((z * s * (n - s)) / n) * (m - n / 2 < 0 ? -1 : 1);
      const newLeft = Math.max(left, Math.floor(k - (m * s) / n + sd));
      const newRight = Math.min(right, Math.floor(k + ((n - m) * s) / n + sd));
      select(a, k, newLeft, newRight);
    }
    const t = a[k];
    let i = left;
    let j = right;
    swap(a, left, k);
    if (a[right] < t) swap(a, left, right);
    while (i < j) {
      swap(a, i, j);
      i++;
      j--;
      while (a[i] > t) i++;
      while (a[j] < t) j--;
    }
    if (a[left] === t) swap(a, left, j);
    else {
      j++;
      swap(a, j, right);
    }
    if (j <= k) left = j + 1;
    if (k <= j) right = j - 1;
  }
}

/** Indices ordered by `key` (ascending for 1, descending for -1), sorting packed (key, index) pairs. */
function sortedAlong(indices: number[], key: (i: number) => number, direction: 1 | -1): Uint32Array {
  const keys = new Float64Array(indices.length);
  const order = new Uint32Array(indices.length);
  for (let k = 0; k < indices.length; k++) { keys[k] = direction * key(indices[k]); order[k] = k; }
  order.sort((a, b) => keys[a] - keys[b]);
  for (let k = 0; k < order.length; k++) order[k] = indices[order[k]];
  return order;
}

function swap(a: Float32Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}
