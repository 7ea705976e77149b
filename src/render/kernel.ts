/**
 * The WebAssembly kernel (kernel.wat): projection, compositing and the conversion to bytes, one instance per
 * rasteriser, hence per worker thread. Its memory holds everything those loops touch, so they read and write
 * nothing on JavaScript's heap: the fixed part (tile accumulators, row masks, camera, scratch), then regions
 * laid out one after the other. A region that grows moves the ones after it, whose contents are then lost;
 * the order below makes that harmless, as each region is filled after the ones before it in a render:
 * cloud (kept across renders of one scene), projected records, depth keys, the tile run, the output image.
 */
import type { Camera } from './camera.js';
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

type Region = 'cloud' | 'proj' | 'keys' | 'run' | 'image';
const REGIONS: readonly Region[] = ['cloud', 'proj', 'keys', 'run', 'image'];

let compiled: WebAssembly.Module | null = null;

interface Exports {
  memory: WebAssembly.Memory;
  project(cloud: number, pitch: number, count: number, params: number, proj: number, keys: number, scratch: number): number;
  composite(rec: number, count: number, acc: number, open: number, px0: number, py0: number, cols: number, rows: number, openRows: number): number;
  readout(acc: number, cols: number, rows: number, out: number, pitch: number, channels: number, br: number, bg: number, bb: number): void;
}

export class RenderKernel {
  private readonly exports: Exports;
  private readonly bytes: Record<Region, number> = { cloud: 0, proj: 0, keys: 0, run: 0, image: 0 };
  private readonly offset: Record<Region, number> = { cloud: 0, proj: 0, keys: 0, run: 0, image: 0 };
  private acc = new Float32Array(0);
  private open = new Int32Array(0);
  private params = new Float32Array(0);
  /** The scene whose cloud is in memory (by identity of its data) and its column pitch. */
  private cloudData: Float32Array | null = null;
  private cloudPitch = 0;
  proj = new Float32Array(0);
  keys = new Int32Array(0);
  run = new Float32Array(0);
  private image = new Uint8Array(0);

  constructor() {
    compiled ??= new WebAssembly.Module(Buffer.from(kernelWasm, 'base64'));
    this.exports = new WebAssembly.Instance(compiled).exports as unknown as Exports;
    this.layout();
  }

  /**
   * Projects the cloud for `cam` (the tile rows [row0, row1) only) into `proj` (PROJECTED floats per visible
   * Gaussian) and `keys`; returns how many are visible. The cloud is copied in once per scene.
   */
  project(cloud: PreparedCloud, cam: Camera, tile: number, row0: number, row1: number): number {
    if (cloud.data !== this.cloudData) {
      this.cloudData = null;
      this.reserve('cloud', FIELDS * cloud.pitch * 4);
      new Float32Array(this.exports.memory.buffer, this.offset.cloud, FIELDS * cloud.pitch).set(cloud.data.subarray(0, FIELDS * cloud.pitch));
      this.cloudData = cloud.data;
      this.cloudPitch = cloud.pitch;
    }
    // Room for every Gaussian plus the three a 4-lane group may write past the last visible one.
    const cap = cloud.count + 4;
    if (this.bytes.proj < cap * PROJECTED * 4) this.reserve('proj', Math.ceil(cap * 1.25) * PROJECTED * 4);
    if (this.bytes.keys < cap * 4) this.reserve('keys', Math.ceil(cap * 1.25) * 4);
    const { fx, fy, cx, cy, width, height, near, far } = cam;
    const tanX = (0.5 * width) / fx, tanY = (0.5 * height) / fy;
    this.params.set([
      ...cam.view, fx, fy, cx, cy, width, height, near, far,
      (width - cx) / fx + 0.3 * tanX, -(cx / fx + 0.3 * tanX), (height - cy) / fy + 0.3 * tanY, -(cy / fy + 0.3 * tanY),
      tile, row0, row1, Math.ceil(width / tile), -fx, -fy,
    ]);
    return this.exports.project(this.offset.cloud, this.cloudPitch, cloud.count, PARAMS_OFFSET, this.offset.proj, this.offset.keys, SCRATCH_OFFSET);
  }

  /** Makes room for a tile run of `runFloats` floats and an image of `imageBytes` bytes. */
  reserveComposite(runFloats: number, imageBytes: number): void {
    if (this.bytes.run < runFloats * 4) this.reserve('run', runFloats * 4);
    if (this.bytes.image < imageBytes) this.reserve('image', imageBytes);
  }

  /**
   * Composites the first `count` records of `run` into a `cols` x `rows` tile at (px0, py0) and writes its
   * pixels into the kernel's image from byte `offset`, `pitch` bytes per image row.
   */
  composite(count: number, px0: number, py0: number, cols: number, rows: number, options: { background: readonly [number, number, number]; channels: 3 | 4 }, offset: number, pitch: number): void {
    const acc = this.acc, open = this.open;
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

  /** Gives `region` at least `bytes` bytes; the regions after it move (their contents are lost). */
  private reserve(region: Region, bytes: number): void {
    this.bytes[region] = bytes;
    this.layout();
  }

  private layout(): void {
    let at = REGIONS_OFFSET;
    for (const region of REGIONS) {
      this.offset[region] = at;
      at += Math.ceil(this.bytes[region] / 64) * 64; // each region starts on a cache line
    }
    const memory = this.exports.memory;
    if (at > memory.buffer.byteLength) memory.grow(Math.ceil((at - memory.buffer.byteLength) / PAGE));
    // Growing detaches the old buffer, and regions may have moved: every view is made again.
    const buffer = memory.buffer;
    this.acc = new Float32Array(buffer, 0, 4 * PLANE);
    this.open = new Int32Array(buffer, OPEN_OFFSET, 32);
    this.params = new Float32Array(buffer, PARAMS_OFFSET, 32);
    this.proj = new Float32Array(buffer, this.offset.proj, this.bytes.proj / 4);
    this.keys = new Int32Array(buffer, this.offset.keys, this.bytes.keys / 4);
    this.run = new Float32Array(buffer, this.offset.run, this.bytes.run / 4);
    this.image = new Uint8Array(buffer, this.offset.image, this.bytes.image);
  }
}
