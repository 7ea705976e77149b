/**
 * The check every GLB must pass before any 200: the size limit, the GLB container, the Khronos glTF validator
 * (no errors), then the subnet's mesh competition rules: exactly one mesh, triangles present, world-space
 * bounds (node transforms applied) within [-extent/2, extent/2] on every axis, and the bounding box centred on
 * the origin. glTF's own frame (+Y up, front +Z) is the competition's, so geometry sits in it unrotated.
 */
import { validateBytes, type ValidationMessage } from 'gltf-validator';
import { Primitive } from '@gltf-transform/core';
import { accessorFloats, placedPrimitives, readGlbDocument, transformPoint } from './glb.js';
import type { MeshBounds } from './mesh.js';

export interface GlbRules {
  /** Side of the cube, centred on the origin, the geometry must fit in. */
  extent: number;
  /** Largest file accepted, in bytes. */
  maxBytes: number;
}

/** The rules of a service's settings (`pipeline.mesh_extent`, `pipeline.max_glb_mb` in MB of 10^6 bytes). */
export function glbRulesOf(settings: { mesh_extent: number; max_glb_mb: number }): GlbRules {
  return { extent: settings.mesh_extent, maxBytes: Math.round(settings.max_glb_mb * 1e6) };
}

/** Bounds may pass the cube's faces by this fraction of the extent (float rounding of a fitted mesh). */
export const BOUNDS_TOLERANCE = 1e-4;
/** The bounding box's centre may be this fraction of the extent from the origin on each axis. */
export const CENTRE_TOLERANCE = 0.01;
/** Issues the validator lists at most (its counts cover them all). */
const MAX_ISSUES = 100;

export interface GlbInspection {
  /** The validator's counts and messages; null when the file was refused before it (size, container). */
  validator: { errors: number; warnings: number; infos: number; messages: ValidationMessage[] } | null;
  meshes: number;
  /** Triangles of TRIANGLES primitives the scene places. */
  triangles: number;
  /** Vertices of the primitives the scene places. */
  vertices: number;
  /** World-space bounds of every placed primitive, or null when there is none (or the file was not read). */
  bounds: MeshBounds | null;
  /** What is wrong, in the order the rules are checked; empty when the file passes. */
  violations: string[];
}

const MAGIC_GLTF = 0x46546c67;
const CHUNK_JSON = 0x4e4f534a;

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

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const fmt = (v: number): string => String(Number(v.toPrecision(6)));

function quote(m: ValidationMessage): string {
  const where = m.pointer ?? (m.offset !== undefined ? `byte ${m.offset}` : '');
  return `${m.code}${where ? ` at ${where}` : ''}: ${m.message}`;
}

/** Everything `fast3d check` prints about a GLB, and every rule it breaks. */
export async function inspectGlb(bytes: Uint8Array, rules: GlbRules): Promise<GlbInspection> {
  const result: GlbInspection = { validator: null, meshes: 0, triangles: 0, vertices: 0, bounds: null, violations: [] };
  if (bytes.length > rules.maxBytes) {
    result.violations.push(`the GLB is ${mb(bytes.length)}, over the ${mb(rules.maxBytes)} limit`);
    return result;
  }
  const container = glbContainerViolation(bytes);
  if (container) {
    result.violations.push(container);
    return result;
  }

  let report;
  try {
    report = await validateBytes(bytes, { format: 'glb', writeTimestamp: false, maxIssues: MAX_ISSUES });
  } catch (err) {
    result.violations.push(`the Khronos glTF validator could not read the file: ${String(err)}`);
    return result;
  }
  const { issues } = report;
  result.validator = { errors: issues.numErrors, warnings: issues.numWarnings, infos: issues.numInfos, messages: issues.messages };
  if (issues.numErrors > 0) {
    const first = issues.messages.filter((m) => m.severity === 0).slice(0, 2).map(quote);
    result.violations.push(
      `the Khronos glTF validator reports ${issues.numErrors} error${issues.numErrors === 1 ? '' : 's'}: ${first.join('; ')}`,
    );
    return result;
  }

  let doc;
  try {
    doc = await readGlbDocument(bytes);
  } catch (err) {
    result.violations.push((err as Error).message);
    return result;
  }
  result.meshes = doc.getRoot().listMeshes().length;
  const placed = placedPrimitives(doc);
  const min: [number, number, number] = [Infinity, Infinity, Infinity];
  const max: [number, number, number] = [-Infinity, -Infinity, -Infinity];
  const p = [0, 0, 0];
  for (const { primitive, matrix } of placed) {
    const position = primitive.getAttribute('POSITION');
    if (!position) continue;
    const count = position.getCount();
    result.vertices += count;
    if (primitive.getMode() === Primitive.Mode.TRIANGLES) {
      result.triangles += Math.floor((primitive.getIndices()?.getCount() ?? count) / 3);
    }
    const local = accessorFloats(position, 3);
    for (let i = 0; i < count; i++) {
      transformPoint(matrix, local[i * 3], local[i * 3 + 1], local[i * 3 + 2], p, 0);
      for (let a = 0; a < 3; a++) {
        if (p[a] < min[a]) min[a] = p[a];
        if (p[a] > max[a]) max[a] = p[a];
      }
    }
  }
  if (result.vertices > 0) result.bounds = { min, max };

  const v = result.violations;
  if (result.meshes !== 1) v.push(`the GLB has ${result.meshes} meshes; the mesh competition wants exactly one`);
  if (result.meshes > 0 && placed.length === 0) v.push('the GLB\'s scene places no node with a mesh');
  else if (result.meshes > 0 && result.triangles === 0) v.push('the GLB has no triangles (no TRIANGLES primitive with three or more vertices)');
  if (result.bounds) {
    const half = rules.extent / 2;
    const tolerance = BOUNDS_TOLERANCE * rules.extent;
    const outside = [0, 1, 2].filter((a) => min[a] < -half - tolerance || max[a] > half + tolerance);
    if (outside.length) {
      const spans = outside.map((a) => `${'xyz'[a]} [${fmt(min[a])}, ${fmt(max[a])}]`).join(', ');
      v.push(`the mesh spans ${spans}, outside [${fmt(-half)}, ${fmt(half)}] (extent ${fmt(rules.extent)}, node transforms applied)`);
    }
    const centre = [0, 1, 2].map((a) => (min[a] + max[a]) / 2);
    if (centre.some((c) => Math.abs(c) > CENTRE_TOLERANCE * rules.extent)) {
      v.push(
        `the mesh is off-centre: its bounding box's centre is (${centre.map(fmt).join(', ')}), ` +
          `more than ${fmt(CENTRE_TOLERANCE * rules.extent)} from the origin on an axis`,
      );
    }
  }
  return result;
}

/**
 * Why these bytes may not leave with a 200 as a GLB, in one sentence, or null when they pass: the size limit,
 * the container, the Khronos validator (no errors), then the mesh competition's geometry rules.
 */
export async function glbViolation(bytes: Uint8Array, rules: GlbRules): Promise<string | null> {
  return (await inspectGlb(bytes, rules)).violations[0] ?? null;
}
