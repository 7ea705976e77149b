/**
 * Turns a GaussianCloud (raw PLY space) into the flat, activated layout the rasteriser reads: one
 * Float32Array of FIELDS columns (`pitch` floats apart), in a SharedArrayBuffer so worker threads read it
 * without copies. Columns let the projection load four Gaussians' values of a field at once.
 * Normalisation is the validator's (subnet notes, section 4): centre by the scalar mean of all coordinates,
 * scale the largest bounding-box extent to `extent`, multiply scales by the factor and opacity (after sigmoid)
 * by 1/factor, clipped to [0, 1]. Gaussians that can never reach alpha 1/255 are dropped here, once.
 */
import { SH_C0, type GaussianCloud, type GaussianColumns } from '../splat/cloud.js';
import { VALIDATOR_EXTENT } from '../splat/frame.js';

/** Columns: x y z | covariance xx xy xz yy yz zz | r g b | opacity | ln(255 opacity) */
export const FIELDS = 14;
export const ALPHA_MIN = 1 / 255;

/**
 * Read-only once made: render workers and kernels keep it per scene, recognised by the identity of `data`, so a
 * changed cloud must be prepared again rather than edited in place.
 */
export interface PreparedCloud {
  readonly count: number;
  /** Distance between two columns, in floats: a multiple of 4, at least `count`. */
  readonly pitch: number;
  /** FIELDS columns: field k of Gaussian i is data[k * pitch + i]; backed by a SharedArrayBuffer. */
  readonly data: Float32Array;
}

export interface Normalisation {
  /** Largest bounding-box extent after normalisation (the validator's VALIDATOR_EXTENT; its fixture render: 1.0); null keeps the frame. */
  extent: number | null;
}

export function prepareCloud(cloud: GaussianCloud, normalisation: Normalisation = { extent: VALIDATOR_EXTENT }): PreparedCloud {
  const c = cloud.columns;
  const n = cloud.count;
  let mean = 0;
  let factor = 1;
  if (normalisation.extent !== null && n > 0) {
    let sum = 0;
    const min = [Infinity, Infinity, Infinity];
    const max = [-Infinity, -Infinity, -Infinity];
    const axes = [c.x, c.y, c.z];
    for (let a = 0; a < 3; a++) {
      const col = axes[a];
      let lo = Infinity,
        hi = -Infinity;
      for (let i = 0; i < n; i++) {
        const v = col[i];
        sum += v;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      min[a] = lo;
      max[a] = hi;
    }
    mean = sum / (3 * n);
    const largest = Math.max(max[0] - min[0], max[1] - min[1], max[2] - min[2]);
    factor = largest > 0 && Number.isFinite(largest) ? normalisation.extent / largest : 1;
  }

  const pitch = Math.max(4, Math.ceil(n / 4) * 4);
  const data = new Float32Array(new SharedArrayBuffer(pitch * FIELDS * 4));
  const kept = activate(c, n, mean, factor, data, pitch);
  return { count: kept, pitch, data };
}

/**
 * The per-Gaussian half of prepareCloud, on its own and with the columns and constants in locals so V8 optimises
 * it as one small hot function (a second long loop in the same function kept it in slower code).
 */
function activate(c: GaussianColumns, n: number, mean: number, factor: number, data: Float32Array, pitch: number): number {
  const {
    x,
    y,
    z,
    opacity: opacityLogit,
    rot_0: rot0,
    rot_1: rot1,
    rot_2: rot2,
    rot_3: rot3,
    scale_0: scale0,
    scale_1: scale1,
    scale_2: scale2,
    f_dc_0: dc0,
    f_dc_1: dc1,
    f_dc_2: dc2,
  } = c;
  const alphaMin = ALPHA_MIN,
    shC0 = SH_C0;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    let opacity = 1 / (1 + Math.exp(-opacityLogit[i])) / factor;
    if (opacity > 1) opacity = 1;
    if (!(opacity >= alphaMin)) continue; // also drops NaN
    let qw = rot0[i],
      qx = rot1[i],
      qy = rot2[i],
      qz = rot3[i];
    // Not Math.hypot: V8 runs it several times slower, and a quaternion's norm cannot overflow a double.
    const ql = Math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz);
    if (!(ql > 0) || !Number.isFinite(ql)) continue;
    qw /= ql;
    qx /= ql;
    qy /= ql;
    qz /= ql;
    const sx = Math.exp(scale0[i]) * factor,
      sy = Math.exp(scale1[i]) * factor,
      sz = Math.exp(scale2[i]) * factor;
    const px = (x[i] - mean) * factor,
      py = (y[i] - mean) * factor,
      pz = (z[i] - mean) * factor;
    if (!Number.isFinite(px + py + pz + sx + sy + sz)) continue;
    // R from the unit quaternion; M = R S; Sigma = M M^T.
    const r00 = 1 - 2 * (qy * qy + qz * qz),
      r01 = 2 * (qx * qy - qw * qz),
      r02 = 2 * (qx * qz + qw * qy);
    const r10 = 2 * (qx * qy + qw * qz),
      r11 = 1 - 2 * (qx * qx + qz * qz),
      r12 = 2 * (qy * qz - qw * qx);
    const r20 = 2 * (qx * qz - qw * qy),
      r21 = 2 * (qy * qz + qw * qx),
      r22 = 1 - 2 * (qx * qx + qy * qy);
    const m00 = r00 * sx,
      m01 = r01 * sy,
      m02 = r02 * sz;
    const m10 = r10 * sx,
      m11 = r11 * sy,
      m12 = r12 * sz;
    const m20 = r20 * sx,
      m21 = r21 * sy,
      m22 = r22 * sz;
    const o = kept;
    data[o] = px;
    data[o + pitch] = py;
    data[o + 2 * pitch] = pz;
    data[o + 3 * pitch] = m00 * m00 + m01 * m01 + m02 * m02;
    data[o + 4 * pitch] = m00 * m10 + m01 * m11 + m02 * m12;
    data[o + 5 * pitch] = m00 * m20 + m01 * m21 + m02 * m22;
    data[o + 6 * pitch] = m10 * m10 + m11 * m11 + m12 * m12;
    data[o + 7 * pitch] = m10 * m20 + m11 * m21 + m12 * m22;
    data[o + 8 * pitch] = m20 * m20 + m21 * m21 + m22 * m22;
    // gsplat receives these as plain colours (no SH evaluation, so no clamp); the final image is clipped.
    data[o + 9 * pitch] = 0.5 + shC0 * dc0[i];
    data[o + 10 * pitch] = 0.5 + shC0 * dc1[i];
    data[o + 11 * pitch] = 0.5 + shC0 * dc2[i];
    data[o + 12 * pitch] = opacity;
    data[o + 13 * pitch] = Math.log(255 * opacity);
    kept++;
  }
  return kept;
}
