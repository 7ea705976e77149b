/**
 * EWA splatting on the CPU, following gsplat's `rasterization` (the validator's renderer) step by step:
 * projection with the clamped Jacobian, 0.3 px dilation of the 2D covariance, opacity-aware extent
 * (min(3.33, sqrt(2 ln(255 opacity))) sigma), square tiles, depth order, front-to-back compositing with
 * alpha = min(0.999, opacity * exp(-sigma)), skip alpha < 1/255, exclusive stop when T would fall to 1e-4,
 * pixel centres at +0.5, background added with the remaining T, output clipped to [0, 1] and truncated to
 * 8 bits like the validator's `(img * 255).to(uint8)`.
 *
 * Speed comes from the layout, not from approximations: a flat projected record per visible Gaussian, one
 * global radix sort by depth, per-tile runs of records filled by counting sort (so each run is already in depth
 * order), and per tile a Gaussian-major loop that visits only the pixels of each row where alpha can reach 1/255
 * (solved exactly from the conic), with per-pixel early termination and the whole tile stopping once every
 * pixel is opaque. No per-Gaussian objects; all scratch memory is reused between frames.
 */
import type { Camera } from './camera.js';
import { ALPHA_MIN, STRIDE, type PreparedCloud } from './prepare.js';

/**
 * Default tile side. gsplat uses 16; the image does not depend on it (every pixel gets exactly the Gaussians
 * whose alpha reaches 1/255 there, in depth order), and 32 is faster here: fewer (tile, Gaussian) pairs.
 */
export const TILE = 32;
const EPS2D = 0.3;
const MAX_ALPHA = 0.999;
const T_MIN = 1e-4;
const MAX_EXTEND = 3.33;
/** Projected record: mx my conicA conicB conicC L(=2 ln(255 op)) opacity r g b rowReach */
const P = 11;
/** Most (tile, Gaussian) pairs one render may hold: 24M records of 44 bytes, about 1 GiB. */
const MAX_PAIRS = 24_000_000;
/** Stride of the projection buffer: the record, then its tile rectangle x0 y0 x1 y1 (16 floats, one cache line). */
const Q = 16;

export type Rgb = readonly [number, number, number];

export interface RasterOptions {
  background: Rgb;
  /** 3: RGB8, 4: RGBA8 (alpha 255: the colour is already composited on the background). */
  channels: 3 | 4;
}

export class Rasterizer {
  private proj = new Float32Array(0);
  private keys = new Uint32Array(0);
  private ids = new Int32Array(0);
  private keys2 = new Uint32Array(0);
  private ids2 = new Int32Array(0);
  private tileStart = new Int32Array(0);
  /** The projection buffer permuted into depth order (Q floats per record). */
  private sorted = new Float32Array(0);
  /** Projected records copied into per-tile runs, P floats each. */
  private records = new Float32Array(0);
  private readonly radix = new Uint32Array(65536);
  /** Per tile pixel: transmittance T, then accumulated r, g, b (interleaved: one array, one cache line per 2 pixels). */
  private readonly acc: Float64Array;
  private readonly rowOpen: Int32Array;
  readonly tile: number;

  /** tile: side of the square tiles, 1..32 (one bit per column in an int32 row mask). */
  constructor(tile = TILE) {
    if (!(Number.isInteger(tile) && tile >= 1 && tile <= 32)) throw new Error(`tile size must be an integer from 1 to 32, got ${tile}`);
    this.tile = tile;
    this.acc = new Float64Array(tile * tile * 4);
    this.rowOpen = new Int32Array(tile);
  }

  /** Renders one view into `out` (width * height * channels bytes). */
  render(cloud: PreparedCloud, camera: Camera, options: RasterOptions, out: Uint8Array = new Uint8Array(camera.width * camera.height * options.channels)): Uint8Array {
    const visible = this.project(cloud, camera);
    this.sortByDepth(visible);
    const tilesX = Math.ceil(camera.width / this.tile);
    const tilesY = Math.ceil(camera.height / this.tile);
    this.bin(visible, tilesX * tilesY, tilesX);
    for (let ty = 0; ty < tilesY; ty++) {
      for (let tx = 0; tx < tilesX; tx++) this.compositeTile(camera, tx, ty, ty * tilesX + tx, options, out);
    }
    return out;
  }

  /** Projects every Gaussian; keeps the ones whose footprint reaches the image. Returns how many. */
  private project(cloud: PreparedCloud, cam: Camera): number {
    const n = cloud.count;
    if (this.proj.length < n * Q) {
      const cap = Math.ceil(n * 1.25) + 16;
      this.proj = new Float32Array(cap * Q);
      this.keys = new Uint32Array(cap);
      this.ids = new Int32Array(cap);
      this.keys2 = new Uint32Array(cap);
      this.ids2 = new Int32Array(cap);
      this.sorted = new Float32Array(cap * Q);
    }
    const d = cloud.data;
    const proj = this.proj, keys = this.keys, ids = this.ids;
    // Locals, not module bindings: see splatTile.
    const stride = STRIDE, q = Q, tile = this.tile, eps2d = EPS2D, maxExtend = MAX_EXTEND;
    const [r00, r01, r02, r10, r11, r12, r20, r21, r22, t0, t1, t2] = cam.view;
    const { fx, fy, cx, cy, width, height, near, far } = cam;
    const tilesX = Math.ceil(width / tile), tilesY = Math.ceil(height / tile);
    const tanX = (0.5 * width) / fx, tanY = (0.5 * height) / fy;
    const limXPos = (width - cx) / fx + 0.3 * tanX, limXNeg = cx / fx + 0.3 * tanX;
    const limYPos = (height - cy) / fy + 0.3 * tanY, limYNeg = cy / fy + 0.3 * tanY;
    const depthBits = new Float32Array(1);
    const depthKey = new Uint32Array(depthBits.buffer);
    let v = 0;
    for (let i = 0, o = 0; i < n; i++, o += stride) {
      const x = d[o], y = d[o + 1], z = d[o + 2];
      const tz = r20 * x + r21 * y + r22 * z + t2;
      if (tz < near || tz > far) continue;
      const tx = r00 * x + r01 * y + r02 * z + t0;
      const ty = r10 * x + r11 * y + r12 * z + t1;
      const rz = 1 / tz;
      const mx = fx * tx * rz + cx;
      const my = fy * ty * rz + cy;
      let ux = tx * rz, uy = ty * rz;
      if (ux > limXPos) ux = limXPos; else if (ux < -limXNeg) ux = -limXNeg;
      if (uy > limYPos) uy = limYPos; else if (uy < -limYNeg) uy = -limYNeg;
      // T = J W: rows of the Jacobian (clamped as gsplat does) times the world-to-camera rotation.
      const j0 = fx * rz, j2 = -fx * ux * rz, k1 = fy * rz, k2 = -fy * uy * rz;
      const a0 = j0 * r00 + j2 * r20, a1 = j0 * r01 + j2 * r21, a2 = j0 * r02 + j2 * r22;
      const b0 = k1 * r10 + k2 * r20, b1 = k1 * r11 + k2 * r21, b2 = k1 * r12 + k2 * r22;
      const sxx = d[o + 3], sxy = d[o + 4], sxz = d[o + 5], syy = d[o + 6], syz = d[o + 7], szz = d[o + 8];
      const u0 = sxx * a0 + sxy * a1 + sxz * a2, u1 = sxy * a0 + syy * a1 + syz * a2, u2 = sxz * a0 + syz * a1 + szz * a2;
      const w0 = sxx * b0 + sxy * b1 + sxz * b2, w1 = sxy * b0 + syy * b1 + syz * b2, w2 = sxz * b0 + syz * b1 + szz * b2;
      const cxx = a0 * u0 + a1 * u1 + a2 * u2 + eps2d;
      const cxy = b0 * u0 + b1 * u1 + b2 * u2;
      const cyy = b0 * w0 + b1 * w1 + b2 * w2 + eps2d;
      const det = cxx * cyy - cxy * cxy;
      if (!(det > 0)) continue;
      const opacity = d[o + 12];
      const lnReach = d[o + 13];
      let extend = Math.sqrt(2 * lnReach);
      if (extend > maxExtend) extend = maxExtend;
      const radX = Math.ceil(extend * Math.sqrt(cxx));
      const radY = Math.ceil(extend * Math.sqrt(cyy));
      if (radX <= 0 && radY <= 0) continue;
      if (mx + radX <= 0 || mx - radX >= width || my + radY <= 0 || my - radY >= height) continue;
      let rx0 = Math.floor((mx - radX) / tile), rx1 = Math.ceil((mx + radX) / tile);
      let ry0 = Math.floor((my - radY) / tile), ry1 = Math.ceil((my + radY) / tile);
      if (rx0 < 0) rx0 = 0; if (ry0 < 0) ry0 = 0;
      if (rx1 > tilesX) rx1 = tilesX; if (ry1 > tilesY) ry1 = tilesY;
      if (rx0 >= rx1 || ry0 >= ry1) continue;
      const inv = 1 / det;
      const L = 2 * lnReach;
      const p = v * q;
      proj[p] = mx; proj[p + 1] = my;
      proj[p + 2] = cyy * inv; proj[p + 3] = -cxy * inv; proj[p + 4] = cxx * inv;
      proj[p + 5] = L;
      proj[p + 6] = opacity;
      proj[p + 7] = d[o + 9]; proj[p + 8] = d[o + 10]; proj[p + 9] = d[o + 11];
      // Rows where a dx^2 + 2 b dx dy + c dy^2 <= L has solutions: |dy| <= sqrt(L * cov_yy).
      proj[p + 10] = Math.sqrt(L * cyy);
      proj[p + 11] = rx0; proj[p + 12] = ry0; proj[p + 13] = rx1; proj[p + 14] = ry1;
      depthBits[0] = tz; // positive floats order like their bit patterns
      keys[v] = depthKey[0];
      ids[v] = v;
      v++;
    }
    return v;
  }

  /** Stable LSD radix sort of the visible records by depth (2 passes of 16 bits); the order ends in this.ids. */
  private sortByDepth(n: number): void {
    radixPass(this.keys, this.ids, this.keys2, this.ids2, n, 0, this.radix);
    radixPass(this.keys2, this.ids2, this.keys, this.ids, n, 16, this.radix);
  }

  /**
   * Counting sort of (tile, Gaussian) pairs into per-tile runs of records: walking the Gaussians in depth
   * order keeps every run sorted, and copying the record into the run lets compositing stream through memory
   * instead of chasing indices.
   */
  private bin(n: number, tiles: number, tilesX: number): void {
    if (this.tileStart.length < tiles + 1) this.tileStart = new Int32Array(tiles + 1);
    const start = this.tileStart;
    start.fill(0, 0, tiles + 1);
    const total = countTiles(this.proj, n, tilesX, start);
    // A pathological cloud (huge splats close to the camera) must fail this render, not exhaust the process.
    if (total > MAX_PAIRS) throw new Error(`${total} tile-Gaussian pairs exceed the renderer's limit of ${MAX_PAIRS}: the splats are too large on screen`);
    for (let t = 0; t < tiles; t++) start[t + 1] += start[t];
    if (this.records.length < total * P) this.records = new Float32Array(Math.min(Math.ceil(total * 1.25), MAX_PAIRS) * P + 16 * P);
    gather(this.ids, this.proj, n, this.sorted);
    fillTiles(this.sorted, n, tilesX, start, this.records);
    // fillTiles advanced each start[t] to the end of tile t's run: shift back by one tile.
    for (let t = tiles; t > 0; t--) start[t] = start[t - 1];
    start[0] = 0;
  }

  private compositeTile(cam: Camera, tileX: number, tileY: number, tile: number, options: RasterOptions, out: Uint8Array): void {
    const { width, height } = cam;
    const size = this.tile;
    const px0 = tileX * size, py0 = tileY * size;
    const px1 = Math.min(px0 + size, width), py1 = Math.min(py0 + size, height);
    const acc = this.acc;
    acc.fill(0);
    for (let i = 0; i < acc.length; i += 4) acc[i] = 1;
    // One bit per pixel still open (T above the stop level), per tile row.
    const rowOpen = this.rowOpen;
    const fullRow = px1 - px0 >= 32 ? -1 : (1 << (px1 - px0)) - 1; // one bit per column, int32
    const openRows = py1 - py0;
    for (let r = 0; r < size; r++) rowOpen[r] = r < openRows ? fullRow : 0;
    splatTile(this.records, this.tileStart[tile] * P, this.tileStart[tile + 1] * P, px0, py0, px1, py1, openRows, size, acc, rowOpen);
    const [br, bg, bb] = options.background;
    const ch = options.channels;
    for (let py = py0; py < py1; py++) {
      let o = (py * width + px0) * ch;
      for (let px = px0, i = (py - py0) * size; px < px1; px++, i++, o += ch) {
        const a = i * 4, t = acc[a];
        out[o] = toByte(acc[a + 1] + t * br);
        out[o + 1] = toByte(acc[a + 2] + t * bg);
        out[o + 2] = toByte(acc[a + 3] + t * bb);
        if (ch === 4) out[o + 3] = 255;
      }
    }
  }
}

/** Beyond this sigma, alpha = opacity * exp(-sigma) < 1/255 for any opacity <= 1. */
const SIGMA_MAX = Math.log(255);
/** exp(-k/8 - 1/16) for k = 0..47: the table half of expNeg. */
const EXP_EIGHTHS = Float64Array.from({ length: 48 }, (_, k) => Math.exp(-k / 8 - 1 / 16));

/**
 * exp(-s) for 0 <= s < 6 with relative error below 1e-8 (float32 rounding is 6e-8): a table of exp(-k/8 - 1/16)
 * times a degree-4 Taylor polynomial of exp(-r) for the remainder r in [-1/16, 1/16).
 */
export function expNeg(s: number): number {
  const k = (s * 8) | 0;
  const r = s - k * 0.125 - 0.0625;
  return EXP_EIGHTHS[k] * (1 - r * (1 - r * (0.5 - r * (1 / 6 - r * (1 / 24)))));
}

/**
 * Composites one tile's run of records (depth order) into the tile's accumulators. Constants are copied into
 * locals: module-level and imported bindings are re-read (with a hole check) on every use in V8's optimised code.
 */
function splatTile(
  rec: Float32Array, begin: number, end: number, px0: number, py0: number, px1: number, py1: number, openRows: number, tile: number,
  acc: Float64Array, rowOpen: Int32Array,
): void {
  const sigmaMax = SIGMA_MAX, alphaMin = ALPHA_MIN, maxAlpha = MAX_ALPHA, tMin = T_MIN, stride = P;
  const lastCol = px1 - px0 - 1;
  for (let p = begin; p < end && openRows > 0; p += stride) {
    const mx = rec[p], my = rec[p + 1], a = rec[p + 2], b = rec[p + 3], c = rec[p + 4], L = rec[p + 5];
    const op = rec[p + 6], cr = rec[p + 7], cg = rec[p + 8], cb = rec[p + 9], reach = rec[p + 10];
    let y0 = Math.ceil(my - 0.5 - reach), y1 = Math.floor(my - 0.5 + reach);
    if (y0 < py0) y0 = py0;
    if (y1 >= py1) y1 = py1 - 1;
    const invA = 1 / a;
    const sx = mx - 0.5 - px0;
    const ox = px0 + 0.5 - mx;
    for (let py = y0; py <= y1; py++) {
      const r = py - py0;
      let open = rowOpen[r];
      if (open === 0) continue;
      const dy = py + 0.5 - my;
      const bdy = b * dy;
      const cdy2 = c * dy * dy;
      const disc = bdy * bdy - a * (cdy2 - L);
      if (disc < 0) continue;
      const s = Math.sqrt(disc);
      // Columns (tile-relative) where alpha can reach 1/255 on this row.
      let x0 = Math.ceil(sx + (-bdy - s) * invA), x1 = Math.floor(sx + (-bdy + s) * invA);
      if (x0 < 0) x0 = 0;
      if (x1 > lastCol) x1 = lastCol;
      if (x0 > x1) continue;
      let m = open & (((2 << (x1 - x0)) - 1) << x0);
      const row = r * tile;
      const hcdy2 = 0.5 * cdy2, ha = 0.5 * a;
      while (m !== 0) {
        const low = m & -m;
        m ^= low;
        const x = 31 - Math.clz32(low);
        const dx = x + ox;
        const sigma = (ha * dx + bdy) * dx + hcdy2;
        if (sigma > sigmaMax || sigma < 0) continue;
        let alpha = op * expNeg(sigma);
        if (alpha < alphaMin) continue;
        if (alpha > maxAlpha) alpha = maxAlpha;
        const i = (row + x) << 2;
        const t = acc[i];
        const next = t * (1 - alpha);
        if (next <= tMin) {
          // Exclusive stop, as gsplat: this Gaussian does not contribute and T keeps its value.
          open ^= low;
          continue;
        }
        const w = alpha * t;
        acc[i] = next;
        acc[i + 1] += cr * w; acc[i + 2] += cg * w; acc[i + 3] += cb * w;
      }
      if (open !== rowOpen[r]) {
        rowOpen[r] = open;
        if (open === 0) openRows--;
      }
    }
  }
}

// The passes below are separate functions on purpose: V8 optimises a whole small function once it is hot,
// whereas one function with several long loops keeps being deoptimised between its on-stack-replaced loops.

function radixPass(kIn: Uint32Array, iIn: Int32Array, kOut: Uint32Array, iOut: Int32Array, n: number, shift: number, count: Uint32Array): void {
  count.fill(0);
  for (let i = 0; i < n; i++) count[(kIn[i] >>> shift) & 0xffff]++;
  let sum = 0;
  for (let b = 0; b < 65536; b++) { const c = count[b]; count[b] = sum; sum += c; }
  for (let i = 0; i < n; i++) {
    const k = kIn[i];
    const dst = count[(k >>> shift) & 0xffff]++;
    kOut[dst] = k;
    iOut[dst] = iIn[i];
  }
}

/** Adds each record's tiles to count[tile + 1]; returns the number of (tile, record) pairs. */
function countTiles(proj: Float32Array, n: number, tilesX: number, count: Int32Array): number {
  let total = 0;
  const stride = Q;
  for (let s = 0, q = P; s < n; s++, q += stride) {
    const x0 = proj[q] | 0, y0 = proj[q + 1] | 0, x1 = proj[q + 2] | 0, y1 = proj[q + 3] | 0;
    for (let ty = y0; ty < y1; ty++) for (let t = ty * tilesX + x0, e = ty * tilesX + x1; t < e; t++) count[t + 1]++;
    total += (x1 - x0) * (y1 - y0);
  }
  return total;
}

/**
 * Permutes the projected records into depth order. A loop this short lets the CPU keep many of its random reads
 * in flight at once; inside fillTiles, with its data-dependent inner loops, every read waited for memory.
 */
function gather(order: Int32Array, proj: Float32Array, n: number, sorted: Float32Array): void {
  const stride = Q;
  for (let s = 0, d = 0; s < n; s++, d += stride) {
    const src = order[s] * stride;
    sorted[d] = proj[src]; sorted[d + 1] = proj[src + 1]; sorted[d + 2] = proj[src + 2]; sorted[d + 3] = proj[src + 3];
    sorted[d + 4] = proj[src + 4]; sorted[d + 5] = proj[src + 5]; sorted[d + 6] = proj[src + 6]; sorted[d + 7] = proj[src + 7];
    sorted[d + 8] = proj[src + 8]; sorted[d + 9] = proj[src + 9]; sorted[d + 10] = proj[src + 10]; sorted[d + 11] = proj[src + 11];
    sorted[d + 12] = proj[src + 12]; sorted[d + 13] = proj[src + 13]; sorted[d + 14] = proj[src + 14];
  }
}

/** Copies each record (already in depth order) to the runs of its tiles; cursor[t] starts at tile t's first slot. */
function fillTiles(sorted: Float32Array, n: number, tilesX: number, cursor: Int32Array, records: Float32Array): void {
  const stride = Q, size = P;
  for (let s = 0, src = 0; s < n; s++, src += stride) {
    const v0 = sorted[src], v1 = sorted[src + 1], v2 = sorted[src + 2], v3 = sorted[src + 3], v4 = sorted[src + 4], v5 = sorted[src + 5];
    const v6 = sorted[src + 6], v7 = sorted[src + 7], v8 = sorted[src + 8], v9 = sorted[src + 9], v10 = sorted[src + 10];
    const x0 = sorted[src + 11] | 0, y0 = sorted[src + 12] | 0, x1 = sorted[src + 13] | 0, y1 = sorted[src + 14] | 0;
    for (let ty = y0; ty < y1; ty++) {
      for (let t = ty * tilesX + x0, e = ty * tilesX + x1; t < e; t++) {
        const d = cursor[t]++ * size;
        records[d] = v0; records[d + 1] = v1; records[d + 2] = v2; records[d + 3] = v3; records[d + 4] = v4; records[d + 5] = v5;
        records[d + 6] = v6; records[d + 7] = v7; records[d + 8] = v8; records[d + 9] = v9; records[d + 10] = v10;
      }
    }
  }
}

/** Clip to [0, 1] and truncate, as the validator's `(clip(img, 0, 1) * 255).to(uint8)`. */
function toByte(v: number): number {
  return v >= 1 ? 255 : v > 0 ? (v * 255) | 0 : 0;
}
