/**
 * Zstandard for SPZ version 4, through a WebAssembly build of the reference library (@bokuweb/zstd-wasm):
 * Node 20's zlib has no zstd. The module is started once, when this file is first imported, so compressing and
 * decompressing are synchronous afterwards. Decompression is bounded: the frame header must declare the exact
 * size the caller expects before a byte is allocated for it.
 */
import { compress, decompress, init } from '@bokuweb/zstd-wasm';

await init();

const FRAME_MAGIC = 0xfd2fb528;

/** One zstd frame of `bytes` at `level` (SPZ's reference writer uses 12). */
export function zstdCompress(bytes: Uint8Array, level: number): Uint8Array {
  return compress(bytes, level);
}

/**
 * The content size a zstd frame header declares, or null when there is none (or the bytes are no frame).
 * Layout (RFC 8878): magic, a descriptor byte, the window byte unless single-segment, the dictionary id, then
 * the content size in 0 (absent), 1, 2 (+256), 4 or 8 bytes.
 */
export function zstdContentSize(bytes: Uint8Array): number | null {
  if (bytes.length < 6) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== FRAME_MAGIC) return null;
  const descriptor = bytes[4];
  const singleSegment = (descriptor >> 5) & 1;
  const sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][descriptor >> 6];
  const at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][descriptor & 3];
  if (sizeBytes === 0 || at + sizeBytes > bytes.length) return null;
  switch (sizeBytes) {
    case 1:
      return bytes[at];
    case 2:
      return view.getUint16(at, true) + 256;
    case 4:
      return view.getUint32(at, true);
    default: {
      const size = view.getBigUint64(at, true);
      return size <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(size) : null;
    }
  }
}

/** The `size` bytes one zstd frame holds; throws unless its header declares exactly that size and it decodes to it. */
export function zstdDecompressExact(bytes: Uint8Array, size: number): Uint8Array {
  const declared = zstdContentSize(bytes);
  if (declared !== size) throw new Error(`the zstd frame declares ${declared ?? 'no'} content size, ${size} bytes were expected`);
  const out = decompress(bytes);
  if (out.length !== size) throw new Error(`the zstd frame decodes to ${out.length} bytes, ${size} were expected`);
  return out;
}
