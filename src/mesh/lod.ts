/**
 * Levels of detail as game pipelines ship them: one mesh per level, each a fraction of the top level's
 * triangles (for example [1, 0.5, 0.25, 0.1]). glTF has no vendor-neutral LOD extension, so each level is its
 * own file. Each level is simplified from the one above it (a chain: every collapse starts from fewer
 * triangles, and each level keeps what the level above kept).
 */
import { triangleCount, type TriangleMesh } from './mesh.js';
import { simplifyMesh } from './simplify.js';

/** Levels a request may ask for, the top level included. */
export const MAX_LODS = 8;
/** A level keeps at least this many triangles, whatever its fraction. */
export const MIN_LOD_TRIANGLES = 12;

export interface LodLevel {
  /** The fraction asked for, of the top level's triangles. */
  fraction: number;
  /** Triangles asked for (the fraction of the top level's, rounded). */
  target: number;
  mesh: TriangleMesh;
  /** Triangles reached. */
  triangles: number;
}

/** Why these fractions are no LOD chain, or null: 1 first, then strictly decreasing, each in (0, 1], at most MAX_LODS. */
export function lodsViolation(fractions: unknown): string | null {
  if (!Array.isArray(fractions) || fractions.length === 0) return 'lods must be a list of fractions such as [1, 0.5, 0.25, 0.1]';
  if (fractions.length > MAX_LODS) return `lods may list at most ${MAX_LODS} levels`;
  if (!fractions.every((f) => typeof f === 'number' && Number.isFinite(f) && f > 0 && f <= 1))
    return 'each of lods must be a fraction above 0 and at most 1';
  if (fractions[0] !== 1) return 'lods must start with 1 (the top level itself)';
  for (let i = 1; i < fractions.length; i++) {
    if (!(fractions[i] < fractions[i - 1])) return 'lods must be strictly decreasing, such as [1, 0.5, 0.25, 0.1]';
  }
  return null;
}

/** The chain: level 0 is the mesh itself, each later level simplified from the one before. */
export async function lodChain(mesh: TriangleMesh, fractions: readonly number[]): Promise<LodLevel[]> {
  const violation = lodsViolation(fractions);
  if (violation) throw new RangeError(violation);
  const top = triangleCount(mesh);
  const levels: LodLevel[] = [{ fraction: 1, target: top, mesh, triangles: top }];
  for (const fraction of fractions.slice(1)) {
    const target = Math.min(top, Math.max(MIN_LOD_TRIANGLES, Math.round(top * fraction)));
    const { mesh: level, triangles } = await simplifyMesh(levels[levels.length - 1].mesh, target);
    levels.push({ fraction, target, mesh: level, triangles });
  }
  return levels;
}
