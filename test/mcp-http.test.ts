/**
 * /mcp over HTTP with the SDK's own client against a real server: the tools, generate_3d_asset's progress and
 * PLY resource, render_views' PNGs of splats and meshes, check_asset's verdicts on PLYs and GLBs, bearer auth, and bad
 * input as tool errors.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose, type Composed } from '../src/compose.js';
import { decodeImage } from '../src/image/codec.js';
import { encodeGlb } from '../src/mesh/glb.js';
import { decodePly } from '../src/splat/ply.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { fakeStages, HOPELESS, type FakeOptions, serveApp, testConfig, until, type Served } from './helpers/fake-stages.js';
import { fixturePath } from './helpers/fixtures.js';
import { sphereMesh } from './helpers/meshes.js';
import { httpClient, imagesOf, linksOf, readBlob, textOf } from './helpers/mcp.js';

const TOKEN = 'mcp-test-token';

describe('/mcp over Streamable HTTP', () => {
  let served: Served;
  let composed: Composed;
  let client: Client;
  // Read by the fake stages at each call: a test can slow a stage down.
  const fakeOptions: FakeOptions = { gaussians: 8000, mesh: true };
  const fake = fakeStages(fakeOptions);

  beforeAll(async () => {
    composed = compose(testConfig({ auth: { enabled: true, token: TOKEN }, pipeline: { retries: 0 }, render: { threads: 2 } }), {
      stages: fake.stages,
    });
    await composed.service.start();
    served = await serveApp(composed.app);
    client = await httpClient(served.url, TOKEN);
  });

  afterAll(async () => {
    await client?.close();
    await served?.close();
    await composed?.service.close();
    await composed?.renderPool.close();
  });

  const call = (name: string, args: Record<string, unknown>) => client.callTool({ name, arguments: args }) as Promise<CallToolResult>;

  it('lists the five tools, each with a description and an input schema', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['check_asset', 'generate_3d_asset', 'get_job', 'list_recent_assets', 'render_views']);
    for (const tool of tools) {
      expect(tool.description!.length).toBeGreaterThan(40);
      expect(tool.inputSchema.type).toBe('object');
    }
    const generate = tools.find((t) => t.name === 'generate_3d_asset')!;
    expect(Object.keys(generate.inputSchema.properties!)).toEqual(
      expect.arrayContaining(['prompt', 'image_base64', 'preset', 'seed', 'formats']),
    );
  });

  it("generate_3d_asset reports the job's stages as progress and returns the job id, a valid PLY resource and the front view", async () => {
    const progress: { progress: number; message?: string }[] = [];
    const result = (await client.callTool(
      { name: 'generate_3d_asset', arguments: { prompt: 'a wooden treasure chest', seed: 7, formats: ['spz'] } },
      undefined,
      {
        onprogress: (p) => progress.push(p),
      },
    )) as CallToolResult;
    expect(result.isError).toBeFalsy();
    const summary = result.structuredContent as { job_id: string; seed: number; gaussians: number };
    expect(summary.seed).toBe(7);
    expect(summary.gaussians).toBe(8000);

    // Progress: increasing, and naming each stage of the job as it started and ended.
    expect(progress.map((p) => p.progress)).toEqual(progress.map((_, i) => i + 1));
    const messages = progress.map((p) => p.message);
    for (const stage of ['text_to_image', 'matting', 'image_to_3d', 'validate']) {
      expect(messages).toContain(`${stage} started (attempt 1)`);
      expect(messages.some((m) => m?.startsWith(`${stage} done in`))).toBe(true);
    }
    expect(messages.at(-1)).toBe('done');

    const links = linksOf(result);
    expect(links.map((l) => l.uri)).toEqual([`fast3d://jobs/${summary.job_id}/ply`, `fast3d://jobs/${summary.job_id}/spz`]);
    const ply = await readBlob(client, links[0].uri);
    expect(ply.bytes.length).toBe(links[0].size);
    expect(servablePlyViolation(ply.bytes)).toBeNull();
    expect(decodePly(ply.bytes).count).toBe(8000);

    const [front] = imagesOf(result);
    expect(front.mimeType).toBe('image/png');
    const image = await decodeImage(new Uint8Array(Buffer.from(front.data, 'base64')), { maxPixels: 1 << 22, minSide: 1 });
    expect([image.width, image.height]).toEqual([384, 384]);
    expect(nonWhiteShare(image.data)).toBeGreaterThan(0.02);

    // The job ran as people's and agents' jobs do, and get_job reads it back.
    expect((await composed.answers.get(summary.job_id))?.priority).toBe('interactive');
    const job = (await call('get_job', { job_id: summary.job_id })).structuredContent as {
      state: string;
      report: { attempts: unknown[] };
      artefacts: { uri: string }[];
    };
    expect(job.state).toBe('done');
    expect(job.report.attempts).toHaveLength(1);
    expect(job.artefacts.map((a) => a.uri)).toEqual(links.map((l) => l.uri));

    // The artefacts are listed as resources and as recent assets.
    const { resources } = await client.listResources();
    expect(resources.map((r) => r.uri)).toEqual(expect.arrayContaining(links.map((l) => l.uri)));
    const recent = await call('list_recent_assets', { limit: 5 });
    expect((recent.structuredContent as { assets: { job_id: string }[] }).assets.map((a) => a.job_id)).toContain(summary.job_id);
  });

  it("render_views returns decodable PNGs from the validator's and the turntable's cameras", async () => {
    const made = await call('generate_3d_asset', { prompt: 'a stone lantern' });
    const jobId = (made.structuredContent as { job_id: string }).job_id;
    const validator = await call('render_views', { job_id: jobId, cameras: 'validator', count: 3, size: 96 });
    expect(validator.isError).toBeFalsy();
    const views = imagesOf(validator);
    expect(views).toHaveLength(3);
    for (const view of views) {
      const image = await decodeImage(new Uint8Array(Buffer.from(view.data, 'base64')), { maxPixels: 1 << 20, minSide: 1 });
      expect([image.width, image.height]).toEqual([96, 96]);
      expect(nonWhiteShare(image.data)).toBeGreaterThan(0.02);
    }
    const turntable = await call('render_views', { uri: `fast3d://jobs/${jobId}/ply`, cameras: 'turntable', count: 2, size: 64 });
    expect(imagesOf(turntable)).toHaveLength(2);
    // Different cameras see the asset differently.
    expect(imagesOf(validator)[0].data).not.toBe(imagesOf(turntable)[0].data);
  });

  it('render_views and check_asset take a PLY as base64 too', async () => {
    const plyBase64 = readFileSync(fixturePath('hamburger.ply')).toString('base64');
    const views = await call('render_views', { ply_base64: plyBase64, count: 1, size: 64 });
    expect(imagesOf(views)).toHaveLength(1);
    const checked = await call('check_asset', { ply_base64: plyBase64 });
    expect(checked.structuredContent).toMatchObject({ ok: true, packer: 'ok' });
  });

  it("check_asset passes a job's PLY and names the broken rule of a truncated one", async () => {
    const made = await call('generate_3d_asset', { prompt: 'a copper kettle' });
    const jobId = (made.structuredContent as { job_id: string }).job_id;
    const good = await call('check_asset', { job_id: jobId });
    expect(good.isError).toBeFalsy();
    expect(good.structuredContent).toMatchObject({ ok: true, packer: 'ok' });
    const { bytes } = await readBlob(client, `fast3d://jobs/${jobId}/ply`);
    const truncated = Buffer.from(bytes.subarray(0, bytes.length - 100)).toString('base64');
    const bad = await call('check_asset', { ply_base64: truncated });
    expect(bad.isError).toBeFalsy();
    const verdict = bad.structuredContent as { ok: boolean; packer: string };
    expect(verdict.ok).toBe(false);
    expect(verdict.packer).toMatch(/body|bytes|size/i);
    expect(textOf(bad)).toMatch(/^FAIL/);
  });

  it("render_views and check_asset take a job's mesh (GLB), by job and artefact or by URI", async () => {
    const made = await call('generate_3d_asset', { prompt: 'a round clay pot', formats: ['glb'] });
    expect(made.isError).toBeFalsy();
    const jobId = (made.structuredContent as { job_id: string }).job_id;
    expect(linksOf(made).map((l) => l.uri)).toContain(`fast3d://jobs/${jobId}/glb`);

    const views = await call('render_views', { job_id: jobId, artefact: 'glb', count: 2, size: 96 });
    expect(views.isError).toBeFalsy();
    expect(textOf(views)).toContain(`job ${jobId}'s glb`);
    for (const view of imagesOf(views)) {
      const image = await decodeImage(new Uint8Array(Buffer.from(view.data, 'base64')), { maxPixels: 1 << 20, minSide: 1 });
      expect(nonWhiteShare(image.data)).toBeGreaterThan(0.05);
    }
    // The mesh, not the job's splats (both round): the same cameras see other pixels.
    const splatViews = await call('render_views', { job_id: jobId, artefact: 'ply', count: 2, size: 96 });
    expect(imagesOf(views)[0].data).not.toBe(imagesOf(splatViews)[0].data);

    for (const args of [{ job_id: jobId, artefact: 'glb' }, { uri: `fast3d://jobs/${jobId}/glb` }]) {
      const checked = await call('check_asset', args);
      expect(checked.isError).toBeFalsy();
      // The fake's sphere: 2 * 24 * 11 triangles, fitted to the unit cube.
      expect(checked.structuredContent).toMatchObject({
        format: 'glb',
        ok: true,
        meshes: 1,
        triangles: 528,
        validator: { errors: 0 },
        violations: [],
      });
      expect(textOf(checked)).toMatch(/^ok: .* passes the Khronos glTF validator and the mesh rules \(1 mesh\(es\), 528 triangles/);
    }
  });

  it("check_asset and render_views take a job's LOD, by artefact or by URI, as a GLB of its own", async () => {
    const made = await call('generate_3d_asset', { prompt: 'a round clay pot', formats: ['glb'], lods: [1, 0.5] });
    expect(made.isError).toBeFalsy();
    const jobId = (made.structuredContent as { job_id: string }).job_id;
    expect(linksOf(made).map((l) => l.uri)).toContain(`fast3d://jobs/${jobId}/glb_lod1`);
    for (const args of [{ job_id: jobId, artefact: 'glb_lod1' }, { uri: `fast3d://jobs/${jobId}/glb_lod1` }]) {
      const checked = await call('check_asset', args);
      expect(checked.isError).toBeFalsy();
      const verdict = checked.structuredContent as { format: string; ok: boolean; triangles: number };
      expect([verdict.format, verdict.ok]).toEqual(['glb', true]);
      // Half the top level's 528 triangles, as simplification reaches it.
      expect(verdict.triangles).toBeGreaterThan(200);
      expect(verdict.triangles).toBeLessThanOrEqual(264);
    }
    const views = await call('render_views', { uri: `fast3d://jobs/${jobId}/glb_lod1`, count: 1, size: 64 });
    expect(views.isError).toBeFalsy();
    expect(textOf(views)).toContain(`job ${jobId}'s glb_lod1`);
    const spz = await call('check_asset', { uri: `fast3d://jobs/${jobId}/spz` });
    expect(spz.isError).toBe(true);
  });

  it('check_asset names the broken rule of a given GLB outside the unit cube; render_views still shows it', async () => {
    const big = Buffer.from(await encodeGlb(sphereMesh(16, 8, 1, true))).toString('base64');
    const checked = await call('check_asset', { glb_base64: big });
    expect(checked.isError).toBeFalsy();
    const verdict = checked.structuredContent as { ok: boolean; format: string; violations: string[] };
    expect([verdict.ok, verdict.format]).toEqual([false, 'glb']);
    expect(verdict.violations[0]).toMatch(/^the mesh spans x \[-1, 1\].*outside \[-0\.5, 0\.5\]/);
    expect(textOf(checked)).toMatch(/^FAIL: the given GLB breaks a mesh rule: the mesh spans/);
    expect(imagesOf(await call('render_views', { glb_base64: big, count: 1, size: 64 }))).toHaveLength(1);
  });

  it('a declined prompt is a tool error that says why', async () => {
    const result = await call('generate_3d_asset', { prompt: `a ${HOPELESS} cloud of smoke` });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(/^declined \(job [^)]+\): /);
  });

  it('bad input comes back as tool errors that say what was wrong, and the server goes on serving', async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['generate_3d_asset', {}, /exactly one of "prompt".*"image_base64"/],
      ['generate_3d_asset', { prompt: 'a chair', image_base64: 'iVBORw0KGgo=' }, /exactly one of/],
      ['generate_3d_asset', { prompt: 'a chair', seed: -3 }, /seed/],
      ['generate_3d_asset', { prompt: 'a chair', formats: ['fbx'] }, /formats/],
      [
        'generate_3d_asset',
        { image_base64: Buffer.from('just some words, not an image').toString('base64') },
        /image_base64 is not .*PNG, JPEG or WebP/,
      ],
      // However long, bytes that are no image are not called an over-long text prompt; another format is named.
      [
        'generate_3d_asset',
        { image_base64: Buffer.alloc(3 * 1024 * 1024, 7).toString('base64') },
        /^image_base64 is not a PNG, JPEG or WebP image$/,
      ],
      [
        'generate_3d_asset',
        { image_base64: Buffer.concat([Buffer.from('GIF89a'), Buffer.alloc(64)]).toString('base64') },
        /^image_base64 is a GIF image; only PNG, JPEG or WebP images are accepted$/,
      ],
      ['generate_3d_asset', { prompt: 'a chair', preset: 'no-such-preset' }, /no-such-preset/],
      ['get_job', { job_id: 'job-that-never-was' }, /no job "job-that-never-was"/],
      ['render_views', {}, /exactly one of "job_id", "uri", "ply_base64" and "glb_base64"/],
      [
        'render_views',
        { glb_base64: Buffer.from('ply\nformat binary_little_endian 1.0\n').toString('base64') },
        /glb_base64 is not a GLB this service can render: not a GLB: the file does not start with the magic/,
      ],
      ['check_asset', { uri: 'fast3d://jobs/x/mp4' }, /neither a PLY nor a GLB/],
      ['render_views', { uri: 'https://example.invalid/x.ply' }, /not an artefact URI/],
      ['render_views', { ply_base64: '!!!not base64!!!' }, /not base64/],
      ['render_views', { job_id: 'x', count: 99 }, /count/],
      ['check_asset', { job_id: 'job-that-never-was' }, /no job/],
      ['no_such_tool', {}, /no_such_tool/],
    ];
    for (const [name, args, message] of cases) {
      const result = await call(name, args);
      expect({ name, args, isError: result.isError }).toEqual({ name, args, isError: true });
      expect(textOf(result)).toMatch(message);
    }
    expect((await fetch(`${served.url}/ping`)).status).toBe(200);
    expect((await client.listTools()).tools).toHaveLength(5);
  });

  it("answers what it refuses in a few hundred characters, and counts a body's keys before parsing it", async () => {
    const long = await call('get_job', { job_id: 'j'.repeat(100_000) });
    expect(long.isError).toBe(true);
    expect(textOf(long)).toMatch(/^no job "j{80}"\.\.\. \(100000 characters\) \(unknown, or finished long enough ago to be forgotten\)$/);

    const keys = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`key${i}`, 1]));
    const raw = await fetch(`${served.url}/mcp`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', Authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: keys }),
    });
    expect(raw.status).toBe(400);
    expect(((await raw.json()) as { error: string }).error).toBe('JSON body has more than 4096 keys and array items');
    expect((await client.listTools()).tools).toHaveLength(5);
  });

  it('answers a request with missing params -32602 in one line, and DELETE (no sessions to end) 405 with Allow', async () => {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', Authorization: `Bearer ${TOKEN}` };
    for (const method of ['initialize', 'tools/call', 'resources/read']) {
      const res = await fetch(`${served.url}/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method }) });
      expect(res.status, method).toBe(200);
      const data = (await res.text()).split('\n').find((line) => line.startsWith('data: '))!;
      const { error } = JSON.parse(data.slice(6)) as { error: { code: number; message: string } };
      expect(error.code, method).toBe(-32602);
      expect(error.message, method).toBe(`invalid params of ${method}: params: Invalid input: expected object, received undefined`);
    }

    const deleted = await fetch(`${served.url}/mcp`, { method: 'DELETE', headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(deleted.status).toBe(405);
    expect(deleted.headers.get('allow')).toBe('GET, POST');
    expect(((await deleted.json()) as { error: string }).error).toMatch(/stateless and keeps no sessions/);
    expect((await client.listTools()).tools).toHaveLength(5);
  });

  it('a client that goes away mid-call cancels its job', async () => {
    fakeOptions.textToImageMs = 10_000;
    try {
      const leaving = await httpClient(served.url, TOKEN);
      const pending = leaving
        .callTool({ name: 'generate_3d_asset', arguments: { prompt: 'a slow silver bell' } })
        .catch((err: Error) => err);
      const running = async () => (await composed.answers.list()).find((j) => j.title === 'a slow silver bell');
      await until(async () => (await running())?.state === 'running');
      await leaving.close();
      await until(async () => (await running())?.state === 'cancelled');
      expect(await pending).toBeInstanceOf(Error);
    } finally {
      fakeOptions.textToImageMs = 0;
    }
  });

  it('refuses clients without the bearer token, or with a wrong one', async () => {
    await expect(httpClient(served.url)).rejects.toMatchObject({ code: 401, message: expect.stringMatching(/Authorization: Bearer/) });
    await expect(httpClient(served.url, 'not-the-token')).rejects.toMatchObject({
      code: 401,
      message: expect.stringMatching(/invalid bearer token/),
    });
    const raw = await fetch(`${served.url}/mcp`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(raw.status).toBe(401);
    expect(((await raw.json()) as { error: string }).error).toMatch(/Authorization: Bearer/);
  });
});

/** Share of pixels that are not the white background. */
function nonWhiteShare(rgba: Uint8ClampedArray): number {
  let count = 0;
  for (let i = 0; i < rgba.length; i += 4) if (rgba[i] < 240 || rgba[i + 1] < 240 || rgba[i + 2] < 240) count++;
  return count / (rgba.length / 4);
}
