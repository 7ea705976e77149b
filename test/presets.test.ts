/**
 * Presets over HTTP with the preview backends: the same prompt and seed under realtime and quality give different,
 * valid assets with the Gaussian counts each preset asks for; an unknown preset is a 400 naming the known ones;
 * the cache keys on the resolved settings, so it never serves one preset's bytes for another, and editing a preset
 * makes its entries miss. The job view and the report show the preset and its values.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { parseConfig } from '../src/config/load.js';
import { decodePly } from '../src/splat/ply.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { errorOf, serveApp } from './helpers/fake-stages.js';
import { summariseMp4 } from './helpers/mp4.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function start(config: Record<string, unknown> = {}) {
  const composed = compose(parseConfig({ log: { level: 'silent' }, cache: { enabled: false }, ...config }));
  void composed.service.start();
  const served = await serveApp(composed.app);
  return {
    url: served.url,
    answers: composed.answers,
    close: async () => {
      await served.close();
      await composed.service.close();
      await composed.renderPool.close();
    },
  };
}

function post(url: string, fields: Record<string, string>, path = '/generate/'): Promise<Response> {
  return fetch(`${url}${path}`, { method: 'POST', body: new URLSearchParams(fields) });
}

async function ply(response: Response): Promise<{ bytes: Buffer; count: number }> {
  expect(response.status, response.status === 200 ? '' : await response.clone().text()).toBe(200);
  const bytes = Buffer.from(await response.arrayBuffer());
  expect(servablePlyViolation(new Uint8Array(bytes))).toBeNull();
  const count = decodePly(new Uint8Array(bytes)).count;
  expect(Number(response.headers.get('x-fast3d-gaussians'))).toBe(count);
  return { bytes, count };
}

function cacheDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-presets-'));
  dirs.push(dir);
  return dir;
}

describe('presets over HTTP', () => {
  it('gives different, valid assets for realtime and quality, with the Gaussian counts each asks for', async () => {
    const server = await start({ presets: { tiny: { pipeline: { max_gaussians: 20_000 } } } });
    try {
      const ask = (preset?: string) => post(server.url, { prompt: 'a red ball', seed: '11', ...(preset ? { preset } : {}) });
      const realtime = await ask('realtime');
      expect(realtime.headers.get('x-fast3d-preset')).toBe('realtime');
      const fast = await ply(realtime);
      const quality = await ask('quality');
      expect(quality.headers.get('x-fast3d-preset')).toBe('quality');
      const careful = await ply(quality);
      const balanced = await ask();
      expect(balanced.headers.get('x-fast3d-preset')).toBe('balanced');
      const usual = await ply(balanced);
      const tiny = await ply(await ask('tiny'));

      // realtime's budget is 60,000 and its inflation makes more: it keeps exactly its budget; so does a user preset.
      expect(fast.count).toBe(60_000);
      expect(tiny.count).toBe(20_000);
      // quality has no budget and a denser inflation (at most 480,000) than balanced's 240,000.
      expect(usual.count).toBeLessThanOrEqual(240_000);
      expect(careful.count).toBeGreaterThan(usual.count);
      expect(careful.count).toBeLessThanOrEqual(480_000);
      expect(new Set([fast.bytes, careful.bytes, usual.bytes, tiny.bytes].map((b) => b.toString('base64'))).size).toBe(4);
    } finally {
      await server.close();
    }
  });

  it('refuses an unknown preset with 400 naming the known ones, on every route', async () => {
    const server = await start({ presets: { mine: {} } });
    try {
      for (const path of ['/generate/', '/generate_video/']) {
        const response = await post(server.url, { prompt: 'a cup', preset: 'ultra' }, path);
        expect(response.status).toBe(400);
        expect(await errorOf(response)).toBe('unknown preset "ultra"; known presets: realtime, fast, balanced, quality, mine');
      }
      const form = new FormData();
      form.set('prompt', 'a cup');
      form.set('preset', new Blob(['fast']), 'preset.txt');
      const file = await fetch(`${server.url}/generate`, { method: 'POST', body: form });
      expect(file.status).toBe(400);
      expect(await errorOf(file)).toMatch(/"preset" must be text, not a file/);
      expect(await server.answers.list()).toHaveLength(0); // refused before any job
    } finally {
      await server.close();
    }
  });

  it('sizes and times videos by the preset', async () => {
    const server = await start({ presets: { preview: { render: { video_res: 96, fps: 6, seconds: 1, frames: 0 } } } });
    try {
      const response = await post(server.url, { prompt: 'a blue cube', seed: '2', preset: 'preview' }, '/generate_video/');
      expect(response.status).toBe(200);
      expect(response.headers.get('x-fast3d-preset')).toBe('preview');
      const video = summariseMp4(new Uint8Array(await response.arrayBuffer()));
      expect(video).toMatchObject({ width: 96, height: 96 });
      expect(video.samples).toBe(6);
      expect(video.durationSeconds).toBeCloseTo(1, 1);
    } finally {
      await server.close();
    }
  });

  it('shows the preset and its values in the job view and the report', async () => {
    const server = await start();
    try {
      const response = await post(server.url, { prompt: 'a green cone', seed: '4', preset: 'realtime' });
      await ply(response);
      const job = (await server.answers.get(response.headers.get('x-request-id')!))!;
      expect(job.preset).toMatchObject({
        name: 'realtime',
        values: { pipeline: { retries: 0, max_gaussians: 60_000 }, text_to_image: { gpu_worker: { steps: 2 } } },
      });
      expect(job.report?.preset?.name).toBe('realtime');
      expect(job.report?.preset?.fingerprint).toMatch(/^[0-9a-f]{16}$/);
      expect(job.report?.attempts[0].dropped).toBeGreaterThan(0);
    } finally {
      await server.close();
    }
  });
});

describe('the cache and presets', () => {
  it("never serves one preset's bytes for another, and serves each its own", async () => {
    const server = await start({ cache: { enabled: true, directory: cacheDir() } });
    try {
      const ask = (preset: string) => post(server.url, { prompt: 'a wooden barrel', seed: '8', preset });
      const first = await ask('realtime');
      expect(first.headers.get('x-fast3d-cache')).toBe('miss');
      const realtime = await ply(first);
      const other = await ask('quality');
      expect(other.headers.get('x-fast3d-cache')).toBe('miss');
      const quality = await ply(other);
      expect(quality.bytes.equals(realtime.bytes)).toBe(false);
      const again = await ask('realtime');
      expect(again.headers.get('x-fast3d-cache')).toBe('hit');
      expect(again.headers.get('x-fast3d-preset')).toBe('realtime');
      expect((await ply(again)).bytes.equals(realtime.bytes)).toBe(true);
      const qualityAgain = await ask('quality');
      expect(qualityAgain.headers.get('x-fast3d-cache')).toBe('hit');
      expect((await ply(qualityAgain)).bytes.equals(quality.bytes)).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('misses after a preset is edited (the key holds its settings, not its name)', async () => {
    const directory = cacheDir();
    const ask = (url: string) => post(url, { prompt: 'a pink mug', seed: '1', preset: 'mine' });
    const before = await start({ cache: { enabled: true, directory }, presets: { mine: { pipeline: { max_gaussians: 30_000 } } } });
    let made: Buffer;
    try {
      const response = await ask(before.url);
      made = (await ply(response)).bytes;
      expect((await ask(before.url)).headers.get('x-fast3d-cache')).toBe('hit');
    } finally {
      await before.close();
    }
    const after = await start({ cache: { enabled: true, directory }, presets: { mine: { pipeline: { max_gaussians: 25_000 } } } });
    try {
      const response = await ask(after.url);
      expect(response.headers.get('x-fast3d-cache')).toBe('miss');
      const edited = await ply(response);
      expect(edited.count).toBe(25_000);
      expect(edited.bytes.equals(made)).toBe(false);
    } finally {
      await after.close();
    }
  });
});
