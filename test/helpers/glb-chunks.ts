/**
 * An independent reading of GLB files, written from the glTF 2.0 specification's GLB section rather than through
 * glTF-Transform, so that a bug shared by our writer and reader cannot hide here: the 12-byte header, the JSON
 * chunk, the BIN chunk, and POSITION data read straight from the binary chunk.
 */
import validator from 'gltf-validator';
import { expect } from 'vitest';

export interface GlbChunks {
  json: GltfJson;
  bin: Uint8Array | null;
}

/** The parts of glTF's JSON these tests read. */
export interface GltfJson {
  asset: { version: string; generator?: string };
  scene?: number;
  scenes?: { nodes?: number[] }[];
  nodes?: { mesh?: number; children?: number[]; matrix?: number[]; translation?: number[]; rotation?: number[]; scale?: number[] }[];
  meshes?: { primitives: { attributes: Record<string, number>; indices?: number; mode?: number; material?: number }[] }[];
  accessors?: {
    bufferView?: number;
    byteOffset?: number;
    componentType: number;
    count: number;
    type: string;
    min?: number[];
    max?: number[];
    normalized?: boolean;
  }[];
  bufferViews?: { buffer: number; byteOffset?: number; byteLength: number; byteStride?: number }[];
  buffers?: { byteLength: number; uri?: string }[];
  [key: string]: unknown;
}

const MAGIC = 0x46546c67; // "glTF"
const JSON_CHUNK = 0x4e4f534a; // "JSON"
const BIN_CHUNK = 0x004e4942; // "BIN\0"

export function parseGlb(bytes: Uint8Array): GlbChunks {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 20) throw new Error(`${bytes.length} bytes: no header and JSON chunk`);
  if (view.getUint32(0, true) !== MAGIC) throw new Error('magic is not glTF');
  if (view.getUint32(4, true) !== 2) throw new Error(`version ${view.getUint32(4, true)}`);
  const length = view.getUint32(8, true);
  if (length !== bytes.length) throw new Error(`header length ${length}, file ${bytes.length}`);
  const jsonLength = view.getUint32(12, true);
  if (view.getUint32(16, true) !== JSON_CHUNK) throw new Error('first chunk is not JSON');
  if (jsonLength % 4 !== 0) throw new Error('JSON chunk is not 4-byte aligned');
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(20, 20 + jsonLength))) as GltfJson;
  let bin: Uint8Array | null = null;
  const next = 20 + jsonLength;
  if (next < length) {
    const binLength = view.getUint32(next, true);
    if (view.getUint32(next + 4, true) !== BIN_CHUNK) throw new Error('second chunk is not BIN');
    if (next + 8 + binLength > length) throw new Error('BIN chunk runs past the end');
    bin = bytes.subarray(next + 8, next + 8 + binLength);
  }
  return { json, bin };
}

/** Builds a GLB from JSON and an optional binary chunk (both padded to 4 bytes as the specification asks). */
export function buildGlb(json: unknown, bin: Uint8Array | null): Uint8Array {
  let text = new TextEncoder().encode(JSON.stringify(json));
  const jsonPadded = new Uint8Array(Math.ceil(text.length / 4) * 4).fill(0x20);
  jsonPadded.set(text);
  text = jsonPadded;
  const binPadded = bin ? new Uint8Array(Math.ceil(bin.length / 4) * 4) : null;
  if (bin && binPadded) binPadded.set(bin);
  const length = 12 + 8 + text.length + (binPadded ? 8 + binPadded.length : 0);
  const out = new Uint8Array(length);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, 2, true);
  view.setUint32(8, length, true);
  view.setUint32(12, text.length, true);
  view.setUint32(16, JSON_CHUNK, true);
  out.set(text, 20);
  if (binPadded) {
    const at = 20 + text.length;
    view.setUint32(at, binPadded.length, true);
    view.setUint32(at + 4, BIN_CHUNK, true);
    out.set(binPadded, at + 8);
  }
  return out;
}

export interface PositionRead {
  accessor: number;
  count: number;
  /** min and max as the accessor declares them. */
  declared: { min: number[]; max: number[] };
  /** min and max of the float data in the BIN chunk. */
  actual: { min: number[]; max: number[] };
}

export interface IndependentGlb {
  json: GltfJson;
  meshes: number;
  /** True when some node carries a transform (matrix, translation, rotation or scale). */
  transformed: boolean;
  positions: PositionRead[];
}

/** Reads the meshes and every POSITION accessor (float32 only, as our writer makes them) by hand. */
export function readGlbIndependently(bytes: Uint8Array): IndependentGlb {
  const { json, bin } = parseGlb(bytes);
  const positions: PositionRead[] = [];
  for (const mesh of json.meshes ?? []) {
    for (const primitive of mesh.primitives) {
      const index = primitive.attributes.POSITION;
      const accessor = json.accessors![index];
      if (accessor.componentType !== 5126 || accessor.type !== 'VEC3') throw new Error(`POSITION accessor ${index} is not float32 VEC3`);
      const bufferView = json.bufferViews![accessor.bufferView!];
      if (bufferView.buffer !== 0 || !bin || json.buffers![0].uri !== undefined) throw new Error('POSITION is not in the BIN chunk');
      const stride = bufferView.byteStride ?? 12;
      const start = (bufferView.byteOffset ?? 0) + (accessor.byteOffset ?? 0);
      if (start + stride * (accessor.count - 1) + 12 > (bufferView.byteOffset ?? 0) + bufferView.byteLength)
        throw new Error('POSITION runs past its buffer view');
      const view = new DataView(bin.buffer, bin.byteOffset, bin.byteLength);
      const min = [Infinity, Infinity, Infinity];
      const max = [-Infinity, -Infinity, -Infinity];
      for (let i = 0; i < accessor.count; i++) {
        for (let a = 0; a < 3; a++) {
          const v = view.getFloat32(start + i * stride + a * 4, true);
          min[a] = Math.min(min[a], v);
          max[a] = Math.max(max[a], v);
        }
      }
      if (!accessor.min || !accessor.max) throw new Error(`POSITION accessor ${index} has no min/max`);
      positions.push({ accessor: index, count: accessor.count, declared: { min: accessor.min, max: accessor.max }, actual: { min, max } });
    }
  }
  const transformed = (json.nodes ?? []).some((n) => n.matrix || n.translation || n.rotation || n.scale);
  return { json, meshes: json.meshes?.length ?? 0, transformed, positions };
}

/**
 * What every GLB 200 must be, checked without the service's code: the Khronos validator finds no error, and this
 * file's reader finds one untransformed mesh of triangles whose data (not only its declared bounds) is centred
 * and fitted to the cube of side `extent`. Returns the bounds of the data.
 */
export async function expectServableGlb(bytes: Uint8Array, extent = 1, minTriangles = 100): Promise<{ min: number[]; max: number[] }> {
  const report = await validator.validateBytes(bytes);
  expect(report.issues.numErrors, JSON.stringify(report.issues.messages.slice(0, 3))).toBe(0);
  const read = readGlbIndependently(bytes);
  expect(read.meshes).toBe(1);
  expect(read.transformed).toBe(false);
  const primitive = read.json.meshes![0].primitives[0];
  expect(read.json.accessors![primitive.indices!].count / 3).toBeGreaterThanOrEqual(minTriangles);
  const bounds = read.positions[0].actual;
  expect(read.positions[0].declared).toEqual(bounds);
  for (let a = 0; a < 3; a++) {
    expect(bounds.min[a]).toBeGreaterThanOrEqual(-extent / 2 - 1e-5);
    expect(bounds.max[a]).toBeLessThanOrEqual(extent / 2 + 1e-5);
    expect(Math.abs(bounds.min[a] + bounds.max[a]) / 2).toBeLessThan(0.01 * extent);
  }
  // Fitted, not merely inside: the largest side is the cube's.
  expect(Math.max(...[0, 1, 2].map((a) => bounds.max[a] - bounds.min[a]))).toBeCloseTo(extent, 3);
  return bounds;
}
