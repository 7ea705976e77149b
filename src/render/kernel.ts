/**
 * The WebAssembly kernel (kernel.wat): projection, compositing and the conversion to bytes, one instance per
 * rasteriser, hence per worker thread. Its memory holds everything those loops touch, so they read and write
 * nothing on JavaScript's heap: the fixed part (tile accumulators, row masks, camera, scratch), then regions
 * laid out one after the other. A region that grows moves the ones after it, whose contents are then lost;
 * the order below makes that harmless, as each region is filled after the ones before it in a render:
 * cloud (kept across renders of one scene), projected records and their depth keys, where each tile's run
 * starts, the runs of records and their keys, the sort's ranks and scratch, the tile run being composited,
 * the image.
 */
import { jacobianLimits, type Camera } from './camera.js';
import { kernelWasm } from './kernel-wasm.js';
import { FIELDS, type PreparedCloud } from './prepare.js';

/** Layout shared with kernel.wat: 36 floats per accumulator row, 32 rows per plane, 4 planes. */
const ROW = 36;
const PLANE = 32 * ROW;
const OPEN_OFFSET = 4 * PLANE * 4;
const PARAMS_OFFSET = OPEN_OFFSET + 32 * 4;
const SCRATCH_OFFSET = PARAMS_OFFSET + 32 * 4;
const REGIONS_OFFSET = SCRATCH_OFFSET + 256 + 64;
const PAGE = 65536;
/** Floats per projected record (kernel.wat `project`). */
export const PROJECTED = 16;

/** Floats per record of a tile run (kernel.wat `fill_tiles`): the 11 the compositing loop reads, and a spare. */
export const RECORD = 12;

type Region =
  | 'cloud'
  | 'proj'
  | 'keys'
  | 'tiles'
  | 'records'
  | 'recordKeys'
  | 'order'
  | 'sortKeys'
  | 'sortIndex'
  | 'buckets'
  | 'run'
  | 'image';
const REGIONS: readonly Region[] = [
  'cloud',
  'proj',
  'keys',
  'tiles',
  'records',
  'recordKeys',
  'order',
  'sortKeys',
  'sortIndex',
  'buckets',
  'run',
  'image',
];

let compiled: WebAssembly.Module | null = null;

interface Exports {
  memory: WebAssembly.Memory;
  project(cloud: number, pitch: number, count: number, params: number, proj: number, keys: number, scratch: number): number;
  count_tiles(proj: number, n: number, tilesX: number, count: number): number;
  fill_tiles(proj: number, keys: number, n: number, tilesX: number, cursor: number, records: number, recordKeys: number): void;
  scatter_run(records: number, begin: number, rank: number, n: number, run: number): void;
  sort_run(keys: number, begin: number, n: number, k0: number, i0: number, count: number, rank: number): number;
  composite(
    rec: number,
    count: number,
    acc: number,
    open: number,
    px0: number,
    py0: number,
    cols: number,
    rows: number,
    openRows: number,
  ): number;
  readout(acc: number, cols: number, rows: number, out: number, pitch: number, channels: number, br: number, bg: number, bb: number): void;
}

export class RenderKernel {
  private readonly exports: Exports;
  private readonly bytes = Object.fromEntries(REGIONS.map((r) => [r, 0])) as Record<Region, number>;
  private readonly offset = Object.fromEntries(REGIONS.map((r) => [r, 0])) as Record<Region, number>;
  private acc = new Float32Array(0);
  private open = new Int32Array(0);
  private params = new Float32Array(0);
  /** The scene whose cloud is in memory (by identity of its data) and its column pitch. */
  private cloudData: Float32Array | null = null;
  private cloudPitch = 0;
  // Views of the regions, made again whenever the layout changes: read them after each call that may grow one.
  /** Per tile t, where its run starts in `records` (tiles + 1 entries once `fillTiles` has run). */
  tiles = new Int32Array(0);
  recordKeys = new Int32Array(0);
  /** The rank of each record of the run being sorted: scatterRun's destination slots. */
  order = new Int32Array(0);
  private image = new Uint8Array(0);

  constructor() {
    compiled ??= new WebAssembly.Module(Buffer.from(kernelWasm, 'base64'));
    this.exports = new WebAssembly.Instance(compiled).exports as unknown as Exports;
    this.layout();
  }

  /**
   * Projects the cloud for `cam` (the tile rows [row0, row1) only) into the kernel's projected records
   * (PROJECTED floats per visible Gaussian) and their depth keys; returns how many are visible. The cloud is
   * copied in once per scene.
   */
  project(cloud: PreparedCloud, cam: Camera, tile: number, row0: number, row1: number): number {
    if (cloud.data !== this.cloudData) {
      this.cloudData = null;
      this.reserve({ cloud: FIELDS * cloud.pitch * 4 });
      new Float32Array(this.exports.memory.buffer, this.offset.cloud, FIELDS * cloud.pitch).set(
        cloud.data.subarray(0, FIELDS * cloud.pitch),
      );
      this.cloudData = cloud.data;
      this.cloudPitch = cloud.pitch;
    }
    // Room for every Gaussian plus the three a 4-lane group may write past the last visible one.
    const cap = cloud.count + 4;
    if (this.bytes.proj < cap * PROJECTED * 4)
      this.reserve({ proj: Math.ceil(cap * 1.25) * PROJECTED * 4, keys: Math.ceil(cap * 1.25) * 4 });
    const { fx, fy, cx, cy, width, height, near, far } = cam;
    const lim = jacobianLimits(cam);
    this.params.set([
      ...cam.view,
      fx,
      fy,
      cx,
      cy,
      width,
      height,
      near,
      far,
      lim.xPos,
      -lim.xNeg,
      lim.yPos,
      -lim.yNeg,
      tile,
      row0,
      row1,
      Math.ceil(width / tile),
      -fx,
      -fy,
    ]);
    return this.exports.project(
      this.offset.cloud,
      this.cloudPitch,
      cloud.count,
      PARAMS_OFFSET,
      this.offset.proj,
      this.offset.keys,
      SCRATCH_OFFSET,
    );
  }

  /**
   * Counts the (tile, record) pairs of the `visible` projected records into `tiles` (entry t + 1 for tile t);
   * returns their total.
   */
  countTiles(visible: number, tileCount: number, tilesX: number): number {
    if (this.bytes.tiles < (tileCount + 1) * 4) this.reserve({ tiles: (tileCount + 1) * 4 });
    this.tiles.fill(0, 0, tileCount + 1);
    return this.exports.count_tiles(this.offset.proj, visible, tilesX, this.offset.tiles);
  }

  /**
   * Copies each projected record and its key into the runs of its tiles; `tiles` holds where each run starts
   * and is left holding where each ends. `capacity` (at least the pair count) sizes the records region.
   */
  fillTiles(visible: number, tilesX: number, pairs: number, capacity: number): void {
    if (this.bytes.records < pairs * RECORD * 4) this.reserve({ records: capacity * RECORD * 4, recordKeys: capacity * 4 });
    this.exports.fill_tiles(
      this.offset.proj,
      this.offset.keys,
      visible,
      tilesX,
      this.offset.tiles,
      this.offset.records,
      this.offset.recordKeys,
    );
  }

  /** Makes room for sorting and compositing runs of up to `longest` records, and for an image of `imageBytes` bytes. */
  reserveComposite(longest: number, imageBytes: number): void {
    if (this.bytes.order < longest * 4) {
      const cap = Math.ceil(longest * 1.25) + 16;
      this.reserve({ order: cap * 4, sortKeys: cap * 4, sortIndex: cap * 4, buckets: (2 * cap + 2) * 4, run: cap * RECORD * 4 });
    }
    if (this.bytes.image < imageBytes) this.reserve({ image: imageBytes });
  }

  /**
   * Sorts the run of n records starting at `begin` by depth (stable) and leaves their ranks in `order`; returns
   * false, having ranked nothing, when its keys are too unevenly spread for the kernel's bucket sort.
   */
  sortRun(begin: number, n: number): boolean {
    const o = this.offset;
    return this.exports.sort_run(o.recordKeys, begin, n, o.sortKeys, o.sortIndex, o.buckets, o.order) === 1;
  }

  /** Copies the n records of the run starting at `begin` into the tile run, record i to slot order[i]. */
  scatterRun(begin: number, n: number): void {
    this.exports.scatter_run(this.offset.records, begin, this.offset.order, n, this.offset.run);
  }

  /**
   * Composites the first `count` records of the tile run into a `cols` x `rows` tile at (px0, py0) and writes its
   * pixels into the kernel's image from byte `offset`, `pitch` bytes per image row.
   */
  composite(
    count: number,
    px0: number,
    py0: number,
    cols: number,
    rows: number,
    options: { background: readonly [number, number, number]; channels: 3 | 4 },
    offset: number,
    pitch: number,
  ): void {
    const acc = this.acc,
      open = this.open;
    acc.fill(1, 0, PLANE);
    acc.fill(0, PLANE);
    const full = cols >= 32 ? -1 : (1 << cols) - 1;
    for (let r = 0; r < 32; r++) open[r] = r < rows ? full : 0;
    if (count > 0) this.exports.composite(this.offset.run, count, 0, OPEN_OFFSET, px0, py0, cols, rows, rows);
    const [br, bg, bb] = options.background;
    this.exports.readout(0, cols, rows, this.offset.image + offset, pitch, options.channels, br, bg, bb);
  }

  /** Copies the first `bytes` bytes of the kernel's image into `out`. */
  copyImage(out: Uint8Array, bytes: number): void {
    out.set(this.image.subarray(0, bytes));
  }

  /**
   * Gives each region of `sizes` its size, all at once (regions that are filled together are sized together, so
   * one size check stands for the group); the regions after them move and lose their contents. When the memory
   * cannot grow that far, every size stays as it was (so later renders still work) and the error is thrown.
   */
  private reserve(sizes: Partial<Record<Region, number>>): void {
    const previous = { ...this.bytes };
    Object.assign(this.bytes, sizes);
    try {
      this.layout();
    } catch (err) {
      Object.assign(this.bytes, previous);
      this.layout(); // fits: the memory was already this large
      throw err;
    }
  }

  private layout(): void {
    const offset = { ...this.offset };
    let at = REGIONS_OFFSET;
    for (const region of REGIONS) {
      offset[region] = at;
      at += Math.ceil(this.bytes[region] / 64) * 64; // each region starts on a cache line
    }
    const memory = this.exports.memory;
    if (at > memory.buffer.byteLength) memory.grow(Math.ceil((at - memory.buffer.byteLength) / PAGE));
    Object.assign(this.offset, offset);
    // Growing detaches the old buffer, and regions may have moved: every view is made again.
    const buffer = memory.buffer;
    this.acc = new Float32Array(buffer, 0, 4 * PLANE);
    this.open = new Int32Array(buffer, OPEN_OFFSET, 32);
    this.params = new Float32Array(buffer, PARAMS_OFFSET, 32);
    this.tiles = new Int32Array(buffer, this.offset.tiles, this.bytes.tiles / 4);
    this.recordKeys = new Int32Array(buffer, this.offset.recordKeys, this.bytes.recordKeys / 4);
    this.order = new Int32Array(buffer, this.offset.order, this.bytes.order / 4);
    this.image = new Uint8Array(buffer, this.offset.image, this.bytes.image);
  }
}
