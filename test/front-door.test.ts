/**
 * One front door: every surface (the legacy and newer generate routes, the job API, MCP) builds its request with
 * the one builder, into a plain JSON value the answer path takes, and the answer path alone says what is
 * refused before work. So the same task sent through two surfaces is the same request (one cache entry), a video
 * without a size gets the same default everywhere, and a cached answer is served on every surface while the
 * service is still starting.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compose, type Composed } from '../src/compose.js';
import { buildAnswerRequest } from '../src/contract/build.js';
import { MemoryInputs } from '../src/runtime/inputs.js';
import { presetsOf } from '../src/pipelines/presets.js';
import { fakeStages, serveApp, testConfig, until, type Served } from './helpers/fake-stages.js';
import { discImage } from './helpers/images.js';
import { httpClient } from './helpers/mcp.js';
import { summariseMp4 } from './helpers/mp4.js';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const limits = {
  maxPromptChars: 1024,
  maxImagePixels: 40_000_000,
  minImageSide: 16,
  imageFileDelivery: {
    rotation: [1, 0, 0, 0, 1, 0, 0, 0, 1] as [number, number, number, number, number, number, number, number, number],
    onReject: 'best-effort' as const,
  },
};

describe('the request builder', () => {
  const presets = presetsOf(testConfig());

  it('makes a plain JSON value: an image travels as the key of its bytes, not as pixels', async () => {
    const inputs = new MemoryInputs();
    const png = new Uint8Array(await discImage({ size: 64, radius: 20 }));
    const fromPrompt = await buildAnswerRequest(
      { priority: 'contract', prompt: Buffer.from(png).toString('base64'), outputs: [{ format: 'ply' }] },
      { limits, presets, inputs },
    );
    const fromFile = await buildAnswerRequest(
      { priority: 'interactive', image: { bytes: png, name: 'disc.png' }, outputs: [{ format: 'mp4' }] },
      { limits, presets, inputs },
    );
    for (const request of [fromPrompt, fromFile]) expect(JSON.parse(JSON.stringify(request))).toEqual(request);
    // The same image, sent as base64 in a prompt or as a file: the same task and the same derived seed.
    expect(fromFile.task).toEqual(fromPrompt.task);
    expect(fromFile.seed).toBe(fromPrompt.seed);
    expect(fromPrompt.task).toMatchObject({ kind: 'image', input: expect.stringMatching(/^inputs\/[0-9a-f]{64}$/), width: 64, height: 64 });
    expect([fromPrompt.title, fromFile.title]).toEqual(['image 64×64', 'disc.png']);
    // The video's side, absent from the request, is the preset's.
    expect(fromFile.wants).toEqual([{ format: 'mp4', size: presets.resolve().settings.render.video_res }]);
    // Held once while both requests hold it, and let go with the last.
    expect(inputs.size).toBe(1);
    inputs.drop((fromFile.task as { input: string }).input);
    expect(inputs.size).toBe(1);
    inputs.drop((fromPrompt.task as { input: string }).input);
    expect(inputs.size).toBe(0);
  });

  it('refuses an unknown preset before the image is decoded', async () => {
    const inputs = new MemoryInputs();
    const png = new Uint8Array(await discImage({ size: 64, radius: 20 }));
    await expect(
      buildAnswerRequest(
        { priority: 'interactive', image: { bytes: png }, preset: 'nope', outputs: [{ format: 'ply' }] },
        { limits, presets, inputs },
      ),
    ).rejects.toThrow(/unknown preset "nope"/);
    expect(inputs.size).toBe(0);
  });
});

describe('every surface through the one front door', () => {
  let composed: Composed;
  let served: Served;
  let ready = true;

  const start = async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-front-door-'));
    dirs.push(dir);
    const fake = fakeStages();
    const imageTo3d = { ...fake.stages.imageTo3d!, readiness: () => (ready ? { ready: true } : { ready: false, detail: 'loading' }) };
    composed = compose(
      testConfig({ pipeline: { retries: 0 }, cache: { enabled: true, directory: dir }, render: { video_res: 96, threads: 1 } }),
      { stages: { ...fake.stages, imageTo3d } },
    );
    await composed.service.start();
    served = await serveApp(composed.app);
  };
  afterAll(async () => {
    await served?.close();
    await composed?.service.close();
    await composed?.renderPool.close();
  });

  const postJob = (body: unknown) =>
    fetch(`${served.url}/api/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const jobView = async (id: string) =>
    (await (await fetch(`${served.url}/api/v1/jobs/${id}`)).json()) as { state: string; cached: boolean };

  it('answers the same image from the legacy route and the job API from one cache entry', async () => {
    await start();
    const png = await discImage({ size: 96, radius: 30 });
    const base64 = png.toString('base64');
    const legacy = await fetch(`${served.url}/generate/`, { method: 'POST', body: new URLSearchParams({ prompt: base64, seed: '7' }) });
    expect([legacy.status, legacy.headers.get('x-fast3d-cache')]).toEqual([200, 'miss']);
    const job = await postJob({ image: base64, seed: 7, outputs: ['ply'] });
    expect(job.status).toBe(202);
    const { id } = (await job.json()) as { id: string };
    await until(async () => (await jobView(id)).state === 'done');
    expect((await jobView(id)).cached).toBe(true);
  });

  it("gives a video without a size the preset's side, on the video route and the job API alike", async () => {
    const video = await fetch(`${served.url}/generate_video/`, {
      method: 'POST',
      body: new URLSearchParams({ prompt: 'a small red cube' }),
    });
    expect(video.status).toBe(200);
    expect(summariseMp4(new Uint8Array(await video.arrayBuffer())).width).toBe(96);
    const job = await postJob({ prompt: 'a small blue cube', outputs: ['mp4'] });
    const { id } = (await job.json()) as { id: string };
    await until(async () => (await jobView(id)).state === 'done', 20_000);
    const mp4 = await fetch(`${served.url}/api/v1/jobs/${id}/artifacts/mp4`);
    expect(summariseMp4(new Uint8Array(await mp4.arrayBuffer())).width).toBe(96);
  });

  it('serves a cached answer on every surface while the service is not ready, and refuses new work with 503', async () => {
    // Made while ready, then asked again on each surface while a stage is loading.
    const made = await fetch(`${served.url}/generate/`, {
      method: 'POST',
      body: new URLSearchParams({ prompt: 'a green lamp', seed: '3' }),
    });
    expect(made.status).toBe(200);
    ready = false;
    await until(() => composed.service.health().status !== 'ok');
    try {
      const again = await fetch(`${served.url}/generate/`, {
        method: 'POST',
        body: new URLSearchParams({ prompt: 'a green lamp', seed: '3' }),
      });
      expect([again.status, again.headers.get('x-fast3d-cache')]).toEqual([200, 'hit']);
      const job = await postJob({ prompt: 'a green lamp', seed: 3, outputs: ['ply'] });
      expect(job.status).toBe(202);
      const client = await httpClient(served.url);
      const viaMcp = await client.callTool({ name: 'generate_3d_asset', arguments: { prompt: 'a green lamp', seed: 3 } });
      expect(viaMcp.isError).toBeFalsy();
      await client.close();

      const fresh = await postJob({ prompt: 'a brand new teapot', outputs: ['ply'] });
      expect(fresh.status).toBe(503);
      expect(fresh.headers.get('retry-after')).not.toBeNull();
      const freshLegacy = await fetch(`${served.url}/generate/`, {
        method: 'POST',
        body: new URLSearchParams({ prompt: 'a brand new teapot' }),
      });
      expect(freshLegacy.status).toBe(503);
    } finally {
      ready = true;
    }
  });
});
