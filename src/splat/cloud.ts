/**
 * GaussianCloud: the central data type. One Float32Array column per PLY property, in raw PLY space
 * (log-scales, logit opacity, quaternion w-x-y-z unnormalised, SH degree-0 colour). Hot paths index the
 * columns directly; there is never one object per Gaussian.
 */

/** The properties the subnet requires, in the order we write them (TRELLIS's order, without normals). */
export const GAUSSIAN_PROPERTIES = [
  'x',
  'y',
  'z',
  'f_dc_0',
  'f_dc_1',
  'f_dc_2',
  'opacity',
  'scale_0',
  'scale_1',
  'scale_2',
  'rot_0',
  'rot_1',
  'rot_2',
  'rot_3',
] as const;

export type GaussianProperty = (typeof GAUSSIAN_PROPERTIES)[number];
export type GaussianColumns = Record<GaussianProperty, Float32Array>;

export interface GaussianCloud {
  readonly count: number;
  readonly columns: GaussianColumns;
}

/** SH degree-0 basis constant: colour = 0.5 + SH_C0 * f_dc. */
export const SH_C0 = 0.28209479177387814;

export function allocateCloud(count: number): GaussianCloud {
  const columns = {} as GaussianColumns;
  for (const name of GAUSSIAN_PROPERTIES) columns[name] = new Float32Array(count);
  return { count, columns };
}

export function cloneCloud(cloud: GaussianCloud): GaussianCloud {
  const columns = {} as GaussianColumns;
  for (const name of GAUSSIAN_PROPERTIES) columns[name] = cloud.columns[name].slice();
  return { count: cloud.count, columns };
}

/** Keeps the Gaussians whose mask byte is non-zero, in order. */
export function selectGaussians(cloud: GaussianCloud, keep: Uint8Array): GaussianCloud {
  let kept = 0;
  for (let i = 0; i < cloud.count; i++) if (keep[i]) kept++;
  if (kept === cloud.count) return cloud;
  const out = allocateCloud(kept);
  for (const name of GAUSSIAN_PROPERTIES) {
    const src = cloud.columns[name];
    const dst = out.columns[name];
    let j = 0;
    for (let i = 0; i < cloud.count; i++) if (keep[i]) dst[j++] = src[i];
  }
  return out;
}

export function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

export function logit(p: number): number {
  return Math.log(p / (1 - p));
}

/** colour channel in [0,1] (clamped) from an SH degree-0 coefficient. */
export function dcToColour(fdc: number): number {
  const c = 0.5 + SH_C0 * fdc;
  return c < 0 ? 0 : c > 1 ? 1 : c;
}

/** SH degree-0 coefficient for a colour channel in [0,1]. */
export function colourToDc(c: number): number {
  return (c - 0.5) / SH_C0;
}

export interface Bounds {
  min: [number, number, number];
  max: [number, number, number];
}

export function bounds(cloud: GaussianCloud): Bounds {
  const { x, y, z } = cloud.columns;
  const min: [number, number, number] = [Infinity, Infinity, Infinity];
  const max: [number, number, number] = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < cloud.count; i++) {
    const px = x[i],
      py = y[i],
      pz = z[i];
    if (px < min[0]) min[0] = px;
    if (px > max[0]) max[0] = px;
    if (py < min[1]) min[1] = py;
    if (py > max[1]) max[1] = py;
    if (pz < min[2]) min[2] = pz;
    if (pz > max[2]) max[2] = pz;
  }
  return { min, max };
}
