/**
 * Contract test: the real Python worker process (workers/gpu/worker.py --fake: deterministic provider, no torch)
 * behind the service's gpu-worker backends. Text -> image on the worker -> keying matting -> image-to-3D on the
 * worker -> orientation -> normalise -> gates -> a PLY the miner's packer accepts; and the same through HTTP.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { parseConfig } from '../src/config/load.js';
import type { Config } from '../src/config/schema.js';
import { createStages } from '../src/pipelines/backends.js';
import { defaultStageDeps } from '../src/compose.js';
import { Pipeline } from '../src/pipelines/generate.js';
import { allBackends, type Stages } from '../src/pipelines/stages.js';
import type { GpuWorkerTextToImage } from '../src/pipelines/text-to-image/gpu-worker.js';
import { dcToColour } from '../src/splat/cloud.js';
import { checkGates } from '../src/splat/gates.js';
import { decodePly, encodePly } from '../src/splat/ply.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { jobContext, testConfig } from './helpers/fake-stages.js';
import { GpuWorkerImageTo3d } from '../src/pipelines/image-to-3d/gpu-worker.js';
import { GpuWorkerClient } from '../src/runtime/gpu-client.js';
import { IDENTITY3, orientationMatrix } from '../src/splat/frame.js';
import validator from 'gltf-validator';
import { decodeGlb, GlbReadError } from '../src/mesh/glb.js';
import { triangleCount } from '../src/mesh/mesh.js';
import { expectServableGlb } from './helpers/glb-chunks.js';
import { createImage, type RgbaImage } from '../src/image/rgba.js';

const PYTHON = process.env.FAST3D_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

interface WorkerProcess {
  url: string;
  child: ChildProcess;
  stderr: string[];
}

const workers: WorkerProcess[] = [];

/** Starts worker.py on an ephemeral loopback port; resolves with its URL from the first stdout line. */
async function startWorker(...args: string[]): Promise<WorkerProcess> {
  const child = spawn(PYTHON, ['workers/gpu/worker.py', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr: string[] = [];
  child.stderr!.setEncoding('utf8').on('data', (d: string) => stderr.push(d));
  const line = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}: ${stderr.join('')}`)));
    child.once('error', reject);
  });
  const url = /listening on (http:\/\/\S+)/.exec(line)?.[1];
  if (!url) throw new Error(`unexpected first line from the worker: ${line}`);
  const worker = { url, child, stderr };
  workers.push(worker);
  return worker;
}

function configFor(url: string, extra: Record<string, unknown> = {}): Config {
  const connection = { url, poll_interval_s: 0.05, ready_timeout_s: 20, request_timeout_s: 60 };
  return parseConfig({
    cache: { enabled: false },
    pipeline: { retries: 1 },
    text_to_image: { backend: 'gpu-worker', gpu_worker: { ...connection, size: 256 } },
    image_to_3d: { backend: 'gpu-worker', gpu_worker: { ...connection } },
    log: { level: 'silent' },
    ...extra,
  });
}

/** An urlencoded generate request, as the miner sends it, to the service's app. */
function postForm(
  app: { request(path: string, init: RequestInit): Response | Promise<Response> },
  fields: Record<string, string>,
): Promise<Response> {
  return Promise.resolve(
    app.request('/generate/', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    }),
  );
}

async function initAll(stages: Stages): Promise<void> {
  await Promise.all(allBackends(stages).map(({ backend }) => backend.init?.()));
}

function closeAll(stages: Stages): void {
  for (const { backend } of allBackends(stages)) void backend.close?.();
}

afterAll(() => {
  for (const w of workers) w.child.kill('SIGTERM');
});

describe('the service pipeline through the Python GPU worker (fake provider)', () => {
  let worker: WorkerProcess;
  let stages: Stages;

  beforeAll(async () => {
    worker = await startWorker('--fake');
    stages = createStages(configFor(worker.url), defaultStageDeps(configFor(worker.url)));
    await initAll(stages);
  });
  afterAll(() => closeAll(stages));

  it('uses GPU backends that the pipeline runs under its GPU lock', () => {
    expect(stages.textToImage.name).toBe('gpu-worker');
    expect(stages.imageTo3d.name).toBe('gpu-worker');
    expect(stages.textToImage.gpu).toBe(true);
    expect(stages.imageTo3d.gpu).toBe(true);
    expect(stages.textToImage.readiness()).toEqual({ ready: true });
    expect(stages.imageTo3d.readiness()).toEqual({ ready: true });
  });

  it("turns a text prompt into a servable PLY in the validator's frame", async () => {
    const locked: string[] = [];
    const pipeline = new Pipeline(stages);
    const ctx = jobContext({
      retries: 1,
      extent: 1.5,
      gpu: async (work) => {
        locked.push('gpu');
        return work();
      },
    });
    const outcome = await pipeline.run({ id: 't1', task: { kind: 'text', prompt: 'a red apple' }, seed: 42 }, ctx);
    expect(outcome.kind, outcome.kind === 'declined' ? outcome.reason : '').toBe('asset');
    if (outcome.kind !== 'asset') return;
    // Only the keying matting here is a CPU stand-in; both worker stages are production backends.
    expect(
      allBackends(stages)
        .filter(({ backend }) => backend.preview)
        .map(({ stage }) => stage),
    ).toEqual(['matting']);
    expect(locked).toEqual(['gpu', 'gpu']); // text-to-image and image-to-3d, not matting or validation
    const ply = encodePly(outcome.cloud);
    expect(servablePlyViolation(ply)).toBeNull();
    const cloud = decodePly(ply);
    expect(cloud.count).toBeGreaterThanOrEqual(7000);
    expect(checkGates(cloud).every((g) => g.passed)).toBe(true);

    // The worker's picture faces TRELLIS's -Y with +Z up; the default orientation ("z-up") must bring the
    // picture's face to +Z (the validator's azimuth 0) and its top to +Y.
    const { y, z, f_dc_0, f_dc_1, f_dc_2 } = cloud.columns;
    const brightness = (i: number) => dcToColour(f_dc_0[i]) + dcToColour(f_dc_1[i]) + dcToColour(f_dc_2[i]);
    const mean = (keep: (i: number) => boolean) => {
      let sum = 0,
        n = 0;
      for (let i = 0; i < cloud.count; i++)
        if (keep(i)) {
          sum += brightness(i);
          n++;
        }
      return sum / n;
    };
    expect(mean((i) => z[i] > 0)).toBeGreaterThan(mean((i) => z[i] < 0) + 0.15); // the face, not the darker back
    expect(mean((i) => z[i] > 0 && y[i] > 0.2)).toBeGreaterThan(mean((i) => z[i] > 0 && y[i] < -0.2)); // top lit
  });

  it('is deterministic for a prompt and seed, and different for another seed', async () => {
    const pipeline = new Pipeline(stages);
    const run = async (seed: number) => {
      const outcome = await pipeline.run(
        { id: 's', task: { kind: 'text', prompt: 'a blue mug' }, seed },
        jobContext({ retries: 0, extent: 1.5 }),
      );
      if (outcome.kind !== 'asset') throw new Error(outcome.reason);
      return Buffer.from(encodePly(outcome.cloud)).toString('base64');
    };
    expect(await run(5)).toBe(await run(5));
    expect(await run(5)).not.toBe(await run(6));
  });

  it('appends the configured prompt suffix', () => {
    const backend = stages.textToImage as GpuWorkerTextToImage;
    expect(backend.prompt('  a red apple ')).toMatch(/^a red apple, a single object centred on a plain white background/);
  });

  it('serves POST /generate end to end with a PLY the packer accepts', async () => {
    const { service, app } = compose(configFor(worker.url));
    await service.start();
    try {
      const health = await app.request('/health');
      expect(health.status).toBe(200);
      const report = (await health.json()) as { stages: Record<string, { backend: string; ready: boolean; preview: boolean }> };
      expect(report.stages.text_to_image).toMatchObject({ backend: 'gpu-worker', ready: true, preview: false });
      expect(report.stages.image_to_3d).toMatchObject({ backend: 'gpu-worker', ready: true, preview: false });
      const response = await postForm(app, { prompt: 'a wooden barrel' });
      expect(response.status).toBe(200);
      const ply = new Uint8Array(await response.arrayBuffer());
      expect(servablePlyViolation(ply)).toBeNull();
      expect(Number(response.headers.get('X-Fast3d-Gaussians'))).toBe(decodePly(ply).count);
    } finally {
      await service.close();
    }
  });
});

describe('meshes through the GPU worker (fake provider)', () => {
  const disc: RgbaImage = (() => {
    const image = createImage(96, 96);
    for (let y = 0; y < 96; y++) {
      for (let x = 0; x < 96; x++) {
        if ((x - 48) ** 2 + (y - 48) ** 2 >= 30 ** 2) continue;
        image.data.set([200, 40, 60, 255], (y * 96 + x) * 4);
      }
    }
    return image;
  })();
  const fakeClient = (url: string) =>
    new GpuWorkerClient({ url, requestTimeoutMs: 30_000, connectRetries: 0, retryDelayMs: 10, pollIntervalMs: 50, readyTimeoutMs: 20_000 });
  const sampling = { sparseStructureSteps: 4, sparseStructureCfg: 7.5, slatSteps: 4, slatCfg: 3 };
  /** A job whose settings ask TRELLIS for those sampler steps and a light bake (a preset's knobs). */
  const meshJob = () =>
    jobContext({
      config: testConfig({
        image_to_3d: { gpu_worker: { sparse_structure_steps: 4, slat_steps: 4, mesh_simplify: 0.9, mesh_texture_size: 512 } },
      }),
    });
  /** The vertex farthest along `axis` (0 x, 1 y, 2 z) and its coordinates. */
  const extreme = (p: Float32Array, axis: number, sign = 1) => {
    let best = 0;
    for (let i = 0; i < p.length; i += 3) if (sign * p[i + axis] > sign * p[best + axis]) best = i;
    return [p[best], p[best + 1], p[best + 2]];
  };

  it('answers a PLY and a valid GLB; generateWithMesh gives a textured mesh in the canonical frame', async () => {
    const worker = await startWorker('--fake');
    const client = fakeClient(worker.url);
    try {
      await client.waitUntilReady();
      expect(client.lastHealth()).toMatchObject({ protocol: 2, mesh: true });
      const { encodePng } = await import('../src/image/codec.js');
      const { ply, glb } = await client.imageTo3dWithMesh(
        { png: await encodePng(disc), seed: 3, ...sampling },
        { simplify: 0.9, textureSize: 256 },
      );
      expect(decodePly(ply).count).toBeGreaterThan(1000);
      const report = await validator.validateBytes(glb);
      expect(report.issues.numErrors, JSON.stringify(report.issues.messages.slice(0, 3))).toBe(0);

      const backend = new GpuWorkerImageTo3d({ client, orientation: orientationMatrix('z-up') });
      const { cloud, mesh } = await backend.generateWithMesh(disc, 3, meshJob());
      expect(cloud.count).toBe(decodePly(ply).count);
      expect(triangleCount(mesh)).toBeGreaterThan(100);
      expect(mesh.texture?.width).toBe(512); // the job's bake
      // The fake's spire is its top and its nose its front: +Y and +Z, as the splat's top and face are.
      const [sx, sy, sz] = extreme(mesh.positions, 1);
      expect(sy).toBeCloseTo(0.48, 5);
      expect(Math.hypot(sx, sz)).toBeLessThan(1e-6);
      expect(extreme(mesh.positions, 2)[2]).toBeCloseTo(0.42, 5);

      const { received } = (await (await fetch(`${worker.url}/v1/received`)).json()) as { received: Record<string, unknown>[] };
      expect(received.at(-1)).toMatchObject({
        route: 'image-to-3d',
        seed: 3,
        sparse_structure_steps: 4,
        slat_steps: 4,
        mesh: { simplify: 0.9, texture_size: 512 },
      });

      // A GLB its reader cannot read is the worker's fault (502); the reader's own failure (a closed CPU pool) is not.
      const unreadable = new GpuWorkerImageTo3d({
        client,
        orientation: IDENTITY3,
        decodeGlb: async () => {
          throw new GlbReadError('not a readable GLB: bad chunk');
        },
      });
      await expect(unreadable.generateWithMesh(disc, 3, meshJob())).rejects.toMatchObject({
        name: 'GpuWorkerError',
        status: 502,
        message: expect.stringMatching(/GPU worker returned a GLB that cannot be read: not a readable GLB/),
      });
      const closed = new GpuWorkerImageTo3d({
        client,
        orientation: IDENTITY3,
        decodeGlb: async () => {
          throw new Error('the CPU pool was closed');
        },
      });
      await expect(closed.generateWithMesh(disc, 3, meshJob())).rejects.toThrow(/^the CPU pool was closed$/);
    } finally {
      client.close();
    }
  });

  it("serves format=glb end to end: the fake worker's baked GLB, fitted and checked, passes the validator and the geometry rules", async () => {
    const worker = await startWorker('--fake');
    const { service, app } = compose(configFor(worker.url));
    await service.start();
    try {
      const response = await postForm(app, { prompt: 'a wooden barrel', format: 'glb' });
      expect(response.status, await response.clone().text()).toBe(200);
      expect(response.headers.get('content-type')).toBe('model/gltf-binary');
      const bytes = new Uint8Array(await response.arrayBuffer());
      await expectServableGlb(bytes);
      // The baked texture travels: a textured mesh, not vertex colours.
      const mesh = await decodeGlb(bytes);
      expect(mesh.texture?.width).toBe(1024);
      expect(mesh.uvs?.length).toBe((mesh.positions.length / 3) * 2);
    } finally {
      await service.close();
    }
  });

  it('refuses mesh requests with a 400 before queueing them when the worker was started without meshes', async () => {
    const worker = await startWorker('--fake', '--fake-no-mesh');
    const { service, app } = compose(configFor(worker.url));
    await service.start();
    try {
      const response = await postForm(app, { prompt: 'a wooden barrel', format: 'glb' });
      expect(response.status).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(/started without meshes.*ask for ply or spz/);
      const { received } = (await (await fetch(`${worker.url}/v1/received`)).json()) as { received: unknown[] };
      expect(received).toEqual([]);
    } finally {
      await service.close();
    }
  });

  it('turns the mesh with the configured orientation, so splat and mesh face the same way', async () => {
    const worker = await startWorker('--fake');
    const client = fakeClient(worker.url);
    try {
      await client.waitUntilReady();
      // "identity" keeps TRELLIS's internal frame: +Z up, front toward -Y, for the mesh as for the splat.
      const backend = new GpuWorkerImageTo3d({ client, orientation: orientationMatrix('identity') });
      const { cloud, mesh } = await backend.generateWithMesh(disc, 3, meshJob());
      expect(extreme(mesh.positions, 2)[2]).toBeCloseTo(0.48, 5);
      expect(extreme(mesh.positions, 1, -1)[1]).toBeCloseTo(-0.42, 5);
      let top = -Infinity;
      for (let i = 0; i < cloud.count; i++) top = Math.max(top, cloud.columns.z[i]);
      expect(top).toBeGreaterThan(0.2); // the relief stands along +Z too
    } finally {
      client.close();
    }
  });
});

describe('presets through the GPU worker (fake provider)', () => {
  it("sends each preset's steps, size and cfg on every call, as the worker records them", async () => {
    const worker = await startWorker('--fake');
    const { service, app } = compose(
      configFor(worker.url, {
        text_to_image: { backend: 'gpu-worker', gpu_worker: { url: worker.url, poll_interval_s: 0.05, size: 256 } },
      }),
    );
    await service.start();
    try {
      const expected = {
        realtime: {
          image: { steps: 2, width: 512 },
          splat: { sparse_structure_steps: 6, sparse_structure_cfg: 7.5, slat_steps: 6, slat_cfg: 3 },
        },
        balanced: {
          image: { steps: 4, width: 256 },
          splat: { sparse_structure_steps: 12, sparse_structure_cfg: 7.5, slat_steps: 12, slat_cfg: 3 },
        },
        quality: {
          image: { steps: 4, width: 256 },
          splat: { sparse_structure_steps: 25, sparse_structure_cfg: 7.5, slat_steps: 25, slat_cfg: 3 },
        },
      };
      for (const [preset, want] of Object.entries(expected)) {
        const response = await app.request('/generate/', {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({ prompt: `a ${preset} lamp`, seed: '9', preset }).toString(),
        });
        expect(response.status, preset).toBe(200);
        expect(response.headers.get('x-fast3d-preset')).toBe(preset);
        const { received } = (await (await fetch(`${worker.url}/v1/received`)).json()) as { received: Record<string, unknown>[] };
        const image = received.filter((call) => call.route === 'images/generations' && String(call.prompt).startsWith(`a ${preset} lamp`));
        expect(image.length, preset).toBeGreaterThanOrEqual(1);
        for (const call of image) expect(call, preset).toMatchObject({ ...want.image, height: want.image.width });
        const splats = received.slice(received.indexOf(image[0])).filter((call) => call.route === 'image-to-3d');
        expect(splats.length, preset).toBe(image.length);
        for (const call of splats) expect(call, preset).toMatchObject(want.splat);
      }
    } finally {
      await service.close();
    }
  });
});

describe('the service while the worker is loading or broken', () => {
  it('reports starting while the worker loads, then ok', async () => {
    const worker = await startWorker('--fake', '--fake-load-seconds', '1');
    const { service, app } = compose(configFor(worker.url));
    const started = service.start();
    try {
      const early = await app.request('/ping');
      expect(early.status).toBe(204); // RunPod: still initialising
      await started;
      expect((await app.request('/ping')).status).toBe(200);
    } finally {
      await service.close();
    }
  });

  it("reports degraded with the worker's reason when its models cannot load, and answers 503", async () => {
    const worker = await startWorker('--fake', '--fake-fail', 'torch is not installed for /usr/bin/python3');
    const { service, app } = compose(configFor(worker.url));
    await service.start();
    try {
      const health = await app.request('/health');
      expect(health.status).toBe(503);
      const body = (await health.json()) as { status: string; stages: Record<string, { ready: boolean; detail?: string }> };
      expect(body.status).toBe('degraded');
      expect(body.stages.image_to_3d.detail).toContain('torch is not installed');
      const response = await app.request('/generate', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'prompt=a+cup',
      });
      expect(response.status).toBe(503);
      expect(((await response.json()) as { error: string }).error).toContain('torch is not installed');
    } finally {
      await service.close();
    }
  });

  it('rejects an orientation that is not a rotation at start-up', () => {
    expect(() => {
      const config = configFor('http://127.0.0.1:9', {
        image_to_3d: { backend: 'gpu-worker', gpu_worker: { orientation: [1, 0, 0, 0, 1, 0, 0, 0, -1] } },
      });
      return createStages(config, defaultStageDeps(config));
    }).toThrow(/reflection/);
  });
});
