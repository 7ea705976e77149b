/**
 * Scale and pivot applied to the vertices themselves: the judge reads raw vertices and engines take the file's
 * origin as the prop's, so there is never a node transform. `center` puts the bounding box's centre on the
 * origin (today's unit cube); `bottom` puts its bottom centre there, as engines place props on a floor.
 */
import { meshBounds, type TriangleMesh } from './mesh.js';

export const PIVOTS = ['center', 'bottom'] as const;
export type Pivot = (typeof PIVOTS)[number];

export interface Placement {
  /** The largest side of the bounding box, in metres. */
  sizeM: number;
  pivot: Pivot;
}

/** Today's placement: the unit cube, centred. */
export const DEFAULT_PLACEMENT: Placement = { sizeM: 1, pivot: 'center' };

/** Sizes a request may ask for, in metres: from a coin to a building. */
export const MIN_SIZE_M = 0.001;
export const MAX_SIZE_M = 1000;

/** Why a placement cannot be made, or null. */
export function placementViolation(placement: { sizeM?: unknown; pivot?: unknown }): string | null {
  const { sizeM, pivot } = placement;
  if (sizeM !== undefined && !(typeof sizeM === 'number' && Number.isFinite(sizeM) && sizeM >= MIN_SIZE_M && sizeM <= MAX_SIZE_M)) {
    return `size_m must be a number of metres from ${MIN_SIZE_M} to ${MAX_SIZE_M}`;
  }
  if (pivot !== undefined && !PIVOTS.includes(pivot as Pivot)) return `pivot must be one of ${PIVOTS.join(', ')}`;
  return null;
}

/**
 * Scales the mesh in place so its largest side is `sizeM` and moves its pivot to the origin; returns the scale
 * applied. Normals, if the mesh has them, keep their directions (the scale is uniform). A mesh whose box is not
 * finite (no triangles, non-finite vertices) is left as it is.
 */
export function placeMesh(mesh: TriangleMesh, placement: Placement): number {
  const { min, max } = meshBounds(mesh);
  if (![...min, ...max].every(Number.isFinite)) return 1;
  const side = Math.max(max[0] - min[0], max[1] - min[1], max[2] - min[2]);
  const scale = side > 0 ? placement.sizeM / side : 1;
  const origin = [(min[0] + max[0]) / 2, placement.pivot === 'bottom' ? min[1] : (min[1] + max[1]) / 2, (min[2] + max[2]) / 2];
  const p = mesh.positions;
  for (let i = 0; i < p.length; i += 3) {
    for (let a = 0; a < 3; a++) p[i + a] = (p[i + a] - origin[a]) * scale;
  }
  return scale;
}
