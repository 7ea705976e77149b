/**
 * The preview's inflated surface is one closed body: its mesh is watertight and wound outward, and the splats made
 * from it leave no see-through slit where the front and back meet (seen from the side).
 */
import { describe, expect, it } from 'vitest';
import { createImage, type RgbaImage } from '../src/image/rgba.js';
import { meshBounds, type TriangleMesh } from '../src/mesh/mesh.js';
import { InflateImageTo3d, inflateSilhouette, type InflateOptions } from '../src/pipelines/image-to-3d/inflate.js';
import { BACK_SHADE, inflateSurface } from '../src/pipelines/image-to-3d/surface.js';
import {
  MeshRasterizer,
  orbitCamera,
  prepareCloud,
  prepareMesh,
  Rasterizer,
  VALIDATOR_EXTENT,
  VALIDATOR_FOV,
  VALIDATOR_RADIUS,
} from '../src/render/index.js';
import { bounds, dcToColour, type GaussianCloud } from '../src/splat/cloud.js';
import { checkGates } from '../src/splat/gates.js';
import { jobContext, testConfig } from './helpers/fake-stages.js';

const COLOUR: [number, number, number] = [230, 180, 60];

/** An image of `size` pixels, opaque where `shape(x, y)` holds (pixel centres), transparent elsewhere. */
function silhouette(size: number, shape: (x: number, y: number) => boolean, colour = COLOUR): RgbaImage {
  const image = createImage(size, size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (shape(x + 0.5, y + 0.5)) image.data.set([...colour, 255], (y * size + x) * 4);
    }
  }
  return image;
}

const disc = (size: number, radius: number) => silhouette(size, (x, y) => (x - size / 2) ** 2 + (y - size / 2) ** 2 < radius * radius);
const annulus = (size: number, outer: number, inner: number) =>
  silhouette(size, (x, y) => {
    const r2 = (x - size / 2) ** 2 + (y - size / 2) ** 2;
    return r2 < outer * outer && r2 >= inner * inner;
  });
const rectangle = (size: number, w: number, h: number) =>
  silhouette(size, (x, y) => Math.abs(x - size / 2) < w / 2 && Math.abs(y - size / 2) < h / 2);
/** A non-convex letter C with a thin stroke. */
const thinC = (size: number) =>
  silhouette(size, (x, y) => {
    const r = Math.hypot(x - size / 2, y - size / 2);
    return r > 40 && r < 44 && x < size / 2 + 25;
  });

/** A disc with pseudo-random one-pixel holes: the outline crosses grid cells diagonally everywhere. */
function speckled(size: number, radius: number): RgbaImage {
  let state = 7;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32;
  };
  const holes = new Set<number>();
  for (let i = 0; i < size * size; i++) if (random() < 0.15) holes.add(i);
  return silhouette(
    size,
    (x, y) => (x - size / 2) ** 2 + (y - size / 2) ** 2 < radius * radius && !holes.has(Math.floor(y) * size + Math.floor(x)),
  );
}

const surfaceOptions = { depthRatio: 0.6, alphaThreshold: 0.5 };
const options: InflateOptions = { maxGaussians: 240_000, depthRatio: 0.6, opacity: 0.95, alphaThreshold: 0.5 };

interface Topology {
  /** Undirected edges not used by exactly two triangles. */
  openEdges: number;
  /** Directed edges used more than once (inconsistent winding). */
  repeatedDirected: number;
  degenerate: number;
  duplicates: number;
  volume: number;
  area: number;
}

function topology(mesh: TriangleMesh): Topology {
  const { positions: p, indices } = mesh;
  const vertices = p.length / 3;
  const undirected = new Map<number, number>();
  const directed = new Map<number, number>();
  const faces = new Set<string>();
  let degenerate = 0,
    duplicates = 0,
    volume = 0,
    area = 0;
  for (let t = 0; t < indices.length; t += 3) {
    const tri = [indices[t], indices[t + 1], indices[t + 2]];
    for (let e = 0; e < 3; e++) {
      const a = tri[e],
        b = tri[(e + 1) % 3];
      directed.set(a * vertices + b, (directed.get(a * vertices + b) ?? 0) + 1);
      const key = Math.min(a, b) * vertices + Math.max(a, b);
      undirected.set(key, (undirected.get(key) ?? 0) + 1);
    }
    const key = [...tri].sort((x, y) => x - y).join(',');
    if (faces.has(key)) duplicates++;
    faces.add(key);
    const [a, b, c] = tri.map((i) => [p[i * 3], p[i * 3 + 1], p[i * 3 + 2]]);
    const u = [b[0] - a[0], b[1] - a[1], b[2] - a[2]],
      v = [c[0] - a[0], c[1] - a[1], c[2] - a[2]];
    const n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
    const twice = Math.hypot(n[0], n[1], n[2]);
    if (twice <= 1e-14 || tri[0] === tri[1] || tri[1] === tri[2] || tri[0] === tri[2]) degenerate++;
    area += twice / 2;
    volume += (a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0])) / 6;
  }
  let openEdges = 0,
    repeatedDirected = 0;
  for (const count of undirected.values()) if (count !== 2) openEdges++;
  for (const count of directed.values()) if (count !== 1) repeatedDirected++;
  return { openEdges, repeatedDirected, degenerate, duplicates, volume, area };
}

describe('the inflated surface', () => {
  const shapes: [string, RgbaImage, number][] = [
    ['a disc', disc(256, 100), 20_000],
    ['an annulus (a hole, non-convex)', annulus(256, 100, 45), 20_000],
    ['a thin C', thinC(128), 20_000],
    ['a small square, sampled below a pixel', rectangle(128, 10, 10), 8_000],
    ['a disc full of one-pixel holes (saddles everywhere)', speckled(96, 40), 30_000],
  ];
  for (const [name, image, triangles] of shapes) {
    it(`is closed and wound outward for ${name}`, () => {
      const mesh = inflateSurface(image, { ...surfaceOptions, triangles });
      const count = mesh.indices.length / 3;
      expect(count).toBeGreaterThan(triangles * 0.5);
      expect(count).toBeLessThan(triangles * 1.6);
      const t = topology(mesh);
      expect(t.openEdges).toBe(0);
      expect(t.repeatedDirected).toBe(0);
      expect(t.degenerate).toBe(0);
      expect(t.duplicates).toBe(0);
      expect(t.volume).toBeGreaterThan(0);
      expect(mesh.colours!.length).toBe(mesh.positions.length);
    });
  }

  it('stays closed at any grid spacing, finer or coarser than the pixels', () => {
    const image = speckled(96, 40);
    for (const spacing of [0.45, 0.8, 1, 1.37, 2.9]) {
      const t = topology(inflateSurface(image, { ...surfaceOptions, spacing }));
      expect(t).toMatchObject({ openEdges: 0, repeatedDirected: 0, degenerate: 0, duplicates: 0 });
      expect(t.volume).toBeGreaterThan(0);
    }
  });

  it("inflates a disc into a sphere-like body of the profile's thickness", () => {
    const mesh = inflateSurface(disc(256, 100), { depthRatio: 1, alphaThreshold: 0.5, triangles: 40_000 });
    const { min, max } = meshBounds(mesh);
    const unit = 1 / 256;
    // Radius 100 px: about 200 px wide and tall, and 200 px deep at depth ratio 1.
    for (let a = 0; a < 3; a++) {
      expect((max[a] - min[a]) / unit).toBeGreaterThan(194);
      expect((max[a] - min[a]) / unit).toBeLessThan(204);
      expect(Math.abs(max[a] + min[a]) / unit).toBeLessThan(1.5); // centred
    }
    // Its volume is a sphere's, 4/3 pi r^3.
    const r = 100 * unit;
    expect(topology(mesh).volume / ((4 / 3) * Math.PI * r ** 3)).toBeCloseTo(1, 1);
  });

  it('takes its colours from the image: the front as drawn, the back a little darker', () => {
    const image = silhouette(128, (x, y) => (x - 64) ** 2 + (y - 64) ** 2 < 50 * 50, [0, 0, 0]);
    // Left half red, right half blue.
    for (let i = 0; i < 128 * 128; i++) if (image.data[i * 4 + 3]) image.data.set(i % 128 < 64 ? [200, 20, 20] : [20, 20, 200], i * 4);
    const mesh = inflateSurface(image, { ...surfaceOptions, triangles: 10_000 });
    const { positions: p, colours } = mesh;
    let checked = 0;
    for (let i = 0; i < p.length / 3; i++) {
      const x = p[i * 3],
        z = p[i * 3 + 2];
      if (Math.abs(x) < 0.02) continue;
      const [r, , b] = [colours![i * 3], colours![i * 3 + 1], colours![i * 3 + 2]];
      const expected = x < 0 ? [200, 20] : [20, 200];
      const shade = z < 0 ? BACK_SHADE : 0;
      expect(r).toBeCloseTo(expected[0] / 255 - shade, 5);
      expect(b).toBeCloseTo(expected[1] / 255 - shade, 5);
      checked++;
    }
    expect(checked).toBeGreaterThan(1000);
  });

  it('is empty for an empty silhouette', () => {
    const mesh = inflateSurface(createImage(32, 32), { ...surfaceOptions, triangles: 1000 });
    expect(mesh.indices.length).toBe(0);
    expect(inflateSilhouette(createImage(32, 32), options).count).toBe(0);
  });
});

describe('the preview splats', () => {
  it('lie on the same surface as the mesh: the bounds agree', async () => {
    const backend = new InflateImageTo3d({ depthRatio: 0.6, opacity: 0.95, alphaThreshold: 0.5 });
    const ctx = jobContext({ config: testConfig({ image_to_3d: { inflate: { max_gaussians: 60_000, mesh_faces: 20_000 } } }) });
    const { cloud, mesh } = await backend.generateWithMesh(annulus(256, 100, 40), 1, ctx);
    expect(mesh.indices.length / 3).toBeGreaterThan(14_000);
    expect(mesh.indices.length / 3).toBeLessThan(28_000);
    expect(cloud.count).toBeLessThanOrEqual(60_000);
    const a = bounds(cloud),
      b = meshBounds(mesh);
    const extent = Math.max(...[0, 1, 2].map((i) => b.max[i] - b.min[i]));
    for (let i = 0; i < 3; i++) {
      expect(Math.abs(a.min[i] - b.min[i])).toBeLessThan(0.02 * extent);
      expect(Math.abs(a.max[i] - b.max[i])).toBeLessThan(0.02 * extent);
    }
  });

  it("still make a mesh of a silhouette thinner than the mesh grid's step: a finer grid until it has triangles", async () => {
    // A 2-pixel line 2000 pixels long: at 1000 triangles the step is about 4 pixels, and no cell lies inside it.
    const line = silhouette(2048, (x, y) => y > 1024 && y < 1026 && x > 24 && x < 2024);
    expect(inflateSurface(line, { ...surfaceOptions, triangles: 1000 }).indices.length).toBe(0);
    const backend = new InflateImageTo3d({ depthRatio: 0.6, opacity: 0.95, alphaThreshold: 0.5 });
    const ctx = jobContext({ config: testConfig({ image_to_3d: { inflate: { max_gaussians: 20_000, mesh_faces: 1000 } } }) });
    const { cloud, mesh } = await backend.generateWithMesh(line, 1, ctx);
    expect(cloud.count).toBeGreaterThan(0);
    expect(mesh.indices.length / 3).toBeGreaterThan(100);
  });

  it("stay within max_gaussians and at or above the validator's 7000, passing the gates", () => {
    for (const [image, maxGaussians] of [
      [disc(518, 200), 240_000],
      [disc(518, 200), 7000],
      [rectangle(518, 20, 20), 240_000],
      [rectangle(518, 6, 6), 7000],
      [thinC(128), 9000],
    ] as const) {
      const cloud = inflateSilhouette(image, { ...options, maxGaussians });
      expect(cloud.count).toBeLessThanOrEqual(maxGaussians);
      expect(cloud.count).toBeGreaterThanOrEqual(Math.min(7000, maxGaussians));
      expect(cloud.count).toBeGreaterThan(0.8 * Math.min(maxGaussians, 60_000));
      expect(checkGates(cloud).every((g) => g.passed)).toBe(true);
    }
  });

  it("take the image's colour and opacity", () => {
    const cloud = inflateSilhouette(disc(256, 100), { ...options, maxGaussians: 20_000 });
    const { f_dc_0, f_dc_1, f_dc_2, z } = cloud.columns;
    for (let i = 0; i < cloud.count; i += 97) {
      const shade = z[i] < 0 ? BACK_SHADE : 0;
      expect(dcToColour(f_dc_0[i])).toBeGreaterThan(COLOUR[0] / 255 - shade - 0.02);
      expect(dcToColour(f_dc_0[i])).toBeLessThan(COLOUR[0] / 255 + 0.02);
      expect(dcToColour(f_dc_1[i])).toBeGreaterThan(COLOUR[1] / 255 - shade - 0.02);
      expect(dcToColour(f_dc_2[i])).toBeLessThan(COLOUR[2] / 255 + 0.02);
    }
  });

  /**
   * Background pixels between the leftmost and rightmost object pixels of each row of a side view (on black),
   * of the splats or of the mesh, with the splat renderer or the mesh rasteriser.
   */
  function slitPixels(subject: { cloud: GaussianCloud } | { mesh: TriangleMesh }, azimuth: number): { object: number; holes: number } {
    const size = 192;
    const camera = orbitCamera({ azimuth, elevation: 0, radius: VALIDATOR_RADIUS }, { width: size, height: size, fov: VALIDATOR_FOV });
    const options = { background: [0, 0, 0] as [number, number, number], channels: 3 as const };
    const pixels =
      'cloud' in subject
        ? new Rasterizer().render(prepareCloud(subject.cloud, { extent: VALIDATOR_EXTENT }), camera, options)
        : new MeshRasterizer().render(prepareMesh(subject.mesh, { extent: VALIDATOR_EXTENT }), camera, options);
    let object = 0,
      holes = 0;
    for (let y = 0; y < size; y++) {
      const isObject = (x: number) => pixels[(y * size + x) * 3] > 60;
      let left = -1,
        right = -1;
      for (let x = 0; x < size; x++)
        if (isObject(x)) {
          if (left < 0) left = x;
          right = x;
        }
      if (left < 0) continue;
      for (let x = left; x <= right; x++) {
        if (isObject(x)) object++;
        else holes++;
      }
    }
    return { object, holes };
  }

  for (const [name, image] of [
    ['a disc', disc(256, 100)],
    ['a rectangle', rectangle(256, 180, 120)],
  ] as const) {
    it(`show no slit between front and back seen from the side: ${name}`, () => {
      const cloud = inflateSilhouette(image, { ...options, maxGaussians: 60_000 });
      for (const azimuth of [90, 270]) {
        const { object, holes } = slitPixels({ cloud }, azimuth);
        expect(object).toBeGreaterThan(1500);
        expect(holes).toBeLessThanOrEqual(object * 0.002);
      }
    });

    it(`the preview mesh shows no slit from the side either: ${name}`, () => {
      const mesh = inflateSurface(image, { triangles: 30_000, depthRatio: options.depthRatio, alphaThreshold: options.alphaThreshold });
      for (const azimuth of [90, 270]) {
        const { object, holes } = slitPixels({ mesh }, azimuth);
        expect(object).toBeGreaterThan(1500);
        expect(holes).toBeLessThanOrEqual(object * 0.002);
      }
    });
  }
});
