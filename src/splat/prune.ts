/**
 * Gaussian budgets: a cloud larger than its budget keeps its most important Gaussians and drops the rest.
 * Importance is what a Gaussian can add to a picture: its opacity times the area of its largest cross-section
 * (the two largest axes), so a faint speck goes before an opaque sheet. Scores are computed in log space (no
 * overflow for large log-scales) into one Float32Array; the cut is an O(n) selection (Floyd-Rivest) on a copy,
 * and the kept Gaussians stay in their order. No per-Gaussian objects.
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
  const threshold = kthLargest(scores.slice(), budget);
  const keep = new Uint8Array(cloud.count);
  let kept = 0;
  for (let i = 0; i < cloud.count; i++) if (scores[i] > threshold) { keep[i] = 1; kept++; }
  // Ties at the threshold fill the rest, in order, so the count is exactly the budget.
  for (let i = 0; i < cloud.count && kept < budget; i++) if (scores[i] === threshold) { keep[i] = 1; kept++; }
  return { cloud: selectGaussians(cloud, keep), dropped: cloud.count - kept };
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

function swap(a: Float32Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}
