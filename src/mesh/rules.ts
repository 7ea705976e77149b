/**
 * The check every GLB must pass before any 200: the size limit, the GLB container, the Khronos glTF validator
 * (no errors), then the subnet judge's rules as its loader (trimesh) reads a file: exactly one geometry (trimesh
 * makes one per primitive, so two primitives or two materials fail), no node transform (it reads the raw
 * vertices), triangles present, raw bounds within [-extent/2, extent/2] on every axis with the bounding box
 * centred on the origin (or the size and pivot a request asked for), and triangles wound outward (it culls back
 * faces). glTF's own frame (+Y up, front +Z) is the competition's, so geometry sits in it unrotated.
 */
import { validateBytes, type ValidationMessage } from 'gltf-validator';
import { Primitive } from '@gltf-transform/core';
import { accessorFloats, placedPrimitives, readGlbDocument } from './glb.js';
import { DEFAULT_GLB_LIMITS, glbBounds, type GlbLimits } from './glb-limits.js';
import type { MeshBounds } from './mesh.js';

/** Where a request asked the mesh to sit: its largest side in metres, and its origin (centre or bottom centre). */
export interface MeshPlacement {
  sizeM: number;
  pivot: 'center' | 'bottom';
}

export interface GlbRules {
  /** Side of the cube, centred on the origin, the geometry must fit in (when no placement is asked for). */
  extent: number;
  /**
   * The size and pivot a request asked for, checked instead of the cube: the largest side is `sizeM` (within
   * 1%), the box fits the cube of that side, centred on the origin or with its bottom centre there.
   */
  placement?: MeshPlacement;
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
/** A placement's largest side may differ from the size asked for by this fraction. */
export const SIZE_TOLERANCE = 0.01;
/**
 * Winding: a mesh counts as wound inward when its signed volume is negative by more than this fraction of its
 * box's volume and most of its area faces the centroid. Flat or open meshes, with about no volume, pass.
 */
export const WINDING_VOLUME_FRACTION = 1e-3;
/** Issues the validator lists at most (its counts cover them all). */
const MAX_ISSUES = 100;

export interface GlbInspection {
  /** The validator's counts and messages; null when the file was refused before it (size, container). */
  validator: { errors: number; warnings: number; infos: number; messages: ValidationMessage[] } | null;
  meshes: number;
  /** Primitives the scene places: trimesh, the judge's loader, makes one geometry of each. */
  primitives: number;
  /** Triangles of TRIANGLES primitives the scene places. */
  triangles: number;
  /** Vertices of the primitives the scene places. */
  vertices: number;
  /**
   * Bounds of the raw vertices (accessor values, node transforms ignored, as the judge reads them) of every
   * placed primitive, or null when there is none (or the file was not read).
   */
  bounds: MeshBounds | null;
  /** Total area of the placed triangles (raw vertices). */
  area: number;
  /**
   * Winding of the triangles: the signed volume they enclose (positive when wound outward, for a closed mesh)
   * and the share of their area whose normal points away from the centroid; null without triangles.
   */
  winding: { volume: number; outwardShare: number } | null;
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
  const result: GlbInspection = {
    validator: null,
    meshes: 0,
    primitives: 0,
    triangles: 0,
    vertices: 0,
    bounds: null,
    area: 0,
    winding: null,
    violations: [],
    fault: null,
  };
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
    const first = issues.messages
      .filter((m) => m.severity === 0)
      .slice(0, 2)
      .map(quote);
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
  result.primitives = placed.length;
  const min: [number, number, number] = [Infinity, Infinity, Infinity];
  const max: [number, number, number] = [-Infinity, -Infinity, -Infinity];
  const surfaces: { positions: Float32Array; indices: ArrayLike<number> | null; corners: number }[] = [];
  let transformed = false;
  for (const { primitive, matrix } of placed) {
    if (!isIdentity(matrix)) transformed = true;
    const position = primitive.getAttribute('POSITION');
    if (!position) continue;
    const count = position.getCount();
    result.vertices += count;
    // The raw vertices: the judge's loader ignores node transforms, so bounds and winding are read as stored.
    const local = accessorFloats(position, 3);
    for (let i = 0; i < count * 3; i += 3) {
      for (let a = 0; a < 3; a++) {
        const c = local[i + a];
        if (c < min[a]) min[a] = c;
        if (c > max[a]) max[a] = c;
      }
    }
    if (primitive.getMode() === Primitive.Mode.TRIANGLES) {
      const indices = primitive.getIndices()?.getArray() ?? null;
      const corners = indices ? indices.length : count;
      result.triangles += Math.floor(corners / 3);
      result.area += triangleArea(local, indices, corners - (corners % 3));
      surfaces.push({ positions: local, indices, corners: corners - (corners % 3) });
    }
  }
  if (result.vertices > 0) result.bounds = { min, max };

  const v = result.violations;
  const finite = [...min, ...max].every(Number.isFinite);
  if (result.meshes > 0 && placed.length === 0) fault("the GLB's scene places no node with a mesh");
  else if (result.meshes > 0 && result.triangles === 0)
    fault('the GLB has no triangles (no TRIANGLES primitive with three or more vertices)');
  else if (result.triangles > 0 && !finite) fault("the GLB's vertices are not all finite numbers");
  else if (result.triangles > 0 && !(result.area > 0)) fault(`the GLB's ${result.triangles} triangles have no area: it is no surface`);
  if (result.meshes !== 1) v.push(`the GLB has ${result.meshes} meshes; the mesh competition wants exactly one`);
  else if (result.primitives > 1) {
    v.push(
      `the GLB's scene places ${result.primitives} primitives (parts or materials); the judge's loader makes a geometry of each ` +
        'and wants exactly one',
    );
  }
  if (transformed)
    v.push('the node holding the mesh has a transform; the judge reads the raw vertices and ignores it, so the mesh must have none');
  if (result.bounds && finite) {
    const placement = rules.placement;
    const side = placement ? placement.sizeM : rules.extent;
    const half = side / 2;
    const tolerance = BOUNDS_TOLERANCE * side;
    // The box the mesh must fit: the cube of `side` centred on the origin, or standing on it (pivot bottom).
    const low = [-half, placement?.pivot === 'bottom' ? 0 : -half, -half];
    const high = [half, placement?.pivot === 'bottom' ? side : half, half];
    const outside = [0, 1, 2].filter((a) => min[a] < low[a] - tolerance || max[a] > high[a] + tolerance);
    if (outside.length) {
      const spans = outside.map((a) => `${'xyz'[a]} [${fmt(min[a])}, ${fmt(max[a])}]`).join(', ');
      const box = outside.map((a) => `[${fmt(low[a])}, ${fmt(high[a])}]`);
      const what = placement ? `size ${fmt(side)} m, pivot ${placement.pivot}` : `extent ${fmt(side)}`;
      v.push(`the mesh spans ${spans}, outside ${[...new Set(box)].join(', ')} (${what}, raw vertices)`);
    }
    // The pivot: the box's centre on the origin, or its bottom centre (x, z centred, lowest y at 0).
    const anchor = [0, 1, 2].map((a) => (a === 1 && placement?.pivot === 'bottom' ? min[a] : (min[a] + max[a]) / 2));
    if (anchor.some((c) => Math.abs(c) > CENTRE_TOLERANCE * side)) {
      const which = placement?.pivot === 'bottom' ? 'bottom centre' : 'centre';
      v.push(
        `the mesh is off-centre: its bounding box's ${which} is (${anchor.map(fmt).join(', ')}), ` +
          `more than ${fmt(CENTRE_TOLERANCE * side)} from the origin on an axis`,
      );
    }
    if (placement) {
      const largest = Math.max(max[0] - min[0], max[1] - min[1], max[2] - min[2]);
      if (Math.abs(largest - side) > SIZE_TOLERANCE * side)
        v.push(`the mesh's largest side is ${fmt(largest)} m, not the ${fmt(side)} m asked for`);
    }
  }
  if (result.triangles > 0 && finite && result.area > 0) {
    result.winding = winding(surfaces, min, max);
    const boxVolume = (max[0] - min[0]) * (max[1] - min[1]) * (max[2] - min[2]);
    if (result.winding.volume < -WINDING_VOLUME_FRACTION * boxVolume && result.winding.outwardShare < 0.5) {
      v.push(
        `the triangles are wound inward (signed volume ${fmt(result.winding.volume)}, ${fmt(result.winding.outwardShare * 100)}% of the area ` +
          'facing out): the judge culls back faces, so it would see the inside',
      );
    }
  }
  return result;
}

const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
const isIdentity = (m: number[]): boolean => m.every((x, i) => Math.abs(x - IDENTITY[i]) < 1e-9);

/**
 * The signed volume the triangles enclose, measured from the box's centre (for a closed mesh it is the same from
 * any point: positive when every triangle is wound counter-clockwise seen from outside), and the share of the
 * area whose normal points away from the area-weighted centroid (which tells an open mesh's winding).
 */
function winding(
  surfaces: { positions: Float32Array; indices: ArrayLike<number> | null; corners: number }[],
  min: number[],
  max: number[],
): { volume: number; outwardShare: number } {
  const o = [0, 1, 2].map((a) => (min[a] + max[a]) / 2);
  let six = 0,
    area = 0;
  const centroid = [0, 0, 0];
  const each = (
    visit: (ax: number, ay: number, az: number, bx: number, by: number, bz: number, cx: number, cy: number, cz: number) => void,
  ) => {
    for (const { positions: p, indices, corners } of surfaces) {
      for (let t = 0; t < corners; t += 3) {
        const a = (indices ? indices[t] : t) * 3,
          b = (indices ? indices[t + 1] : t + 1) * 3,
          c = (indices ? indices[t + 2] : t + 2) * 3;
        visit(
          p[a] - o[0],
          p[a + 1] - o[1],
          p[a + 2] - o[2],
          p[b] - o[0],
          p[b + 1] - o[1],
          p[b + 2] - o[2],
          p[c] - o[0],
          p[c + 1] - o[1],
          p[c + 2] - o[2],
        );
      }
    }
  };
  each((ax, ay, az, bx, by, bz, cx, cy, cz) => {
    // a . (b x c) is six times the signed volume of the tetrahedron (o, a, b, c).
    six += ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx);
    const ux = bx - ax,
      uy = by - ay,
      uz = bz - az,
      vx = cx - ax,
      vy = cy - ay,
      vz = cz - az;
    const l = Math.hypot(uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx);
    if (!(l > 0)) return;
    area += l;
    centroid[0] += l * (ax + bx + cx);
    centroid[1] += l * (ay + by + cy);
    centroid[2] += l * (az + bz + cz);
  });
  for (let a = 0; a < 3; a++) centroid[a] /= 3 * area;
  let outward = 0;
  each((ax, ay, az, bx, by, bz, cx, cy, cz) => {
    const ux = bx - ax,
      uy = by - ay,
      uz = bz - az,
      vx = cx - ax,
      vy = cy - ay,
      vz = cz - az;
    const nx = uy * vz - uz * vy,
      ny = uz * vx - ux * vz,
      nz = ux * vy - uy * vx;
    const l = Math.hypot(nx, ny, nz);
    if (!(l > 0)) return;
    const dx = (ax + bx + cx) / 3 - centroid[0],
      dy = (ay + by + cy) / 3 - centroid[1],
      dz = (az + bz + cz) / 3 - centroid[2];
    if (nx * dx + ny * dy + nz * dz > 0) outward += l;
  });
  return { volume: six / 6, outwardShare: area > 0 ? outward / area : 0 };
}

/** Total area of the triangles of positions, by indices (or consecutive corners without them). */
function triangleArea(p: Float32Array, indices: ArrayLike<number> | null, corners: number): number {
  let twice = 0;
  for (let t = 0; t < corners; t += 3) {
    const a = (indices ? indices[t] : t) * 3,
      b = (indices ? indices[t + 1] : t + 1) * 3,
      c = (indices ? indices[t + 2] : t + 2) * 3;
    const ux = p[b] - p[a],
      uy = p[b + 1] - p[a + 1],
      uz = p[b + 2] - p[a + 2];
    const vx = p[c] - p[a],
      vy = p[c + 1] - p[a + 1],
      vz = p[c + 2] - p[a + 2];
    const nx = uy * vz - uz * vy,
      ny = uz * vx - ux * vz,
      nz = ux * vy - uy * vx;
    const l = Math.sqrt(nx * nx + ny * ny + nz * nz);
    if (!Number.isNaN(l)) twice += l;
  }
  return twice / 2;
}

/**
 * Why these bytes may not leave with a 200 as a GLB, in one sentence, or null when they pass: the size limit,
 * the container, the Khronos validator (no errors), then the judge's geometry rules.
 */
export async function glbViolation(bytes: Uint8Array, rules: GlbRules): Promise<string | null> {
  return (await inspectGlb(bytes, rules)).violations[0] ?? null;
}
