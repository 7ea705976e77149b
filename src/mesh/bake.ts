/**
 * Baking vertex colours into a texture, for engines and tools that want a textured material (and for
 * `texture_size`). The atlas is one cell per triangle, in a square grid: no unwrapping, no packing search, and
 * every triangle gets the same number of texels, which is what vertex colours need (their detail is spread
 * evenly over the triangles, not over the surface). A vertex colour varies linearly across its triangle, so
 * each cell is filled with that linear function at every texel centre (past the triangle too): bilinear
 * filtering inside the triangle then reads only its own cell and gives back the vertex colours exactly (up to
 * 8-bit rounding), even with 2 x 2 texels. The triangle's corners sit half a texel inside its cell, so no
 * sample reaches a neighbour. The cost: every corner becomes its own vertex (uvs differ per cell), so smooth
 * normals are computed before the split and kept as a column; and mipmaps far away mix unrelated cells.
 */
import { resizeImage } from '../image/codec.js';
import { createImage } from '../image/rgba.js';
import { triangleCount, vertexNormals, type TriangleMesh } from './mesh.js';

export const MIN_TEXTURE_SIZE = 256;
export const MAX_TEXTURE_SIZE = 4096;
/** Texels on a cell's side, at least: 2 x 2 already holds a linear colour exactly. */
const MIN_CELL = 2;
/** The colour of texels no triangle uses (mid grey, so mipmaps that reach them do not darken). */
const BACKGROUND = 128;

/** The most triangles a texture of this side holds, one cell of at least 2 x 2 texels each. */
export function maxBakedTriangles(textureSize: number): number {
  return Math.floor(textureSize / MIN_CELL) ** 2;
}

/** Why a texture of this side cannot be asked for, for a mesh of up to `triangles` triangles, or null. */
export function textureSizeViolation(textureSize: unknown, triangles?: number): string | null {
  if (!(Number.isInteger(textureSize) && (textureSize as number) >= MIN_TEXTURE_SIZE && (textureSize as number) <= MAX_TEXTURE_SIZE)) {
    return `texture_size must be a whole number of pixels from ${MIN_TEXTURE_SIZE} to ${MAX_TEXTURE_SIZE}`;
  }
  const most = maxBakedTriangles(textureSize as number);
  if (triangles !== undefined && triangles > most) {
    return `texture_size ${textureSize} holds the colours of at most ${most} triangles (2 x 2 texels each), and the mesh may have ${triangles}: ask for fewer faces or a larger texture`;
  }
  return null;
}

/**
 * A mesh with vertex colours as the same mesh with uvs and a `textureSize` square texture (one cell per
 * triangle, in triangle order), three vertices per triangle and the smooth normals of the original. Throws a
 * RangeError when the mesh has no colours or more triangles than the texture holds.
 */
export function bakeVertexColours(mesh: TriangleMesh, textureSize: number): TriangleMesh {
  const violation = textureSizeViolation(textureSize, triangleCount(mesh));
  if (violation) throw new RangeError(violation);
  const colours = mesh.colours;
  if (!colours) throw new RangeError('the mesh has no vertex colours to bake');
  const triangles = triangleCount(mesh);
  const grid = Math.max(1, Math.ceil(Math.sqrt(triangles)));
  const cell = Math.floor(textureSize / grid);
  const texture = createImage(textureSize, textureSize);
  texture.data.fill(BACKGROUND);
  for (let i = 3; i < texture.data.length; i += 4) texture.data[i] = 255;

  const smooth = mesh.normals ?? vertexNormals(mesh);
  const positions = new Float32Array(triangles * 9);
  const normals = new Float32Array(triangles * 9);
  const uvs = new Float32Array(triangles * 6);
  const indices = new Uint32Array(triangles * 3);
  const span = cell - 1; // texel centres from the first corner to the others
  const corner = [
    [0, 0],
    [span, 0],
    [0, span],
  ];
  const { data } = texture;
  for (let t = 0; t < triangles; t++) {
    const x0 = (t % grid) * cell,
      y0 = Math.floor(t / grid) * cell;
    for (let k = 0; k < 3; k++) {
      const v = mesh.indices[t * 3 + k];
      const o = t * 3 + k;
      indices[o] = o;
      positions.set(mesh.positions.subarray(v * 3, v * 3 + 3), o * 3);
      normals.set(smooth.subarray(v * 3, v * 3 + 3), o * 3);
      uvs[o * 2] = (x0 + 0.5 + corner[k][0]) / textureSize;
      uvs[o * 2 + 1] = (y0 + 0.5 + corner[k][1]) / textureSize;
    }
    const a = mesh.indices[t * 3] * 3,
      b = mesh.indices[t * 3 + 1] * 3,
      c = mesh.indices[t * 3 + 2] * 3;
    for (let y = 0; y < cell; y++) {
      for (let x = 0; x < cell; x++) {
        // The colour at this texel centre: cA + s (cB - cA) + r (cC - cA), in the triangle's own coordinates.
        const s = x / span,
          r = y / span;
        const p = ((y0 + y) * textureSize + x0 + x) * 4;
        for (let ch = 0; ch < 3; ch++) {
          const value = colours[a + ch] + s * (colours[b + ch] - colours[a + ch]) + r * (colours[c + ch] - colours[a + ch]);
          data[p + ch] = Math.round(Math.min(1, Math.max(0, value)) * 255);
        }
      }
    }
  }
  return { positions, indices, uvs, texture, normals };
}

/** A textured mesh's texture scaled to `textureSize` on its longer side (its uvs are unchanged). */
export async function resizeTexture(mesh: TriangleMesh, textureSize: number): Promise<TriangleMesh> {
  if (!mesh.texture) return mesh;
  const { width, height } = mesh.texture;
  const scale = textureSize / Math.max(width, height);
  if (scale === 1) return mesh;
  const texture = await resizeImage(mesh.texture, Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale)));
  return { ...mesh, texture };
}
