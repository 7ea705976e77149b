/**
 * Preview image-to-3D: silhouette inflation. The matted object's silhouette is lifted into a closed body
 * whose half-thickness grows with the distance to the silhouette's edge (a circular profile, so a disc
 * becomes a sphere), with a front surface toward +Z (the validator's azimuth 0) and a back surface toward -Z.
 * Each sample becomes a flat Gaussian lying in the surface, stretched along the slope so steep rims stay
 * closed, coloured from the image. A CPU stand-in for TRELLIS: the front view matches the picture, the rest
 * is a plausible guess.
 */
import type { RgbaImage } from '../../image/rgba.js';
import { allocateCloud, colourToDc, logit, type GaussianCloud } from '../../splat/cloud.js';
import { matrixToQuaternion } from '../../splat/frame.js';
import type { JobContext } from '../context.js';
import type { ImageTo3d, Readiness } from '../stages.js';

export interface InflateOptions {
  maxGaussians: number;
  /** Half-thickness at the deepest point relative to the inscribed radius. */
  depthRatio: number;
  /** Opacity (after sigmoid) of each Gaussian. */
  opacity: number;
  alphaThreshold: number;
}

/** Fewer samples than this make blocky previews; small silhouettes are sampled below one pixel instead. */
const MIN_SAMPLES = 60_000;
/** Tangent sigma relative to the sample spacing: neighbours overlap enough to leave no holes. */
const SPREAD = 0.6;
/** Thickness of each disc relative to the sample spacing. */
const THICKNESS = 0.15;
/** Largest stretch along the slope, so rim Gaussians do not become needles. */
const MAX_STRETCH = 4;

export class InflateImageTo3d implements ImageTo3d {
  readonly name = 'inflate';
  readonly preview = true;

  constructor(private readonly options: InflateOptions) {}

  readiness(): Readiness {
    return { ready: true };
  }

  /** At most the job's image_to_3d.inflate.max_gaussians (a preset may change it), else the constructor's. */
  async generate(image: RgbaImage, _seed: number, ctx?: JobContext): Promise<GaussianCloud> {
    const maxGaussians = ctx?.settings.image_to_3d.inflate.max_gaussians ?? this.options.maxGaussians;
    return inflateSilhouette(image, { ...this.options, maxGaussians });
  }
}

export function inflateSilhouette(image: RgbaImage, options: InflateOptions): GaussianCloud {
  const { width, height, data } = image;
  const limit = Math.round(options.alphaThreshold * 255);
  const inside = new Uint8Array(width * height);
  let area = 0;
  for (let i = 0; i < width * height; i++) if (data[i * 4 + 3] > limit) { inside[i] = 1; area++; }
  if (area === 0) return allocateCloud(0);

  const depth = halfThickness(inside, width, height, options.depthRatio);
  // Spacing between samples, in pixels: two surfaces of area/step^2 samples each, within the bounds.
  const target = Math.min(options.maxGaussians, Math.max(2 * area, MIN_SAMPLES));
  const step = Math.sqrt((2 * area) / target);
  const columns = Math.floor(width / step), rows = Math.floor(height / step);

  const samples: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      const px = Math.min(width - 1, Math.floor((c + 0.5) * step));
      const py = Math.min(height - 1, Math.floor((r + 0.5) * step));
      if (inside[py * width + px]) samples.push(c, r);
    }
  }
  const count = samples.length; // two Gaussians (front, back) per (column, row) pair
  const cloud = allocateCloud(count);
  const col = cloud.columns;
  const unit = 1 / Math.max(width, height); // world units per pixel
  const tangent = Math.log(SPREAD * step * unit);
  const thin = Math.log(THICKNESS * step * unit);
  const opacityLogit = logit(options.opacity);

  for (let s = 0, g = 0; s < samples.length; s += 2) {
    const u = (samples[s] + 0.5) * step, v = (samples[s + 1] + 0.5) * step;
    const px = Math.min(width - 1, Math.floor(u)), py = Math.min(height - 1, Math.floor(v));
    const i = py * width + px;
    const h = depth[i];
    // Slope of the surface in pixel units; image rows grow downward, world Y grows upward.
    const gx = (depth[i + (px < width - 1 ? 1 : 0)] - depth[i - (px > 0 ? 1 : 0)]) / 2;
    const gy = -(depth[i + (py < height - 1 ? width : 0)] - depth[i - (py > 0 ? width : 0)]) / 2;
    const slope = Math.hypot(gx, gy);
    const stretch = Math.log(Math.min(MAX_STRETCH, Math.sqrt(1 + slope * slope)));
    const alpha = data[i * 4 + 3] / 255;
    const x = (u - width / 2) * unit, y = (height / 2 - v) * unit;
    const r = colourToDc(data[i * 4] / 255), gr = colourToDc(data[i * 4 + 1] / 255), b = colourToDc(data[i * 4 + 2] / 255);
    for (const side of [1, -1]) {
      col.x[g] = x;
      col.y[g] = y;
      col.z[g] = side * h * unit;
      const q = surfaceRotation(gx, gy, slope, side);
      col.rot_0[g] = q[0]; col.rot_1[g] = q[1]; col.rot_2[g] = q[2]; col.rot_3[g] = q[3];
      col.scale_0[g] = tangent + stretch;
      col.scale_1[g] = tangent;
      col.scale_2[g] = thin;
      // The back is unseen: reuse the front's colour, a little darker, as a plausible guess.
      const shade = side > 0 ? 0 : -0.25;
      col.f_dc_0[g] = r + shade; col.f_dc_1[g] = gr + shade; col.f_dc_2[g] = b + shade;
      col.opacity[g] = alpha >= 0.999 ? opacityLogit : logit(Math.max(0.01, Math.min(0.999, options.opacity * alpha)));
      g++;
    }
  }
  return cloud;
}

/**
 * Half-thickness per pixel, in pixels: ratio * sqrt(d (2R - d)) with d the distance to the silhouette's edge
 * and R the largest such distance. A disc of radius R becomes a sphere (at ratio 1).
 */
export function halfThickness(inside: Uint8Array, width: number, height: number, ratio: number): Float32Array {
  const squared = edt(inside, width, height);
  const depth = new Float32Array(width * height);
  let deepest = 0;
  for (let i = 0; i < squared.length; i++) if (squared[i] > deepest) deepest = squared[i];
  const R = Math.sqrt(deepest) + 0.5;
  for (let i = 0; i < squared.length; i++) {
    if (!inside[i]) continue;
    const d = Math.sqrt(squared[i]) + 0.5;
    depth[i] = ratio * Math.sqrt(Math.max(0, d * (2 * R - d)));
  }
  return depth;
}

/** Squared Euclidean distance from each inside pixel to the nearest outside pixel (Felzenszwalb-Huttenlocher). */
export function edt(inside: Uint8Array, width: number, height: number): Float32Array {
  const INF = 1e20;
  const grid = new Float32Array(width * height);
  for (let i = 0; i < grid.length; i++) grid[i] = inside[i] ? INF : 0;
  const n = Math.max(width, height);
  const f = new Float32Array(n), d = new Float32Array(n), z = new Float32Array(n + 1);
  const v = new Int32Array(n);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) f[y] = grid[y * width + x];
    transform1d(f, height, d, v, z);
    for (let y = 0; y < height; y++) grid[y * width + x] = d[y];
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) f[x] = grid[y * width + x];
    transform1d(f, width, d, v, z);
    for (let x = 0; x < width; x++) grid[y * width + x] = d[x];
  }
  return grid;
}

function transform1d(f: Float32Array, n: number, d: Float32Array, v: Int32Array, z: Float32Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let s = (f[q] + q * q - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
    while (s <= z[k]) {
      k--;
      s = (f[q] + q * q - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    const dq = q - v[k];
    d[q] = dq * dq + f[v[k]];
  }
}

/**
 * Rotation whose local axes are: x along the steepest slope (in the surface), y across it, z the surface
 * normal. The front surface z = h(x, y) has normal (-gx, -gy, 1); the back mirrors it.
 */
function surfaceRotation(gx: number, gy: number, slope: number, side: number): [number, number, number, number] {
  const nl = Math.sqrt(gx * gx + gy * gy + 1);
  const n = [(-gx * side) / nl, (-gy * side) / nl, side / nl];
  // Slope direction in the image plane, lifted onto the tangent plane.
  let t = slope > 1e-6 ? [gx / slope, gy / slope, 0] : [1, 0, 0];
  const dot = t[0] * n[0] + t[1] * n[1] + t[2] * n[2];
  t = [t[0] - dot * n[0], t[1] - dot * n[1], t[2] - dot * n[2]];
  const tl = Math.hypot(t[0], t[1], t[2]);
  t = [t[0] / tl, t[1] / tl, t[2] / tl];
  const b = [n[1] * t[2] - n[2] * t[1], n[2] * t[0] - n[0] * t[2], n[0] * t[1] - n[1] * t[0]];
  // Columns t, b, n form the rotation matrix (row-major below).
  return matrixToQuaternion([t[0], b[0], n[0], t[1], b[1], n[1], t[2], b[2], n[2]]);
}
