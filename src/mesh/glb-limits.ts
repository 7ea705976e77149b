/**
 * The bounds a GLB must keep before anything else reads it: glTF-Transform allocates what accessors declare
 * (zero-filling those with no data), the Khronos validator recurses on the JSON and on the node tree, and a
 * world transform walks up the parents. So the container, the JSON chunk and the glTF graph are checked here
 * first, from the JSON alone and in time linear in the file: the JSON's nesting, the node tree (one parent per
 * node, no cycle, bounded depth), every accessor backed by bytes the file holds, and the geometry and textures
 * the file would make, within limits of count. Nothing is allocated in proportion to what a file claims.
 */

export interface GlbLimits {
  /** Largest JSON chunk, in bytes. */
  maxJsonBytes: number;
  /** Deepest nesting of JSON arrays and objects (glTF itself needs about 8; extras may add some). */
  maxJsonDepth: number;
  /** Most nodes in the file. */
  maxNodes: number;
  /** Deepest node below a root (a root is at depth 0). */
  maxNodeDepth: number;
  /** Most primitives in the file, and most the scene places (a mesh placed twice counts twice). */
  maxPrimitives: number;
  /** Most vertices the scene places. */
  maxVertices: number;
  /** Most triangles the scene places. */
  maxTriangles: number;
  /** Most images in the file. */
  maxImages: number;
  /** Longest side a texture is decoded at: a larger one is scaled down as it is decoded. */
  maxTextureSide: number;
  /** Most pixels all of an asset's distinct textures decode to, together (after scaling down). */
  maxTexturePixels: number;
}

/** The defaults of the `assets` config section. */
export const DEFAULT_GLB_LIMITS: GlbLimits = {
  maxJsonBytes: 16 * 1024 * 1024,
  maxJsonDepth: 64,
  maxNodes: 20_000,
  maxNodeDepth: 128,
  maxPrimitives: 4096,
  maxVertices: 5_000_000,
  maxTriangles: 5_000_000,
  maxImages: 64,
  maxTextureSide: 4096,
  maxTexturePixels: 64 * 1024 * 1024,
};

/** The `assets` config section's keys for these limits. */
export interface GlbLimitSettings {
  max_json_mb: number;
  max_json_depth: number;
  max_nodes: number;
  max_node_depth: number;
  max_primitives: number;
  max_vertices: number;
  max_triangles: number;
  max_images: number;
  max_texture_side: number;
  max_texture_mpx: number;
}

export function glbLimitsOf(settings: GlbLimitSettings): GlbLimits {
  return {
    maxJsonBytes: Math.round(settings.max_json_mb * 1024 * 1024),
    maxJsonDepth: settings.max_json_depth,
    maxNodes: settings.max_nodes,
    maxNodeDepth: settings.max_node_depth,
    maxPrimitives: settings.max_primitives,
    maxVertices: settings.max_vertices,
    maxTriangles: settings.max_triangles,
    maxImages: settings.max_images,
    maxTextureSide: settings.max_texture_side,
    maxTexturePixels: Math.round(settings.max_texture_mpx * 1024 * 1024),
  };
}

const MAGIC_GLTF = 0x46546c67;
const CHUNK_JSON = 0x4e4f534a;
const CHUNK_BIN = 0x004e4942;

/** The 12-byte header and the chunk table: why these bytes are not a whole GLB 2.0, or null. */
export function glbContainerViolation(bytes: Uint8Array): string | null {
  if (bytes.length < 12) return `not a GLB: ${bytes.length} bytes, shorter than the 12-byte GLB header`;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC_GLTF) return 'not a GLB: the file does not start with the magic "glTF"';
  const version = view.getUint32(4, true);
  if (version !== 2) return `not a GLB 2.0: the header says version ${version}`;
  const length = view.getUint32(8, true);
  if (length > bytes.length) return `truncated GLB: the header declares ${length} bytes, the file has ${bytes.length}`;
  if (length < bytes.length) return `not a GLB: the header declares ${length} bytes, the file has ${bytes.length} (trailing data)`;
  let offset = 12;
  let chunk = 0;
  while (offset < length) {
    if (offset + 8 > length) return `truncated GLB: chunk ${chunk}'s 8-byte header runs past the end at byte ${offset}`;
    const chunkLength = view.getUint32(offset, true);
    const type = view.getUint32(offset + 4, true);
    if (chunk === 0 && type !== CHUNK_JSON) return 'not a GLB: its first chunk is not JSON';
    if (offset + 8 + chunkLength > length) {
      return `truncated GLB: chunk ${chunk} declares ${chunkLength} bytes, only ${length - offset - 8} remain`;
    }
    offset += 8 + chunkLength;
    chunk++;
  }
  if (chunk === 0) return 'not a GLB: it has no JSON chunk';
  return null;
}

/** The JSON chunk's bytes and the BIN chunk's length (0 without one) of a GLB whose container is whole. */
function chunksOf(bytes: Uint8Array): { json: Uint8Array; binLength: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jsonLength = view.getUint32(12, true);
  const json = bytes.subarray(20, 20 + jsonLength);
  const next = 20 + jsonLength;
  const binLength = next + 8 <= bytes.length && view.getUint32(next + 4, true) === CHUNK_BIN ? view.getUint32(next, true) : 0;
  return { json, binLength };
}

/** The deepest nesting of arrays and objects in JSON text, stopping once past `limit` (strings skipped). */
export function jsonDepth(text: Uint8Array, limit: number): number {
  let depth = 0,
    deepest = 0,
    inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === 0x5c)
        i++; // a backslash escapes the next byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > deepest && (deepest = depth) > limit) return deepest;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return deepest;
}

/** What the bounds found: the geometry the scene places, as the file declares it. */
export interface GlbShape {
  /** The decoders the file needs (its extensionsUsed). */
  codecs: { draco: boolean; meshopt: boolean };
  nodes: number;
  primitives: number;
  vertices: number;
  triangles: number;
}

type Json = Record<string, unknown>;

const COMPONENT_BYTES: Record<number, number> = { 5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4 };
const TYPE_COMPONENTS: Record<string, number> = { SCALAR: 1, VEC2: 2, VEC3: 3, VEC4: 4, MAT2: 4, MAT3: 9, MAT4: 16 };
const TRIANGLES = 4;

const isIndex = (v: unknown, length: number): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) < length;
const count = (n: number): string => n.toLocaleString('en-US');

class Refused extends Error {}

function refuse(reason: string): never {
  throw new Refused(reason);
}

function arrayOf(json: Json, key: string): Json[] {
  const value = json[key];
  if (value === undefined) return [];
  if (!Array.isArray(value)) refuse(`the GLB's "${key}" is not an array`);
  for (let i = 0; i < value.length; i++)
    if (!value[i] || typeof value[i] !== 'object' || Array.isArray(value[i])) refuse(`${key}[${i}] is not an object`);
  return value as Json[];
}

/**
 * Compressed geometry (EXT_meshopt_compression, KHR_draco_mesh_compression) declares the bytes it decodes to:
 * at most this many times its compressed bytes (the SPZ reference reader's bound on zstd; meshopt's codecs
 * reach about 64, Draco more only on degenerate data). The limits on vertices and triangles bound them too.
 */
export const MAX_DECODE_RATIO = 1024;

const extensionOf = (json: Json, name: string): Json | undefined => {
  const extensions = json.extensions as Json | undefined;
  const value = extensions && typeof extensions === 'object' ? extensions[name] : undefined;
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Json) : undefined;
};

const isDataUri = (uri: unknown): boolean => typeof uri === 'string' && uri.startsWith('data:');

/** Bytes a data: URI holds (base64, or percent-encoded text): at most its length. */
function dataUriBytes(uri: string): number {
  const comma = uri.indexOf(',');
  const body = uri.length - comma - 1;
  return uri.slice(0, comma).endsWith(';base64') ? Math.floor((body * 3) / 4) : body;
}

/**
 * Why this GLB may not be read, or its shape when it keeps every bound: the container, the JSON chunk (size,
 * nesting, syntax), external references (a GLB read here carries its own data), buffer views inside their
 * buffers, accessors backed by the bytes of their views (or, with no view, no larger than the file), the node
 * tree, and the primitives, vertices, triangles and images, counted as the scene places them.
 */
export function glbBounds(bytes: Uint8Array, limits: GlbLimits = DEFAULT_GLB_LIMITS): { violation: string } | { shape: GlbShape } {
  const container = glbContainerViolation(bytes);
  if (container) return { violation: container };
  try {
    return { shape: shapeOf(bytes, limits) };
  } catch (err) {
    if (err instanceof Refused) return { violation: err.message };
    throw err;
  }
}

function shapeOf(bytes: Uint8Array, limits: GlbLimits): GlbShape {
  const { json: text, binLength } = chunksOf(bytes);
  if (text.length > limits.maxJsonBytes)
    refuse(`the GLB's JSON is ${count(text.length)} bytes, over the limit of ${count(limits.maxJsonBytes)}`);
  const depth = jsonDepth(text, limits.maxJsonDepth);
  if (depth > limits.maxJsonDepth) refuse(`the GLB's JSON nests deeper than ${limits.maxJsonDepth} levels`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(text));
  } catch (err) {
    refuse(`the GLB's JSON chunk is not valid JSON: ${(err as Error).message.slice(0, 120)}`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) refuse("the GLB's JSON is not an object");
  const root = json as Json;

  // Buffers: the BIN chunk, or data: URIs inside the JSON; a file that points elsewhere is not read. A meshopt
  // fallback buffer holds nothing: its views are decoded from compressed bytes in another buffer.
  const buffers = arrayOf(root, 'buffers');
  const fallback = buffers.map((buffer) => buffer.uri === undefined && extensionOf(buffer, 'EXT_meshopt_compression')?.fallback === true);
  const bufferBytes = buffers.map((buffer, i) => {
    if (fallback[i]) {
      const length = buffer.byteLength as number;
      if (!Number.isInteger(length) || length < 0) refuse(`buffers[${i}] has a bad byteLength`);
      return length;
    }
    if (buffer.uri === undefined) {
      if (i !== 0) refuse(`buffers[${i}] has no uri; only the first buffer may be the GLB's BIN chunk`);
      return binLength;
    }
    if (!isDataUri(buffer.uri)) refuse(`buffers[${i}] refers to another file; a GLB read here must carry its own data`);
    return dataUriBytes(buffer.uri as string);
  });
  const bufferViews = arrayOf(root, 'bufferViews');
  let decodedBytes = 0;
  const viewBytes = bufferViews.map((view, i) => {
    if (!isIndex(view.buffer, buffers.length)) refuse(`bufferViews[${i}] names no buffer of the file`);
    const offset = (view.byteOffset as number | undefined) ?? 0;
    const length = view.byteLength as number;
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(length) || length < 0)
      refuse(`bufferViews[${i}] has a bad byteOffset or byteLength`);
    if (offset + length > bufferBytes[view.buffer as number]) {
      refuse(
        `bufferViews[${i}] runs past its buffer: bytes ${count(offset)}..${count(offset + length)} of ${count(bufferBytes[view.buffer as number])}`,
      );
    }
    const meshopt = extensionOf(view, 'EXT_meshopt_compression');
    if (meshopt) {
      // The compressed bytes lie in a buffer that holds them; what they decode to fits the view, within the ratio.
      const source = meshopt.buffer as number;
      const from = (meshopt.byteOffset as number | undefined) ?? 0;
      const compressed = meshopt.byteLength as number,
        stride = meshopt.byteStride as number,
        elements = meshopt.count as number;
      if (!isIndex(source, buffers.length) || fallback[source])
        refuse(`bufferViews[${i}]'s compressed data names no buffer that holds bytes`);
      if (![from, compressed, stride, elements].every((n) => Number.isInteger(n) && n >= 0) || from + compressed > bufferBytes[source]) {
        refuse(`bufferViews[${i}]'s compressed data runs past its buffer`);
      }
      if (stride * elements > length)
        refuse(`bufferViews[${i}] decodes to ${count(stride * elements)} bytes, more than its ${count(length)}`);
      if (stride * elements > MAX_DECODE_RATIO * compressed + 1024)
        refuse(`bufferViews[${i}] declares ${count(stride * elements)} bytes from ${count(compressed)} compressed ones`);
      decodedBytes += stride * elements;
    } else if (fallback[view.buffer as number]) {
      refuse(`bufferViews[${i}] is in a meshopt fallback buffer, which holds no bytes, and is not compressed`);
    }
    return length;
  });

  // Draco: a compressed primitive's accessors have no view of their own; their data comes from its Draco bytes.
  const dracoBytes = new Map<number, number>();
  for (const [m, mesh] of arrayOf(root, 'meshes').entries()) {
    if (!Array.isArray(mesh.primitives)) continue;
    for (const [p, primitive] of (mesh.primitives as Json[]).entries()) {
      const dracoPart = primitive && typeof primitive === 'object' ? extensionOf(primitive, 'KHR_draco_mesh_compression') : undefined;
      if (!dracoPart) continue;
      if (!isIndex(dracoPart.bufferView, bufferViews.length)) refuse(`meshes[${m}].primitives[${p}]'s Draco data names no buffer view`);
      const compressed = viewBytes[dracoPart.bufferView as number];
      const attributes =
        primitive.attributes && typeof primitive.attributes === 'object' ? Object.values(primitive.attributes as Json) : [];
      for (const index of [...attributes, primitive.indices]) {
        if (Number.isInteger(index)) dracoBytes.set(index as number, (dracoBytes.get(index as number) ?? 0) + compressed);
      }
    }
  }

  // Accessors: glTF-Transform makes a typed array of count x element bytes for each, so each must be backed.
  const accessors = arrayOf(root, 'accessors');
  let accessorBytes = 0;
  const accessorCounts = accessors.map((accessor, i) => {
    const component = COMPONENT_BYTES[accessor.componentType as number];
    const components = TYPE_COMPONENTS[accessor.type as string];
    const n = accessor.count as number;
    if (!component || !components) refuse(`accessors[${i}] has an unknown componentType or type`);
    if (!Number.isInteger(n) || n < 1) refuse(`accessors[${i}] has a bad count`);
    const element = component * components;
    const size = n * element;
    if (accessor.bufferView === undefined && dracoBytes.has(i)) {
      // Decoded from a Draco primitive's bytes: within the ratio of them.
      if (size > MAX_DECODE_RATIO * dracoBytes.get(i)! + 1024)
        refuse(`accessors[${i}] declares ${count(size)} bytes from ${count(dracoBytes.get(i)!)} bytes of Draco data`);
      decodedBytes += size;
    } else if (accessor.bufferView === undefined) {
      // Zero-filled by the reader: no larger than the file itself.
      if (size > bytes.length)
        refuse(
          `accessors[${i}] declares ${count(n)} elements with no data behind them (${count(size)} bytes, the file has ${count(bytes.length)})`,
        );
    } else {
      if (!isIndex(accessor.bufferView, bufferViews.length)) refuse(`accessors[${i}] names no buffer view of the file`);
      const view = bufferViews[accessor.bufferView as number];
      const stride = (view.byteStride as number | undefined) ?? element;
      const offset = (accessor.byteOffset as number | undefined) ?? 0;
      if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(stride) || stride < 1)
        refuse(`accessors[${i}] has a bad byteOffset or its view a bad byteStride`);
      const needed = offset + stride * (n - 1) + element;
      const have = viewBytes[accessor.bufferView as number];
      if (needed > have)
        refuse(`accessors[${i}] declares ${count(n)} elements needing ${count(needed)} bytes, its buffer view holds ${count(have)}`);
    }
    const sparse = accessor.sparse as Json | undefined;
    if (sparse !== undefined) {
      const sparseCount = sparse.count as number;
      if (!Number.isInteger(sparseCount) || sparseCount < 1 || sparseCount > n) refuse(`accessors[${i}].sparse has a bad count`);
      for (const part of ['indices', 'values'] as const) {
        const p = sparse[part] as Json | undefined;
        if (!p || !isIndex(p.bufferView, bufferViews.length)) refuse(`accessors[${i}].sparse.${part} names no buffer view of the file`);
        const width = part === 'values' ? element : (COMPONENT_BYTES[p.componentType as number] ?? 4);
        if (((p.byteOffset as number | undefined) ?? 0) + sparseCount * width > viewBytes[p.bufferView as number]) {
          refuse(`accessors[${i}].sparse.${part} runs past its buffer view`);
        }
      }
    }
    const decoded =
      accessor.bufferView === undefined ? dracoBytes.has(i) : fallback[bufferViews[accessor.bufferView as number].buffer as number];
    if (!decoded) accessorBytes += size;
    return n;
  });
  // Accessors may share bytes (interleaved views) but never add up to much more than the file; decoded ones,
  // to more than the ratio allows.
  if (accessorBytes > 2 * bytes.length + (1 << 20))
    refuse(`the GLB's accessors add up to ${count(accessorBytes)} bytes, far more than the file's ${count(bytes.length)}`);
  if (decodedBytes > MAX_DECODE_RATIO * bytes.length)
    refuse(`the GLB's compressed data decodes to ${count(decodedBytes)} bytes, far more than the file's ${count(bytes.length)}`);

  // Meshes and primitives.
  const meshes = arrayOf(root, 'meshes');
  const meshShapes = meshes.map((mesh, m) => {
    const primitives = Array.isArray(mesh.primitives) ? (mesh.primitives as Json[]) : refuse(`meshes[${m}] has no primitives array`);
    let vertices = 0,
      triangles = 0;
    for (let p = 0; p < primitives.length; p++) {
      const primitive = primitives[p];
      const attributes = primitive && typeof primitive === 'object' ? (primitive.attributes as Json | undefined) : undefined;
      if (!attributes || typeof attributes !== 'object') refuse(`meshes[${m}].primitives[${p}] has no attributes`);
      for (const [name, index] of Object.entries(attributes)) {
        if (!isIndex(index, accessors.length)) refuse(`meshes[${m}].primitives[${p}]'s ${name.slice(0, 40)} names no accessor of the file`);
      }
      if (primitive.indices !== undefined && !isIndex(primitive.indices, accessors.length))
        refuse(`meshes[${m}].primitives[${p}]'s indices name no accessor`);
      const position = attributes.POSITION as number | undefined;
      const n = position === undefined ? 0 : accessorCounts[position];
      vertices += n;
      if (((primitive.mode as number | undefined) ?? TRIANGLES) === TRIANGLES) {
        triangles += Math.floor((primitive.indices === undefined ? n : accessorCounts[primitive.indices as number]) / 3);
      }
    }
    return { primitives: primitives.length, vertices, triangles };
  });
  const filePrimitives = meshShapes.reduce((s, m) => s + m.primitives, 0);
  if (filePrimitives > limits.maxPrimitives)
    refuse(`the GLB has ${count(filePrimitives)} primitives, over the limit of ${count(limits.maxPrimitives)}`);

  // The node tree: one parent at most, no cycle, bounded depth; worked out without recursion.
  const nodes = arrayOf(root, 'nodes');
  if (nodes.length > limits.maxNodes) refuse(`the GLB has ${count(nodes.length)} nodes, over the limit of ${count(limits.maxNodes)}`);
  const parent = new Int32Array(nodes.length).fill(-1);
  nodes.forEach((node, i) => {
    if (node.mesh !== undefined && !isIndex(node.mesh, meshes.length)) refuse(`nodes[${i}] names no mesh of the file`);
    if (node.children === undefined) return;
    if (!Array.isArray(node.children)) refuse(`nodes[${i}].children is not an array`);
    for (const child of node.children) {
      if (!isIndex(child, nodes.length)) refuse(`nodes[${i}] has a child that is not a node of the file`);
      if (child === i) refuse(`nodes[${i}] is its own child`);
      if (parent[child] >= 0) refuse(`nodes[${child}] is a child of both nodes[${parent[child]}] and nodes[${i}]`);
      parent[child] = i;
    }
  });
  const depthOf = new Int32Array(nodes.length).fill(-1);
  const stack: number[] = [];
  for (let i = 0; i < nodes.length; i++)
    if (parent[i] < 0) {
      depthOf[i] = 0;
      stack.push(i);
    }
  while (stack.length) {
    const i = stack.pop()!;
    if (depthOf[i] > limits.maxNodeDepth) refuse(`the GLB's node tree is deeper than ${limits.maxNodeDepth} levels`);
    for (const child of (nodes[i].children as number[] | undefined) ?? []) {
      depthOf[child] = depthOf[i] + 1;
      stack.push(child);
    }
  }
  const cycle = depthOf.indexOf(-1);
  if (cycle >= 0) refuse(`the GLB's nodes form a parent cycle (nodes[${cycle}] is its own ancestor)`);

  // What the scene places (or, with no scene, every node with a mesh), counted per placement.
  const scenes = arrayOf(root, 'scenes');
  const sceneIndex = root.scene ?? (scenes.length ? 0 : undefined);
  if (sceneIndex !== undefined && !isIndex(sceneIndex, scenes.length)) refuse('the GLB\'s "scene" names no scene of the file');
  let placed: number[];
  if (sceneIndex === undefined) placed = nodes.map((_, i) => i);
  else {
    const sceneNodes = scenes[sceneIndex as number].nodes ?? [];
    if (!Array.isArray(sceneNodes) || !sceneNodes.every((n) => isIndex(n, nodes.length)))
      refuse(`scenes[${sceneIndex}] names a node that is not in the file`);
    placed = [];
    const seen = new Uint8Array(nodes.length);
    const walk = [...(sceneNodes as number[])];
    while (walk.length) {
      const i = walk.pop()!;
      if (seen[i]) continue; // a scene may name a node and its ancestor: the validator reports it
      seen[i] = 1;
      placed.push(i);
      walk.push(...((nodes[i].children as number[] | undefined) ?? []));
    }
  }
  const used = Array.isArray(root.extensionsUsed) ? (root.extensionsUsed as unknown[]) : [];
  const codecs = { draco: used.includes('KHR_draco_mesh_compression'), meshopt: used.includes('EXT_meshopt_compression') };
  const shape: GlbShape = { codecs, nodes: nodes.length, primitives: 0, vertices: 0, triangles: 0 };
  for (const i of placed) {
    if (nodes[i].mesh === undefined) continue;
    const mesh = meshShapes[nodes[i].mesh as number];
    shape.primitives += mesh.primitives;
    shape.vertices += mesh.vertices;
    shape.triangles += mesh.triangles;
  }
  if (shape.primitives > limits.maxPrimitives)
    refuse(`the GLB's scene places ${count(shape.primitives)} primitives, over the limit of ${count(limits.maxPrimitives)}`);
  if (shape.vertices > limits.maxVertices)
    refuse(`the GLB's scene places ${count(shape.vertices)} vertices, over the limit of ${count(limits.maxVertices)}`);
  if (shape.triangles > limits.maxTriangles)
    refuse(`the GLB's scene places ${count(shape.triangles)} triangles, over the limit of ${count(limits.maxTriangles)}`);

  // Images: inside the file, and not too many of them (their pixels are counted when they are decoded).
  const images = arrayOf(root, 'images');
  if (images.length > limits.maxImages) refuse(`the GLB has ${count(images.length)} images, over the limit of ${limits.maxImages}`);
  images.forEach((image, i) => {
    if (image.uri !== undefined && !isDataUri(image.uri))
      refuse(`images[${i}] refers to another file; a GLB read here must carry its own data`);
    if (image.bufferView !== undefined && !isIndex(image.bufferView, bufferViews.length))
      refuse(`images[${i}] names no buffer view of the file`);
  });
  return shape;
}
