/**
 * Simplification to a target triangle count with meshoptimizer's simplifier (edge collapses under a quadric
 * error, the one glTF-Transform's `simplify` wraps), run straight on the mesh's columns. Vertices that share a
 * position but not their uvs or colours (a UV seam, a colour edge) are collapsed together, so seams stay closed
 * and stay seams; colours and uvs weigh in the error, so colour edges and texture detail are kept longest.
 */
import { MeshoptSimplifier } from 'meshoptimizer';
import { triangleCount, vertexCount, withoutUnusedVertices, type TriangleMesh } from './mesh.js';

/** How much colour and uv differences weigh against geometric error (positions are normalised by the simplifier). */
const COLOUR_WEIGHT = 0.5;
const UV_WEIGHT = 0.5;

export interface SimplifyResult {
  mesh: TriangleMesh;
  /** Triangles reached: the target, or more when the mesh could not collapse further without tearing. */
  triangles: number;
  /** The simplifier's error, relative to the mesh's extent (0 when nothing was collapsed). */
  error: number;
}

/**
 * The mesh with at most `targetTriangles` triangles when the simplifier can get there (reported as `triangles`),
 * its vertices compacted to those the triangles use. A mesh already at or below the target comes back as it is.
 */
export async function simplifyMesh(mesh: TriangleMesh, targetTriangles: number): Promise<SimplifyResult> {
  if (!Number.isInteger(targetTriangles) || targetTriangles < 1)
    throw new RangeError(`a target of ${targetTriangles} triangles is no positive integer`);
  if (triangleCount(mesh) <= targetTriangles) return { mesh, triangles: triangleCount(mesh), error: 0 };
  await MeshoptSimplifier.ready;
  const n = vertexCount(mesh);
  const widths = (mesh.colours ? 3 : 0) + (mesh.uvs ? 2 : 0);
  let indices: Uint32Array;
  let error: number;
  if (widths === 0) {
    [indices, error] = MeshoptSimplifier.simplify(mesh.indices, mesh.positions, 3, targetTriangles * 3, 1, []);
  } else {
    const attributes = new Float32Array(n * widths);
    const weights: number[] = [];
    let offset = 0;
    for (const [column, width, weight] of [
      [mesh.colours, 3, COLOUR_WEIGHT],
      [mesh.uvs, 2, UV_WEIGHT],
    ] as const) {
      if (!column) continue;
      for (let v = 0; v < n; v++) for (let c = 0; c < width; c++) attributes[v * widths + offset + c] = column[v * width + c];
      for (let c = 0; c < width; c++) weights.push(weight);
      offset += width;
    }
    [indices, error] = MeshoptSimplifier.simplifyWithAttributes(
      mesh.indices,
      mesh.positions,
      3,
      attributes,
      widths,
      weights,
      null,
      targetTriangles * 3,
      1,
      [],
    );
  }
  const simplified = withoutUnusedVertices({ ...mesh, indices });
  return { mesh: simplified, triangles: triangleCount(simplified), error };
}
