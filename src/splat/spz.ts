/**
 * SPZ, the compressed splat format (nianticlabs/spz, version 3): a gzip stream of a 16-byte header and one block
 * per attribute: positions as 24-bit fixed point, alphas, colours, log-scales as bytes, rotations as the
 * "smallest three" of the quaternion in 32 bits. Both Niantic's reference reader and the Spark web viewer read
 * it; a quarter to a tenth of the PLY's size, depending on how well the values compress.
 *
 * Version 4 keeps the same blocks, each its own zstd frame: a 32-byte header (magic, version, count, SH degree,
 * fractional bits, flags, the number of streams, the table of contents' offset, 12 reserved bytes), optional
 * extension bytes, a table of contents of (compressed size, uncompressed size) as two uint64 per stream, then the
 * frames in block order. three.js's SPZLoader and PlayCanvas read it; Spark 2.2 reads only 1 to 3, so 3 stays
 * the default.
 *
 * SPZ's frame is RUB (x right, y up, z toward the viewer): the validator's frame, so a cloud in it is written as
 * it is (the service writes SPZ in the delivery's frame, like PLY). Only SH degree 0 is written (our clouds have no higher bands); a file with higher bands is
 * read and its bands are dropped.
 */
import { promisify } from 'node:util';
import { constants, gunzipSync, gzip, gzipSync, inflateRawSync } from 'node:zlib';
import { allocateCloud, type GaussianCloud } from './cloud.js';
import { zstdCompress, zstdDecompressExact } from './zstd.js';

export const SPZ_MAGIC = 0x5053474e; // "NGSP"
export const SPZ_VERSION = 3;
/** The versions this writer makes: 3 (gzip, the default: Spark reads it) and 4 (zstd streams). */
export const SPZ_WRITE_VERSIONS = [3, 4] as const;
export type SpzVersion = (typeof SPZ_WRITE_VERSIONS)[number];
const HEADER_BYTES = 16;
const V4_HEADER_BYTES = 32;
/**
 * zstd's level. The reference writer uses 12; on splat blocks 6 makes files as small (within 0.1%) in a third of
 * the time (about 1 s for 270k Gaussians in WebAssembly, against gzip's 0.8 s).
 */
const V4_ZSTD_LEVEL = 6;
/** A v4 header may claim at most this many points per byte of file (the reference reader's bound: 1024 / 9). */
const V4_MAX_POINTS_PER_BYTE = 1024 / 9;
const FLAG_EXTENSIONS = 0x2;
/** Fractional bits of the fixed-point positions: 1/4096 of a unit, about 0.37 mm on a 1.5 m asset. */
const FRACTIONAL_BITS = 12;
/** Colours are stored as f_dc * COLOR_SCALE + 0.5 (a scale below SH_C0 keeps out-of-range colours). */
const COLOR_SCALE = 0.15;
/**
 * The reference reader's bound on points; a larger header is refused before inflating the body. With it, a file
 * inflates to at most 16 + 10M x 92 bytes (SH degree 4), whatever its compressed size.
 */
export const MAX_SPZ_POINTS = 10_000_000;
const SQRT1_2 = Math.SQRT1_2;
const MASK9 = (1 << 9) - 1;
const gzipAsync = promisify(gzip);

export class SpzFormatError extends Error {
  override name = 'SpzFormatError';
}

/** Where each attribute's block starts, after the header, in the order the format lays them out. */
function blockOffsets(n: number) {
  const positions = HEADER_BYTES;
  const alphas = positions + n * 9;
  const colours = alphas + n;
  const scales = colours + n * 3;
  const rotations = scales + n * 3;
  return { positions, alphas, colours, scales, rotations };
}

/** Bytes per point for SH degree 0, version 3: position 9, alpha 1, colour 3, scale 3, rotation 4. */
const BYTES_PER_POINT = 20;

const clampByte = (v: number) => (v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v));

/** The SPZ file of a cloud, version 3 (gzip) unless 4 (zstd streams) is asked for. */
export function encodeSpz(cloud: GaussianCloud, version: SpzVersion = SPZ_VERSION): Uint8Array {
  if (version === 4) return encodeSpzV4(cloud);
  return new Uint8Array(gzipSync(packSpz(cloud)));
}

/**
 * The same file; version 3 is compressed on libuv's thread pool rather than on the calling thread (a service's
 * event loop). Version 4's zstd runs in this thread (WebAssembly), about as long as gzip's.
 */
export async function encodeSpzAsync(cloud: GaussianCloud, version: SpzVersion = SPZ_VERSION): Promise<Uint8Array> {
  if (version === 4) return encodeSpzV4(cloud);
  return new Uint8Array(await gzipAsync(packSpz(cloud)));
}

/** Why a version cannot be written, or null. */
export function spzVersionViolation(version: unknown): string | null {
  return SPZ_WRITE_VERSIONS.includes(version as SpzVersion) ? null : `spz_version must be one of ${SPZ_WRITE_VERSIONS.join(', ')}`;
}

/** Version 4: the version 3 blocks (SH degree 0, so five of them), each its own zstd frame. */
function encodeSpzV4(cloud: GaussianCloud): Uint8Array {
  const raw = packSpz(cloud);
  const n = cloud.count;
  const offsets = blockOffsets(n);
  const ends = [offsets.alphas, offsets.colours, offsets.scales, offsets.rotations, raw.length];
  const starts = [offsets.positions, offsets.alphas, offsets.colours, offsets.scales, offsets.rotations];
  const frames = starts.map((start, i) => ({
    size: ends[i] - start,
    frame: ends[i] > start ? zstdCompress(raw.subarray(start, ends[i]), V4_ZSTD_LEVEL) : null,
  }));
  const streams = frames.filter((f) => f.frame !== null) as { size: number; frame: Uint8Array }[];
  const tocBytes = streams.length * 16;
  const out = new Uint8Array(V4_HEADER_BYTES + tocBytes + streams.reduce((s, f) => s + f.frame.length, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, SPZ_MAGIC, true);
  view.setUint32(4, 4, true);
  view.setUint32(8, n, true);
  out[12] = 0; // SH degree
  out[13] = FRACTIONAL_BITS;
  out[14] = 0; // flags: not antialiased, no extensions
  out[15] = streams.length;
  view.setUint32(16, V4_HEADER_BYTES, true); // the table of contents follows the header (no extensions)
  let at = V4_HEADER_BYTES + tocBytes;
  streams.forEach(({ size, frame }, i) => {
    view.setBigUint64(V4_HEADER_BYTES + i * 16, BigInt(frame.length), true);
    view.setBigUint64(V4_HEADER_BYTES + i * 16 + 8, BigInt(size), true);
    out.set(frame, at);
    at += frame.length;
  });
  return out;
}

/** The uncompressed stream: header and attribute blocks. */
export function packSpz(cloud: GaussianCloud): Uint8Array {
  const n = cloud.count;
  if (n > MAX_SPZ_POINTS) throw new SpzFormatError(`${n} Gaussians is more than SPZ readers accept (${MAX_SPZ_POINTS})`);
  const raw = new Uint8Array(HEADER_BYTES + n * BYTES_PER_POINT);
  const header = new DataView(raw.buffer);
  header.setUint32(0, SPZ_MAGIC, true);
  header.setUint32(4, SPZ_VERSION, true);
  header.setUint32(8, n, true);
  raw[12] = 0; // SH degree
  raw[13] = FRACTIONAL_BITS;
  raw[14] = 0; // flags: not antialiased
  raw[15] = 0;
  const c = cloud.columns;
  const { positions, alphas, colours, scales, rotations } = blockOffsets(n);
  const fixed = 1 << FRACTIONAL_BITS;
  const axes = [c.x, c.y, c.z];
  const dc = [c.f_dc_0, c.f_dc_1, c.f_dc_2];
  const logScales = [c.scale_0, c.scale_1, c.scale_2];
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < 3; a++) {
      const v = Math.round(axes[a][i] * fixed);
      if (!(Math.abs(v) < 0x80_0000))
        throw new SpzFormatError(`coordinate ${axes[a][i]} of Gaussian ${i} does not fit SPZ's 24-bit fixed point`);
      const o = positions + (i * 3 + a) * 3;
      raw[o] = v & 0xff;
      raw[o + 1] = (v >> 8) & 0xff;
      raw[o + 2] = (v >> 16) & 0xff;
      raw[colours + i * 3 + a] = clampByte(dc[a][i] * (COLOR_SCALE * 255) + 0.5 * 255);
      raw[scales + i * 3 + a] = clampByte((logScales[a][i] + 10) * 16);
    }
    raw[alphas + i] = clampByte(255 / (1 + Math.exp(-c.opacity[i])));
    packRotation(raw, rotations + i * 4, c.rot_1[i], c.rot_2[i], c.rot_3[i], c.rot_0[i]);
  }
  return raw;
}

/** Smallest three of the unit quaternion (x, y, z, w): 2 bits for the largest's index, then 1 sign + 9 bits each. */
function packRotation(out: Uint8Array, at: number, x: number, y: number, z: number, w: number): void {
  const norm = Math.hypot(x, y, z, w);
  // A zero quaternion is no rotation at all: store the identity.
  const q = norm > 0 ? [x / norm, y / norm, z / norm, w / norm] : [0, 0, 0, 1];
  let largest = 0;
  for (let k = 1; k < 4; k++) if (Math.abs(q[k]) > Math.abs(q[largest])) largest = k;
  // q and -q are the same rotation: make the largest positive, so its sign need not be stored.
  const flip = q[largest] < 0;
  let word = largest;
  for (let k = 0; k < 4; k++) {
    if (k === largest) continue;
    const negative = q[k] < 0 !== flip;
    const magnitude = Math.min(MASK9, Math.floor(MASK9 * (Math.abs(q[k]) / SQRT1_2) + 0.5));
    word = ((word << 10) | (negative ? 1 << 9 : 0) | magnitude) >>> 0;
  }
  out[at] = word & 0xff;
  out[at + 1] = (word >>> 8) & 0xff;
  out[at + 2] = (word >>> 16) & 0xff;
  out[at + 3] = (word >>> 24) & 0xff;
}

export interface SpzHeader {
  version: number;
  count: number;
  shDegree: number;
  fractionalBits: number;
}

const SH_DIMS = [0, 3, 8, 15, 24];

function readHeader(raw: Uint8Array): SpzHeader {
  if (raw.length < HEADER_BYTES) throw new SpzFormatError('shorter than the 16-byte SPZ header');
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  if (view.getUint32(0, true) !== SPZ_MAGIC) throw new SpzFormatError('no SPZ magic ("NGSP")');
  const version = view.getUint32(4, true);
  if (version < 2 || version > 4) throw new SpzFormatError(`SPZ version ${version} is not supported (2 to 4 are)`);
  const count = view.getUint32(8, true);
  if (count > MAX_SPZ_POINTS) throw new SpzFormatError(`${count} points is over the limit of ${MAX_SPZ_POINTS}`);
  const shDegree = raw[12];
  if (shDegree > 4) throw new SpzFormatError(`SH degree ${shDegree} is over 4`);
  if (raw[14] & 0x2) throw new SpzFormatError('SPZ extensions are not supported');
  return { version, count, shDegree, fractionalBits: raw[13] };
}

function expectedLength(h: SpzHeader): number {
  const rotation = h.version >= 3 ? 4 : 3;
  return HEADER_BYTES + h.count * (9 + 1 + 3 + 3 + rotation + SH_DIMS[h.shDegree] * 3);
}

/** Where the deflate data of a gzip member starts: after RFC 1952's 10 fixed bytes and its optional fields. */
function deflateStart(bytes: Uint8Array): number {
  if (bytes.length < 10 || bytes[0] !== 0x1f || bytes[1] !== 0x8b || bytes[2] !== 8) throw new SpzFormatError('not a gzip stream');
  const flags = bytes[3];
  let at = 10;
  if (flags & 4) at += 2 + (bytes[at] | (bytes[at + 1] << 8)); // FEXTRA
  if (flags & 8) at = bytes.indexOf(0, at) + 1 || bytes.length; // FNAME, zero-terminated
  if (flags & 16) at = bytes.indexOf(0, at) + 1 || bytes.length; // FCOMMENT
  if (flags & 2) at += 2; // FHCRC
  if (at >= bytes.length) throw new SpzFormatError('not a complete gzip stream (it ends inside its header)');
  return at;
}

/**
 * Compressed bytes inflated, at most, to reach the 16-byte header: deflate's ratio is at most 1032:1, so even a
 * bomb yields about a megabyte here. Every writer's first block header and 16 literals fit in the first KiB.
 */
const HEADER_PROBES = [64, 1024];

/** The 16 bytes of the SPZ header, inflated from as little of the stream as holds them. */
function inflateHeader(bytes: Uint8Array): Uint8Array {
  const start = deflateStart(bytes);
  for (const length of HEADER_PROBES) {
    let head: Uint8Array;
    try {
      // A sync flush returns what the prefix decodes to instead of calling the cut stream an error.
      head = inflateRawSync(bytes.subarray(start, start + length), { finishFlush: constants.Z_SYNC_FLUSH });
    } catch (err) {
      throw new SpzFormatError(`not a complete gzip stream (${(err as Error).message})`);
    }
    if (head.length >= HEADER_BYTES) return head.subarray(0, HEADER_BYTES);
    if (start + length >= bytes.length) throw new SpzFormatError('shorter than the 16-byte SPZ header');
  }
  throw new SpzFormatError(`the first ${HEADER_PROBES[HEADER_PROBES.length - 1]} compressed bytes do not hold the 16-byte SPZ header`);
}

/**
 * The header and the uncompressed stream of an SPZ file. The header is inflated first and checked; then the whole
 * stream is inflated no further than the length that header declares, so a gzip bomb costs no more memory than
 * an honest file of the points it claims. A stream shorter than declared, longer, or followed by other bytes is
 * refused.
 */
export function inflateSpz(bytes: Uint8Array): { header: SpzHeader; raw: Uint8Array } {
  const header = readHeader(inflateHeader(bytes));
  const expected = expectedLength(header);
  let inflated: { buffer: Buffer; engine: { bytesWritten: number } };
  try {
    inflated = gunzipSync(bytes, { maxOutputLength: expected, info: true }) as unknown as typeof inflated;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw new SpzFormatError(`inflates to more than the ${expected} bytes its header declares`);
    throw new SpzFormatError(`not a complete gzip stream (${(err as Error).message})`);
  }
  const raw = inflated.buffer;
  if (raw.length !== expected) throw new SpzFormatError(`holds ${raw.length} bytes, its header declares ${expected}`);
  // bytesWritten counts the input the inflater consumed: gzip ignores what follows its last member.
  const trailing = bytes.length - inflated.engine.bytesWritten;
  if (trailing > 0) throw new SpzFormatError(`${trailing} bytes of other data after the gzip stream`);
  return { header, raw: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength) };
}

const isV4 = (bytes: Uint8Array): boolean =>
  bytes.length >= 8 && new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true) === SPZ_MAGIC;

/**
 * A version 4 file as the version 3 stream it holds (a 16-byte header and the blocks), read header first: the
 * count within the reference reader's bounds (and what the file's size can hold), the table of contents inside
 * the file and tiling it to its end, each stream's declared size the one its block must have, and each zstd
 * frame declaring that size before it is decoded. Extension bytes (flag 0x2) are skipped, as the reference reader
 * does without them built in.
 */
function unpackV4(bytes: Uint8Array): Uint8Array {
  if (bytes.length < V4_HEADER_BYTES) throw new SpzFormatError('shorter than the 32-byte SPZ version 4 header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  if (version !== 4) throw new SpzFormatError(`SPZ version ${version} without gzip is not supported (4 is)`);
  const count = view.getUint32(8, true);
  const shDegree = bytes[12];
  const streams = bytes[15];
  const toc = view.getUint32(16, true);
  if (count === 0) throw new SpzFormatError('no Gaussians');
  if (count > MAX_SPZ_POINTS) throw new SpzFormatError(`${count} points is over the limit of ${MAX_SPZ_POINTS}`);
  if (count > bytes.length * V4_MAX_POINTS_PER_BYTE) throw new SpzFormatError(`${count} points cannot fit in ${bytes.length} bytes`);
  if (shDegree > 4) throw new SpzFormatError(`SH degree ${shDegree} is over 4`);
  const header: SpzHeader = { version: 4, count, shDegree, fractionalBits: bytes[13] };
  const sizes = [count * 9, count, count * 3, count * 3, count * 4, count * SH_DIMS[shDegree] * 3].filter((size) => size > 0);
  if (streams !== sizes.length)
    throw new SpzFormatError(`the header declares ${streams} streams; SH degree ${shDegree} needs ${sizes.length}`);
  if (toc < V4_HEADER_BYTES || toc + streams * 16 > bytes.length) throw new SpzFormatError('the table of contents lies outside the file');
  const raw = new Uint8Array(expectedLength(header));
  raw.set(bytes.subarray(0, 16));
  raw[14] &= ~FLAG_EXTENSIONS; // the stream carries no extension bytes
  raw[15] = 0;
  let at = toc + streams * 16;
  let into = HEADER_BYTES;
  for (let i = 0; i < streams; i++) {
    const compressed = Number(view.getBigUint64(toc + i * 16, true));
    const size = Number(view.getBigUint64(toc + i * 16 + 8, true));
    if (size !== sizes[i]) throw new SpzFormatError(`stream ${i} declares ${size} bytes; ${count} points need ${sizes[i]}`);
    if (compressed > bytes.length - at) throw new SpzFormatError(`stream ${i} runs past the end of the file`);
    try {
      raw.set(zstdDecompressExact(bytes.subarray(at, at + compressed), size), into);
    } catch (err) {
      throw new SpzFormatError(`stream ${i}: ${(err as Error).message}`);
    }
    at += compressed;
    into += size;
  }
  if (at !== bytes.length) throw new SpzFormatError(`${bytes.length - at} bytes after the last stream`);
  return raw;
}

/** The uncompressed version 3 stream of any SPZ this reader takes (2 and 3 gzip, 4 zstd), header checked. */
function unpacked(bytes: Uint8Array): { raw: Uint8Array; header: SpzHeader } {
  const raw = isV4(bytes) ? unpackV4(bytes) : inflateSpz(bytes).raw;
  const header = readHeader(raw);
  if (header.count === 0) throw new SpzFormatError('no Gaussians');
  const expected = expectedLength(header);
  if (raw.length !== expected) throw new SpzFormatError(`holds ${raw.length} bytes, its header declares ${expected}`);
  return { raw, header };
}

/** Why SPZ bytes may not be served, or null: a gzip stream (versions 2, 3) or zstd streams (4) whose header and length agree. */
export function spzViolation(bytes: Uint8Array): string | null {
  try {
    unpacked(bytes);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Reads an SPZ file (versions 2, 3 and 4) into a cloud in raw PLY space; opacities stay finite. */
export function decodeSpz(bytes: Uint8Array): GaussianCloud {
  const { raw, header: h } = unpacked(bytes);
  const n = h.count;
  const cloud = allocateCloud(n);
  const c = cloud.columns;
  const { positions, alphas, colours, scales, rotations } = blockOffsets(n);
  const unit = 1 / (1 << h.fractionalBits);
  const axes = [c.x, c.y, c.z];
  const dc = [c.f_dc_0, c.f_dc_1, c.f_dc_2];
  const logScales = [c.scale_0, c.scale_1, c.scale_2];
  const q = [0, 0, 0, 0];
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < 3; a++) {
      const o = positions + (i * 3 + a) * 3;
      const v = raw[o] | (raw[o + 1] << 8) | (raw[o + 2] << 16);
      axes[a][i] = ((v << 8) >> 8) * unit; // sign-extend the 24-bit value
      dc[a][i] = (raw[colours + i * 3 + a] / 255 - 0.5) / COLOR_SCALE;
      logScales[a][i] = raw[scales + i * 3 + a] / 16 - 10;
    }
    // Half a step in from 0 and 1, so the logit stays finite (a PLY must hold no infinities).
    const alpha = Math.min(254.5, Math.max(0.5, raw[alphas + i])) / 255;
    c.opacity[i] = Math.log(alpha / (1 - alpha));
    if (h.version >= 3) unpackSmallestThree(raw, rotations + i * 4, q);
    else unpackFirstThree(raw, rotations + i * 3, q);
    c.rot_0[i] = q[3];
    c.rot_1[i] = q[0];
    c.rot_2[i] = q[1];
    c.rot_3[i] = q[2];
  }
  return cloud;
}

function unpackSmallestThree(raw: Uint8Array, at: number, q: number[]): void {
  let word = (raw[at] | (raw[at + 1] << 8) | (raw[at + 2] << 16) | (raw[at + 3] << 24)) >>> 0;
  const largest = word >>> 30;
  let squares = 0;
  for (let k = 3; k >= 0; k--) {
    if (k === largest) continue;
    const magnitude = word & MASK9;
    const negative = (word >>> 9) & 1;
    word >>>= 10;
    const v = SQRT1_2 * (magnitude / MASK9);
    q[k] = negative ? -v : v;
    squares += v * v;
  }
  q[largest] = Math.sqrt(Math.max(0, 1 - squares));
}

function unpackFirstThree(raw: Uint8Array, at: number, q: number[]): void {
  let squares = 0;
  for (let k = 0; k < 3; k++) {
    q[k] = raw[at + k] / 127.5 - 1;
    squares += q[k] * q[k];
  }
  q[3] = Math.sqrt(Math.max(0, 1 - squares));
}
