import type { TriangleMesh } from '../../src/mesh/mesh.js';

/**
 * A closed UV sphere: `segments` around (a multiple of 4 puts vertices on every axis), `rings` from pole to
 * pole, 2 * segments * (rings - 1) triangles, wound counter-clockwise seen from outside; colours from the
 * position when `coloured`.
 */
export function sphereMesh(segments: number, rings: number, radius = 0.5, coloured = false): TriangleMesh {
  const positions: number[] = [];
  const colours: number[] = [];
  for (let r = 0; r <= rings; r++) {
    const theta = (Math.PI * r) / rings;
    for (let s = 0; s < segments; s++) {
      const phi = (2 * Math.PI * s) / segments;
      const x = Math.sin(theta) * Math.sin(phi),
        y = Math.cos(theta),
        z = Math.sin(theta) * Math.cos(phi);
      positions.push(radius * x, radius * y, radius * z);
      colours.push(0.5 + 0.5 * x, 0.5 + 0.5 * y, 0.5 + 0.5 * z);
    }
  }
  const at = (r: number, s: number) => r * segments + (s % segments);
  const indices: number[] = [];
  for (let r = 0; r < rings; r++) {
    for (let s = 0; s < segments; s++) {
      // Seen from outside, going round with phi (toward +X from +Z) is to the right, and r grows downwards.
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
    ...(coloured && { colours: new Float32Array(colours) }),
  };
}

/** Triangles with one colour each, from flat lists of corners ([x, y, z] * 3 per triangle). */
export function flatTriangles(triangles: { corners: [number, number, number][]; colour: [number, number, number] }[]): TriangleMesh {
  const positions: number[] = [];
  const colours: number[] = [];
  for (const t of triangles) {
    for (const c of t.corners) {
      positions.push(...c);
      colours.push(...t.colour);
    }
  }
  return {
    positions: new Float32Array(positions),
    indices: Uint32Array.from({ length: positions.length / 3 }, (_, i) => i),
    colours: new Float32Array(colours),
  };
}
