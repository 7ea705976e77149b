/**
 * Game-ready requests on every surface, through the one builder: faces, texture size, pivot, size, LODs,
 * compression and the SPZ version become each artefact's spec (the preset's mesh knobs as defaults), an
 * impossible combination is a 400 that says why before any work, and every file is checked against the bounds
 * its request asked for, on the generate routes, from the cache and in the job API's downloads. LODs arrive as
 * glb, glb_lod1, ... with their triangles; a progressive job's draft arrives first, marked draft, in the job API
 * and MCP. The preview's fake stages make a small coloured sphere as the mesh.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose, type Composed } from '../src/compose.js';
import { MIN_REQUEST_FACES, TEXTURE_SIDES } from '../src/config/presets.js';
import { buildAnswerRequest, type RequestFields } from '../src/contract/build.js';
import { artefactResponse } from '../src/contract/responses.js';
import { createFormats } from '../src/formats/registry.js';
import { objZipViolation } from '../src/formats/obj-zip.js';
import { MAX_TEXTURE_SIZE, MIN_TEXTURE_SIZE } from '../src/mesh/bake.js';
import { MIN_FACES } from '../src/mesh/game.js';
import { inspectGlb, type MeshPlacement } from '../src/mesh/rules.js';
import { presetsOf } from '../src/pipelines/presets.js';
import type { RenderPool } from '../src/render/index.js';
import { MemoryInputs } from '../src/runtime/inputs.js';
import { spzViolation } from '../src/splat/spz.js';
import { ballCloud } from './helpers/clouds.js';
import { errorOf, fakeStages, type FakeOptions, serveApp, testConfig, until, type Served } from './helpers/fake-stages.js';
import { discImage } from './helpers/images.js';
import { httpClient, readBlob, textOf } from './helpers/mcp.js';
import { sphereMesh } from './helpers/meshes.js';

const RULES = { extent: 1, maxBytes: 200e6 };
type Json = Record<string, any>;

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A GLB's verdict against the bounds a request asked for (none: the unit cube). */
async function violations(bytes: Uint8Array, placement?: MeshPlacement): Promise<string[]> {
  return (await inspectGlb(bytes, { ...RULES, ...(placement && { placement }) })).violations;
}

describe('the request builder with game options', () => {
  const limits = {
    maxPromptChars: 1024,
    maxImagePixels: 40_000_000,
    minImageSide: 16,
    imageFileDelivery: { rotation: [1, 0, 0, 0, 1, 0, 0, 0, 1] as never, onReject: 'best-effort' as const },
  };
  const presets = presetsOf(testConfig({ presets: { game: { pipeline: { glb_faces: 2000, glb_texture_size: 512 } } } }));
  const inputs = new MemoryInputs();
  const build = (fields: Omit<RequestFields, 'priority'>) =>
    buildAnswerRequest({ priority: 'interactive', ...fields }, { limits, presets, inputs });
  const refusal = (fields: Omit<RequestFields, 'priority'>) =>
    build(fields).then(
      () => 'built',
      (err: Error & { status?: number }) => `${err.status}: ${err.message}`,
    );

  it("makes each option its artefacts' spec, and leaves out what equals the default, so a default file keeps its bytes", async () => {
    const request = await build({
      prompt: 'a chair',
      outputs: [{ format: 'glb' }, { format: 'obj' }, { format: 'spz' }],
      faces: 5000,
      textureSize: 1024,
      pivot: 'bottom',
      sizeM: 1.8,
      compression: 'meshopt',
      textureFormat: 'webp',
      spzVersion: 4,
    });
    const mesh = { faces: 5000, textureSize: 1024, pivot: 'bottom', sizeM: 1.8 };
    expect(request.wants).toEqual([
      { format: 'glb', mesh: { ...mesh, compression: 'meshopt', textureFormat: 'webp' } },
      // An OBJ has no GLB compression or texture format; it takes its level from the same chain.
      { format: 'obj', mesh },
      { format: 'spz', spzVersion: 4 },
    ]);
    const defaults = await build({
      prompt: 'a chair',
      outputs: [{ format: 'glb' }, { format: 'spz' }],
      pivot: 'center',
      sizeM: 1,
      lods: [1],
      compression: 'none',
      textureFormat: 'png',
      spzVersion: 3,
    });
    expect(defaults.wants).toEqual([{ format: 'glb' }, { format: 'spz' }]);
  });

  it('delivers every level lods lists, in order, where the GLB was asked for, each from the same chain', async () => {
    const request = await build({
      prompt: 'a chair',
      outputs: [{ format: 'spz' }, { format: 'glb' }, { format: 'views' }],
      lods: [1, 0.5, 0.25],
      sizeM: 2,
    });
    const mesh = { sizeM: 2, lods: [1, 0.5, 0.25] };
    expect(request.wants).toEqual([
      { format: 'spz' },
      { format: 'glb', mesh },
      { format: 'glb_lod1', mesh },
      { format: 'glb_lod2', mesh },
      { format: 'views', size: 256 },
    ]);
  });

  it("takes the preset's glb_faces and glb_texture_size unless the request gives its own, and holds faces to its max_faces", async () => {
    expect((await build({ prompt: 'a chair', outputs: [{ format: 'glb' }], preset: 'game' })).wants).toEqual([
      { format: 'glb', mesh: { faces: 2000, textureSize: 512 } },
    ]);
    expect((await build({ prompt: 'a chair', outputs: [{ format: 'glb' }], preset: 'game', faces: 800 })).wants).toEqual([
      { format: 'glb', mesh: { faces: 800, textureSize: 512 } },
    ]);
    // The defaults touch only mesh files: a splat request is the same request as before.
    expect((await build({ prompt: 'a chair', outputs: [{ format: 'ply' }], preset: 'game' })).wants).toEqual([{ format: 'ply' }]);
    // realtime makes lighter meshes than the config: its most is 30,000.
    expect(await refusal({ prompt: 'a chair', outputs: [{ format: 'glb' }], preset: 'realtime', faces: 50_000 })).toBe(
      "400: faces must be a whole number from 500 to 30000 (this preset's most)",
    );
    expect(await refusal({ prompt: 'a chair', outputs: [{ format: 'glb' }], faces: 50_000 })).toBe('built');
  });

  it('refuses, before any image is decoded, what cannot be met, saying why', async () => {
    const glb = [{ format: 'glb' as const }];
    const cases: [Omit<RequestFields, 'priority'>, RegExp][] = [
      [{ prompt: 'x', outputs: [{ format: 'ply' }], faces: 5000 }, /^400: faces applies to mesh artefacts .*asks for ply$/],
      [{ prompt: 'x', outputs: [{ format: 'obj' }], compression: 'draco' }, /^400: compression applies to GLB artefacts/],
      [{ prompt: 'x', outputs: [{ format: 'glb' }], spzVersion: 4 }, /^400: spz_version \(spzVersion\) applies to spz artefacts/],
      [{ prompt: 'x', outputs: [{ format: 'mp4' }], sizeM: 2 }, /^400: size_m \(sizeM\) applies to mesh artefacts .*asks for mp4$/],
      [{ prompt: 'x', outputs: glb, faces: 100 }, /^400: faces must be a whole number from 500/],
      [{ prompt: 'x', outputs: glb, textureSize: 256 }, /^400: texture_size 256 holds the colours of at most 16384 triangles/],
      [{ prompt: 'x', outputs: glb, textureSize: 256, faces: 20_000 }, /^400: texture_size 256 holds/],
      [{ prompt: 'x', outputs: glb, textureSize: 256, faces: 16_000 }, /^built/],
      [{ prompt: 'x', outputs: glb, sizeM: 5000 }, /^400: size_m must be a number of metres from 0.001 to 1000$/],
      [{ prompt: 'x', outputs: glb, pivot: 'top' as never }, /^400: pivot must be one of center, bottom$/],
      [{ prompt: 'x', outputs: glb, lods: [0.5, 0.25] }, /^400: lods must start with 1/],
      [{ prompt: 'x', outputs: glb, lods: [1, 0.5, 0.5] }, /^400: lods must be strictly decreasing/],
      [{ prompt: 'x', outputs: [{ format: 'glb_lod2' }] }, /^400: glb_lod2 is level 3 of the LOD chain: lods must list at least 3 levels/],
      [{ prompt: 'x', outputs: glb, compression: 'zip' as never }, /^400: compression must be one of none, meshopt, draco$/],
      [{ prompt: 'x', outputs: [{ format: 'spz' }], spzVersion: 5 as never }, /^400: spz_version must be one of 3, 4$/],
      // The competitions' contract answers what the judge reads, as it is: no option at all.
      [
        { image: { bytes: new Uint8Array(8) }, imageFile: true, outputs: glb, faces: 5000 },
        /^400: prompt_image_file requests are the competitions' contract.*: faces is not taken there/,
      ],
    ];
    for (const [fields, message] of cases) expect(await refusal(fields)).toMatch(message);
    expect(inputs.size).toBe(0);
  });

  it('gives a progressive request a draft from the realtime preset (none when it asks for realtime), holding its image twice', async () => {
    const request = await build({
      prompt: 'a chair',
      outputs: [{ format: 'ply' }, { format: 'glb' }, { format: 'mp4' }],
      faces: 5000,
      pivot: 'bottom',
      compression: 'draco',
      progressive: true,
      preset: 'quality',
    });
    // The viewers' files, quick: the draft's GLB stands where the final's will, unsimplified and uncompressed.
    expect(request.draft).toEqual({ preset: 'realtime', wants: [{ format: 'ply' }, { format: 'glb', mesh: { pivot: 'bottom' } }] });
    expect((await build({ prompt: 'a chair', outputs: [{ format: 'mp4' }], progressive: true })).draft).toEqual({
      preset: 'realtime',
      wants: [{ format: 'spz' }],
    });
    expect((await build({ prompt: 'a chair', outputs: [{ format: 'spz' }], progressive: true, preset: 'realtime' })).draft).toBeUndefined();
    const png = new Uint8Array(await discImage({ size: 64, radius: 20 }));
    const image = await build({ image: { bytes: png }, outputs: [{ format: 'spz' }], progressive: true });
    const key = (image.task as { input: string }).input;
    inputs.drop(key);
    expect(inputs.size).toBe(1);
    inputs.drop(key);
    expect(inputs.size).toBe(0);
  });

  it("keeps the config's own bounds equal to the mesh library's", () => {
    expect(MIN_REQUEST_FACES).toBe(MIN_FACES);
    expect(TEXTURE_SIDES).toEqual({ min: MIN_TEXTURE_SIZE, max: MAX_TEXTURE_SIZE });
  });
});

describe("a 200's check reads the bounds its request asked for", () => {
  it('serves a GLB of another size and pivot when given its spec, and refuses it against the unit cube', async () => {
    const formats = createFormats({ pool: {} as RenderPool, mesh: RULES });
    const spec = { format: 'glb' as const, mesh: { sizeM: 2, pivot: 'bottom' as const } };
    const bytes = await formats.glb.encode({ cloud: ballCloud(500), mesh: sphereMesh(24, 12, 0.5, true) }, spec, {
      turntable: {} as never,
    });
    expect((await artefactResponse(formats.glb, bytes, {}, spec)).status).toBe(200);
    await expect(artefactResponse(formats.glb, bytes)).rejects.toMatchObject({ status: 500 });
  });
});

describe('game options over HTTP, MCP and the job API (fake stages with meshes)', () => {
  let served: Served;
  let composed: Composed;
  let client: Client;
  const fakeOptions: FakeOptions = { gaussians: 8000, mesh: true };

  beforeAll(async () => {
    const directory = mkdtempSync(join(tmpdir(), 'fast3d-game-'));
    dirs.push(directory);
    composed = compose(
      testConfig({
        // One job at a time: a progressive job's draft, submitted first, runs first.
        runtime: { pipeline_concurrency: 1 },
        pipeline: { retries: 0 },
        cache: { enabled: true, directory },
      }),
      { stages: fakeStages(fakeOptions).stages },
    );
    await composed.service.start();
    served = await serveApp(composed.app);
    client = await httpClient(served.url);
  });

  afterAll(async () => {
    await client?.close();
    await served?.close();
    await composed?.service.close();
    await composed?.renderPool.close();
  });

  const form = (fields: Record<string, string>, path = '/generate/') =>
    fetch(`${served.url}${path}`, { method: 'POST', body: new URLSearchParams(fields) });
  const postJob = (body: Json) =>
    fetch(`${served.url}/api/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const job = async (id: string): Promise<Json> => (await fetch(`${served.url}/api/v1/jobs/${id}`)).json() as Promise<Json>;
  const ended = async (id: string): Promise<Json> => {
    await until(async () => !['queued', 'running'].includes((await job(id)).state), 20_000);
    return job(id);
  };
  /** A job's events as the SSE stream gives them. */
  const events = async (id: string): Promise<Json[]> => {
    const text = await (await fetch(`${served.url}/api/v1/jobs/${id}/events`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)));
  };

  it('answers /generate/ format=glb with faces, size_m, pivot and compression, checked against those bounds, from the cache too', async () => {
    const fields = {
      prompt: 'a red crate',
      seed: '5',
      format: 'glb',
      faces: '500',
      size_m: '1.8',
      pivot: 'bottom',
      compression: 'meshopt',
    };
    let first: Uint8Array | undefined;
    for (const cache of ['miss', 'hit']) {
      const response = await form(fields);
      expect(response.status, await response.clone().text()).toBe(200);
      expect(response.headers.get('x-fast3d-cache')).toBe(cache);
      const bytes = new Uint8Array(await response.arrayBuffer());
      expect(await violations(bytes, { sizeM: 1.8, pivot: 'bottom' })).toEqual([]);
      expect((await violations(bytes))[0]).toMatch(/^the mesh spans/);
      // The count faces reached, in a header.
      const triangles = Number(response.headers.get('x-fast3d-triangles'));
      expect(triangles).toBeGreaterThan(300);
      expect(triangles).toBeLessThanOrEqual(500);
      if (first) expect(Buffer.from(bytes).equals(Buffer.from(first))).toBe(true);
      first = bytes;
    }
    // Without options, the same job's GLB is the unit cube's, as every default answer.
    const plain = await form({ prompt: 'a red crate', seed: '5', format: 'glb' });
    expect(plain.status).toBe(200);
    expect(await violations(new Uint8Array(await plain.arrayBuffer()))).toEqual([]);
  });

  it('refuses on the generate routes what they cannot answer, naming the field', async () => {
    const image = new FormData();
    image.set('prompt_image_file', new Blob([new Uint8Array(await discImage({ size: 64, radius: 20 }))], { type: 'image/png' }), 'a.png');
    image.set('size_m', '2');
    const cases: [Promise<Response>, RegExp][] = [
      [form({ prompt: 'x', format: 'ply', faces: '5000' }), /^faces applies to mesh artefacts/],
      [form({ prompt: 'x', format: 'glb', lods: '1,0.5' }), /^lods delivers one GLB per level, and a generate route answers one file/],
      [form({ prompt: 'x', format: 'glb', size_m: '1,8' }), /^form field "size_m" must be a decimal number such as 1.8, got "1,8"$/],
      [form({ prompt: 'x', format: 'glb', faces: '1e4' }), /^form field "faces" must be a whole number, got "1e4"$/],
      [form({ prompt: 'x', format: 'glb', texture_size: '100' }), /^texture_size must be a whole number of pixels from 256 to 4096$/],
      [form({ prompt: 'x', format: 'spz', spz_version: '2' }), /^spz_version must be one of 3, 4$/],
      [form({ prompt: 'x', format: 'glb', progressive: 'maybe' }), /^form field "progressive" must be true or false/],
      [fetch(`${served.url}/generate`, { method: 'POST', body: image }), /^prompt_image_file requests are the competitions' contract/],
    ];
    for (const [response, message] of cases) {
      const answered = await response;
      expect(answered.status).toBe(400);
      expect(await errorOf(answered)).toMatch(message);
    }
  });

  it('ignores progressive on the generate routes: the answer is the final file, and no draft job runs', async () => {
    const response = await form({ prompt: 'a blue crate', format: 'spz', spz_version: '4', progressive: 'true' });
    expect(response.status).toBe(200);
    expect(spzViolation(new Uint8Array(await response.arrayBuffer()))).toBeNull();
    const id = response.headers.get('x-request-id')!;
    expect(await composed.answers.get(`${id}.draft`)).toBeNull();
    expect((await composed.answers.get(id))?.artefacts.map((a) => a.name)).toEqual(['spz']);
  });

  it('delivers lods as glb, glb_lod1, glb_lod2 with their triangles, each downloaded at the size and pivot asked for', async () => {
    const created = await postJob({
      prompt: 'a green barrel',
      outputs: ['glb', 'obj'],
      faces: 500,
      lods: [1, 0.5, 0.25],
      sizeM: 2,
      pivot: 'bottom',
    });
    expect(created.status, await created.clone().text()).toBe(202);
    const { id } = (await created.json()) as Json;
    const done = await ended(id);
    expect(done.state).toBe('done');
    expect(done.artefacts.map((a: Json) => a.name)).toEqual(['glb', 'glb_lod1', 'glb_lod2', 'obj']);
    const triangles = done.artefacts.filter((a: Json) => a.name !== 'obj').map((a: Json) => a.triangles);
    expect(triangles[0]).toBeLessThanOrEqual(500);
    expect(triangles[1]).toBeLessThanOrEqual(Math.round(triangles[0] / 2));
    expect(triangles[2]).toBeLessThan(triangles[1]);
    for (const artefact of done.artefacts as Json[]) {
      const response = await fetch(`${served.url}${artefact.url}`);
      expect(response.status, `${artefact.name}: ${await response.clone().text()}`).toBe(200);
      const bytes = new Uint8Array(await response.arrayBuffer());
      if (artefact.name === 'obj') {
        expect(objZipViolation(bytes, { maxBytes: 200e6, maxUnzippedBytes: 800e6 })).toBeNull();
        continue;
      }
      expect(Number(response.headers.get('x-fast3d-triangles'))).toBe(artefact.triangles);
      expect(await violations(bytes, { sizeM: 2, pivot: 'bottom' }), artefact.name).toEqual([]);
    }
    // The stream says the same: each level's triangles in its artefact event.
    const levels = (await events(id)).filter((e) => e.type === 'artefact' && e.name.startsWith('glb'));
    expect(levels.map((e) => e.triangles)).toEqual(triangles);
  });

  it('takes the same names as multipart form fields (lods comma-separated), and refuses what cannot be met with 400', async () => {
    const body = new FormData();
    for (const [k, v] of Object.entries({ prompt: 'a small stool', outputs: 'spz,glb', lods: '1,0.5', sizeM: '0.45', spzVersion: '4' }))
      body.set(k, v);
    const created = await fetch(`${served.url}/api/v1/jobs`, { method: 'POST', body });
    expect(created.status, await created.clone().text()).toBe(202);
    const done = await ended(((await created.json()) as Json).id);
    expect(done.artefacts.map((a: Json) => a.name)).toEqual(['spz', 'glb', 'glb_lod1']);
    const spz = new Uint8Array(await (await fetch(`${served.url}${done.artefacts[0].url}`)).arrayBuffer());
    expect(spz[0]).not.toBe(0x1f); // version 4 is zstd, not gzip
    expect(spzViolation(spz)).toBeNull();

    const cases: [Json, RegExp][] = [
      [{ prompt: 'x', outputs: ['glb'], faces: 100 }, /^invalid job request: faces/],
      [{ prompt: 'x', outputs: ['glb'], faces: 500_000 }, /^faces must be a whole number from 500 to 100000 \(this preset's most\)$/],
      [{ prompt: 'x', outputs: ['glb'], lods: [1, 2] }, /^invalid job request: lods/],
      [{ prompt: 'x', outputs: ['glb'], pivot: 'top' }, /^invalid job request: pivot/],
      [{ prompt: 'x', outputs: ['glb_lod2'] }, /^glb_lod2 is level 3 of the LOD chain/],
      [{ prompt: 'x', textureSize: 1024 }, /^texture_size \(textureSize\) applies to mesh artefacts .*asks for ply, spz, views$/],
    ];
    for (const [request, message] of cases) {
      const response = await postJob(request);
      expect(response.status).toBe(400);
      expect(await errorOf(response)).toMatch(message);
    }
  });

  it('sends a progressive job its draft first, marked draft, then the final; the draft job stays out of lists', async () => {
    const created = await postJob({ prompt: 'a yellow duck', outputs: ['spz', 'glb'], progressive: true, faces: 500 });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as Json;
    const done = await ended(id);
    expect(done.state).toBe('done');
    const artefacts = (await events(id)).filter((e) => e.type === 'artefact');
    expect(artefacts.map((e) => [e.name, e.draft ?? false])).toEqual([
      ['draft_spz', true],
      ['draft_glb', true],
      ['spz', false],
      ['glb', false],
    ]);
    expect(artefacts[0].url).toBe(`/api/v1/jobs/${id}/artifacts/draft_spz`);
    expect(done.artefacts.filter((a: Json) => a.draft).map((a: Json) => a.name)).toEqual(['draft_spz', 'draft_glb']);
    const draft = await fetch(`${served.url}/api/v1/jobs/${id}/artifacts/draft_spz`);
    expect(draft.status).toBe(200);
    expect(draft.headers.get('content-disposition')).toMatch(/-draft\.spz"/);
    expect(spzViolation(new Uint8Array(await draft.arrayBuffer()))).toBeNull();
    // The draft GLB is the realtime preset's mesh as made; the final's, the faces asked for.
    expect(done.artefacts.find((a: Json) => a.name === 'glb').triangles).toBeLessThanOrEqual(500);
    // Made with realtime, readable by its id, and not listed beside the job it drafts for.
    const draftJob = await job(`${id}.draft`);
    expect([draftJob.preset.name, draftJob.state]).toEqual(['realtime', 'done']);
    const listed = ((await (await fetch(`${served.url}/api/v1/jobs?limit=100`)).json()) as Json).jobs.map((j: Json) => j.id);
    expect(listed).toContain(id);
    expect(listed).not.toContain(`${id}.draft`);
  });

  it('makes no draft for a job that asks for realtime itself, and cancels the draft with its job', async () => {
    const quick = await postJob({ prompt: 'a red duck', outputs: ['spz'], progressive: true, preset: 'realtime' });
    const quickId = ((await quick.json()) as Json).id;
    expect((await ended(quickId)).artefacts.map((a: Json) => a.name)).toEqual(['spz']);

    fakeOptions.textToImageMs = 400;
    try {
      const slow = await postJob({ prompt: 'a slow duck', outputs: ['spz'], progressive: true });
      const { id } = (await slow.json()) as Json;
      expect((await fetch(`${served.url}/api/v1/jobs/${id}`, { method: 'DELETE' })).status).toBe(202);
      expect((await ended(id)).state).toBe('cancelled');
      await until(async () => (await job(`${id}.draft`)).state === 'cancelled', 5000);
    } finally {
      fakeOptions.textToImageMs = 0;
    }
  });

  it("MCP takes the same names: LODs listed with their triangles, the draft's URI in a progress notification", async () => {
    const progress: string[] = [];
    const result = (await client.callTool(
      {
        name: 'generate_3d_asset',
        arguments: { prompt: 'a wooden cart', formats: ['glb'], lods: [1, 0.5], faces: 500, pivot: 'bottom', progressive: true },
      },
      undefined,
      { onprogress: (p) => progress.push(p.message ?? '') },
    )) as CallToolResult;
    expect(result.isError, textOf(result)).toBeFalsy();
    const summary = result.structuredContent as { job_id: string; artefacts: Json[] };
    expect(summary.artefacts.map((a) => a.name)).toEqual(['ply', 'glb', 'glb_lod1']);
    const [, top, lod1] = summary.artefacts;
    expect(lod1.triangles).toBeLessThan(top.triangles);
    expect(lod1.uri).toBe(`fast3d://jobs/${summary.job_id}/glb_lod1`);
    const draftUri = `fast3d://jobs/${summary.job_id}/draft_glb`;
    const announced = progress.find((m) => m.startsWith(`draft ready: ${draftUri}`));
    expect(announced, progress.join('\n')).toBeDefined();
    expect(progress.indexOf(announced!)).toBeLessThan(progress.findIndex((m) => m.startsWith('glb ready')));
    const draft = await readBlob(client, draftUri);
    expect(await violations(draft.bytes, { sizeM: 1, pivot: 'bottom' })).toEqual([]);
    const level = await readBlob(client, lod1.uri);
    expect(await violations(level.bytes, { sizeM: 1, pivot: 'bottom' })).toEqual([]);
    // get_job lists the drafts too, marked.
    const view = (await client.callTool({ name: 'get_job', arguments: { job_id: summary.job_id } })) as CallToolResult;
    const listed = (view.structuredContent as { artefacts: Json[] }).artefacts;
    expect(listed.filter((a) => a.draft).map((a) => a.name)).toEqual(['draft_ply', 'draft_glb']);

    const refused = (await client.callTool({
      name: 'generate_3d_asset',
      arguments: { prompt: 'a cart', formats: ['spz'], textureSize: 1024 },
    })) as CallToolResult;
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toMatch(/^texture_size \(textureSize\) applies to mesh artefacts/);
  });
});
