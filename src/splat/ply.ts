/**
 * Binary PLY for 3D Gaussians. The writer emits exactly the header the subnet's SPZ packer accepts
 * (no comments, one element, float properties only); the reader takes any binary little-endian PLY whose
 * first element is `vertex`, reads properties by name and ignores the ones a cloud does not hold
 * (normals, f_rest_*).
 */
import { allocateCloud, GAUSSIAN_PROPERTIES, type GaussianCloud } from './cloud.js';

export const MAX_PLY_VERTICES = 10_485_760;

const FLOATS_PER_GAUSSIAN = GAUSSIAN_PROPERTIES.length;

export function plyHeader(count: number): string {
  let header = `ply\nformat binary_little_endian 1.0\nelement vertex ${count}\n`;
  for (const name of GAUSSIAN_PROPERTIES) header += `property float ${name}\n`;
  return `${header}end_header\n`;
}

/** Encodes a cloud as binary PLY. The body is written through an aligned Float32Array view: no copies. */
export function encodePly(cloud: GaussianCloud): Uint8Array {
  const { bytes, body } = plyBuffer(cloud.count);
  interleave(cloud, body, 0, cloud.count);
  if (!littleEndianHost()) swapFloat32(body);
  return bytes;
}

/** Gaussians written per slice by encodePlyInSlices: 0.9 MB of body. */
export const PLY_SLICE_GAUSSIANS = 16384;

/**
 * The same bytes as encodePly, written a slice of Gaussians at a time with `between()` awaited before each
 * slice: a caller on the event loop passes a wait for the loop's next turn. Writing 13 MB of fresh memory in
 * one go holds a thread for 60-190 ms on a virtual machine, most of it the first touch of each page; a slice
 * takes a few milliseconds. (The first slice waits too: callers that start together must not write theirs in
 * the same turn.)
 */
export async function encodePlyInSlices(
  cloud: GaussianCloud,
  between: () => Promise<void>,
  slice = PLY_SLICE_GAUSSIANS,
): Promise<Uint8Array> {
  const { bytes, body } = plyBuffer(cloud.count);
  for (let from = 0; from < cloud.count; from += slice) {
    await between();
    const to = Math.min(cloud.count, from + slice);
    interleave(cloud, body, from, to);
    if (!littleEndianHost()) swapFloat32(body.subarray(from * FLOATS_PER_GAUSSIAN, to * FLOATS_PER_GAUSSIAN));
  }
  return bytes;
}

/** The PLY's bytes with the header written, and the aligned body to fill. */
function plyBuffer(count: number): { bytes: Uint8Array; body: Float32Array } {
  const header = new TextEncoder().encode(plyHeader(count));
  // Shift the start so that the body begins on a 4-byte boundary of the underlying buffer.
  const pad = (4 - (header.length % 4)) % 4;
  const bodyBytes = count * FLOATS_PER_GAUSSIAN * 4;
  const buffer = new ArrayBuffer(pad + header.length + bodyBytes);
  new Uint8Array(buffer, pad, header.length).set(header);
  const body = new Float32Array(buffer, pad + header.length, count * FLOATS_PER_GAUSSIAN);
  return { bytes: new Uint8Array(buffer, pad, header.length + bodyBytes), body };
}

const TYPE_SIZES: Record<string, number> = {
  char: 1,
  int8: 1,
  uchar: 1,
  uint8: 1,
  short: 2,
  int16: 2,
  ushort: 2,
  uint16: 2,
  int: 4,
  int32: 4,
  uint: 4,
  uint32: 4,
  float: 4,
  float32: 4,
  double: 8,
  float64: 8,
};

export interface PlyProperty {
  name: string;
  type: string;
}

export interface PlyHeader {
  vertexCount: number;
  properties: PlyProperty[];
  /** Byte offset of the body. */
  bodyOffset: number;
  /** Bytes per vertex. */
  stride: number;
}

export class PlyFormatError extends Error {
  override name = 'PlyFormatError';
}

/** Parses the header; throws PlyFormatError saying what is wrong. */
export function parsePlyHeader(bytes: Uint8Array): PlyHeader {
  const end = findHeaderEnd(bytes);
  if (end < 0) throw new PlyFormatError('no end_header line in the first 64 KiB');
  const lines = new TextDecoder('latin1')
    .decode(bytes.subarray(0, end))
    .split('\n')
    .map((l) => l.replace(/\r$/, ''));
  if (lines[0] !== 'ply') throw new PlyFormatError('first line is not "ply"');
  let format = '';
  let vertexCount = -1;
  let element = '';
  let seenOtherElement = false;
  const properties: PlyProperty[] = [];
  for (const line of lines.slice(1)) {
    const words = line.trim().split(/\s+/);
    switch (words[0]) {
      case 'format':
        format = words.slice(1).join(' ');
        break;
      case 'comment':
      case 'obj_info':
      case 'end_header':
      case '':
        break;
      case 'element':
        if (vertexCount < 0 && words[1] === 'vertex') {
          vertexCount = Number(words[2]);
          if (!Number.isSafeInteger(vertexCount) || vertexCount < 0) throw new PlyFormatError(`bad vertex count "${words[2]}"`);
        } else if (vertexCount < 0) {
          throw new PlyFormatError(`first element is "${words[1]}", expected "vertex"`);
        } else {
          seenOtherElement = true;
        }
        element = words[1];
        break;
      case 'property':
        if (element !== 'vertex' || seenOtherElement) break;
        if (words[1] === 'list') throw new PlyFormatError('list properties in the vertex element are not supported');
        if (!(words[1] in TYPE_SIZES)) throw new PlyFormatError(`unknown property type "${words[1]}"`);
        properties.push({ type: words[1], name: words[2] });
        break;
      default:
        throw new PlyFormatError(`unexpected header line "${line.slice(0, 80)}"`);
    }
  }
  if (format !== 'binary_little_endian 1.0')
    throw new PlyFormatError(`format "${format}" is not supported (binary_little_endian 1.0 only)`);
  if (vertexCount < 0) throw new PlyFormatError('no vertex element');
  const stride = properties.reduce((s, p) => s + TYPE_SIZES[p.type], 0);
  return { vertexCount, properties, bodyOffset: end, stride };
}

/** Decodes a binary PLY into a cloud. Missing properties are an error; the rest are ignored. */
export function decodePly(bytes: Uint8Array): GaussianCloud {
  const header = parsePlyHeader(bytes);
  const { vertexCount: n, properties, bodyOffset, stride } = header;
  if (bytes.length - bodyOffset < n * stride) {
    throw new PlyFormatError(`body holds ${bytes.length - bodyOffset} bytes, ${n} vertices need ${n * stride}`);
  }
  const byName = new Map<string, { offset: number; type: string }>();
  let offset = 0;
  for (const p of properties) {
    byName.set(p.name, { offset, type: p.type });
    offset += TYPE_SIZES[p.type];
  }
  const missing = GAUSSIAN_PROPERTIES.filter((name) => !byName.has(name));
  if (missing.length) throw new PlyFormatError(`missing properties: ${missing.join(' ')}`);

  const cloud = allocateCloud(n);
  const allFloat = properties.every((p) => p.type === 'float' || p.type === 'float32');
  if (allFloat && littleEndianHost()) {
    // Fast path: one aligned Float32Array over the body, then a strided gather per column.
    const floats = stride / 4;
    const body = alignedFloat32(bytes, bodyOffset, n * floats);
    const at = (name: string) => byName.get(name)!.offset / 4;
    if (floats === FLOATS_PER_GAUSSIAN && GAUSSIAN_PROPERTIES.every((name, p) => at(name) === p)) {
      deinterleave(body, cloud);
      return cloud;
    }
    for (const name of GAUSSIAN_PROPERTIES) {
      const column = cloud.columns[name];
      for (let i = 0, o = at(name); i < n; i++, o += floats) column[i] = body[o];
    }
    return cloud;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + bodyOffset, n * stride);
  for (const name of GAUSSIAN_PROPERTIES) {
    const { offset: at, type } = byName.get(name)!;
    const read = READERS[type];
    const column = cloud.columns[name];
    for (let i = 0, o = at; i < n; i++, o += stride) column[i] = read(view, o);
  }
  return cloud;
}

/**
 * Row-by-row copy of the 14 columns into the interleaved body, rows [from, to). One sequential write stream is
 * several times faster than 14 strided passes over a 56 MB buffer; the unrolled body is deliberate.
 */
function interleave(cloud: GaussianCloud, body: Float32Array, from: number, to: number): void {
  const c = cloud.columns;
  const x = c.x,
    y = c.y,
    z = c.z,
    d0 = c.f_dc_0,
    d1 = c.f_dc_1,
    d2 = c.f_dc_2,
    op = c.opacity;
  const s0 = c.scale_0,
    s1 = c.scale_1,
    s2 = c.scale_2,
    r0 = c.rot_0,
    r1 = c.rot_1,
    r2 = c.rot_2,
    r3 = c.rot_3;
  for (let i = from, o = from * 14; i < to; i++, o += 14) {
    body[o] = x[i];
    body[o + 1] = y[i];
    body[o + 2] = z[i];
    body[o + 3] = d0[i];
    body[o + 4] = d1[i];
    body[o + 5] = d2[i];
    body[o + 6] = op[i];
    body[o + 7] = s0[i];
    body[o + 8] = s1[i];
    body[o + 9] = s2[i];
    body[o + 10] = r0[i];
    body[o + 11] = r1[i];
    body[o + 12] = r2[i];
    body[o + 13] = r3[i];
  }
}

/** The inverse of interleave, for bodies laid out exactly as we write them. */
function deinterleave(body: Float32Array, cloud: GaussianCloud): void {
  const c = cloud.columns;
  const x = c.x,
    y = c.y,
    z = c.z,
    d0 = c.f_dc_0,
    d1 = c.f_dc_1,
    d2 = c.f_dc_2,
    op = c.opacity;
  const s0 = c.scale_0,
    s1 = c.scale_1,
    s2 = c.scale_2,
    r0 = c.rot_0,
    r1 = c.rot_1,
    r2 = c.rot_2,
    r3 = c.rot_3;
  for (let i = 0, o = 0; i < cloud.count; i++, o += 14) {
    x[i] = body[o];
    y[i] = body[o + 1];
    z[i] = body[o + 2];
    d0[i] = body[o + 3];
    d1[i] = body[o + 4];
    d2[i] = body[o + 5];
    op[i] = body[o + 6];
    s0[i] = body[o + 7];
    s1[i] = body[o + 8];
    s2[i] = body[o + 9];
    r0[i] = body[o + 10];
    r1[i] = body[o + 11];
    r2[i] = body[o + 12];
    r3[i] = body[o + 13];
  }
}

const READERS: Record<string, (view: DataView, offset: number) => number> = {
  char: (v, o) => v.getInt8(o),
  int8: (v, o) => v.getInt8(o),
  uchar: (v, o) => v.getUint8(o),
  uint8: (v, o) => v.getUint8(o),
  short: (v, o) => v.getInt16(o, true),
  int16: (v, o) => v.getInt16(o, true),
  ushort: (v, o) => v.getUint16(o, true),
  uint16: (v, o) => v.getUint16(o, true),
  int: (v, o) => v.getInt32(o, true),
  int32: (v, o) => v.getInt32(o, true),
  uint: (v, o) => v.getUint32(o, true),
  uint32: (v, o) => v.getUint32(o, true),
  float: (v, o) => v.getFloat32(o, true),
  float32: (v, o) => v.getFloat32(o, true),
  double: (v, o) => v.getFloat64(o, true),
  float64: (v, o) => v.getFloat64(o, true),
};

function alignedFloat32(bytes: Uint8Array, offset: number, length: number): Float32Array {
  const start = bytes.byteOffset + offset;
  if (start % 4 === 0) return new Float32Array(bytes.buffer, start, length);
  const copy = new Uint8Array(length * 4);
  copy.set(bytes.subarray(offset, offset + length * 4));
  return new Float32Array(copy.buffer);
}

const END_HEADER = new TextEncoder().encode('end_header');

function findHeaderEnd(bytes: Uint8Array): number {
  const limit = Math.min(bytes.length, 65536);
  outer: for (let i = 0; i + END_HEADER.length < limit; i++) {
    for (let j = 0; j < END_HEADER.length; j++) if (bytes[i + j] !== END_HEADER[j]) continue outer;
    let k = i + END_HEADER.length;
    if (bytes[k] === 0x0d) k++;
    if (bytes[k] === 0x0a) return k + 1;
  }
  return -1;
}

let hostIsLittleEndian: boolean | undefined;
function littleEndianHost(): boolean {
  hostIsLittleEndian ??= new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  return hostIsLittleEndian;
}

function swapFloat32(values: Float32Array): void {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  for (let i = 0; i < bytes.length; i += 4) {
    const a = bytes[i],
      b = bytes[i + 1];
    bytes[i] = bytes[i + 3];
    bytes[i + 1] = bytes[i + 2];
    bytes[i + 2] = b;
    bytes[i + 3] = a;
  }
}
