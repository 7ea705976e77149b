/**
 * GLB (binary glTF 2.0) writing and reading through @gltf-transform/core. glTF's own frame is the canonical
 * one (+Y up, front toward +Z), so meshes are written as they are, unrotated. The writer makes one scene, one
 * node and one mesh with one triangle primitive; the reader takes any GLB (ours, or a baked one with several
 * nodes and primitives) into one TriangleMesh in world space.
 */
import { createHash } from 'node:crypto';
import { Document, NodeIO, Primitive, type Accessor, type Material, type Node, type Texture } from '@gltf-transform/core';
import { EXTTextureWebP } from '@gltf-transform/extensions';
import { decodeImage, encodePng, encodeWebp, imageSize } from '../image/codec.js';
import type { RgbaImage } from '../image/rgba.js';
import { DEFAULT_GLB_LIMITS, glbBounds, type GlbLimits } from './glb-limits.js';
import { readerIO } from './glb-io.js';
import { vertexNormals, vertexCount, type TriangleMesh } from './mesh.js';

/** Largest texture file the reader opens, in pixels (it is scaled down to the limits' side as it is decoded). */
export const TEXTURE_INPUT_PIXELS = 16384 * 16384;

/** glTF's vertex colours and colour factors are linear; TriangleMesh's colours are sRGB. */
export function srgbToLinear(c: number): number {
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

export function linearToSrgb(c: number): number {
  return c <= 0.0031308 ? c * 12.92 : 1.055 * c ** (1 / 2.4) - 0.055;
}

const clamp01 = (v: number): number => (v > 1 ? 1 : v >= 0 ? v : 0);

export async function encodeGlb(mesh: TriangleMesh): Promise<Uint8Array> {
  return new NodeIO().writeBinary(await glbDocument(mesh));
}

/** How a GLB's base colour texture is stored: PNG (core glTF) or WebP (EXT_texture_webp, about half the bytes). */
export type GlbTextureFormat = 'png' | 'webp';

/**
 * The glTF-Transform document encodeGlb writes: one scene, one node with no transform, one mesh with one
 * TRIANGLES primitive and one material. Transforms (compression) work on it before it is written.
 */
export async function glbDocument(mesh: TriangleMesh, texture: GlbTextureFormat = 'png'): Promise<Document> {
  const n = vertexCount(mesh);
  if (!Number.isInteger(n) || mesh.indices.length % 3 !== 0) throw new Error('mesh columns have the wrong lengths');
  if (mesh.indices.length === 0) throw new Error('mesh has no triangles');
  for (let t = 0; t < mesh.indices.length; t++) {
    if (mesh.indices[t] >= n) throw new Error(`triangle index ${mesh.indices[t]} is past the ${n} vertices`);
  }
  const doc = new Document();
  doc.getRoot().getAsset().generator = 'fast3d';
  const buffer = doc.createBuffer();
  const accessor = (type: 'VEC2' | 'VEC3' | 'SCALAR', array: Float32Array | Uint16Array | Uint32Array) =>
    doc.createAccessor().setType(type).setArray(array).setBuffer(buffer);

  // A vertex no triangle uses (or only degenerate ones) has a zero normal, which glTF refuses: give it +Y.
  const normals = mesh.normals ? mesh.normals.slice() : vertexNormals(mesh);
  for (let i = 0; i < normals.length; i += 3) {
    if (normals[i] === 0 && normals[i + 1] === 0 && normals[i + 2] === 0) normals[i + 1] = 1;
  }
  // uint16 indices when every index fits below 65535 (that value is reserved as the primitive restart).
  const indices = n < 65535 ? Uint16Array.from(mesh.indices) : mesh.indices.slice();
  const primitive = doc
    .createPrimitive()
    .setMode(Primitive.Mode.TRIANGLES)
    .setAttribute('POSITION', accessor('VEC3', mesh.positions.slice()))
    .setAttribute('NORMAL', accessor('VEC3', normals))
    .setIndices(accessor('SCALAR', indices));

  const material = doc.createMaterial('fast3d').setMetallicFactor(0).setRoughnessFactor(1);
  if (mesh.colours) {
    const linear = new Float32Array(mesh.colours.length);
    for (let i = 0; i < linear.length; i++) linear[i] = clamp01(srgbToLinear(mesh.colours[i]));
    primitive.setAttribute('COLOR_0', accessor('VEC3', linear));
  }
  if (mesh.texture) {
    if (!mesh.uvs) throw new Error('mesh has a texture but no uvs');
    primitive.setAttribute('TEXCOORD_0', accessor('VEC2', mesh.uvs.slice()));
    const webp = texture === 'webp';
    if (webp) doc.createExtension(EXTTextureWebP).setRequired(true);
    const image = webp ? await encodeWebp(mesh.texture) : await encodePng(mesh.texture);
    material.setBaseColorTexture(
      doc
        .createTexture('baseColor')
        .setImage(image)
        .setMimeType(webp ? 'image/webp' : 'image/png'),
    );
  }
  primitive.setMaterial(material);
  const node = doc.createNode('fast3d').setMesh(doc.createMesh('fast3d').addPrimitive(primitive));
  doc.getRoot().setDefaultScene(doc.createScene('fast3d').addChild(node));
  return doc;
}

/**
 * Reads a GLB into a glTF-Transform document, once the file keeps the limits (glb-limits.ts): the reader
 * allocates what accessors declare and is never handed a file that declares more than it holds. A file it
 * cannot read throws a GlbReadError saying why.
 */
export async function readGlbDocument(bytes: Uint8Array, limits: GlbLimits = DEFAULT_GLB_LIMITS): Promise<Document> {
  const bounds = glbBounds(bytes, limits);
  if ('violation' in bounds) throw new GlbReadError(bounds.violation);
  // The reader views chunks as 32-bit words: bytes cut from a larger buffer (a worker's parts) may sit unaligned.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  try {
    return await (await readerIO(bounds.shape.codecs)).readBinary(aligned);
  } catch (err) {
    throw new GlbReadError(`not a readable GLB: ${(err as Error).message}`);
  }
}

/** One placed primitive: a primitive of a mesh and the world matrix (column-major) of the node holding it. */
export interface PlacedPrimitive {
  primitive: Primitive;
  matrix: number[];
}

/**
 * Every primitive in the scene with its node's world transform: the default scene's (or the first scene's)
 * nodes, depth first; a file with no scene at all places each node that has a mesh. World matrices are made
 * once each, top-down from the roots (a node is visited once, so even a graph the limits did not check ends).
 */
export function placedPrimitives(doc: Document): PlacedPrimitive[] {
  const root = doc.getRoot();
  const scene = root.getDefaultScene() ?? root.listScenes()[0];
  const roots = scene ? scene.listChildren() : root.listNodes().filter((node) => !node.getParentNode());
  const world = new Map<Node, number[]>();
  const order: Node[] = [];
  const stack: { node: Node; parent: number[] | null }[] = roots.map((node) => ({ node, parent: null })).reverse();
  while (stack.length) {
    const { node, parent } = stack.pop()!;
    if (world.has(node)) continue;
    const local = [...node.getMatrix()];
    const matrix = parent ? multiply(parent, local) : local;
    world.set(node, matrix);
    order.push(node);
    const children = node.listChildren();
    for (let i = children.length - 1; i >= 0; i--) stack.push({ node: children[i], parent: matrix });
  }
  const placed = scene ? order : root.listNodes().filter((node) => world.has(node));
  return placed.flatMap((node) => {
    const mesh = node.getMesh();
    const matrix = world.get(node)!;
    return mesh ? mesh.listPrimitives().map((primitive) => ({ primitive, matrix })) : [];
  });
}

/** a x b for column-major 4x4 matrices. */
function multiply(a: number[], b: number[]): number[] {
  const out = new Array<number>(16);
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      out[c * 4 + r] = a[r] * b[c * 4] + a[4 + r] * b[c * 4 + 1] + a[8 + r] * b[c * 4 + 2] + a[12 + r] * b[c * 4 + 3];
    }
  }
  return out;
}

/** Applies a column-major 4x4 matrix to x, y, z, writing into `out` at `o`. */
export function transformPoint(m: number[], x: number, y: number, z: number, out: Float32Array | number[], o: number): void {
  out[o] = m[0] * x + m[4] * y + m[8] * z + m[12];
  out[o + 1] = m[1] * x + m[5] * y + m[9] * z + m[13];
  out[o + 2] = m[2] * x + m[6] * y + m[10] * z + m[14];
}

function determinant3(m: number[]): number {
  return m[0] * (m[5] * m[10] - m[6] * m[9]) - m[4] * (m[1] * m[10] - m[2] * m[9]) + m[8] * (m[1] * m[6] - m[2] * m[5]);
}

/**
 * An accessor's first `components` values per element as floats (missing ones 0). Normalised integers map to
 * [0, 1] (or [-1, 1]); with `normaliseIntegers`, so do integers whose flag is missing (colours must be).
 */
export function accessorFloats(accessor: Accessor, components: number, normaliseIntegers = false): Float32Array {
  const count = accessor.getCount();
  const size = accessor.getElementSize();
  const out = new Float32Array(count * components);
  const array = accessor.getArray();
  if (!array) return out;
  if (array instanceof Float32Array && size === components) return array.slice();
  const integer = !(array instanceof Float32Array);
  const scale = normaliseIntegers && integer && !accessor.getNormalized() ? 1 / maxOf(array) : 1;
  const element: number[] = [];
  for (let i = 0; i < count; i++) {
    accessor.getElement(i, element);
    for (let c = 0; c < components; c++) out[i * components + c] = (element[c] ?? 0) * scale;
  }
  return out;
}

function maxOf(array: ArrayLike<number>): number {
  const bytes = (array as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 4;
  return bytes === 1 ? 255 : bytes === 2 ? 65535 : 4294967295;
}

interface Part {
  positions: Float32Array;
  indices: Uint32Array;
  /** Linear colour per vertex (COLOR_0 times the material's factor), or null when it would be all white. */
  linear: Float32Array | null;
  uvs: Float32Array | null;
  texture: Texture | null;
}

function readPart({ primitive, matrix }: PlacedPrimitive): Part | null {
  if (primitive.getMode() !== Primitive.Mode.TRIANGLES) return null;
  const position = primitive.getAttribute('POSITION');
  if (!position || position.getCount() === 0) return null;
  const count = position.getCount();
  const local = accessorFloats(position, 3);
  const positions = new Float32Array(count * 3);
  for (let i = 0; i < count; i++) transformPoint(matrix, local[i * 3], local[i * 3 + 1], local[i * 3 + 2], positions, i * 3);

  const indexAccessor = primitive.getIndices();
  let indices: Uint32Array;
  if (indexAccessor) {
    const array = indexAccessor.getArray();
    indices = array ? Uint32Array.from(array as ArrayLike<number>) : new Uint32Array(0);
  } else {
    indices = new Uint32Array(count - (count % 3));
    for (let i = 0; i < indices.length; i++) indices[i] = i;
  }
  indices = indices.subarray(0, indices.length - (indices.length % 3));
  for (let t = 0; t < indices.length; t++) {
    if (indices[t] >= count) throw new Error(`a triangle index (${indices[t]}) is past its primitive's ${count} vertices`);
  }
  // A mirroring transform turns the winding around; swap two corners to keep triangles counter-clockwise.
  if (determinant3(matrix) < 0) {
    for (let t = 0; t < indices.length; t += 3) {
      const b = indices[t + 1];
      indices[t + 1] = indices[t + 2];
      indices[t + 2] = b;
    }
  }

  const material: Material | null = primitive.getMaterial();
  const factor = material ? material.getBaseColorFactor() : [1, 1, 1, 1];
  const colour = primitive.getAttribute('COLOR_0');
  let linear: Float32Array | null = null;
  if (colour || factor[0] !== 1 || factor[1] !== 1 || factor[2] !== 1) {
    linear = colour ? accessorFloats(colour, 3, true) : new Float32Array(count * 3).fill(1);
    for (let i = 0; i < linear.length; i++) linear[i] *= factor[i % 3];
  }
  const texture = material?.getBaseColorTexture() ?? null;
  const uvAccessor = primitive.getAttribute('TEXCOORD_0');
  const texCoord = material?.getBaseColorTextureInfo()?.getTexCoord() ?? 0;
  const uvSource = texCoord === 0 ? uvAccessor : primitive.getAttribute(`TEXCOORD_${texCoord}`);
  const uvs = texture && uvSource ? accessorFloats(uvSource, 2) : null;
  return { positions, indices, linear, uvs, texture: uvs ? texture : null };
}

/** A texture's image bytes, with a key that is the same for the same bytes (files may repeat one image). */
function imageOf(texture: Texture): { bytes: Uint8Array; key: string } {
  const bytes = texture.getImage();
  if (!bytes) throw new GlbReadError(`texture ${JSON.stringify(texture.getName())} has no image data`);
  return { bytes, key: createHash('sha256').update(bytes).digest('hex') };
}

/** Pixels an image decodes to once scaled to fit `side`, from its header; the file's fault when it has none. */
async function decodedPixels(bytes: Uint8Array, side: number): Promise<number> {
  const size = await imageSize(bytes);
  if (!size) throw new GlbReadError('a base colour texture is not an image this service reads (PNG, JPEG or WebP)');
  const scale = Math.min(1, side / Math.max(size.width, size.height));
  return Math.max(1, Math.round(size.width * scale)) * Math.max(1, Math.round(size.height * scale));
}

async function decodeTexture(bytes: Uint8Array, limits: GlbLimits): Promise<RgbaImage> {
  try {
    return await decodeImage(bytes, { maxPixels: TEXTURE_INPUT_PIXELS, minSide: 1, maxSide: limits.maxTextureSide });
  } catch (err) {
    throw new GlbReadError(`the base colour texture could not be decoded: ${(err as Error).message}`);
  }
}

/** Nearest texel of `image` at glTF uv (repeat wrapping), as sRGB r, g, b in [0, 1]. */
function sample(image: RgbaImage, u: number, v: number, out: number[]): void {
  const fu = u - Math.floor(u),
    fv = v - Math.floor(v);
  const x = Math.min(image.width - 1, Math.floor(fu * image.width));
  const y = Math.min(image.height - 1, Math.floor(fv * image.height));
  const i = (y * image.width + x) * 4;
  out[0] = image.data[i] / 255;
  out[1] = image.data[i + 1] / 255;
  out[2] = image.data[i + 2] / 255;
}

/**
 * Reads any GLB into one TriangleMesh in world space: every TRIANGLES primitive the scene places, merged.
 * When one base colour texture covers every primitive the mesh keeps uvs and that texture (a material's colour
 * factor is then dropped); otherwise colours (COLOR_0 times the material's factor, times the texture sampled at
 * each vertex where there is one) become sRGB vertex colours. Each distinct image is decoded once, scaled to
 * the limits' side, within their pixel budget, and let go once sampled. Throws a GlbReadError saying why for a
 * file it cannot read, one over the limits, or one with no triangle geometry.
 */
export async function decodeGlb(bytes: Uint8Array, limits: GlbLimits = DEFAULT_GLB_LIMITS): Promise<TriangleMesh> {
  try {
    return await readMesh(bytes, limits);
  } catch (err) {
    throw err instanceof GlbReadError ? err : new GlbReadError((err as Error).message);
  }
}

/** The file's fault, not the reader's: a GLB decodeGlb cannot make a mesh of. */
export class GlbReadError extends Error {
  override name = 'GlbReadError';
}

async function readMesh(bytes: Uint8Array, limits: GlbLimits): Promise<TriangleMesh> {
  const doc = await readGlbDocument(bytes, limits);
  const placed = placedPrimitives(doc);
  if (doc.getRoot().listMeshes().length === 0) throw new Error('the GLB has no mesh');
  if (placed.length === 0) throw new Error('the GLB has meshes but its scene places none of them');
  const parts = placed.map(readPart).filter((p): p is Part => p !== null && p.indices.length > 0);
  if (parts.length === 0) {
    const modes = [...new Set(placed.map((p) => p.primitive.getMode()))].join(', ');
    throw new Error(`the GLB has no triangle geometry (${placed.length} primitive(s), mode(s) ${modes})`);
  }

  const vertices = parts.reduce((s, p) => s + p.positions.length / 3, 0);
  const triangles = parts.reduce((s, p) => s + p.indices.length, 0);
  const positions = new Float32Array(vertices * 3);
  const indices = new Uint32Array(triangles);
  let v = 0,
    t = 0;
  for (const part of parts) {
    positions.set(part.positions, v * 3);
    for (let i = 0; i < part.indices.length; i++) indices[t + i] = part.indices[i] + v;
    v += part.positions.length / 3;
    t += part.indices.length;
  }

  // Textures by content: a file may give one image many entries, and each is decoded once.
  const images = new Map<string, Uint8Array>();
  const keyOf = new Map<Texture, string>();
  for (const part of parts) {
    if (!part.texture || keyOf.has(part.texture)) continue;
    const { bytes: image, key } = imageOf(part.texture);
    keyOf.set(part.texture, key);
    images.set(key, image);
  }
  let pixels = 0;
  for (const image of images.values()) pixels += await decodedPixels(image, limits.maxTextureSide);
  if (pixels > limits.maxTexturePixels) {
    throw new GlbReadError(`the GLB's ${images.size} texture(s) decode to ${pixels} pixels, over the limit of ${limits.maxTexturePixels}`);
  }

  const partKeys = parts.map((p) => (p.texture ? keyOf.get(p.texture)! : null));
  if (images.size === 1 && partKeys.every((k) => k !== null)) {
    const uvs = new Float32Array(vertices * 2);
    let o = 0;
    for (const part of parts) {
      uvs.set(part.uvs!, o);
      o += part.uvs!.length;
    }
    return { positions, indices, uvs, texture: await decodeTexture([...images.values()][0], limits) };
  }
  if (parts.every((p) => !p.linear && !p.texture)) return { positions, indices };

  // Vertex colours: untextured parts first, then each image's parts, the image let go before the next.
  const colours = new Float32Array(vertices * 3);
  const starts: number[] = [];
  let start = 0;
  for (const part of parts) {
    starts.push(start);
    start += part.positions.length;
  }
  const colourPart = (index: number, image: RgbaImage | null) => {
    const part = parts[index];
    const texel = [1, 1, 1];
    const n = part.positions.length / 3;
    for (let i = 0, o = starts[index]; i < n; i++, o += 3) {
      if (image) sample(image, part.uvs![i * 2], part.uvs![i * 2 + 1], texel);
      for (let c = 0; c < 3; c++) {
        const base = part.linear ? part.linear[i * 3 + c] : 1;
        const tex = image ? srgbToLinear(texel[c]) : 1;
        colours[o + c] = clamp01(linearToSrgb(clamp01(base * tex)));
      }
    }
  };
  parts.forEach((_, i) => {
    if (partKeys[i] === null) colourPart(i, null);
  });
  for (const [key, bytes] of images) {
    const image = await decodeTexture(bytes, limits);
    parts.forEach((_, i) => {
      if (partKeys[i] === key) colourPart(i, image);
    });
  }
  return { positions, indices, colours };
}
