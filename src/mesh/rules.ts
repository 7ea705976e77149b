/**
 * The check every GLB must pass before any 200: the size limit, the GLB container, the Khronos glTF validator
 * (no errors), then the subnet's mesh competition rules: exactly one mesh, triangles present, world-space
 * bounds (node transforms applied) within [-extent/2, extent/2] on every axis, and the bounding box centred on
 * the origin. glTF's own frame (+Y up, front +Z) is the competition's, so geometry sits in it unrotated.
 */
import { validateBytes, type ValidationMessage } from 'gltf-validator';
import { Primitive } from '@gltf-transform/core';
import { accessorFloats, placedPrimitives, readGlbDocument, transformPoint } from './glb.js';
import { DEFAULT_GLB_LIMITS, glbBounds, type GlbLimits } from './glb-limits.js';
import type { MeshBounds } from './mesh.js';


export interface GlbRules {
  /** Side of the cube, centred on the origin, the geometry must fit in. */
  extent: number;
  /** Largest file accepted, in bytes. */
  maxBytes: number;
  /** The bounds checked before the validator or the reader sees the file (default: the config's defaults). */
  limits?: GlbLimits;
}

/** The rules of a service's settings (`pipeline.mesh_extent`, `pipeline.max_glb_mb` in MB of 10^6 bytes). */
export function glbRulesOf(settings: { mesh_extent: number; max_glb_mb: number }, limits: GlbLimits = DEFAULT_GLB_LIMITS): GlbRules {
  return { extent: settings.mesh_extent, maxBytes: Math.round(settings.max_glb_mb * 1e6), limits };
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
  /** Total area of the placed triangles (world space). */
  area: number;
  /** What is wrong, in the order the rules are checked; empty when the file passes. */
  violations: string[];
  /**
   * The first violation that makes the file no usable mesh at all (over the limits, refused by the validator,
   * unreadable, no triangles, no area), as opposed to one of the competition's rules; null when there is none.
   */
  fault: string | null;
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const fmt = (v: number): string => String(Number(v.toPrecision(6)));

function quote(m: ValidationMessage): string {
  const where = m.pointer ?? (m.offset !== undefined ? `byte ${m.offset}` : '');
  return `${m.code}${where ? ` at ${where}` : ''}: ${m.message}`;
}

/** Everything `fast3d check` prints about a GLB, and every rule it breaks. */
export async function inspectGlb(bytes: Uint8Array, rules: GlbRules): Promise<GlbInspection> {
  const result: GlbInspection = { validator: null, meshes: 0, triangles: 0, vertices: 0, bounds: null, area: 0, violations: [], fault: null };
  const fault = (reason: string): GlbInspection => {
    result.violations.push(reason);
    result.fault = reason;
    return result;
  };
  if (bytes.length > rules.maxBytes) return fault(`the GLB is ${mb(bytes.length)}, over the ${mb(rules.maxBytes)} limit`);
  // The container, the JSON's nesting, the node tree and every accessor's bytes, before the validator recurses.
  const limits = rules.limits ?? DEFAULT_GLB_LIMITS;
  const bounds = glbBounds(bytes, limits);
  if ('violation' in bounds) return fault(bounds.violation);

  let report;
  try {
    report = await validateBytes(bytes, { format: 'glb', writeTimestamp: false, maxIssues: MAX_ISSUES });
  } catch (err) {
    return fault(`the Khronos glTF validator could not read the file: ${String(err).slice(0, 200)}`);
  }
  const { issues } = report;
  result.validator = { errors: issues.numErrors, warnings: issues.numWarnings, infos: issues.numInfos, messages: issues.messages };
  if (issues.numErrors > 0) {
    const first = issues.messages.filter((m) => m.severity === 0).slice(0, 2).map(quote);
    return fault(`the Khronos glTF validator reports ${issues.numErrors} error${issues.numErrors === 1 ? '' : 's'}: ${first.join('; ')}`);
  }

  let doc;
  try {
    doc = await readGlbDocument(bytes, limits);
  } catch (err) {
    return fault((err as Error).message);
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
    const world = new Float32Array(count * 3);
    const local = accessorFloats(position, 3);
    for (let i = 0; i < count; i++) {
      transformPoint(matrix, local[i * 3], local[i * 3 + 1], local[i * 3 + 2], world, i * 3);
      for (let a = 0; a < 3; a++) {
        const c = world[i * 3 + a];
        if (c < min[a]) min[a] = c;
        if (c > max[a]) max[a] = c;
      }
    }
    if (primitive.getMode() === Primitive.Mode.TRIANGLES) {
      const indices = primitive.getIndices()?.getArray() ?? null;
      const corners = indices ? indices.length : count;
      result.triangles += Math.floor(corners / 3);
      result.area += triangleArea(world, indices, corners - (corners % 3));
    }
  }
  if (result.vertices > 0) result.bounds = { min, max };

  const v = result.violations;
  const finite = [...min, ...max].every(Number.isFinite);
  if (result.meshes > 0 && placed.length === 0) fault('the GLB\'s scene places no node with a mesh');
  else if (result.meshes > 0 && result.triangles === 0) fault('the GLB has no triangles (no TRIANGLES primitive with three or more vertices)');
  else if (result.triangles > 0 && !finite) fault('the GLB\'s vertices are not all finite numbers once placed');
  else if (result.triangles > 0 && !(result.area > 0)) fault(`the GLB's ${result.triangles} triangles have no area: it is no surface`);
  if (result.meshes !== 1) v.push(`the GLB has ${result.meshes} meshes; the mesh competition wants exactly one`);
  if (result.bounds && finite) {
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

/** Total area of the triangles of world-space positions, by indices (or consecutive corners without them). */
function triangleArea(p: Float32Array, indices: ArrayLike<number> | null, corners: number): number {
  let twice = 0;
  for (let t = 0; t < corners; t += 3) {
    const a = (indices ? indices[t] : t) * 3, b = (indices ? indices[t + 1] : t + 1) * 3, c = (indices ? indices[t + 2] : t + 2) * 3;
    const ux = p[b] - p[a], uy = p[b + 1] - p[a + 1], uz = p[b + 2] - p[a + 2];
    const vx = p[c] - p[a], vy = p[c + 1] - p[a + 1], vz = p[c + 2] - p[a + 2];
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    const l = Math.sqrt(nx * nx + ny * ny + nz * nz);
    if (!Number.isNaN(l)) twice += l;
  }
  return twice / 2;
}

/**
 * Why these bytes may not leave with a 200 as a GLB, in one sentence, or null when they pass: the size limit,
 * the container, the Khronos validator (no errors), then the mesh competition's geometry rules.
 */
export async function glbViolation(bytes: Uint8Array, rules: GlbRules): Promise<string | null> {
  return (await inspectGlb(bytes, rules)).violations[0] ?? null;
}
