/**
 * Fake stages for runtime tests: GPU stages that only wait (declared `gpu: true`, so they take the GPU lock),
 * a CPU matting stage that can burn a fixed CPU time, and a cloud builder that passes the validator's gates.
 * They count their calls, so tests can tell whether GPU work happened.
 */
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import type { RgbaImage } from '../../src/image/rgba.js';
import { configSettings } from '../../src/compose.js';
import { standaloneContext, type JobContext, type ProgressSink } from '../../src/pipelines/context.js';
import type { GpuRunner, Stages } from '../../src/pipelines/stages.js';
import { allocateCloud, logit, type GaussianCloud } from '../../src/splat/cloud.js';
import { sphereMesh } from './meshes.js';

export interface FakeOptions {
  /** Milliseconds text-to-image holds the GPU. */
  textToImageMs?: number;
  /** Milliseconds image-to-3d holds the GPU. */
  imageTo3dMs?: number;
  /** Milliseconds of busy CPU work in matting (outside the GPU lock). */
  mattingCpuMs?: number;
  /** Gaussians per cloud (at least 7000 passes the gates). */
  gaussians?: number;
  /** GPU fakes ignore the abort signal (a backend that cannot be interrupted). */
  ignoreAbort?: boolean;
  /** Image-to-3D also makes meshes (a coloured sphere beside the cloud); read when the stages are built. */
  mesh?: boolean;
}

export interface FakeCalls {
  textToImage: number;
  matting: number;
  imageTo3d: number;
}

/** Prompts containing this word give an empty matte, so every attempt fails and the job is declined. */
export const HOPELESS = 'hopeless';

export function fakeStages(options: FakeOptions = {}): { stages: Partial<Stages>; calls: FakeCalls; gpuIntervals: [number, number][] } {
  const calls: FakeCalls = { textToImage: 0, matting: 0, imageTo3d: 0 };
  const gpuIntervals: [number, number][] = [];
  const gpuWait = async (ms: number, signal?: AbortSignal) => {
    const start = performance.now();
    await sleep(ms, options.ignoreAbort ? undefined : signal);
    gpuIntervals.push([start, performance.now()]);
  };
  const prompts = new WeakMap<RgbaImage, string>();
  const ready = () => ({ ready: true });
  const makeCloud = async (seed: number, ctx: JobContext): Promise<GaussianCloud> => {
    calls.imageTo3d++;
    await gpuWait(options.imageTo3dMs ?? 0, ctx.signal);
    return ballCloud(options.gaussians ?? 8000, seed);
  };
  const stages: Partial<Stages> = {
    textToImage: {
      name: 'fake-gpu-text-to-image',
      preview: false,
      gpu: true,
      readiness: ready,
      async generate(prompt, seed, ctx) {
        calls.textToImage++;
        await gpuWait(options.textToImageMs ?? 0, ctx.signal);
        const image: RgbaImage = { width: 8, height: 8, data: new Uint8ClampedArray(8 * 8 * 4).fill(seed & 0xff) };
        prompts.set(image, prompt);
        return image;
      },
    },
    matting: {
      name: 'fake-cpu-matting',
      preview: false,
      readiness: ready,
      async matte({ image }) {
        calls.matting++;
        const end = performance.now() + (options.mattingCpuMs ?? 0);
        while (performance.now() < end) {
          /* CPU work outside the GPU lock */
        }
        return prompts.get(image)?.includes(HOPELESS) ? null : image;
      },
    },
    imageTo3d: {
      name: 'fake-gpu-image-to-3d',
      preview: false,
      gpu: true,
      readiness: ready,
      generate: (_image, seed, ctx) => makeCloud(seed, ctx),
      ...(options.mesh && {
        generateWithMesh: async (_image: RgbaImage, seed: number, ctx: JobContext) => ({
          cloud: await makeCloud(seed, ctx),
          mesh: sphereMesh(24, 12, 0.5, true),
        }),
      }),
    },
  };
  return { stages, calls, gpuIntervals };
}

/** A ball of small, opaque Gaussians: passes the validator's structural gates. */
export function ballCloud(count: number, seed: number): GaussianCloud {
  const cloud = allocateCloud(count);
  const c = cloud.columns;
  let state = seed >>> 0 || 1;
  const random = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
  for (let i = 0; i < count; i++) {
    c.x[i] = random() - 0.5;
    c.y[i] = random() - 0.5;
    c.z[i] = random() - 0.5;
    c.f_dc_0[i] = random();
    c.f_dc_1[i] = random();
    c.f_dc_2[i] = random();
    c.opacity[i] = logit(0.9);
    c.scale_0[i] = c.scale_1[i] = c.scale_2[i] = Math.log(0.01);
    c.rot_0[i] = 1;
    c.rot_1[i] = random() * 0.2;
    c.rot_2[i] = random() * 0.2;
  }
  return cloud;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface Served {
  url: string;
  server: ServerType;
  close(): Promise<void>;
}

/** Serves an app on an ephemeral port of 127.0.0.1. */
export async function serveApp(app: Hono<any>): Promise<Served> {
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

/** POSTs a text prompt as the legacy miner does (urlencoded form). */
export function postPrompt(
  url: string,
  prompt: string,
  init: { seed?: number; signal?: AbortSignal; headers?: Record<string, string>; path?: string } = {},
): Promise<Response> {
  const body = new URLSearchParams({ prompt, ...(init.seed !== undefined ? { seed: String(init.seed) } : {}) });
  return fetch(`${url}${init.path ?? '/generate/'}`, { method: 'POST', body, signal: init.signal, headers: init.headers });
}

/** A validated config from partial sections (log silent, cache off unless a section says otherwise). */
export function testConfig(sections: Record<string, Record<string, unknown>> = {}): Config {
  return parseConfig({
    log: { level: 'silent' },
    ...sections,
    cache: { enabled: false, ...sections.cache },
  });
}

/** The `error` of a JSON error body. */
export async function errorOf(response: Response): Promise<string> {
  return ((await response.json()) as { error: string }).error;
}

/** Polls `condition` every 5 ms until it holds (or fails after `ms`): tests wait for states, not for fixed sleeps. */
export async function until(condition: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await condition())) {
    if (performance.now() > end) throw new Error(`condition not reached within ${ms} ms: ${condition}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A job context for running a Pipeline directly: the config's settings with the given pipeline options, GPU work
 * through `gpu` (direct by default), an optional signal and progress sink.
 */
export function jobContext(
  init: { retries?: number; extent?: number; gpu?: GpuRunner; signal?: AbortSignal; progress?: ProgressSink; config?: Config } = {},
): JobContext {
  const config =
    init.config ??
    testConfig({
      pipeline: {
        ...(init.retries !== undefined ? { retries: init.retries } : {}),
        ...(init.extent !== undefined ? { extent: init.extent } : {}),
      },
    });
  return standaloneContext(configSettings(config), { gpu: init.gpu, signal: init.signal, progress: init.progress });
}
