/**
 * EWA splatting on the CPU, following gsplat's `rasterization` (the validator's renderer) step by step:
 * projection with the clamped Jacobian, 0.3 px dilation of the 2D covariance, opacity-aware extent
 * (min(3.33, sqrt(2 ln(255 opacity))) sigma), square tiles, depth order, front-to-back compositing with
 * alpha = min(0.999, opacity * exp(-sigma)), skip alpha < 1/255, exclusive stop when T would fall to 1e-4,
 * pixel centres at +0.5, background added with the remaining T, output clipped to [0, 1] and truncated to
 * 8 bits like the validator's `(img * 255).to(uint8)`.
 *
 * Speed comes from the layout and from SIMD, not from approximations: a flat projected record per visible
 * Gaussian, per-tile runs of records filled by counting sort in projection order (sequential reads), a small
 * sort by depth of each run just before it is composited (while it is in cache), and per tile a Gaussian-major
 * loop that visits only the pixels where alpha can reach 1/255, with per-pixel early termination and the whole
 * tile stopping once every pixel is opaque. Projection, binning, compositing and the conversion to bytes run in
 * the WebAssembly kernel (kernel.wat, four Gaussians or four pixels at once); this file keeps the steps, the
 * per-tile sort and, as the reference the kernel is tested against, the same loops in scalar TypeScript.
 * No per-Gaussian objects; all scratch memory is reused between frames.
 */
import { jacobianLimits, type Camera } from './camera.js';
import { PROJECTED, RenderKernel } from './kernel.js';
import { ALPHA_MIN, type PreparedCloud } from './prepare.js';

/**
 * Default tile side. gsplat uses 16; the image does not depend on it (every pixel gets exactly the Gaussians
 * whose alpha reaches 1/255 there, in depth order), and 32 is faster here: fewer (tile, Gaussian) pairs.
 */
export const TILE = 32;
const EPS2D = 0.3;
const MAX_ALPHA = 0.999;
const T_MIN = 1e-4;
const MAX_EXTEND = 3.33;
/** Record of the scalar loops: mx my conicA conicB conicC L(=2 ln(255 op)) opacity r g b rowReach */
const P = 11;
/** Largest image side: the kernel packs pixel ranges into 16-bit halves. */
export const MAX_SIDE = 16384;
/** Most (tile, Gaussian) pairs one render may hold: 24M records of 48 bytes (kernel), about 1.1 GiB. */
const MAX_PAIRS = 24_000_000;
/** Stride of the projection buffer: the record, then its tile rectangle x0 y0 x1 y1 (16 floats, one cache line). */
const Q = PROJECTED;

export type Rgb = readonly [number, number, number];

/**
 * Which implementation of projection and compositing: `wasm` (default), the SIMD kernel, four Gaussians or four
 * pixels at once in float32 as gsplat computes; `js`, scalar loops in doubles, kept as the reference the kernel
 * is tested against.
 */
export type Kernel = 'wasm' | 'js';

export interface RasterOptions {
  background: Rgb;
  /** 3: RGB8, 4: RGBA8 (alpha 255: the colour is already composited on the background). */
  channels: 3 | 4;
}

export class Rasterizer {
  private proj = new Float32Array(0);
  /**
   * Depth of each projected record as float bits: positive floats order like their bit patterns, and as int32
   * (sign bit clear) V8 keeps them in integer registers, which a Uint32Array's values above 2^31 would not be.
   */
  private keys = new Int32Array(0);
  private tileStart = new Int32Array(0);
  /** Projected records copied into per-tile runs, P floats each, in projection order within a run. */
  private records = new Float32Array(0);
  /** The depth key of each record of `records`. */
  private recordKeys = new Int32Array(0);
  /** Scratch of the per-run sort, sized to the longest run. */
  private runKeys = [new Int32Array(0), new Int32Array(0)] as const;
  private runOrder = [new Int32Array(0), new Int32Array(0)] as const;
  /** The run being composited, its records copied in depth order (compositing then streams through it). */
  private runRecords = new Float32Array(0);
  private readonly histogram = new Int32Array(4 * 256);
  /** Bucket counts of bucketSortRun: at most two buckets per record of the longest run, plus one. */
  private buckets = new Int32Array(0);
  /** Per tile pixel: transmittance T, then accumulated r, g, b (interleaved: one array, one cache line per 2 pixels). */
  private readonly acc: Float64Array;
  private readonly rowOpen: Int32Array;
  /** The WebAssembly kernel, whose memory holds the projected records, the tile runs and the image; null: the JS loops. */
  private readonly wasm: RenderKernel | null;
  readonly tile: number;

  /** tile: side of the square tiles, 1..32 (one bit per column in an int32 row mask). */
  constructor(tile = TILE, kernel: Kernel = 'wasm') {
    if (!(Number.isInteger(tile) && tile >= 1 && tile <= 32)) throw new Error(`tile size must be an integer from 1 to 32, got ${tile}`);
    this.tile = tile;
    this.acc = new Float64Array(tile * tile * 4);
    this.rowOpen = new Int32Array(tile);
    this.wasm = kernel === 'wasm' ? new RenderKernel() : null;
  }

  get kernel(): Kernel {
    return this.wasm ? 'wasm' : 'js';
  }

  /** Renders one view into `out` (width * height * channels bytes). */
  render(
    cloud: PreparedCloud,
    camera: Camera,
    options: RasterOptions,
    out: Uint8Array = new Uint8Array(camera.width * camera.height * options.channels),
  ): Uint8Array {
    return this.renderTileRows(cloud, camera, options, 0, Math.ceil(camera.height / this.tile), out);
  }

  /**
   * Renders only the tile rows [row0, row1) of a view (a band of whole tiles) into `out`, which holds just those
   * pixel rows. Tiles are independent, so a view split into bands and reassembled has the bytes of one render:
   * lets the render pool share a view between workers when the views do not divide evenly among them.
   */
  renderTileRows(
    cloud: PreparedCloud,
    camera: Camera,
    options: RasterOptions,
    row0: number,
    row1: number,
    out: Uint8Array = new Uint8Array(camera.width * (Math.min(row1 * this.tile, camera.height) - row0 * this.tile) * options.channels),
  ): Uint8Array {
    if (!(camera.width <= MAX_SIDE && camera.height <= MAX_SIDE)) {
      throw new Error(`images are limited to ${MAX_SIDE} pixels per side, got ${camera.width} x ${camera.height}`);
    }
    // Depth keys are the bits of positive floats: nothing at or behind the camera may be kept.
    if (!(camera.near > 0 && camera.far > camera.near))
      throw new Error(`the camera needs 0 < near < far, got near ${camera.near}, far ${camera.far}`);
    const tilesX = Math.ceil(camera.width / this.tile);
    const tilesY = Math.ceil(camera.height / this.tile);
    if (!(Number.isInteger(row0) && Number.isInteger(row1) && row0 >= 0 && row0 < row1 && row1 <= tilesY)) {
      throw new Error(`tile rows must satisfy 0 <= row0 < row1 <= ${tilesY}, got ${row0}..${row1}`);
    }
    const visible = this.project(cloud, camera, row0, row1);
    const outY0 = row0 * this.tile;
    const bytes = camera.width * (Math.min(row1 * this.tile, camera.height) - outY0) * options.channels;
    if (this.wasm) {
      const longest = this.binInKernel(this.wasm, visible, tilesX * tilesY, tilesX);
      this.wasm.reserveComposite(longest, bytes);
    } else {
      this.bin(visible, tilesX * tilesY, tilesX);
    }
    for (let ty = row0; ty < row1; ty++) {
      for (let tx = 0; tx < tilesX; tx++) {
        const tile = ty * tilesX + tx;
        const count = this.sortRun(tile);
        this.compositeTile(camera, tx, ty, count, options, out, outY0);
      }
    }
    this.wasm?.copyImage(out, bytes);
    return out;
  }

  /** Projects every Gaussian; keeps the ones whose footprint reaches tile rows [row0, row1). Returns how many. */
  private project(cloud: PreparedCloud, cam: Camera, row0: number, row1: number): number {
    if (this.wasm) return this.wasm.project(cloud, cam, this.tile, row0, row1);
    const n = cloud.count;
    if (this.proj.length < n * Q) {
      const cap = Math.ceil(n * 1.25) + 16;
      this.proj = new Float32Array(cap * Q);
      this.keys = new Int32Array(cap);
    }
    const d = cloud.data;
    const proj = this.proj,
      keys = this.keys;
    // Locals, not module bindings: see splatTile.
    const q = Q,
      tile = this.tile,
      eps2d = EPS2D,
      maxExtend = MAX_EXTEND,
      pitch = cloud.pitch;
    const [r00, r01, r02, r10, r11, r12, r20, r21, r22, t0, t1, t2] = cam.view;
    const { fx, fy, cx, cy, width, height, near, far } = cam;
    const tilesX = Math.ceil(width / tile);
    const { xPos: limXPos, xNeg: limXNeg, yPos: limYPos, yNeg: limYNeg } = jacobianLimits(cam);
    const depthBits = new Float32Array(1);
    const depthKey = new Int32Array(depthBits.buffer);
    let v = 0;
    for (let i = 0; i < n; i++) {
      const x = d[i],
        y = d[i + pitch],
        z = d[i + 2 * pitch];
      const tz = r20 * x + r21 * y + r22 * z + t2;
      if (tz < near || tz > far) continue;
      const tx = r00 * x + r01 * y + r02 * z + t0;
      const ty = r10 * x + r11 * y + r12 * z + t1;
      const rz = 1 / tz;
      const mx = fx * tx * rz + cx;
      const my = fy * ty * rz + cy;
      let ux = tx * rz,
        uy = ty * rz;
      if (ux > limXPos) ux = limXPos;
      else if (ux < -limXNeg) ux = -limXNeg;
      if (uy > limYPos) uy = limYPos;
      else if (uy < -limYNeg) uy = -limYNeg;
      // T = J W: rows of the Jacobian (clamped as gsplat does) times the world-to-camera rotation.
      const j0 = fx * rz,
        j2 = -fx * ux * rz,
        k1 = fy * rz,
        k2 = -fy * uy * rz;
      const a0 = j0 * r00 + j2 * r20,
        a1 = j0 * r01 + j2 * r21,
        a2 = j0 * r02 + j2 * r22;
      const b0 = k1 * r10 + k2 * r20,
        b1 = k1 * r11 + k2 * r21,
        b2 = k1 * r12 + k2 * r22;
      const sxx = d[i + 3 * pitch],
        sxy = d[i + 4 * pitch],
        sxz = d[i + 5 * pitch],
        syy = d[i + 6 * pitch],
        syz = d[i + 7 * pitch],
        szz = d[i + 8 * pitch];
      const u0 = sxx * a0 + sxy * a1 + sxz * a2,
        u1 = sxy * a0 + syy * a1 + syz * a2,
        u2 = sxz * a0 + syz * a1 + szz * a2;
      const w0 = sxx * b0 + sxy * b1 + sxz * b2,
        w1 = sxy * b0 + syy * b1 + syz * b2,
        w2 = sxz * b0 + syz * b1 + szz * b2;
      const cxx = a0 * u0 + a1 * u1 + a2 * u2 + eps2d;
      const cxy = b0 * u0 + b1 * u1 + b2 * u2;
      const cyy = b0 * w0 + b1 * w1 + b2 * w2 + eps2d;
      const det = cxx * cyy - cxy * cxy;
      if (!(det > 0)) continue;
      const opacity = d[i + 12 * pitch];
      const lnReach = d[i + 13 * pitch];
      let extend = Math.sqrt(2 * lnReach);
      if (extend > maxExtend) extend = maxExtend;
      const radX = Math.ceil(extend * Math.sqrt(cxx));
      const radY = Math.ceil(extend * Math.sqrt(cyy));
      if (radX <= 0 && radY <= 0) continue;
      if (mx + radX <= 0 || mx - radX >= width || my + radY <= 0 || my - radY >= height) continue;
      let rx0 = Math.floor((mx - radX) / tile),
        rx1 = Math.ceil((mx + radX) / tile);
      let ry0 = Math.floor((my - radY) / tile),
        ry1 = Math.ceil((my + radY) / tile);
      if (rx0 < 0) rx0 = 0;
      if (ry0 < row0) ry0 = row0;
      if (rx1 > tilesX) rx1 = tilesX;
      if (ry1 > row1) ry1 = row1;
      if (rx0 >= rx1 || ry0 >= ry1) continue;
      const inv = 1 / det;
      const L = 2 * lnReach;
      const p = v * q;
      proj[p] = mx;
      proj[p + 1] = my;
      proj[p + 2] = cyy * inv;
      proj[p + 3] = -cxy * inv;
      proj[p + 4] = cxx * inv;
      proj[p + 5] = L;
      proj[p + 6] = opacity;
      proj[p + 7] = d[i + 9 * pitch];
      proj[p + 8] = d[i + 10 * pitch];
      proj[p + 9] = d[i + 11 * pitch];
      // Rows where a dx^2 + 2 b dx dy + c dy^2 <= L has solutions: |dy| <= sqrt(L * cov_yy).
      proj[p + 10] = Math.sqrt(L * cyy);
      proj[p + 11] = rx0;
      proj[p + 12] = ry0;
      proj[p + 13] = rx1;
      proj[p + 14] = ry1;
      depthBits[0] = tz; // positive floats order like their bit patterns
      keys[v] = depthKey[0];
      v++;
    }
    return v;
  }

  /** bin() with the kernel's count and copy loops, into its memory; returns the longest run. */
  private binInKernel(kernel: RenderKernel, n: number, tiles: number, tilesX: number): number {
    const total = kernel.countTiles(n, tiles, tilesX); // saturates at 2^31 - 1
    if (total > MAX_PAIRS) throw tooManyPairs(total);
    const longest = countsToStarts(kernel.tiles, tiles);
    this.growRunScratch(longest);
    kernel.fillTiles(n, tilesX, total, Math.min(Math.ceil(total * 1.25), MAX_PAIRS) + 16);
    endsToStarts(kernel.tiles, tiles); // the records may have grown: a fresh view
    return longest;
  }

  /**
   * Counting sort of (tile, Gaussian) pairs into per-tile runs of records, walking the records in projection
   * order: the reads are sequential, and the writes go to one cursor per tile. Copying the record into the run
   * lets compositing stream through memory instead of chasing indices. Each run is sorted by depth later
   * (sortRun); the runs keep projection order, so that stable sort gives the order of one global stable sort.
   */
  private bin(n: number, tiles: number, tilesX: number): void {
    if (this.tileStart.length < tiles + 1) this.tileStart = new Int32Array(tiles + 1);
    const start = this.tileStart;
    start.fill(0, 0, tiles + 1);
    const total = countTiles(this.proj, n, tilesX, start);
    if (total > MAX_PAIRS) throw tooManyPairs(total);
    const longest = countsToStarts(start, tiles);
    if (this.records.length < total * P) {
      const cap = Math.min(Math.ceil(total * 1.25), MAX_PAIRS) + 16;
      this.records = new Float32Array(cap * P);
      this.recordKeys = new Int32Array(cap);
    }
    if (this.growRunScratch(longest)) this.runRecords = new Float32Array(this.runOrder[0].length * P);
    fillTiles(this.proj, this.keys, n, tilesX, start, this.records, this.recordKeys);
    endsToStarts(start, tiles);
  }

  /** Sizes the per-run sort scratch for runs of `longest` records; returns whether it grew. */
  private growRunScratch(longest: number): boolean {
    // A run holds each Gaussian at most once, so this scratch never exceeds the visible count (unlike `records`).
    if (this.runOrder[0].length >= longest) return false;
    const cap = Math.ceil(longest * 1.25) + 16;
    this.runKeys = [new Int32Array(cap), new Int32Array(cap)];
    this.runOrder = [new Int32Array(cap), new Int32Array(cap)];
    if (!this.wasm) this.buckets = new Int32Array(2 * cap + 1); // the kernel buckets in its own memory
    return true;
  }

  /** Copies one tile's run in depth order (stable) into the run the compositing loop reads; returns its length. */
  private sortRun(tile: number): number {
    const kernel = this.wasm;
    const starts = kernel ? kernel.tiles : this.tileStart;
    const begin = starts[tile],
      n = starts[tile + 1] - begin;
    if (kernel?.sortRun(begin, n)) {
      kernel.scatterRun(begin, n);
      return n;
    }
    const keys = kernel ? kernel.recordKeys : this.recordKeys;
    const k0 = this.runKeys[0],
      k1 = this.runKeys[1],
      i0 = this.runOrder[0],
      i1 = this.runOrder[1];
    // Both sorts are stable by the full key, so either gives the same order. When the kernel declined, its
    // bucket sort found the keys too unevenly spread, and so would bucketSortRun.
    const order =
      !kernel && bucketSortRun(keys, begin, n, k0, i0, this.buckets) ? i0 : radixSortRun(keys, begin, n, k0, i0, k1, i1, this.histogram);
    const rank = kernel ? kernel.order : order === i0 ? i1 : i0;
    for (let j = 0; j < n; j++) rank[order[j] - begin] = j;
    if (kernel) kernel.scatterRun(begin, n);
    else scatterRun(this.records, begin, rank, n, this.runRecords);
    return n;
  }

  /** Composites one tile and writes its pixels into `out`, whose first row is image row outY0. */
  private compositeTile(
    cam: Camera,
    tileX: number,
    tileY: number,
    count: number,
    options: RasterOptions,
    out: Uint8Array,
    outY0: number,
  ): void {
    const { width, height } = cam;
    const size = this.tile;
    const px0 = tileX * size,
      py0 = tileY * size;
    const px1 = Math.min(px0 + size, width),
      py1 = Math.min(py0 + size, height);
    if (this.wasm) {
      this.wasm.composite(
        count,
        px0,
        py0,
        px1 - px0,
        py1 - py0,
        options,
        ((py0 - outY0) * width + px0) * options.channels,
        width * options.channels,
      );
      return;
    }
    const acc = this.acc;
    acc.fill(0);
    for (let i = 0; i < acc.length; i += 4) acc[i] = 1;
    // One bit per pixel still open (T above the stop level), per tile row.
    const rowOpen = this.rowOpen;
    const fullRow = px1 - px0 >= 32 ? -1 : (1 << (px1 - px0)) - 1; // one bit per column, int32
    const openRows = py1 - py0;
    for (let r = 0; r < size; r++) rowOpen[r] = r < openRows ? fullRow : 0;
    splatTile(this.runRecords, count * P, px0, py0, px1, py1, openRows, size, acc, rowOpen);
    const [br, bg, bb] = options.background;
    const ch = options.channels;
    for (let py = py0; py < py1; py++) {
      let o = ((py - outY0) * width + px0) * ch;
      for (let px = px0, i = (py - py0) * size; px < px1; px++, i++, o += ch) {
        const a = i * 4,
          t = acc[a];
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
 * Composites one tile's run of records (depth order, `end` floats) into the tile's accumulators. Constants are copied into
 * locals: module-level and imported bindings are re-read (with a hole check) on every use in V8's optimised code.
 */
function splatTile(
  rec: Float32Array,
  end: number,
  px0: number,
  py0: number,
  px1: number,
  py1: number,
  openRows: number,
  tile: number,
  acc: Float64Array,
  rowOpen: Int32Array,
): void {
  const sigmaMax = SIGMA_MAX,
    alphaMin = ALPHA_MIN,
    maxAlpha = MAX_ALPHA,
    tMin = T_MIN,
    stride = P;
  const lastCol = px1 - px0 - 1;
  for (let p = 0; p < end && openRows > 0; p += stride) {
    const mx = rec[p],
      my = rec[p + 1],
      a = rec[p + 2],
      b = rec[p + 3],
      c = rec[p + 4],
      L = rec[p + 5];
    const op = rec[p + 6],
      cr = rec[p + 7],
      cg = rec[p + 8],
      cb = rec[p + 9],
      reach = rec[p + 10];
    let y0 = Math.ceil(my - 0.5 - reach),
      y1 = Math.floor(my - 0.5 + reach);
    if (y0 < py0) y0 = py0;
    if (y1 >= py1) y1 = py1 - 1;
    const invA = 1 / a;
    const sx = mx - 0.5 - px0;
    const ox = px0 + 0.5 - mx;
    // The columns of the ellipse's bounding box (half-width sqrt(L cov_xx), cov_xx = c / (ac - b^2)), widened by
    // 1/64 px against rounding (the spans are solved in doubles, errors ~1e-12 px): a row none of whose open
    // pixels lie in it is skipped before its span is solved.
    // In opaque assets most rows of a late record meet only finished pixels. NaN or huge: every column.
    const halfWidth = Math.sqrt(L * (c / (a * c - b * b))) + 0.015625;
    let box = -1;
    if (halfWidth < 64) {
      let bx0 = Math.ceil(sx - halfWidth),
        bx1 = Math.floor(sx + halfWidth);
      if (bx0 < 0) bx0 = 0;
      if (bx1 > lastCol) bx1 = lastCol;
      if (bx0 > bx1) continue;
      box = ((2 << (bx1 - bx0)) - 1) << bx0;
    }
    for (let py = y0; py <= y1; py++) {
      const r = py - py0;
      let open = rowOpen[r];
      if ((open & box) === 0) continue;
      const dy = py + 0.5 - my;
      const bdy = b * dy;
      const cdy2 = c * dy * dy;
      const disc = bdy * bdy - a * (cdy2 - L);
      if (disc < 0) continue;
      const s = Math.sqrt(disc);
      // Columns (tile-relative) where alpha can reach 1/255 on this row.
      let x0 = Math.ceil(sx + (-bdy - s) * invA),
        x1 = Math.floor(sx + (-bdy + s) * invA);
      if (x0 < 0) x0 = 0;
      if (x1 > lastCol) x1 = lastCol;
      if (x0 > x1) continue;
      let m = open & (((2 << (x1 - x0)) - 1) << x0);
      const row = r * tile;
      const hcdy2 = 0.5 * cdy2,
        ha = 0.5 * a;
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
        acc[i + 1] += cr * w;
        acc[i + 2] += cg * w;
        acc[i + 3] += cb * w;
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

/**
 * Stable LSD radix sort of one run of depth keys, 8 bits per pass; a pass whose digit every key shares is
 * skipped (the exponent byte usually is). Returns the index array (i0 or i1) that holds the sorted order.
 */
export function radixSortRun(
  keys: Int32Array,
  begin: number,
  n: number,
  k0: Int32Array,
  i0: Int32Array,
  k1: Int32Array,
  i1: Int32Array,
  hist: Int32Array,
): Int32Array {
  hist.fill(0);
  // Keys relative to the run's smallest: the depths of one tile span far fewer than 32 bits.
  let min = 0x7fffffff;
  for (let i = begin; i < begin + n; i++) if (keys[i] < min) min = keys[i];
  for (let i = 0; i < n; i++) {
    const k = keys[begin + i] - min;
    k0[i] = k;
    i0[i] = begin + i;
    hist[k & 255]++;
    hist[256 + ((k >>> 8) & 255)]++;
    hist[512 + ((k >>> 16) & 255)]++;
    hist[768 + (k >>> 24)]++;
  }
  let kIn = k0,
    iIn = i0,
    kOut = k1,
    iOut = i1;
  for (let shift = 0, h = 0; shift < 32 && n > 1; shift += 8, h += 256) {
    if (hist[h + ((kIn[0] >>> shift) & 255)] === n) continue;
    let sum = 0;
    for (let b = h; b < h + 256; b++) {
      const c = hist[b];
      hist[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const k = kIn[i];
      const d = hist[h + ((k >>> shift) & 255)]++;
      kOut[d] = k;
      iOut[d] = iIn[i];
    }
    const kt = kIn;
    kIn = kOut;
    kOut = kt;
    const it = iIn;
    iIn = iOut;
    iOut = it;
  }
  return iIn;
}

/**
 * Stable sort of one run of depth keys into k0/i0 (keys, record indices): one counting pass into one to two buckets
 * per record by the key's top bits, then an insertion sort, which only moves records within their bucket. Runs
 * are long (thousands of records) and their keys span about 20 bits, so this is one pass where the radix sort
 * needs three. Returns false, having written nothing useful, when the buckets are too uneven for the insertion
 * sort (sum of squared bucket sizes above 8 n); the caller then uses radixSortRun.
 */
export function bucketSortRun(keys: Int32Array, begin: number, n: number, k0: Int32Array, i0: Int32Array, count: Int32Array): boolean {
  if (n < 2) {
    if (n === 1) {
      k0[0] = keys[begin];
      i0[0] = begin;
    }
    return true;
  }
  const end = begin + n;
  let min = 0x7fffffff,
    max = 0; // keys are the bits of positive floats: non-negative int32
  for (let i = begin; i < end; i++) {
    const k = keys[i];
    if (k < min) min = k;
    if (k > max) max = k;
  }
  // At most 2^(floor(log2 n) + 1) <= 2n buckets, so clearing and summing them stays O(n).
  const bucketBits = 32 - Math.clz32(n);
  const rangeBits = 32 - Math.clz32(max - min);
  const shift = rangeBits > bucketBits ? rangeBits - bucketBits : 0;
  const nb = ((max - min) >>> shift) + 1;
  count.fill(0, 0, nb + 1);
  for (let i = begin; i < end; i++) count[((keys[i] - min) >>> shift) + 1]++;
  let squares = 0;
  for (let b = 1; b <= nb; b++) {
    const c = count[b];
    squares += c * c;
    count[b] = c + count[b - 1];
  }
  if (squares > 8 * n) return false;
  for (let i = begin; i < end; i++) {
    const k = keys[i];
    const d = count[(k - min) >>> shift]++;
    k0[d] = k;
    i0[d] = i;
  }
  // Strict comparison: equal keys keep their projection order (stable).
  for (let i = 1; i < n; i++) {
    const k = k0[i];
    if (k0[i - 1] <= k) continue;
    const o = i0[i];
    let j = i - 1;
    do {
      k0[j + 1] = k0[j];
      i0[j + 1] = i0[j];
      j--;
    } while (j >= 0 && k0[j] > k);
    k0[j + 1] = k;
    i0[j + 1] = o;
  }
  return true;
}

/** Adds each record's tiles to count[tile + 1]; returns the number of (tile, record) pairs. */
function countTiles(proj: Float32Array, n: number, tilesX: number, count: Int32Array): number {
  let total = 0;
  const stride = Q;
  for (let s = 0, q = P; s < n; s++, q += stride) {
    const x0 = proj[q] | 0,
      y0 = proj[q + 1] | 0,
      x1 = proj[q + 2] | 0,
      y1 = proj[q + 3] | 0;
    for (let ty = y0; ty < y1; ty++) for (let t = ty * tilesX + x0, e = ty * tilesX + x1; t < e; t++) count[t + 1]++;
    total += (x1 - x0) * (y1 - y0);
  }
  return total;
}

/**
 * Copies the records of the run starting at `begin` into `run`, record i to slot rank[i]. Reading the run in
 * memory order and writing in depth order (not the reverse) lets the prefetcher stream the run in from memory;
 * the random writes land in `run`, which is small enough to stay in cache.
 */
function scatterRun(records: Float32Array, begin: number, rank: Int32Array, n: number, run: Float32Array): void {
  const size = P;
  for (let i = 0, s = begin * size; i < n; i++, s += size) {
    const d = rank[i] * size;
    run[d] = records[s];
    run[d + 1] = records[s + 1];
    run[d + 2] = records[s + 2];
    run[d + 3] = records[s + 3];
    run[d + 4] = records[s + 4];
    run[d + 5] = records[s + 5];
    run[d + 6] = records[s + 6];
    run[d + 7] = records[s + 7];
    run[d + 8] = records[s + 8];
    run[d + 9] = records[s + 9];
    run[d + 10] = records[s + 10];
  }
}

/** Copies each record, with its depth key, to the runs of its tiles; cursor[t] starts at tile t's first slot. */
function fillTiles(
  proj: Float32Array,
  keys: Int32Array,
  n: number,
  tilesX: number,
  cursor: Int32Array,
  records: Float32Array,
  recordKeys: Int32Array,
): void {
  const stride = Q,
    size = P;
  for (let s = 0, src = 0; s < n; s++, src += stride) {
    const v0 = proj[src],
      v1 = proj[src + 1],
      v2 = proj[src + 2],
      v3 = proj[src + 3],
      v4 = proj[src + 4],
      v5 = proj[src + 5];
    const v6 = proj[src + 6],
      v7 = proj[src + 7],
      v8 = proj[src + 8],
      v9 = proj[src + 9],
      v10 = proj[src + 10];
    const x0 = proj[src + 11] | 0,
      y0 = proj[src + 12] | 0,
      x1 = proj[src + 13] | 0,
      y1 = proj[src + 14] | 0;
    const key = keys[s];
    for (let ty = y0; ty < y1; ty++) {
      for (let t = ty * tilesX + x0, e = ty * tilesX + x1; t < e; t++) {
        const slot = cursor[t]++;
        recordKeys[slot] = key;
        const d = slot * size;
        records[d] = v0;
        records[d + 1] = v1;
        records[d + 2] = v2;
        records[d + 3] = v3;
        records[d + 4] = v4;
        records[d + 5] = v5;
        records[d + 6] = v6;
        records[d + 7] = v7;
        records[d + 8] = v8;
        records[d + 9] = v9;
        records[d + 10] = v10;
      }
    }
  }
}

/** Clip to [0, 1] and truncate, as the validator's `(clip(img, 0, 1) * 255).to(uint8)`. */
function toByte(v: number): number {
  return v >= 1 ? 255 : v > 0 ? (v * 255) | 0 : 0;
}

/** A pathological cloud (huge splats close to the camera) must fail its render, not exhaust the process. */
function tooManyPairs(total: number): Error {
  const count = total >= 2 ** 31 - 1 ? 'over 2 billion' : String(total);
  return new Error(`${count} tile-Gaussian pairs exceed the renderer's limit of ${MAX_PAIRS}: the splats are too large on screen`);
}

/** Turns per-tile counts (count of tile t at t + 1) into where each run starts, in place; returns the longest. */
function countsToStarts(start: Int32Array, tiles: number): number {
  let longest = 0;
  for (let t = 0; t < tiles; t++) {
    if (start[t + 1] > longest) longest = start[t + 1];
    start[t + 1] += start[t];
  }
  return longest;
}

/** After filling, start[t] holds where tile t's run ends: shift back by one tile to where each starts. */
function endsToStarts(start: Int32Array, tiles: number): void {
  for (let t = tiles; t > 0; t--) start[t] = start[t - 1];
  start[0] = 0;
}
