/**
 * TriangleMesh: the mesh counterpart of GaussianCloud. Columns of typed arrays, one entry per vertex (or per
 * triangle for `indices`); never one object per vertex. Meshes travel in the canonical frame (the validator's:
 * +Y up, front toward +Z), triangles wound counter-clockwise seen from outside.
 */
import type { RgbaImage } from '../image/rgba.js';
import type { Matrix3 } from '../splat/frame.js';

export interface TriangleMesh {
  /** x, y, z per vertex. */
  readonly positions: Float32Array;
  /** Three vertex indices per triangle, counter-clockwise seen from outside. */
  readonly indices: Uint32Array;
  /** sRGB colour per vertex, r, g, b in [0, 1] (absent when a texture colours the mesh). */
  readonly colours?: Float32Array;
  /** u, v per vertex, glTF's convention: (0, 0) is the texture's top-left corner. */
  readonly uvs?: Float32Array;
  /** Base colour (sRGB), sampled through `uvs`. */
  readonly texture?: RgbaImage;
  /**
   * Unit normal per vertex, when the vertices alone would not give smooth ones (a baked atlas splits every
   * corner); absent, writers make area-weighted normals from the triangles.
   */
  readonly normals?: Float32Array;
}

export const vertexCount = (mesh: TriangleMesh): number => mesh.positions.length / 3;
export const triangleCount = (mesh: TriangleMesh): number => mesh.indices.length / 3;

export interface MeshBounds {
  min: [number, number, number];
  max: [number, number, number];
}

/** Bounds of the vertices the triangles use (an unused vertex does not count). */
export function meshBounds(mesh: TriangleMesh): MeshBounds {
  const min: [number, number, number] = [Infinity, Infinity, Infinity];
  const max: [number, number, number] = [-Infinity, -Infinity, -Infinity];
  const { positions: p, indices } = mesh;
  for (let t = 0; t < indices.length; t++) {
    const i = indices[t] * 3;
    for (let a = 0; a < 3; a++) {
      const v = p[i + a];
      if (v < min[a]) min[a] = v;
      if (v > max[a]) max[a] = v;
    }
  }
  return { min, max };
}

/** Rotates every vertex (and normal) in place by the row-major rotation `r`. */
export function rotateMesh(mesh: TriangleMesh, r: Matrix3): void {
  for (const p of mesh.normals ? [mesh.positions, mesh.normals] : [mesh.positions]) rotateColumn(p, r);
}

function rotateColumn(p: Float32Array, r: Matrix3): void {
  for (let i = 0; i < p.length; i += 3) {
    const x = p[i],
      y = p[i + 1],
      z = p[i + 2];
    p[i] = r[0] * x + r[1] * y + r[2] * z;
    p[i + 1] = r[3] * x + r[4] * y + r[5] * z;
    p[i + 2] = r[6] * x + r[7] * y + r[8] * z;
  }
}

/**
 * Centres the mesh's bounding box on the origin and scales it so its largest side is `extent` (1: it fits
 * [-0.5, 0.5] on every axis). In place; returns the scale applied. A box that is not finite on every axis (no
 * triangles, or non-finite vertices) leaves the mesh as it is.
 */
export function centreAndFit(mesh: TriangleMesh, extent: number): number {
  const { min, max } = meshBounds(mesh);
  if (![...min, ...max].every(Number.isFinite)) return 1;
  const centre = [0, 1, 2].map((a) => (min[a] + max[a]) / 2);
  const side = Math.max(max[0] - min[0], max[1] - min[1], max[2] - min[2]);
  const scale = side > 0 ? extent / side : 1;
  const p = mesh.positions;
  for (let i = 0; i < p.length; i += 3) {
    for (let a = 0; a < 3; a++) p[i + a] = (p[i + a] - centre[a]) * scale;
  }
  return scale;
}

/**
 * The mesh without the vertices no triangle uses (a simplifier's leftovers): the bounds a GLB declares, and the
 * competition's rules read, are then those of the surface. The mesh itself when every vertex is used.
 */
export function withoutUnusedVertices(mesh: TriangleMesh): TriangleMesh {
  const count = vertexCount(mesh);
  const remap = new Int32Array(count).fill(-1);
  let used = 0;
  for (let t = 0; t < mesh.indices.length; t++) if (remap[mesh.indices[t]] < 0) remap[mesh.indices[t]] = used++;
  if (used === count) return mesh;
  // Kept vertices in their original order.
  used = 0;
  for (let v = 0; v < count; v++) if (remap[v] >= 0) remap[v] = used++;
  const pick = (from: Float32Array, width: number) => {
    const to = new Float32Array(used * width);
    for (let v = 0; v < count; v++) if (remap[v] >= 0) to.set(from.subarray(v * width, v * width + width), remap[v] * width);
    return to;
  };
  const indices = new Uint32Array(mesh.indices.length);
  for (let t = 0; t < indices.length; t++) indices[t] = remap[mesh.indices[t]];
  return {
    positions: pick(mesh.positions, 3),
    indices,
    ...(mesh.colours && { colours: pick(mesh.colours, 3) }),
    ...(mesh.uvs && { uvs: pick(mesh.uvs, 2) }),
    ...(mesh.texture && { texture: mesh.texture }),
    ...(mesh.normals && { normals: pick(mesh.normals, 3) }),
  };
}

/** Area-weighted vertex normals (unit length; zero for a vertex no triangle uses). */
export function vertexNormals(mesh: TriangleMesh): Float32Array {
  const { positions: p, indices } = mesh;
  const normals = new Float32Array(p.length);
  for (let t = 0; t < indices.length; t += 3) {
    const a = indices[t] * 3,
      b = indices[t + 1] * 3,
      c = indices[t + 2] * 3;
    const ux = p[b] - p[a],
      uy = p[b + 1] - p[a + 1],
      uz = p[b + 2] - p[a + 2];
    const vx = p[c] - p[a],
      vy = p[c + 1] - p[a + 1],
      vz = p[c + 2] - p[a + 2];
    // The cross product's length is twice the area: summing it weights each face by its area.
    const nx = uy * vz - uz * vy,
      ny = uz * vx - ux * vz,
      nz = ux * vy - uy * vx;
    for (const i of [a, b, c]) {
      normals[i] += nx;
      normals[i + 1] += ny;
      normals[i + 2] += nz;
    }
  }
  for (let i = 0; i < normals.length; i += 3) {
    const l = Math.hypot(normals[i], normals[i + 1], normals[i + 2]);
    if (l > 0) {
      normals[i] /= l;
      normals[i + 1] /= l;
      normals[i + 2] /= l;
    }
  }
  return normals;
}
