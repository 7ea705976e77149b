import { afterAll, describe, expect, it } from 'vitest';
import { poolViewRenderer } from '../src/compose.js';
import type { TriangleMesh } from '../src/mesh/mesh.js';
import {
  AMBIENT,
  MeshRasterizer,
  orbitCamera,
  prepareCloud,
  prepareMesh,
  Rasterizer,
  RenderPool,
  renderValidatorViews,
  renderViews,
  turntableMp4,
  VALIDATOR_EXTENT,
  validatorCameras,
  WHITE,
  type Camera,
} from '../src/render/index.js';
import { DEFAULT_GREY } from '../src/render/triangles.js';
import { blobCloud } from './helpers/clouds.js';
import { flatTriangles, sphereMesh } from './helpers/meshes.js';

type V3 = [number, number, number];

const pool = new RenderPool(2);
afterAll(() => pool.close());

/** Camera on +Z looking at the origin: image x is world +X, image y is world -Y. */
const front = (size = 64, radius = 2, fov = 40): Camera =>
  orbitCamera({ azimuth: 0, elevation: 0, radius }, { width: size, height: size, fov });

const raw = (mesh: TriangleMesh) => prepareMesh(mesh, { extent: null });

function render(mesh: TriangleMesh, camera: Camera, options: { background?: V3; ambient?: number } = {}): Uint8Array {
  return new MeshRasterizer().render(raw(mesh), camera, {
    background: options.background ?? [1, 1, 1],
    channels: 3,
    ambient: options.ambient,
  });
}

const pixel = (px: Uint8Array, camera: Camera, x: number, y: number): V3 => {
  const o = (y * camera.width + x) * 3;
  return [px[o], px[o + 1], px[o + 2]];
};

/** The pixel whose centre is nearest the projection of a world point. */
function project(camera: Camera, p: V3): [number, number] {
  const v = camera.view;
  const X = v[0] * p[0] + v[1] * p[1] + v[2] * p[2] + v[9];
  const Y = v[3] * p[0] + v[4] * p[1] + v[5] * p[2] + v[10];
  const Z = v[6] * p[0] + v[7] * p[1] + v[8] * p[2] + v[11];
  return [Math.floor((camera.fx * X) / Z + camera.cx), Math.floor((camera.fy * Y) / Z + camera.cy)];
}

const square = (z: number, half: number, colour: V3, cx = 0, cy = 0) => [
  {
    corners: [
      [cx - half, cy - half, z],
      [cx + half, cy - half, z],
      [cx + half, cy + half, z],
    ] as V3[],
    colour,
  },
  {
    corners: [
      [cx - half, cy - half, z],
      [cx + half, cy + half, z],
      [cx - half, cy + half, z],
    ] as V3[],
    colour,
  },
];

describe('mesh rasteriser', () => {
  it('draws the nearer triangle over the farther one whatever the draw order', () => {
    const camera = front();
    const near = square(0.3, 0.3, [1, 0, 0]);
    const far = square(-0.3, 0.6, [0, 0, 1]);
    for (const triangles of [
      [...near, ...far],
      [...far, ...near],
    ]) {
      const px = render(flatTriangles(triangles), camera);
      const [cx, cy] = project(camera, [0, 0, 0.3]);
      const centre = pixel(px, camera, cx, cy);
      expect(centre[0]).toBeGreaterThan(250);
      expect(centre[2]).toBe(0);
      // Beside the red square, the larger blue one shows.
      const [bx, by] = project(camera, [0.5, 0, -0.3]);
      expect(pixel(px, camera, bx, by)).toEqual([0, 0, expect.any(Number)]);
      expect(pixel(px, camera, bx, by)[2]).toBeGreaterThan(250);
    }
  });

  it('interpolates vertex colours: a red/green/blue triangle is an even mix at its centroid', () => {
    const camera = front(128);
    const a: V3 = [-0.5, -0.4, 0],
      b: V3 = [0.5, -0.4, 0],
      c: V3 = [0, 0.6, 0];
    const mesh: TriangleMesh = {
      positions: new Float32Array([...a, ...b, ...c]),
      indices: new Uint32Array([0, 1, 2]),
      colours: new Float32Array([1, 0, 0, 0, 1, 0, 0, 0, 1]),
    };
    const px = render(mesh, camera);
    const [x, y] = project(camera, [0, (a[1] + b[1] + c[1]) / 3, 0]);
    for (const v of pixel(px, camera, x, y)) expect(Math.abs(v - 85)).toBeLessThanOrEqual(4);
    // Near a corner, that corner's colour dominates.
    const [rx, ry] = project(camera, [-0.4, -0.35, 0]);
    const nearRed = pixel(px, camera, rx, ry);
    expect(nearRed[0]).toBeGreaterThan(180);
    expect(nearRed[1] + nearRed[2]).toBeLessThan(80);
  });

  it('interpolates perspective-correctly on a plane seen at a slant', () => {
    // A floor quad from z = 1 (near the camera) to z = -3, coloured by depth: red at the near edge, blue at the far one.
    const camera = orbitCamera({ azimuth: 0, elevation: -30, radius: 2 }, { width: 128, height: 128, fov: 60 });
    const mesh: TriangleMesh = {
      positions: new Float32Array([-1, 0, 1, 1, 0, 1, 1, 0, -3, -1, 0, -3]),
      indices: new Uint32Array([0, 1, 2, 0, 2, 3]),
      colours: new Float32Array([1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1]),
    };
    const px = render(mesh, camera, { ambient: 1 });
    // World point at depth z on the floor: red = (z + 3) / 4, linear in world space (not on screen).
    for (const z of [0.5, -0.5, -1.5, -2.5]) {
      const [x, y] = project(camera, [0, 0, z]);
      const expected = (z + 3) / 4;
      const [r, , b] = pixel(px, camera, x, y);
      // A pixel spans a little depth; allow for that.
      expect(Math.abs(r - 255 * expected)).toBeLessThan(8);
      expect(Math.abs(b - 255 * (1 - expected))).toBeLessThan(8);
    }
  });

  it('samples textures bilinearly with (0, 0) at the top-left', () => {
    const red = [255, 0, 0, 255],
      green = [0, 255, 0, 255],
      blue = [0, 0, 255, 255],
      yellow = [255, 255, 0, 255];
    const texture = { width: 2, height: 2, data: new Uint8ClampedArray([...red, ...green, ...blue, ...yellow]) };
    // A quad facing the camera; its top-left corner (world -X, +Y) has uv (0, 0).
    const mesh: TriangleMesh = {
      positions: new Float32Array([-0.5, 0.5, 0, 0.5, 0.5, 0, 0.5, -0.5, 0, -0.5, -0.5, 0]),
      indices: new Uint32Array([0, 3, 2, 0, 2, 1]),
      uvs: new Float32Array([0, 0, 1, 0, 1, 1, 0, 1]),
      texture,
    };
    const camera = front(128);
    const px = render(mesh, camera);
    const at = (x: number, y: number) => {
      const [i, j] = project(camera, [x, y, 0]);
      return pixel(px, camera, i, j);
    };
    const close = (got: V3, want: number[]) => got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(12));
    close(at(-0.25, 0.25), red);
    close(at(0.25, 0.25), green);
    close(at(-0.25, -0.25), blue);
    close(at(0.25, -0.25), yellow);
    // Between two texels the filter mixes them: halfway from red to green on the top row.
    const mid = at(0, 0.25);
    expect(mid[0]).toBeGreaterThan(90);
    expect(mid[0]).toBeLessThan(165);
    expect(mid[1]).toBeGreaterThan(90);
    expect(mid[1]).toBeLessThan(165);
  });

  it('lights faces turned away from the camera less, never black, back faces like front faces', () => {
    const camera = front(128, 3);
    const turned = (angle: number, cx: number, flip: boolean) => {
      const c = Math.cos(angle),
        s = Math.sin(angle),
        h = 0.3;
      const corners = (
        [
          [-h, -h],
          [h, -h],
          [h, h],
          [-h, h],
        ] as const
      ).map(([x, y]): V3 => [cx + x * c, y, -x * s]);
      const tri = (i: number, j: number, k: number) => ({
        corners: flip ? [corners[i], corners[k], corners[j]] : [corners[i], corners[j], corners[k]],
        colour: [1, 1, 1] as V3,
      });
      return [tri(0, 1, 2), tri(0, 2, 3)];
    };
    const mesh = flatTriangles([...turned(0, -0.8, false), ...turned(Math.PI / 3, 0, false), ...turned((80 * Math.PI) / 180, 0.8, true)]);
    // Vertex colours are white; with DEFAULT_GREY taken out, brightness is the light.
    const px = render(mesh, camera);
    const facing = pixel(px, camera, ...project(camera, [-0.8, 0, 0]))[0];
    const sixty = pixel(px, camera, ...project(camera, [0, 0, 0]))[0];
    const eighty = pixel(px, camera, ...project(camera, [0.8, 0, 0]))[0];
    expect(facing).toBeGreaterThan(250);
    expect(Math.abs(sixty - 255 * (AMBIENT + (1 - AMBIENT) * 0.5))).toBeLessThan(6);
    expect(sixty).toBeLessThan(facing - 50);
    expect(eighty).toBeLessThan(sixty);
    expect(eighty).toBeGreaterThanOrEqual(Math.floor(255 * AMBIENT) - 1);
    // The same faces with the other winding are lit alike.
    const flipped = flatTriangles([...turned(0, -0.8, true), ...turned(Math.PI / 3, 0, true), ...turned((80 * Math.PI) / 180, 0.8, false)]);
    expect(Buffer.from(render(flipped, camera)).equals(Buffer.from(px))).toBe(true);
    // Without colours, the mesh is the default grey.
    const grey = render({ positions: mesh.positions, indices: mesh.indices }, camera);
    expect(Math.abs(pixel(grey, camera, ...project(camera, [-0.8, 0, 0]))[0] - 255 * DEFAULT_GREY)).toBeLessThanOrEqual(1);
  });

  it('clips triangles crossing the near plane and skips those behind the camera (no crash, no smear)', () => {
    const camera = front(64, 2, 40);
    // A floor 0.5 below the camera, from 12 units in front of it to 8 behind it, and a large triangle wholly
    // behind the camera, which must draw nothing.
    const floorAndBehind: Parameters<typeof flatTriangles>[0] = [
      {
        corners: [
          [-20, -0.5, 10],
          [20, -0.5, 10],
          [20, -0.5, -10],
        ],
        colour: [0, 1, 0],
      },
      {
        corners: [
          [-20, -0.5, 10],
          [20, -0.5, -10],
          [-20, -0.5, -10],
        ],
        colour: [0, 1, 0],
      },
      {
        corners: [
          [-5, -5, 4],
          [5, -5, 4],
          [0, 5, 4],
        ],
        colour: [1, 0, 0],
      },
    ];
    const floor = flatTriangles([
      ...floorAndBehind,
      // A vertex in the camera's own plane (z = 0 in camera space), and one not finite: no crash.
      {
        corners: [
          [0, 0.6, 2],
          [0.5, 0.3, 0],
          [-0.5, 0.3, 0],
        ],
        colour: [1, 0, 0],
      },
      {
        corners: [
          [Number.NaN, 0, 0],
          [1, 0, 0],
          [0, 1, 0],
        ],
        colour: [1, 0, 0],
      },
    ]);
    const px = render(floor, camera);
    const horizon = camera.cy; // the floor's far edge projects a few rows below the principal point
    let red = 0,
      aboveHorizon = 0,
      bottomGreen = 0;
    for (let y = 0; y < 64; y++) {
      for (let x = 0; x < 64; x++) {
        const [r, g, b] = pixel(px, camera, x, y);
        if (r > 80 && g < 40) red++;
        if (y < horizon && g < 255 && !(r > 80 && g < 40)) aboveHorizon++; // neither sky nor the red triangle
        if (y === 63 && r === 0 && b === 0 && g > 60) bottomGreen++; // the floor is edge-on to the key light: ambient only
      }
    }
    expect(red).toBeGreaterThan(20); // the part of the triangle in front of the camera shows...
    expect(aboveHorizon).toBe(0); // ...but the floor does not smear over the sky
    expect(bottomGreen).toBe(64); // the part of the floor in front of the camera is drawn up to the image's edge
    // Without the triangles that cross the camera plane: the sky is untouched.
    const only = render(flatTriangles(floorAndBehind), camera);
    for (let y = 0; y < horizon; y++) for (let x = 0; x < 64; x++) expect(pixel(only, camera, x, y)).toEqual([255, 255, 255]);
    for (let x = 0; x < 64; x++) expect(pixel(only, camera, x, 63)[1]).toBeGreaterThan(60);
  });

  it("frames meshes like clouds and never writes the caller's mesh", async () => {
    const mesh = sphereMesh(32, 16, 3, true);
    mesh.positions.forEach((_, i) => {
      if (i % 3 === 0) mesh.positions[i] += 10;
    });
    const before = mesh.positions.slice();
    const prepared = prepareMesh(mesh, { extent: 1.5 });
    let lo = Infinity,
      hi = -Infinity;
    for (let i = 0; i < prepared.positions.length; i += 3) {
      lo = Math.min(lo, prepared.positions[i]);
      hi = Math.max(hi, prepared.positions[i]);
    }
    expect(lo).toBeCloseTo(-0.75, 5);
    expect(hi).toBeCloseTo(0.75, 5);
    await renderValidatorViews(mesh, { count: 2, size: 32 }, pool);
    expect(Buffer.from(mesh.positions.buffer).equals(Buffer.from(before.buffer))).toBe(true);
  });
});

/** Points spread evenly over a sphere (a Fibonacci lattice). */
function fibonacciSphere(count: number, radius: number): V3[] {
  const golden = Math.PI * (3 - Math.sqrt(5));
  return Array.from({ length: count }, (_, i) => {
    const y = 1 - (2 * (i + 0.5)) / count,
      r = Math.sqrt(1 - y * y),
      phi = golden * i;
    return [radius * r * Math.cos(phi), radius * y, radius * r * Math.sin(phi)];
  });
}

function silhouette(image: { width: number; height: number; data: Uint8ClampedArray }): {
  mask: Uint8Array;
  cx: number;
  cy: number;
  area: number;
} {
  const mask = new Uint8Array(image.width * image.height);
  let sx = 0,
    sy = 0,
    area = 0;
  for (let i = 0; i < mask.length; i++) {
    const d = image.data;
    if (Math.min(d[4 * i], d[4 * i + 1], d[4 * i + 2]) < 240) {
      mask[i] = 1;
      area++;
      sx += i % image.width;
      sy += Math.floor(i / image.width);
    }
  }
  return { mask, cx: sx / area, cy: sy / area, area };
}

describe('mesh views beside splat views', () => {
  it("a sphere mesh and a dense splat sphere have the same silhouette from the validator's cameras", async () => {
    const size = 256;
    const mesh = sphereMesh(96, 48, 0.5);
    const cloud = blobCloud(fibonacciSphere(30_000, 0.5).map((at) => ({ at, sigma: 0.006, colour: [0.4, 0.4, 0.4] as V3, opacity: 0.95 })));
    const meshViews = await renderValidatorViews(mesh, { count: 16, size }, pool);
    const cameras = validatorCameras(16, size);
    const splatViews = await renderViews(cloud, cameras, { pool });
    expect(meshViews).toHaveLength(16);
    for (let v = 0; v < 16; v++) {
      const a = silhouette(meshViews[v]),
        b = silhouette(splatViews[v]);
      let inter = 0,
        union = 0;
      for (let i = 0; i < a.mask.length; i++) {
        inter += a.mask[i] & b.mask[i];
        union += a.mask[i] | b.mask[i];
      }
      expect(a.area).toBeGreaterThan(0.1 * size * size);
      expect(inter / union).toBeGreaterThan(0.9);
      expect(Math.abs(a.cx - b.cx)).toBeLessThan(1.5);
      expect(Math.abs(a.cy - b.cy)).toBeLessThan(1.5);
    }
    // A mesh framed differently (moved off centre and left unnormalised) would not line up: the check can fail.
    const shifted = sphereMesh(96, 48, 0.5);
    shifted.positions.forEach((_, i) => {
      if (i % 3 === 0) shifted.positions[i] += 0.3;
    });
    const off = await renderViews(shifted, cameras.slice(0, 1), { pool, extent: null });
    expect(Math.abs(silhouette(off[0]).cx - silhouette(splatViews[0]).cx)).toBeGreaterThan(10);
  });

  it('the pool renders the same pixels as one rasteriser in this thread, including views split into bands', async () => {
    const mesh = sphereMesh(64, 32, 0.7, true);
    const cameras = validatorCameras(3, 96); // 3 distinct views on 2 workers: the last is split into bands
    const prepared = prepareMesh(mesh, { extent: VALIDATOR_EXTENT });
    const direct = new MeshRasterizer();
    const views = await renderViews(mesh, cameras, { pool });
    cameras.forEach((camera, i) => {
      const want = direct.render(prepared, camera, { background: WHITE, channels: 4 });
      expect(Buffer.from(views[i].data.buffer, views[i].data.byteOffset, views[i].data.length).equals(Buffer.from(want))).toBe(true);
    });
    const band = direct.renderRows(prepared, cameras[0], { background: WHITE, channels: 3 }, 40, 70);
    const whole = direct.render(prepared, cameras[0], { background: WHITE, channels: 3 });
    expect(Buffer.from(band).equals(Buffer.from(whole.subarray(40 * 96 * 3, 70 * 96 * 3)))).toBe(true);

    // A textured mesh (its texture travels too), then a cloud, then the mesh again on the same workers.
    const textured: TriangleMesh = {
      positions: new Float32Array([-0.5, 0.5, 0, 0.5, 0.5, 0, 0.5, -0.5, 0, -0.5, -0.5, 0]),
      indices: new Uint32Array([0, 3, 2, 0, 2, 1]),
      uvs: new Float32Array([0, 0, 1, 0, 1, 1, 0, 1]),
      texture: { width: 2, height: 1, data: new Uint8ClampedArray([255, 0, 0, 255, 0, 0, 255, 255]) },
    };
    const cloud = blobCloud([{ at: [0, 0, 0], sigma: 0.2, colour: [1, 0, 0], opacity: 0.9 }]);
    const t1 = await renderViews(textured, cameras, { pool });
    const c1 = await renderViews(cloud, cameras, { pool });
    const t2 = await renderViews(textured, cameras, { pool });
    expect(t1.map((v) => Buffer.from(v.data).toString('base64'))).toEqual(t2.map((v) => Buffer.from(v.data).toString('base64')));
    const cloudDirect = new Rasterizer().render(prepareCloud(cloud), cameras[0], { background: WHITE, channels: 4 });
    expect(Buffer.from(c1[0].data).equals(Buffer.from(cloudDirect))).toBe(true);
    const texDirect = direct.render(prepareMesh(textured), cameras[0], { background: WHITE, channels: 4 });
    expect(Buffer.from(t1[0].data).equals(Buffer.from(texDirect))).toBe(true);
  });

  it("the service's view renderer renders { mesh } subjects with the mesh rasteriser", async () => {
    const mesh = sphereMesh(32, 16, 0.5, true);
    const views = await poolViewRenderer(pool)({ mesh }, { count: 3, size: 48 });
    const want = await renderValidatorViews(mesh, { count: 3, size: 48 }, pool);
    expect(views.map((v) => Buffer.from(v.data).toString('base64'))).toEqual(want.map((v) => Buffer.from(v.data).toString('base64')));
    const cloudViews = await poolViewRenderer(pool)(
      { cloud: blobCloud([{ at: [0, 0, 0], sigma: 0.3, colour: [1, 0, 0], opacity: 0.9 }]) },
      { count: 3, size: 48 },
    );
    expect(Buffer.from(cloudViews[0].data).equals(Buffer.from(views[0].data))).toBe(false);
  });

  it('encodes a mesh turntable', async () => {
    const settings = {
      fps: 8,
      seconds: 1,
      frames: 4,
      elevations: [-15],
      turns: 1,
      radius: 2.5,
      fov: 49.1,
      extent: 1.5,
      background: 'white',
      crf: 30,
      preset: 'ultrafast',
    };
    const mp4 = await turntableMp4(sphereMesh(32, 16, 0.5, true), { ...settings, size: 64, pool });
    expect(Buffer.from(mp4.subarray(4, 8)).toString('latin1')).toBe('ftyp');
  });
});
