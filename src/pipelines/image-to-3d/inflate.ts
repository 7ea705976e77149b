/**
 * Preview image-to-3D: silhouette inflation. The matted object's silhouette is lifted into one closed surface
 * (surface.ts: a front sheet toward +Z, the validator's azimuth 0, and a back sheet toward -Z, welded along the
 * outline), and the splats lie on that surface's triangles: one flat Gaussian per triangle, spread over it, thin
 * along its normal, coloured from the image. The mesh of a mesh job is the same surface at its own resolution.
 * A CPU stand-in for TRELLIS: the front view matches the picture, the rest is a plausible guess.
 */
import type { RgbaImage } from '../../image/rgba.js';
import { allocateCloud, colourToDc, logit, type GaussianCloud } from '../../splat/cloud.js';
import { matrixToQuaternion } from '../../splat/frame.js';
import type { JobContext } from '../context.js';
import type { CloudAndMesh, ImageTo3d, Readiness } from '../stages.js';
import { buildSurface, inflateSurface, silhouetteOf, type InflatedSurface } from './surface.js';

/** What shapes the surface and its splats whatever the job: the backend's own (presets do not change it). */
export interface InflateSurfaceOptions {
  /** Half-thickness at the deepest point relative to the inscribed radius. */
  depthRatio: number;
  /** Opacity (after sigmoid) of each Gaussian. */
  opacity: number;
  alphaThreshold: number;
}

export interface InflateOptions extends InflateSurfaceOptions {
  /** The Gaussian budget of the splat body (a job's image_to_3d.inflate.max_gaussians). */
  maxGaussians: number;
}

/** Fewer Gaussians than this make blocky previews; small silhouettes are sampled below one pixel instead. */
const MIN_SAMPLES = 60_000;
/** The validator's fewest Gaussians: a cloud never has fewer, whatever the budget. */
export const MIN_GAUSSIANS = 7000;
/**
 * Each Gaussian's in-plane sigmas relative to its triangle's own (the uniform distribution's second moment), so
 * neighbours overlap and leave no holes.
 */
const WIDEN = 1.7;
/** Thickness of each Gaussian (sigma along the normal) relative to the grid spacing. */
const THICKNESS = 0.15;
/** The smaller in-plane sigma is at least this share of the larger: slivers at the outline do not become needles. */
const MIN_ASPECT = 0.1;
/** Attempts at a grid spacing whose triangle count fits the budget. */
const ATTEMPTS = 6;

export class InflateImageTo3d implements ImageTo3d {
  readonly name = 'inflate';
  readonly preview = true;

  constructor(private readonly options: InflateSurfaceOptions) {}

  readiness(): Readiness {
    return { ready: true };
  }

  /** At most the job's image_to_3d.inflate.max_gaussians (a preset may change it). */
  async generate(image: RgbaImage, _seed: number, ctx: JobContext): Promise<GaussianCloud> {
    return inflateSilhouette(image, this.jobOptions(ctx));
  }

  /** The cloud as `generate` makes it, and the same surface as a mesh of about the job's mesh_faces triangles. */
  async generateWithMesh(image: RgbaImage, _seed: number, ctx: JobContext): Promise<CloudAndMesh> {
    const options = this.jobOptions(ctx);
    // One silhouette and distance field for the splats' surface and the mesh.
    const silhouette = silhouetteOf(image, options.alphaThreshold);
    const cloud = inflateSilhouette(image, options, silhouette);
    const surfaceOptions = { depthRatio: options.depthRatio, alphaThreshold: options.alphaThreshold };
    let triangles = ctx.settings.image_to_3d.inflate.mesh_faces;
    let mesh = inflateSurface(image, { ...surfaceOptions, triangles }, silhouette);
    // A silhouette thinner than the grid's step has no cell inside it: a finer grid, until some cells are.
    for (let attempt = 1; attempt < ATTEMPTS && mesh.indices.length === 0; attempt++) {
      triangles *= 4;
      mesh = inflateSurface(image, { ...surfaceOptions, triangles }, silhouette);
    }
    return { cloud, mesh };
  }

  private jobOptions(ctx: JobContext): InflateOptions {
    return { ...this.options, maxGaussians: ctx.settings.image_to_3d.inflate.max_gaussians };
  }
}

/**
 * The splat body: the inflated surface at a grid spacing whose triangle count is within the Gaussian budget (and
 * at least MIN_GAUSSIANS), one Gaussian per triangle.
 */
export function inflateSilhouette(
  image: RgbaImage,
  options: InflateOptions,
  silhouette = silhouetteOf(image, options.alphaThreshold),
): GaussianCloud {
  const { area } = silhouette;
  if (area === 0) return allocateCloud(0);

  const cap = Math.max(options.maxGaussians, MIN_GAUSSIANS);
  // Aim a little under the budget: the outline's cells add a few triangles to the area's estimate.
  const target = Math.min(0.97 * cap, Math.max(2 * area, MIN_SAMPLES));
  const surfaceOptions = { depthRatio: options.depthRatio, alphaThreshold: options.alphaThreshold };
  let surface = buildSurface(image, { ...surfaceOptions, triangles: target }, silhouette);
  // The count follows the spacing only roughly (the outline's cells): widen the grid until it fits.
  for (let attempt = 0; attempt < ATTEMPTS && triangles(surface) > cap; attempt++) {
    surface = buildSurface(
      image,
      { ...surfaceOptions, spacing: surface.spacing * Math.sqrt(triangles(surface) / (0.98 * cap)) },
      silhouette,
    );
  }
  if (triangles(surface) > cap) surface = buildSurface(image, { ...surfaceOptions, spacing: surface.spacing * 2 }, silhouette);
  return surfaceSplats(surface, options.opacity, Math.max(0, MIN_GAUSSIANS - triangles(surface)));
}

const triangles = (surface: InflatedSurface) => surface.mesh.indices.length / 3;

/**
 * One flat Gaussian per triangle: at its centroid, with the triangle's in-plane covariance (1/12 sum d_i d_i^T
 * over its corners relative to the centroid) widened by WIDEN, thin along the normal, with the mean colour and
 * alpha of its corners. The `split` largest triangles give two Gaussians each, one per half (cut at the midpoint
 * of the longest side), to reach the validator's minimum count.
 */
function surfaceSplats(surface: InflatedSurface, opacity: number, split: number): GaussianCloud {
  const {
    mesh: { positions: p, indices, colours },
    alpha,
  } = surface;
  const count = indices.length / 3;
  const halve = new Uint8Array(count);
  if (split > 0) {
    const areas = new Float64Array(count);
    for (let t = 0; t < count; t++) areas[t] = triangleArea(p, indices[t * 3], indices[t * 3 + 1], indices[t * 3 + 2]);
    const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => areas[b] - areas[a]);
    for (let k = 0; k < Math.min(split, count); k++) halve[order[k]] = 1;
  }
  const total = count + Math.min(split, count);
  const cloud = allocateCloud(total);
  const col = cloud.columns;
  const unitSpacing = surface.spacing / surface.pixelsPerUnit;
  const thin = Math.log(THICKNESS * unitSpacing);
  const opacityLogit = logit(opacity);
  const corners = new Float64Array(9);
  let g = 0;

  const emit = (c: Float64Array, r: number, gr: number, b: number, a: number) => {
    const mx = (c[0] + c[3] + c[6]) / 3,
      my = (c[1] + c[4] + c[7]) / 3,
      mz = (c[2] + c[5] + c[8]) / 3;
    const e1x = c[3] - c[0],
      e1y = c[4] - c[1],
      e1z = c[5] - c[2];
    const e2x = c[6] - c[0],
      e2y = c[7] - c[1],
      e2z = c[8] - c[2];
    let nx = e1y * e2z - e1z * e2y,
      ny = e1z * e2x - e1x * e2z,
      nz = e1x * e2y - e1y * e2x;
    const nl = Math.sqrt(nx * nx + ny * ny + nz * nz) || 1;
    nx /= nl;
    ny /= nl;
    nz /= nl;
    const e1l = Math.sqrt(e1x * e1x + e1y * e1y + e1z * e1z) || 1;
    const t1x = e1x / e1l,
      t1y = e1y / e1l,
      t1z = e1z / e1l;
    const t2x = ny * t1z - nz * t1y,
      t2y = nz * t1x - nx * t1z,
      t2z = nx * t1y - ny * t1x;
    // The corners in the triangle's plane, relative to the centroid: their 2x2 second moment.
    let sxx = 0,
      sxy = 0,
      syy = 0;
    for (let k = 0; k < 9; k += 3) {
      const dx = c[k] - mx,
        dy = c[k + 1] - my,
        dz = c[k + 2] - mz;
      const a1 = dx * t1x + dy * t1y + dz * t1z,
        a2 = dx * t2x + dy * t2y + dz * t2z;
      sxx += a1 * a1;
      sxy += a1 * a2;
      syy += a2 * a2;
    }
    sxx /= 12;
    sxy /= 12;
    syy /= 12;
    const half = (sxx - syy) / 2,
      mean = (sxx + syy) / 2;
    const root = Math.sqrt(half * half + sxy * sxy);
    const major = Math.sqrt(Math.max(mean + root, 1e-30)),
      minor = Math.sqrt(Math.max(mean - root, 0));
    const angle = 0.5 * Math.atan2(2 * sxy, sxx - syy);
    const cos = Math.cos(angle),
      sin = Math.sin(angle);
    const ax = cos * t1x + sin * t2x,
      ay = cos * t1y + sin * t2y,
      az = cos * t1z + sin * t2z;
    const bx = ny * az - nz * ay,
      by = nz * ax - nx * az,
      bz = nx * ay - ny * ax;
    const q = matrixToQuaternion([ax, bx, nx, ay, by, ny, az, bz, nz]);
    col.x[g] = mx;
    col.y[g] = my;
    col.z[g] = mz;
    col.rot_0[g] = q[0];
    col.rot_1[g] = q[1];
    col.rot_2[g] = q[2];
    col.rot_3[g] = q[3];
    col.scale_0[g] = Math.log(WIDEN * major);
    col.scale_1[g] = Math.log(WIDEN * Math.max(minor, MIN_ASPECT * major));
    col.scale_2[g] = Math.min(thin, col.scale_1[g]);
    col.f_dc_0[g] = colourToDc(r);
    col.f_dc_1[g] = colourToDc(gr);
    col.f_dc_2[g] = colourToDc(b);
    col.opacity[g] = a >= 0.999 ? opacityLogit : logit(Math.max(0.01, Math.min(0.999, opacity * a)));
    g++;
  };

  for (let t = 0; t < count; t++) {
    const i0 = indices[t * 3],
      i1 = indices[t * 3 + 1],
      i2 = indices[t * 3 + 2];
    const r = (colours![i0 * 3] + colours![i1 * 3] + colours![i2 * 3]) / 3;
    const gr = (colours![i0 * 3 + 1] + colours![i1 * 3 + 1] + colours![i2 * 3 + 1]) / 3;
    const b = (colours![i0 * 3 + 2] + colours![i1 * 3 + 2] + colours![i2 * 3 + 2]) / 3;
    const a = (alpha[i0] + alpha[i1] + alpha[i2]) / 3;
    for (let k = 0; k < 3; k++) {
      corners[k] = p[i0 * 3 + k];
      corners[3 + k] = p[i1 * 3 + k];
      corners[6 + k] = p[i2 * 3 + k];
    }
    if (!halve[t]) {
      emit(corners, r, gr, b, a);
      continue;
    }
    // Rotate the corners so the longest side runs from the second corner to the third, then cut it in half.
    const side = (u: number, v: number) =>
      Math.hypot(corners[u] - corners[v], corners[u + 1] - corners[v + 1], corners[u + 2] - corners[v + 2]);
    const l0 = side(3, 6),
      l1 = side(6, 0),
      l2 = side(0, 3);
    const shift = l0 >= l1 && l0 >= l2 ? 0 : l1 >= l2 ? 1 : 2;
    const rotated = new Float64Array(9);
    for (let k = 0; k < 9; k++) rotated[k] = corners[(k + 3 * shift) % 9];
    const mid = [0, 1, 2].map((k) => (rotated[3 + k] + rotated[6 + k]) / 2);
    emit(Float64Array.of(...rotated.subarray(0, 3), ...rotated.subarray(3, 6), ...mid), r, gr, b, a);
    emit(Float64Array.of(...rotated.subarray(0, 3), ...mid, ...rotated.subarray(6, 9)), r, gr, b, a);
  }
  return cloud;
}

function triangleArea(p: Float32Array, a: number, b: number, c: number): number {
  const ux = p[b * 3] - p[a * 3],
    uy = p[b * 3 + 1] - p[a * 3 + 1],
    uz = p[b * 3 + 2] - p[a * 3 + 2];
  const vx = p[c * 3] - p[a * 3],
    vy = p[c * 3 + 1] - p[a * 3 + 1],
    vz = p[c * 3 + 2] - p[a * 3 + 2];
  return Math.hypot(uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx) / 2;
}
