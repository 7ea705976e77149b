/**
 * A game-ready mesh from a job's mesh and the options a request asked for: simplified to `faces`, a chain of
 * levels of detail (`lods`), each scaled to `sizeM` with its origin where `pivot` says (on the vertices, never
 * a node), and, with `textureSize`, its vertex colours baked into a texture (or its texture scaled to that
 * side). Each level is placed on its own, so each fits the bounds asked for exactly (a coarser level's box can
 * be a little smaller than the top level's; the simplifier only moves vertices inward).
 */
import { bakeVertexColours, resizeTexture, textureSizeViolation } from './bake.js';
import { lodChain, lodsViolation } from './lod.js';
import { triangleCount, type TriangleMesh } from './mesh.js';
import { DEFAULT_PLACEMENT, placeMesh, placementViolation, type Pivot, type Placement } from './placement.js';
import { simplifyMesh } from './simplify.js';

/** The fewest faces a request may ask for. */
export const MIN_FACES = 500;

export interface GameMeshOptions {
  /** Target triangle count of the top level. */
  faces?: number;
  /** Side of the texture, 256 to 4096: vertex colours are baked into one, a texture is scaled to it. */
  textureSize?: number;
  pivot?: Pivot;
  /** Largest side in metres. */
  sizeM?: number;
  /** Fractions of the top level's triangles, 1 first (for example [1, 0.5, 0.25, 0.1]). */
  lods?: number[];
}

export interface GameMeshLevel {
  mesh: TriangleMesh;
  /** Triangles this level has. */
  triangles: number;
  /** The fraction of the top level it was asked to keep (1 for the top level). */
  fraction: number;
}

export interface GameMesh {
  /** The top level first, then each level of detail asked for. */
  levels: GameMeshLevel[];
  /** The faces asked for (null when none was) and the count reached by the top level. */
  faces: { asked: number | null; reached: number };
  placement: Placement;
}

/**
 * Why these options cannot be met, in one sentence for a 400, or null. `maxFaces` is the preset's most (the
 * mesh a job makes has at most that many triangles, which is also what a texture must hold).
 */
export function gameMeshViolation(options: GameMeshOptions, limits: { maxFaces: number }): string | null {
  const { faces, textureSize, lods } = options;
  if (faces !== undefined && !(Number.isInteger(faces) && faces >= MIN_FACES && faces <= limits.maxFaces)) {
    return limits.maxFaces >= MIN_FACES
      ? `faces must be a whole number from ${MIN_FACES} to ${limits.maxFaces} (this preset's most)`
      : `this preset makes meshes of at most ${limits.maxFaces} triangles, fewer than the ${MIN_FACES} faces may ask for`;
  }
  const placement = placementViolation(options);
  if (placement) return placement;
  if (lods !== undefined) {
    const violation = lodsViolation(lods);
    if (violation) return violation;
  }
  if (textureSize !== undefined) {
    const violation = textureSizeViolation(textureSize, faces ?? limits.maxFaces);
    if (violation) return violation;
  }
  return null;
}

/** The levels, in order, each ready to encode; throws a RangeError for options gameMeshViolation refuses. */
export async function prepareGameMesh(mesh: TriangleMesh, options: GameMeshOptions): Promise<GameMesh> {
  const placement: Placement = { sizeM: options.sizeM ?? DEFAULT_PLACEMENT.sizeM, pivot: options.pivot ?? DEFAULT_PLACEMENT.pivot };
  const violation = gameMeshViolation(options, { maxFaces: Math.max(MIN_FACES, options.faces ?? 0, triangleCount(mesh)) });
  if (violation) throw new RangeError(violation);
  const top = options.faces === undefined ? { mesh, triangles: triangleCount(mesh) } : await simplifyMesh(mesh, options.faces);
  const chain = await lodChain(top.mesh, options.lods ?? [1]);
  const levels: GameMeshLevel[] = [];
  for (const level of chain) {
    // A copy of the positions: the job's mesh (level 0 without faces) stays as the job made it.
    const placed: TriangleMesh = { ...level.mesh, positions: level.mesh.positions.slice() };
    placeMesh(placed, placement);
    let ready: TriangleMesh = placed;
    if (options.textureSize !== undefined) {
      ready =
        placed.colours && !placed.texture
          ? bakeVertexColours(placed, options.textureSize)
          : await resizeTexture(placed, options.textureSize);
    }
    levels.push({ mesh: ready, triangles: level.triangles, fraction: level.fraction });
  }
  return { levels, faces: { asked: options.faces ?? null, reached: top.triangles }, placement };
}
