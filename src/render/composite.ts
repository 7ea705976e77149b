/**
 * The WebAssembly compositing kernel (composite.wat): one instance per rasteriser, hence per worker thread.
 * Its memory holds the tile's accumulators (four float32 planes T, r, g, b), the tile's open-pixel row masks, the
 * sorted run of records the rasteriser copies in before each tile, and the output pixels of the render, so
 * compositing and the conversion to bytes read and write nothing on JavaScript's heap.
 */
import { compositeWasm } from './composite-wasm.js';

/** Layout shared with composite.wat: 36 floats per accumulator row, 32 rows per plane, 4 planes. */
const ROW = 36;
const PLANE = 32 * ROW;
const ACC_BYTES = 4 * PLANE * 4;
const OPEN_OFFSET = ACC_BYTES;
const RUN_OFFSET = OPEN_OFFSET + 32 * 4;
const PAGE = 65536;

let compiled: WebAssembly.Module | null = null;

interface Exports {
  memory: WebAssembly.Memory;
  composite(rec: number, count: number, acc: number, open: number, px0: number, py0: number, cols: number, rows: number, openRows: number): number;
  readout(acc: number, cols: number, rows: number, out: number, pitch: number, channels: number, br: number, bg: number, bb: number): void;
}

/** Clip to [0, 1] and truncate, as the validator's `(clip(img, 0, 1) * 255).to(uint8)`. */
export function toByte(v: number): number {
  return v >= 1 ? 255 : v > 0 ? (v * 255) | 0 : 0;
}

export class CompositeKernel {
  private readonly exports: Exports;
  private acc: Float32Array;
  private open: Int32Array;
  private run = new Float32Array(0);
  private image = new Uint8Array(0);

  constructor() {
    compiled ??= new WebAssembly.Module(Buffer.from(compositeWasm, 'base64'));
    this.exports = new WebAssembly.Instance(compiled).exports as unknown as Exports;
    this.acc = new Float32Array(this.exports.memory.buffer, 0, 4 * PLANE);
    this.open = new Int32Array(this.exports.memory.buffer, OPEN_OFFSET, 32);
  }

  /**
   * Lays out the kernel's memory for one render: room for a run of `runFloats` floats of records (the
   * rasteriser copies each tile's run there before compositing it), then `imageBytes` bytes of output pixels.
   * Grows the memory when needed; returns the view of the run.
   */
  reserve(runFloats: number, imageBytes: number): Float32Array<ArrayBuffer> {
    if (this.run.length === runFloats && this.image.length >= imageBytes) return this.run;
    const memory = this.exports.memory;
    const imageOffset = RUN_OFFSET + Math.ceil(runFloats / 16) * 64;
    const needed = imageOffset + imageBytes + 16;
    if (needed > memory.buffer.byteLength) memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE));
    // Growing detaches the old buffer: every view is made again.
    this.acc = new Float32Array(memory.buffer, 0, 4 * PLANE);
    this.open = new Int32Array(memory.buffer, OPEN_OFFSET, 32);
    this.run = new Float32Array(memory.buffer, RUN_OFFSET, runFloats);
    this.image = new Uint8Array(memory.buffer, imageOffset, imageBytes);
    return this.run;
  }

  /**
   * Composites the first `count` records of the run into a `cols` x `rows` tile at (px0, py0) and writes its
   * pixels into the kernel's image from byte `offset`, `pitch` bytes per image row.
   */
  composite(count: number, px0: number, py0: number, cols: number, rows: number, options: { background: readonly [number, number, number]; channels: 3 | 4 }, offset: number, pitch: number): void {
    const acc = this.acc, open = this.open;
    acc.fill(1, 0, PLANE);
    acc.fill(0, PLANE);
    const full = cols >= 32 ? -1 : (1 << cols) - 1;
    for (let r = 0; r < 32; r++) open[r] = r < rows ? full : 0;
    if (count > 0) this.exports.composite(RUN_OFFSET, count, 0, OPEN_OFFSET, px0, py0, cols, rows, rows);
    const [br, bg, bb] = options.background;
    this.exports.readout(0, cols, rows, this.image.byteOffset + offset, pitch, options.channels, br, bg, bb);
  }

  /** Copies the first `bytes` bytes of the kernel's image into `out`. */
  copyImage(out: Uint8Array, bytes: number): void {
    out.set(this.image.subarray(0, bytes));
  }
}
