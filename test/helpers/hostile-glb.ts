/**
 * Hostile GLBs, each a few bytes to a few hundred KB, built by hand so that no writer's safety net smooths them:
 * node cycles, deep chains, deep JSON, accessors the file's bytes do not back, one huge texture shared by many
 * materials, and files the Khronos validator refuses. Tests and `npm run bench -- hostile` use them.
 */
import sharp from 'sharp';
import { buildGlb } from './glb-chunks.js';

const FLOAT = 5126;
const UINT32 = 5125;

/** One triangle's float positions and uint32 indices in a BIN chunk, with the JSON that points at them. */
function oneTriangle(positions: number[] = [0, 0, 0, 1, 0, 0, 0, 1, 0], indices: number[] = [0, 1, 2]) {
  const bin = new Uint8Array(positions.length * 4 + indices.length * 4);
  new Float32Array(bin.buffer, 0, positions.length).set(positions);
  new Uint32Array(bin.buffer, positions.length * 4, indices.length).set(indices);
  const count = positions.length / 3;
  const min = [0, 1, 2].map((a) => Math.min(...positions.filter((_, i) => i % 3 === a)));
  const max = [0, 1, 2].map((a) => Math.max(...positions.filter((_, i) => i % 3 === a)));
  const json = {
    asset: { version: '2.0' },
    buffers: [{ byteLength: bin.length }],
    bufferViews: [
      { buffer: 0, byteOffset: 0, byteLength: positions.length * 4, target: 34962 },
      { buffer: 0, byteOffset: positions.length * 4, byteLength: indices.length * 4, target: 34963 },
    ],
    accessors: [
      { bufferView: 0, componentType: FLOAT, count, type: 'VEC3', min, max },
      { bufferView: 1, componentType: UINT32, count: indices.length, type: 'SCALAR' },
    ],
    meshes: [{ primitives: [{ attributes: { POSITION: 0 }, indices: 1 }] }],
  };
  return { json, bin };
}

/** Two nodes, each the other's child, both holding the mesh; no scene. */
export function nodeCycleGlb(): Uint8Array {
  const { json, bin } = oneTriangle();
  return buildGlb(
    {
      ...json,
      nodes: [
        { mesh: 0, children: [1] },
        { mesh: 0, children: [0] },
      ],
    },
    bin,
  );
}

/** A node that is its own child, in the scene. */
export function selfParentGlb(): Uint8Array {
  const { json, bin } = oneTriangle();
  return buildGlb({ ...json, nodes: [{ mesh: 0, children: [0] }], scenes: [{ nodes: [0] }], scene: 0 }, bin);
}

/** A chain of `depth` nodes, each the only child of the one before, with the mesh at the end; in a scene or not. */
export function nodeChainGlb(depth: number, inScene = true): Uint8Array {
  const { json, bin } = oneTriangle();
  const nodes: Record<string, unknown>[] = [];
  for (let i = 0; i < depth; i++) nodes.push(i < depth - 1 ? { children: [i + 1], translation: [0.001, 0, 0] } : { mesh: 0 });
  return buildGlb({ ...json, nodes, ...(inScene && { scenes: [{ nodes: [0] }], scene: 0 }) }, bin);
}

/** A valid one-triangle GLB whose asset `extras` nest `depth` arrays deep (about 2 bytes per level). */
export function deepJsonGlb(depth: number): Uint8Array {
  const { json, bin } = oneTriangle();
  const text = JSON.stringify({ ...json, nodes: [{ mesh: 0 }], scenes: [{ nodes: [0] }], scene: 0 });
  const extras = '['.repeat(depth) + ']'.repeat(depth);
  const nested = text.replace('"asset":{"version":"2.0"}', `"asset":{"version":"2.0","extras":{"deep":${extras}}}`);
  return buildGlbText(nested, bin);
}

/** A GLB from JSON text as it is (JSON.stringify itself cannot nest that deep) and a BIN chunk. */
function buildGlbText(text: string, bin: Uint8Array): Uint8Array {
  const pad = (n: number) => Math.ceil(n / 4) * 4;
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(12 + 8 + pad(json.length) + 8 + pad(bin.length));
  const view = new DataView(out.buffer);
  view.setUint32(0, 0x46546c67, true); // "glTF"
  view.setUint32(4, 2, true);
  view.setUint32(8, out.length, true);
  view.setUint32(12, pad(json.length), true);
  view.setUint32(16, 0x4e4f534a, true); // "JSON"
  out.fill(0x20, 20, 20 + pad(json.length));
  out.set(json, 20);
  const at = 20 + pad(json.length);
  view.setUint32(at, pad(bin.length), true);
  view.setUint32(at + 4, 0x004e4942, true); // "BIN\0"
  out.set(bin, at + 8);
  return out;
}

/** A POSITION accessor of `count` vertices with no bufferView (glTF zero-fills it), drawn without indices. */
export function unbackedAccessorGlb(count = 30_000_000): Uint8Array {
  return buildGlb(
    {
      asset: { version: '2.0' },
      accessors: [{ componentType: FLOAT, count, type: 'VEC3', min: [0, 0, 0], max: [0, 0, 0] }],
      meshes: [{ primitives: [{ attributes: { POSITION: 0 } }] }],
      nodes: [{ mesh: 0 }],
      scenes: [{ nodes: [0] }],
      scene: 0,
    },
    null,
  );
}

/** `count` zero-area triangles at the origin, backed by real bytes (the Khronos validator finds no error). */
export function zeroAreaGlb(count = 1000): Uint8Array {
  const positions = new Array(count * 9).fill(0);
  const indices = Array.from({ length: count * 3 }, (_, i) => i);
  const { json, bin } = oneTriangle(positions, indices);
  return buildGlb({ ...json, nodes: [{ mesh: 0 }], scenes: [{ nodes: [0] }], scene: 0 }, bin);
}

/** A triangle whose indices point past its three vertices. */
export function indexOverrunGlb(): Uint8Array {
  const { json, bin } = oneTriangle(undefined, [0, 1, 7]);
  return buildGlb({ ...json, nodes: [{ mesh: 0 }], scenes: [{ nodes: [0] }], scene: 0 }, bin);
}

/** A triangle with a NaN coordinate. */
export function nanPositionGlb(): Uint8Array {
  const { json, bin } = oneTriangle([0, 0, 0, 1, 0, 0, 0, Number.NaN, 0]);
  json.accessors[0].min = [0, 0, 0];
  json.accessors[0].max = [1, 1, 0];
  return buildGlb({ ...json, nodes: [{ mesh: 0 }], scenes: [{ nodes: [0] }], scene: 0 }, bin);
}

/** `count` meshes of one shared triangle each, every one placed by its own node. */
export function manyMeshesGlb(count: number): Uint8Array {
  const { json, bin } = oneTriangle();
  const meshes = Array.from({ length: count }, () => json.meshes[0]);
  const nodes = Array.from({ length: count }, (_, i) => ({ mesh: i }));
  return buildGlb({ ...json, meshes, nodes, scenes: [{ nodes: nodes.map((_, i) => i) }], scene: 0 }, bin);
}

/**
 * One triangle with uvs under `materials` materials, each with a glTF image entry of its own. With `distinct`
 * false they all point at the same `side` x `side` PNG (a flat colour compresses to a few hundred KB): decoded
 * once, one copy is side^2 x 4 bytes. With `distinct`, each image is a PNG of another colour.
 */
export async function texturedGlb(materials = 8, side = 8192, distinct = false): Promise<Uint8Array> {
  const pngOf = async (i: number) =>
    new Uint8Array(
      await sharp({ create: { width: side, height: side, channels: 3, background: { r: 200, g: 60 + i, b: 30 } } })
        .png({ compressionLevel: 9 })
        .toBuffer(),
    );
  const pngs = distinct ? await Promise.all(Array.from({ length: materials }, (_, i) => pngOf(i))) : [await pngOf(0)];
  const pad = (n: number) => Math.ceil(n / 4) * 4;
  const at: number[] = [];
  let end = 72;
  for (const png of pngs) {
    at.push(end);
    end += pad(png.length);
  }
  const bin = new Uint8Array(end);
  new Float32Array(bin.buffer, 0, 9).set([0, 0, 0, 1, 0, 0, 0, 1, 0]);
  new Float32Array(bin.buffer, 36, 6).set([0, 0, 1, 0, 0, 1]);
  new Uint32Array(bin.buffer, 60, 3).set([0, 1, 2]);
  pngs.forEach((png, i) => bin.set(png, at[i]));
  const primitives = Array.from({ length: materials }, (_, m) => ({ attributes: { POSITION: 0, TEXCOORD_0: 1 }, indices: 2, material: m }));
  return buildGlb(
    {
      asset: { version: '2.0' },
      buffers: [{ byteLength: bin.length }],
      bufferViews: [
        { buffer: 0, byteOffset: 0, byteLength: 36 },
        { buffer: 0, byteOffset: 36, byteLength: 24 },
        { buffer: 0, byteOffset: 60, byteLength: 12 },
        ...pngs.map((png, i) => ({ buffer: 0, byteOffset: at[i], byteLength: png.length })),
      ],
      accessors: [
        { bufferView: 0, componentType: FLOAT, count: 3, type: 'VEC3', min: [0, 0, 0], max: [1, 1, 0] },
        { bufferView: 1, componentType: FLOAT, count: 3, type: 'VEC2' },
        { bufferView: 2, componentType: UINT32, count: 3, type: 'SCALAR' },
      ],
      images: Array.from({ length: materials }, (_, i) => ({ bufferView: 3 + (distinct ? i : 0), mimeType: 'image/png' })),
      textures: Array.from({ length: materials }, (_, i) => ({ source: i })),
      materials: Array.from({ length: materials }, (_, i) => ({ pbrMetallicRoughness: { baseColorTexture: { index: i } } })),
      meshes: [{ primitives }],
      nodes: [{ mesh: 0 }],
      scenes: [{ nodes: [0] }],
      scene: 0,
    },
    bin,
  );
}
