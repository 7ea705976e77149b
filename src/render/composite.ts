/**
 * The WebAssembly compositing kernel (composite.wat): one instance per rasteriser, hence per worker thread.
 * Its memory holds the tile's accumulators (four float32 planes T, r, g, b), the tile's open-pixel row masks and
 * the sorted run of records the rasteriser copies in before each tile, so compositing reads nothing from
 * JavaScript's heap.
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

  constructor() {
    compiled ??= new WebAssembly.Module(Buffer.from(compositeWasm, 'base64'));
    this.exports = new WebAssembly.Instance(compiled).exports as unknown as Exports;
    this.acc = new Float32Array(this.exports.memory.buffer, 0, 4 * PLANE);
    this.open = new Int32Array(this.exports.memory.buffer, OPEN_OFFSET, 32);
  }

  /** A view of `floats` floats in the kernel's memory for the sorted run (growing the memory if needed). */
  runRecords(floats: number): Float32Array<ArrayBuffer> {
    const memory = this.exports.memory;
    const needed = RUN_OFFSET + floats * 4;
    if (needed > memory.buffer.byteLength) {
      memory.grow(Math.ceil((needed - memory.buffer.byteLength) / PAGE));
      // Growing detaches the old buffer: every view is made again.
      this.acc = new Float32Array(memory.buffer, 0, 4 * PLANE);
      this.open = new Int32Array(memory.buffer, OPEN_OFFSET, 32);
    }
    this.run = new Float32Array(memory.buffer, RUN_OFFSET, floats);
    return this.run;
  }

  /**
   * Composites the first `count` records of the run into a `cols` x `rows` tile at (px0, py0) and writes its
   * pixels into `out` from byte `offset`, `pitch` bytes per image row.
   */
  composite(count: number, px0: number, py0: number, cols: number, rows: number, options: { background: readonly [number, number, number]; channels: 3 | 4 }, out: Uint8Array, offset: number, pitch: number): void {
    const acc = this.acc, open = this.open;
    acc.fill(1, 0, PLANE);
    acc.fill(0, PLANE);
    const full = cols >= 32 ? -1 : (1 << cols) - 1;
    for (let r = 0; r < 32; r++) open[r] = r < rows ? full : 0;
    if (count > 0) this.exports.composite(RUN_OFFSET, count, 0, OPEN_OFFSET, px0, py0, cols, rows, rows);
    const [br, bg, bb] = options.background;
    const ch = options.channels;
    for (let r = 0; r < rows; r++) {
      let o = offset + r * pitch;
      for (let i = r * ROW, e = i + cols; i < e; i++, o += ch) {
        const t = acc[i];
        out[o] = toByte(acc[i + PLANE] + t * br);
        out[o + 1] = toByte(acc[i + 2 * PLANE] + t * bg);
        out[o + 2] = toByte(acc[i + 3 * PLANE] + t * bb);
        if (ch === 4) out[o + 3] = 255;
      }
    }
  }
}
