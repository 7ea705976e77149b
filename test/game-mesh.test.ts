/** Mesh controls for game teams: faces (simplify), pivot and size on the vertices, baked textures, LOD chains. */
import { describe, expect, it } from 'vitest';
import { bakeVertexColours, maxBakedTriangles, textureSizeViolation } from '../src/mesh/bake.js';
import { gameMeshViolation, prepareGameMesh } from '../src/mesh/game.js';
import { lodChain, lodsViolation } from '../src/mesh/lod.js';
import { meshBounds, triangleCount, vertexCount, type TriangleMesh } from '../src/mesh/mesh.js';
import { placeMesh } from '../src/mesh/placement.js';
import { simplifyMesh } from '../src/mesh/simplify.js';
import { sphereMesh } from './helpers/meshes.js';

/**
 * A closed UV sphere with a UV seam: the column at u = 0 and u = 1 is two sets of vertices at the same
 * positions, with different uvs; colours from the position.
 */
function seamedSphere(segments: number, rings: number): TriangleMesh {
  const positions: number[] = [],
    uvs: number[] = [],
    colours: number[] = [];
  for (let r = 0; r <= rings; r++) {
    const theta = (Math.PI * r) / rings;
    const ring = r === 0 || r === rings ? 0 : Math.sin(theta); // each pole at exactly one position
    for (let s = 0; s <= segments; s++) {
      const phi = (2 * Math.PI * (s % segments)) / segments; // the seam's two columns at exactly one position
      const x = ring * Math.sin(phi),
        y = Math.cos(theta),
        z = ring * Math.cos(phi);
      positions.push(0.5 * x, 0.5 * y, 0.5 * z);
      uvs.push(s / segments, r / rings);
      colours.push(0.5 + 0.5 * x, 0.5 + 0.5 * y, 0.5 + 0.5 * z);
    }
  }
  const at = (r: number, s: number) => r * (segments + 1) + s;
  const indices: number[] = [];
  for (let r = 0; r < rings; r++) {
    for (let s = 0; s < segments; s++) {
      const a = at(r, s),
        b = at(r, s + 1),
        c = at(r + 1, s),
        d = at(r + 1, s + 1);
      if (r > 0) indices.push(a, c, b);
      if (r < rings - 1) indices.push(b, c, d);
    }
  }
  return {
    positions: new Float32Array(positions),
    indices: new Uint32Array(indices),
    uvs: new Float32Array(uvs),
    colours: new Float32Array(colours),
  };
}

const key = (p: Float32Array, v: number) => `${p[v * 3]},${p[v * 3 + 1]},${p[v * 3 + 2]}`;

/** Edges by position (seam duplicates welded), each with the number of triangles that use it. */
function weldedEdgeUses(mesh: TriangleMesh): Map<string, number> {
  const uses = new Map<string, number>();
  for (let t = 0; t < mesh.indices.length; t += 3) {
    for (let k = 0; k < 3; k++) {
      const a = key(mesh.positions, mesh.indices[t + k]),
        b = key(mesh.positions, mesh.indices[t + ((k + 1) % 3)]);
      const edge = a < b ? `${a}|${b}` : `${b}|${a}`;
      uses.set(edge, (uses.get(edge) ?? 0) + 1);
    }
  }
  return uses;
}

describe('simplifyMesh', () => {
  it('reaches the target triangle count and reports it; a mesh already below it comes back as it is', async () => {
    const sphere = sphereMesh(128, 64, 0.5, true);
    expect(triangleCount(sphere)).toBe(16128);
    const { mesh, triangles } = await simplifyMesh(sphere, 2000);
    expect(triangles).toBe(triangleCount(mesh));
    expect(triangles).toBeLessThanOrEqual(2000);
    expect(triangles).toBeGreaterThan(1800);
    // Only vertices the triangles use are left.
    expect(new Set(mesh.indices).size).toBe(vertexCount(mesh));
    const same = await simplifyMesh(sphere, 20000);
    expect(same.mesh).toBe(sphere);
    expect(same.triangles).toBe(16128);
  });

  it("keeps the UV seam: the surface stays closed across it, no triangle spans it, and uvs and colours are the input's", async () => {
    const sphere = seamedSphere(96, 48);
    expect([...weldedEdgeUses(sphere).values()].every((n) => n === 2)).toBe(true);
    const { mesh, triangles } = await simplifyMesh(sphere, 1500);
    expect(triangles).toBeLessThanOrEqual(1500);
    expect(triangles).toBeGreaterThan(1200);
    // Closed: every edge (by position) is shared by exactly two triangles, the seam's too.
    const uses = [...weldedEdgeUses(mesh).values()];
    expect(uses.every((n) => n === 2)).toBe(true);
    // A triangle crossing the seam would run from u near 0 to u near 1.
    let widest = 0;
    for (let t = 0; t < mesh.indices.length; t += 3) {
      const us = [0, 1, 2].map((k) => mesh.uvs![mesh.indices[t + k] * 2]);
      widest = Math.max(widest, Math.max(...us) - Math.min(...us));
    }
    expect(widest).toBeLessThan(0.25);
    // The seam is still there: some positions carry two uvs.
    const uvsAt = new Map<string, Set<number>>();
    for (let v = 0; v < vertexCount(mesh); v++) {
      const k = key(mesh.positions, v);
      if (!uvsAt.has(k)) uvsAt.set(k, new Set());
      uvsAt.get(k)!.add(mesh.uvs![v * 2]);
    }
    expect([...uvsAt.values()].filter((s) => s.size === 2).length).toBeGreaterThan(4);
    // Every vertex left is one of the input's, with its uv and colour.
    const input = new Map<string, string>();
    for (let v = 0; v < vertexCount(sphere); v++)
      input.set(`${key(sphere.positions, v)}/${sphere.uvs![v * 2]}`, `${sphere.colours!.slice(v * 3, v * 3 + 3)}`);
    for (let v = 0; v < vertexCount(mesh); v++) {
      expect(input.get(`${key(mesh.positions, v)}/${mesh.uvs![v * 2]}`)).toBe(`${mesh.colours!.slice(v * 3, v * 3 + 3)}`);
    }
  });
});

describe('placeMesh', () => {
  it('scales the vertices so the largest side is size_m, and puts the bottom centre on the origin for pivot bottom', () => {
    const mesh = sphereMesh(16, 8, 3);
    for (let i = 0; i < mesh.positions.length; i += 3) {
      mesh.positions[i] += 10;
      mesh.positions[i + 1] = mesh.positions[i + 1] * 0.5 - 4;
    }
    placeMesh(mesh, { sizeM: 2.5, pivot: 'bottom' });
    const { min, max } = meshBounds(mesh);
    expect(Math.max(...[0, 1, 2].map((a) => max[a] - min[a]))).toBeCloseTo(2.5, 5);
    expect(min[1]).toBeCloseTo(0, 6);
    expect((min[0] + max[0]) / 2).toBeCloseTo(0, 6);
    expect((min[2] + max[2]) / 2).toBeCloseTo(0, 6);
    placeMesh(mesh, { sizeM: 1, pivot: 'center' });
    const centred = meshBounds(mesh);
    for (let a = 0; a < 3; a++) expect((centred.min[a] + centred.max[a]) / 2).toBeCloseTo(0, 6);
    expect(centred.max[0]).toBeCloseTo(0.5, 6);
  });
});

describe('bakeVertexColours', () => {
  it('gives back each vertex colour through its uv, and the colour inside a triangle by bilinear filtering', () => {
    const sphere = sphereMesh(24, 12, 0.5, true);
    const baked = bakeVertexColours(sphere, 256);
    const t = baked.texture!;
    expect([t.width, t.height]).toEqual([256, 256]);
    expect(baked.colours).toBeUndefined();
    expect(triangleCount(baked)).toBe(triangleCount(sphere));
    const bilinear = (u: number, v: number, ch: number) => {
      const x = u * t.width - 0.5,
        y = v * t.height - 0.5;
      const x0 = Math.floor(x),
        y0 = Math.floor(y),
        fx = x - x0,
        fy = y - y0;
      const at = (xx: number, yy: number) => t.data[(yy * t.width + xx) * 4 + ch] / 255;
      return (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x0 + 1, y0)) + fy * ((1 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
    };
    let worst = 0;
    for (let tri = 0; tri < triangleCount(sphere); tri++) {
      const corners = [0, 1, 2].map((k) => sphere.indices[tri * 3 + k]);
      // The corners and the centroid: uv of the baked corners against the input's colours.
      const weights = [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1 / 3, 1 / 3, 1 / 3],
      ];
      for (const w of weights) {
        const u = w.reduce((s, wk, k) => s + wk * baked.uvs![(tri * 3 + k) * 2], 0);
        const v = w.reduce((s, wk, k) => s + wk * baked.uvs![(tri * 3 + k) * 2 + 1], 0);
        for (let ch = 0; ch < 3; ch++) {
          const expected = w.reduce((s, wk, k) => s + wk * sphere.colours![corners[k] * 3 + ch], 0);
          worst = Math.max(worst, Math.abs(bilinear(u, v, ch) - expected));
        }
      }
    }
    expect(worst).toBeLessThan(1.5 / 255);
    // Smooth normals: the corners of neighbouring triangles at one position share a normal.
    expect(baked.normals!.length).toBe(baked.positions.length);
  });

  it('refuses a texture too small for the triangles, saying what would fit', () => {
    expect(maxBakedTriangles(256)).toBe(16384);
    expect(textureSizeViolation(256, 20000)).toMatch(/^texture_size 256 holds the colours of at most 16384 triangles/);
    expect(textureSizeViolation(300.5)).toMatch(/whole number of pixels from 256 to 4096/);
    expect(textureSizeViolation(8192)).toMatch(/from 256 to 4096/);
    expect(textureSizeViolation(1024, 200000)).toBeNull();
  });
});

describe('LODs', () => {
  it('makes a chain of levels at the fractions asked for, each from the one above', async () => {
    const sphere = sphereMesh(96, 48, 0.5, true);
    const top = triangleCount(sphere);
    const levels = await lodChain(sphere, [1, 0.5, 0.25, 0.1]);
    expect(levels.map((l) => l.fraction)).toEqual([1, 0.5, 0.25, 0.1]);
    expect(levels[0].mesh).toBe(sphere);
    for (const level of levels.slice(1)) {
      expect(level.triangles).toBe(triangleCount(level.mesh));
      expect(level.triangles).toBeLessThanOrEqual(Math.round(top * level.fraction));
      expect(level.triangles).toBeGreaterThan(Math.round(top * level.fraction) * 0.85);
    }
  });

  it('refuses fractions that are no chain', () => {
    expect(lodsViolation([1, 0.5, 0.25, 0.1])).toBeNull();
    expect(lodsViolation([0.5, 0.25])).toMatch(/start with 1/);
    expect(lodsViolation([1, 0.5, 0.5])).toMatch(/strictly decreasing/);
    expect(lodsViolation([1, 0])).toMatch(/above 0/);
    expect(lodsViolation([1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])).toMatch(/at most 8/);
    expect(lodsViolation('1,0.5')).toMatch(/list of fractions/);
  });
});

describe('prepareGameMesh', () => {
  it('simplifies to faces, chains LODs, places each level at size_m and pivot, and bakes a texture per level', async () => {
    const sphere = sphereMesh(96, 48, 0.7, true);
    const game = await prepareGameMesh(sphere, { faces: 4000, lods: [1, 0.5], sizeM: 2, pivot: 'bottom', textureSize: 512 });
    expect(game.faces.asked).toBe(4000);
    expect(game.faces.reached).toBeLessThanOrEqual(4000);
    expect(game.levels.map((l) => l.fraction)).toEqual([1, 0.5]);
    expect(game.levels[0].triangles).toBe(game.faces.reached);
    for (const level of game.levels) {
      const { min, max } = meshBounds(level.mesh);
      expect(Math.max(max[0] - min[0], max[1] - min[1], max[2] - min[2])).toBeCloseTo(2, 5);
      expect(min[1]).toBeCloseTo(0, 6);
      expect(level.mesh.texture!.width).toBe(512);
      expect(level.mesh.uvs).toBeDefined();
    }
    // The job's own mesh is left as it was.
    expect(meshBounds(sphere).max[1]).toBeCloseTo(0.7, 6);
  });

  it('refuses impossible combinations with a sentence that says why', () => {
    const limits = { maxFaces: 100_000 };
    expect(gameMeshViolation({ faces: 400 }, limits)).toMatch(/faces must be a whole number from 500 to 100000/);
    expect(gameMeshViolation({ faces: 200_000 }, limits)).toMatch(/from 500 to 100000 \(this preset's most\)/);
    expect(gameMeshViolation({ faces: 50_000, textureSize: 256 }, limits)).toMatch(
      /texture_size 256 holds the colours of at most 16384 triangles/,
    );
    expect(gameMeshViolation({ faces: 10_000, textureSize: 256 }, limits)).toBeNull();
    expect(gameMeshViolation({ textureSize: 256 }, limits)).toMatch(/the mesh may have 100000/);
    expect(gameMeshViolation({ sizeM: 0 }, limits)).toMatch(/size_m must be a number of metres/);
    expect(gameMeshViolation({ pivot: 'top' as never }, limits)).toMatch(/pivot must be one of center, bottom/);
    expect(gameMeshViolation({ lods: [1, 2] }, limits)).toMatch(/at most 1/);
  });
});
