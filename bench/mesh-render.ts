/**
 * Mesh rasteriser benchmarks (docs/rendering.md): one core's median time per 518^2 validator view of closed
 * vertex-coloured spheres of about 20k, 100k and 250k triangles, and the 16 validator views through the pool;
 * beside them, for scale, the splat renderer's time per view of a cloud of 100k Gaussians on the same sphere and
 * of robocop.ply (when the fixture is there). BENCH_RUNS overrides the number of runs; BENCH_THREADS the
 * pool's worker count (default: one per core).
 */
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  MeshRasterizer,
  prepareCloud,
  prepareMesh,
  Rasterizer,
  RenderPool,
  renderValidatorViews,
  VALIDATOR_EXTENT,
  validatorCameras,
  WHITE,
  type Camera,
  type PreparedCloud,
  type PreparedMesh,
} from '../src/render/index.js';
import { allocateCloud, colourToDc, logit } from '../src/splat/cloud.js';
import { decodePly } from '../src/splat/ply.js';
import { sphereMesh } from '../test/helpers/meshes.js';
import { median } from './stats.js';

export const summary = 'mesh rasteriser: time per 518^2 view for 20k-250k triangles, against the splat renderer';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const runs = Number(process.env.BENCH_RUNS ?? 5);
const threads = Number(process.env.BENCH_THREADS ?? 0);

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const list = (values: number[]) => values.map((v) => v.toFixed(1)).join(', ');

/** Median over `runs` (after one warm-up) of the mean time per view over the validator's 15 distinct cameras. */
function perView(render: (camera: Camera) => void): { median: number; runs: number[] } {
  const cameras = validatorCameras(16, 518).slice(0, 15); // the 16th repeats the first
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const start = performance.now();
    for (const camera of cameras) render(camera);
    if (i > 0) times.push((performance.now() - start) / cameras.length);
  }
  return { median: median(times), runs: times };
}

/** `count` Gaussians spread evenly over a sphere's surface (a Fibonacci lattice): the splat twin of sphereMesh. */
function sphereCloud(count: number, radius = 0.5) {
  const cloud = allocateCloud(count);
  const c = cloud.columns;
  const golden = Math.PI * (3 - Math.sqrt(5));
  for (let i = 0; i < count; i++) {
    const y = 1 - (2 * (i + 0.5)) / count,
      r = Math.sqrt(1 - y * y),
      phi = golden * i;
    c.x[i] = radius * r * Math.cos(phi);
    c.y[i] = radius * y;
    c.z[i] = radius * r * Math.sin(phi);
    c.scale_0[i] = c.scale_1[i] = c.scale_2[i] = Math.log(0.006);
    c.rot_0[i] = 1;
    c.opacity[i] = logit(0.95);
    c.f_dc_0[i] = colourToDc(0.5 + (0.5 * c.x[i]) / radius);
    c.f_dc_1[i] = colourToDc(0.5 + 0.5 * y);
    c.f_dc_2[i] = colourToDc(0.5 + (0.5 * c.z[i]) / radius);
  }
  return cloud;
}

export async function run(): Promise<void> {
  console.log(
    `machine: ${availableParallelism()} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ${runs} runs`,
  );
  const meshes: [string, PreparedMesh][] = [
    [128, 79],
    [256, 196],
    [400, 313],
  ].map(([segments, rings]) => {
    const prepared = prepareMesh(sphereMesh(segments, rings, 0.5, true), { extent: VALIDATOR_EXTENT });
    return [`${Math.round(prepared.triangles / 1000)}k`, prepared];
  });
  const rasterizer = new MeshRasterizer();
  const options = { background: WHITE, channels: 4 } as const;
  const meshTimes = new Map<string, number>();
  for (const [name, mesh] of meshes) {
    const t = perView((camera) => rasterizer.render(mesh, camera, options));
    meshTimes.set(name, t.median);
    console.log(
      `one core, mesh sphere ${mesh.triangles.toLocaleString('en')} triangles (${mesh.vertices.toLocaleString('en')} vertices), 518^2 view: median ${fmt(t.median)} per view  [runs ms: ${list(t.runs)}]`,
    );
  }

  const splat = new Rasterizer();
  const clouds: [string, PreparedCloud][] = [['splat sphere of 100,000 Gaussians', prepareCloud(sphereCloud(100_000))]];
  const robocop = resolve(root, '..', 'shared', 'fixtures', 'robocop.ply');
  if (existsSync(robocop)) {
    const cloud = decodePly(readFileSync(robocop));
    clouds.push([`robocop.ply (${cloud.count.toLocaleString('en')} Gaussians)`, prepareCloud(cloud)]);
  }
  const mesh100k = meshTimes.get(meshes[1][0])!;
  for (const [name, cloud] of clouds) {
    const t = perView((camera) => splat.render(cloud, camera, options));
    console.log(
      `one core, ${name}, 518^2 view: median ${fmt(t.median)} per view; the ${meshes[1][0]}-triangle mesh takes ${(mesh100k / t.median).toFixed(2)}x that  [runs ms: ${list(t.runs)}]`,
    );
  }

  const pool = new RenderPool(threads);
  try {
    await pool.warm();
    const source = sphereMesh(256, 196, 0.5, true);
    const totals: number[] = [];
    for (let i = 0; i <= runs; i++) {
      const start = performance.now();
      await renderValidatorViews(source, { count: 16, size: 518 }, pool); // includes prepareMesh
      if (i > 0) totals.push(performance.now() - start);
    }
    console.log(
      `validator views 16 x 518^2 of the ${meshes[1][0]}-triangle mesh through the pool (${pool.threads} workers, prepareMesh included): median ${fmt(median(totals))}  [runs ms: ${list(totals)}]`,
    );
  } finally {
    await pool.close();
  }
}

// `npm run bench` runs each bench module as its own process.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
