/**
 * The OpenAPI document says what the job API really answers: real responses of every operation, for every status
 * the service can be made to give, checked against the document it publishes at /api/v1/openapi.json ($refs
 * resolved, additionalProperties as the document states): the status and its headers declared, the content type
 * one the response declares, JSON bodies and each SSE data line valid against their schemas, every operation
 * named and secured as the service secures it. Auth is on, as a generated client would meet it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openApiDocument } from '../src/api/openapi.js';
import { type Composed, composeService } from '../src/compose.js';
import { encodePng } from '../src/image/codec.js';
import { createImage } from '../src/image/rgba.js';
import type { Stages } from '../src/pipelines/stages.js';
import { fakeStages, HOPELESS, type Served, serveApp, sleep, testConfig, until } from './helpers/fake-stages.js';
import { startRedis, type TestRedis } from './helpers/redis.js';
import { startTestServer, type TestServer } from './helpers/server.js';

type Json = Record<string, any>;

const TOKEN = 'open-sesame';
const AUTH = { Authorization: `Bearer ${TOKEN}` };
const BASE = '/api/v1';
/** Where the published document is added to the validator, so its own `#/components/...` refs resolve in it. */
const DOCUMENT_ID = 'https://fast3d.test/openapi.json';
/** Headers whose presence a client acts on: when sent, the response must declare them. */
const MEANINGFUL_HEADERS = [
  'location',
  'retry-after',
  'idempotent-replayed',
  'www-authenticate',
  'x-fast3d-triangles',
  'content-disposition',
];
const METHODS = ['get', 'post', 'delete', 'put', 'patch'] as const;

/** Prompts with these words make the fake text-to-image fail, or wait until cancelled. */
const BROKEN = 'explode';
const SLOW = 'slowly';

/** The fake stages with meshes, a text-to-image that throws for BROKEN prompts and waits for SLOW ones. */
function stages(): Partial<Stages> {
  const base = fakeStages({ gaussians: 9000, mesh: true }).stages;
  const textToImage = base.textToImage!;
  return {
    ...base,
    textToImage: {
      ...textToImage,
      async generate(prompt, seed, ctx) {
        if (prompt.includes(BROKEN)) throw new Error('the text-to-image backend broke');
        if (prompt.includes(SLOW)) await sleep(60_000, ctx.signal);
        return textToImage.generate(prompt, seed, ctx);
      },
    },
  };
}

/** The published document as a validator of responses, counting which declared answers were seen. */
class Published {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly compiled = new Map<string, ValidateFunction>();
  readonly seen = new Set<string>();

  constructor(readonly doc: Json) {
    this.ajv.addFormat('date-time', (s: string) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(s) && !Number.isNaN(Date.parse(s)));
    this.ajv.addFormat('binary', true);
    this.ajv.addSchema({ ...doc, $id: DOCUMENT_ID });
  }

  operations(): [string, string, Json][] {
    return Object.entries(this.doc.paths as Json).flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((m): [string, string, Json] => [path, m, item[m]]),
    );
  }

  /** The declared response of an operation for a status; fails when there is none. */
  response(path: string, method: string, status: number): Json {
    const operation = this.doc.paths[path]?.[method];
    expect(operation, `${method.toUpperCase()} ${path} is not in the document`).toBeDefined();
    const declared = operation.responses[String(status)];
    expect(declared, `${method.toUpperCase()} ${path} answered ${status}, which the document does not declare`).toBeDefined();
    this.seen.add(`${method} ${path} ${status}`);
    return declared;
  }

  /** Validation errors of `value` against a schema of the document (refs made absolute). */
  errors(schema: Json, value: unknown): string[] {
    const key = JSON.stringify(schema);
    const validate = this.compiled.get(key) ?? this.ajv.compile(absolute(schema) as object);
    this.compiled.set(key, validate);
    if (validate(value)) return [];
    return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
  }

  /**
   * Checks a real response against `method path` (a path of the document): status, headers, content type and,
   * for JSON, its body. Returns the body (parsed JSON, or the bytes).
   */
  async check(res: Response, path: string, method: string): Promise<{ json?: Json; bytes?: Uint8Array; type: string }> {
    const label = `${method.toUpperCase()} ${path} -> ${res.status}`;
    const declared = this.response(path, method, res.status);
    for (const [name, header] of Object.entries((declared.headers ?? {}) as Json)) {
      if (header.required) expect(res.headers.get(name), `${label}: required header ${name}`).not.toBeNull();
      const value = res.headers.get(name);
      if (value !== null && header.schema) {
        const typed = header.schema.type === 'integer' ? Number(value) : value;
        expect(this.errors(header.schema, typed), `${label}: header ${name}: ${value}`).toEqual([]);
      }
    }
    const names = Object.keys(declared.headers ?? {}).map((n) => n.toLowerCase());
    for (const name of MEANINGFUL_HEADERS)
      if (res.headers.has(name)) expect(names, `${label} sends ${name}, which the document does not declare`).toContain(name);
    const type = (res.headers.get('content-type') ?? '').split(';')[0].trim();
    const content = (declared.content ?? {}) as Json;
    expect(Object.keys(content), `${label}: content type ${type}`).toContain(type);
    this.seen.add(`${method} ${path} ${res.status} ${type}`);
    if (type === 'application/json') {
      const json = (await res.json()) as Json;
      expect(this.errors(content[type].schema, json), `${label}: ${JSON.stringify(json).slice(0, 300)}`).toEqual([]);
      return { json, type };
    }
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.length, label).toBeGreaterThan(0);
    return { bytes, type };
  }

  /** Reads an event stream to its end (or `stopAfter` events), each data line checked against the declared schema. */
  async events(res: Response, stopAfter = Infinity): Promise<Json[]> {
    const path = '/jobs/{id}/events';
    const declared = this.response(path, 'get', res.status);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    this.seen.add(`get ${path} 200 text/event-stream`);
    const schema = declared.content['text/event-stream'].schema;
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    const events: Json[] = [];
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buffer += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const lines = block.split('\n').filter((l) => l && !l.startsWith(':'));
        const field = (name: string) =>
          lines
            .find((l) => l.startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim();
        const data = field('data');
        if (data === undefined) continue;
        const event = JSON.parse(data) as Json;
        expect(this.errors(schema, event), `event ${data.slice(0, 300)}`).toEqual([]);
        expect(field('event'), data).toBe(event.type);
        events.push(event);
        if (events.length >= stopAfter) {
          await reader.cancel();
          return events;
        }
      }
    }
  }
}

/** A schema of the document with its `#/...` refs pointing into the document as added to the validator. */
function absolute(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(absolute);
  if (!schema || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema).map(([k, v]) => [
      k,
      k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `${DOCUMENT_ID}${v}` : absolute(v),
    ]),
  );
}

interface Target {
  url: string;
}

const call = (target: Target, path: string, init: RequestInit = {}) =>
  fetch(`${target.url}${BASE}${path}`, { ...init, headers: { ...AUTH, ...(init.headers as Record<string, string>) } });
const postJob = (target: Target, body: unknown, headers: Record<string, string> = {}) =>
  call(target, '/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
const jobOf = async (target: Target, id: string) => (await (await call(target, `/jobs/${id}`)).json()) as Json;
const ended = async (target: Target, id: string) => {
  await until(async () => !['queued', 'running'].includes((await jobOf(target, id)).state), 30_000);
};
/** A job's view, checked. */
const viewChecked = async (published: Published, target: Target, id: string) =>
  (await published.check(await call(target, `/jobs/${encodeURIComponent(id)}`), '/jobs/{id}', 'get')).json!;
/** The document a node publishes, checked as the first of its answers. */
async function publishedBy(target: Target): Promise<Published> {
  const res = await fetch(`${target.url}${BASE}/openapi.json`);
  const published = new Published((await res.clone().json()) as Json);
  await published.check(res, '/openapi.json', 'get');
  return published;
}

describe('the published OpenAPI document against real answers (auth on)', () => {
  let server: TestServer;
  let forgetful: TestServer;
  let published: Published;

  const checkedJob = (target: Target, id: string) => viewChecked(published, target, id);
  const created = async (res: Response) => (await published.check(res, '/jobs', 'post')).json!;

  beforeAll(async () => {
    const auth = { enabled: true, token: TOKEN, token_env: '' };
    server = await startTestServer(
      {
        auth,
        // A small limit: a body over it is refused before much of it is sent.
        server: { body_limit_mb: 0.05 },
        // One job at a time, one waiting: a second job queues, a third is refused.
        runtime: { pipeline_concurrency: 1, interactive_queue_length: 1, retry_after_s: 3 },
        // The budget drops some of the fake's 9000 Gaussians: attempts say how many.
        pipeline: { retries: 0, max_gaussians: 8000 },
        render: { frames: 4, fps: 4, video_res: 64 },
      },
      stages(),
    );
    // Keeps one finished job, and none of their bytes: a replayed key's job is forgotten, an artefact no longer held.
    forgetful = await startTestServer({ auth, jobs: { keep: 1, memory_mb: 0 } }, stages());
    published = await publishedBy(server);
  });
  afterAll(async () => {
    await server?.close();
    await forgetful?.close();
  });

  it('names every operation, and secures each as the service does: the bearer scheme on all but the document', async () => {
    const ids = published.operations().map(([, , operation]) => operation.operationId);
    expect(
      ids.every((id) => typeof id === 'string' && /^[A-Za-z][A-Za-z0-9]*$/.test(id)),
      ids.join(),
    ).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(published.doc.components.securitySchemes.bearer).toEqual({ type: 'http', scheme: 'bearer' });
    for (const [path, method, operation] of published.operations()) {
      const open = path === '/openapi.json';
      expect(operation.security, `${method} ${path}`).toEqual(open ? [] : [{ bearer: [] }]);
      // What the document says, the service does: without the token, 401 (declared); with another scheme, 400.
      const url = `${server.url}${BASE}${path.replace('{id}', 'no-such-job').replace('{name}', 'spz')}`;
      const bare = await fetch(url, { method: method.toUpperCase() });
      if (open) expect(bare.status).toBe(200);
      else {
        expect(bare.status, `${method} ${path}`).toBe(401);
        await published.check(bare, path, method);
        const basic = await fetch(url, { method: method.toUpperCase(), headers: { Authorization: 'Basic b3BlbjpzZXNhbWU=' } });
        expect(basic.status, `${method} ${path}`).toBe(400);
        await published.check(basic, path, method);
      }
    }
  });

  it('a done job with every kind of artefact and a draft: its view, list, events, artefacts and pictures', async () => {
    const kinds = ['ply', 'spz', 'glb', 'mp4', 'views', 'obj', 'glb_splat'];
    const { id } = await created(
      await postJob(server, { prompt: 'a red chair', seed: 5, outputs: kinds, lods: [1, 0.5], faces: 500, progressive: true }),
    );
    await ended(server, id);
    const job = await checkedJob(server, id);
    expect(job.state).toBe('done');
    expect(job.preset?.name).toBe('balanced');
    expect(job.report.preset.name).toBe('balanced');
    expect(job.report.attempts[0].dropped).toBe(1000);
    const names = job.artefacts.map((a: Json) => a.name);
    expect(names).toEqual(expect.arrayContaining([...kinds, 'glb_lod1', 'draft_spz', 'draft_ply', 'draft_glb']));
    expect(job.artefacts.every((a: Json) => typeof a.expiresAt === 'string')).toBe(true);
    // The draft's own job, readable by id: no internal field leaks.
    const draft = await checkedJob(server, `${id}.draft`);
    expect(draft.preset.name).toBe('realtime');

    const list = await published.check(await call(server, '/jobs?limit=100'), '/jobs', 'get');
    expect(list.json!.jobs.map((j: Json) => j.id)).toContain(id);

    // Each download has its kind's declared content type, the one its view names.
    for (const artefact of job.artefacts) {
      const res = await call(server, `/jobs/${id}/artifacts/${artefact.name}`);
      expect(res.status, artefact.name).toBe(200);
      const { type } = await published.check(res, '/jobs/{id}/artifacts/{name}', 'get');
      expect(type, artefact.name).toBe(artefact.contentType);
    }
    for (const name of ['image', 'matte']) {
      const res = await call(server, `/jobs/${id}/intermediates/${name}`);
      expect(res.status, name).toBe(200);
      await published.check(res, '/jobs/{id}/intermediates/{name}', 'get');
    }

    const events = await published.events(await call(server, `/jobs/${id}/events`));
    const types = new Set(events.map((e) => e.type));
    for (const type of ['queued', 'running', 'stage', 'intermediate', 'artefact', 'end']) expect(types, type).toContain(type);
    expect(events.some((e) => e.type === 'artefact' && e.draft === true)).toBe(true);
    expect(events.some((e) => e.type === 'artefact' && typeof e.triangles === 'number')).toBe(true);
    const rest = await published.events(await call(server, `/jobs/${id}/events`, { headers: { 'Last-Event-ID': '2' } }));
    expect(rest).toEqual(events.slice(3));
  });

  it('declined, failed and multipart jobs', async () => {
    const declined = await created(await postJob(server, { prompt: `a ${HOPELESS} chair`, outputs: ['spz'] }));
    const broken = await created(await postJob(server, { prompt: `an ${BROKEN} chair`, outputs: ['spz'] }));
    const image = createImage(64, 64);
    image.data.fill(255);
    for (let y = 16; y < 48; y++) for (let x = 16; x < 48; x++) image.data.set([200, 30, 30, 255], (y * 64 + x) * 4);
    const form = new FormData();
    form.append('image', new Blob([(await encodePng(image)) as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'object.png');
    form.append('outputs', 'spz,glb');
    form.append('group', 'pair-1');
    const multipart = await created(await call(server, '/jobs', { method: 'POST', body: form }));
    for (const [{ id }, state] of [
      [declined, 'declined'],
      [broken, 'failed'],
      [multipart, 'done'],
    ] as const) {
      await ended(server, id);
      expect((await checkedJob(server, id)).state).toBe(state);
      const events = await published.events(await call(server, `/jobs/${id}/events`));
      expect(events.at(-1)).toMatchObject({ type: 'end', state });
    }
  });

  it('a job waiting in line says where it stands, a full line is refused, and cancelled jobs end so', async () => {
    const running = await created(await postJob(server, { prompt: `a chair made ${SLOW}`, outputs: ['spz'] }));
    await until(async () => (await jobOf(server, running.id)).state === 'running');
    const waiting = await created(await postJob(server, { prompt: 'a chair that waits', outputs: ['spz'] }));
    const queued = await checkedJob(server, waiting.id);
    expect([queued.state, queued.queuePosition]).toEqual(['queued', 1]);
    const refused = await postJob(server, { prompt: 'one too many', outputs: ['spz'] });
    expect(refused.status).toBe(503);
    await published.check(refused, '/jobs', 'post');
    const list = await published.check(await call(server, '/jobs'), '/jobs', 'get');
    expect(list.json!.jobs.slice(0, 2).map((j: Json) => j.state)).toEqual(['queued', 'running']);
    const head = await published.events(await call(server, `/jobs/${waiting.id}/events`), 2);
    expect(head.map((e) => e.type)).toEqual(['queued', 'position']);
    const live = await published.events(await call(server, `/jobs/${running.id}/events`), 3);
    expect(live.map((e) => e.type)).toEqual(['queued', 'running', 'stage']);

    for (const job of [waiting, running]) {
      const cancel = await call(server, `/jobs/${job.id}`, { method: 'DELETE' });
      expect(cancel.status).toBe(202);
      expect((await published.check(cancel, '/jobs/{id}', 'delete')).json!.state).toBe('cancelling');
    }
    for (const job of [waiting, running]) {
      await ended(server, job.id);
      expect((await checkedJob(server, job.id)).state).toBe('cancelled');
      const again = await call(server, `/jobs/${job.id}`, { method: 'DELETE' });
      expect(again.status).toBe(409);
      await published.check(again, '/jobs/{id}', 'delete');
    }
  });

  it('Idempotency-Key: a replay says so, another body is a conflict, a bad key is refused', async () => {
    const key = { 'Idempotency-Key': 'order-77' };
    const first = await postJob(server, { prompt: 'a kept promise', outputs: ['spz'] }, key);
    expect(first.status).toBe(202);
    const { id } = await created(first);
    const replay = await postJob(server, { prompt: 'a kept promise', outputs: ['spz'] }, key);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await created(replay)).id).toBe(id);
    const conflict = await postJob(server, { prompt: 'another promise', outputs: ['spz'] }, key);
    expect(conflict.status).toBe(409);
    await published.check(conflict, '/jobs', 'post');
    const bad = await postJob(server, { prompt: 'x' }, { 'Idempotency-Key': 'two words' });
    expect(bad.status).toBe(400);
    await published.check(bad, '/jobs', 'post');
    await ended(server, id);
  });

  it('every refusal is a declared error', async () => {
    const { id } = await created(await postJob(server, { prompt: 'a lamp', outputs: ['spz'] }));
    await ended(server, id);
    const cases: [string, string, string, RequestInit, number][] = [
      ['/jobs', 'post', '/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":' }, 400],
      [
        '/jobs',
        'post',
        '/jobs',
        { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":"x","colour":1}' },
        400,
      ],
      [
        '/jobs',
        'post',
        '/jobs',
        { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":"x","preset":"nope"}' },
        400,
      ],
      [
        '/jobs',
        'post',
        '/jobs',
        { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":"x","webhook":"http://127.0.0.1:9/hook"}' },
        400,
      ],
      [
        '/jobs',
        'post',
        '/jobs',
        { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ prompt: 'x'.repeat(60_000) }) },
        413,
      ],
      ['/jobs', 'post', '/jobs', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'a chair' }, 415],
      ['/jobs', 'get', '/jobs?limit=0', {}, 400],
      ['/jobs/{id}', 'get', '/jobs/nope', {}, 404],
      ['/jobs/{id}', 'delete', '/jobs/nope', { method: 'DELETE' }, 404],
      ['/jobs/{id}/events', 'get', '/jobs/nope/events', {}, 404],
      ['/jobs/{id}/events', 'get', `/jobs/${id}/events`, { headers: { 'Last-Event-ID': '0x2' } }, 400],
      ['/jobs/{id}/events', 'get', `/jobs/${id}/events?after=-3`, {}, 400],
      ['/jobs/{id}/artifacts/{name}', 'get', '/jobs/nope/artifacts/spz', {}, 404],
      ['/jobs/{id}/artifacts/{name}', 'get', `/jobs/${id}/artifacts/ply`, {}, 404],
      ['/jobs/{id}/artifacts/{name}', 'get', `/jobs/${id}/artifacts/fbx`, {}, 404],
      ['/jobs/{id}/intermediates/{name}', 'get', '/jobs/nope/intermediates/matte', {}, 404],
      ['/jobs/{id}/intermediates/{name}', 'get', `/jobs/${id}/intermediates/cloud`, {}, 404],
    ];
    for (const [path, method, target, init, status] of cases) {
      const res = await call(server, target, init);
      expect(res.status, `${method} ${target}`).toBe(status);
      await published.check(res, path, method);
    }
    const presets = await published.check(await call(server, '/presets'), '/presets', 'get');
    expect(presets.json!.default).toBe('balanced');
  });

  it("a forgotten job's key and an artefact no longer held are declared errors", async () => {
    const key = { 'Idempotency-Key': 'forgotten-1' };
    const first = await created(await postJob(forgetful, { prompt: 'a first chair', outputs: ['spz'] }, key));
    await ended(forgetful, first.id);
    const gone = await call(forgetful, `/jobs/${first.id}/artifacts/spz`);
    expect(gone.status).toBe(410);
    await published.check(gone, '/jobs/{id}/artifacts/{name}', 'get');
    // A second finished job pushes the first out (jobs.keep 1): its key names a job no longer known.
    const second = await created(await postJob(forgetful, { prompt: 'a second chair', outputs: ['spz'] }));
    await ended(forgetful, second.id);
    await until(async () => (await call(forgetful, `/jobs/${first.id}`)).status === 404);
    const replay = await postJob(forgetful, { prompt: 'a first chair', outputs: ['spz'] }, key);
    expect(replay.status).toBe(404);
    await published.check(replay, '/jobs', 'post');
  });

  it('every answer the document declares was met, each artefact content type among them', () => {
    const declared = published
      .operations()
      .flatMap(([path, method, operation]) =>
        Object.entries(operation.responses as Json).flatMap(([status, response]) => [
          `${method} ${path} ${status}`,
          ...Object.keys(response.content ?? {}).map((type) => `${method} ${path} ${status} ${type}`),
        ]),
      );
    expect(declared.filter((answer) => !published.seen.has(answer))).toEqual([]);
  });

  it('declares the form fields as the JSON fields', () => {
    const post = published.doc.paths['/jobs'].post.requestBody.content;
    expect(Object.keys(post['multipart/form-data'].schema.properties)).toEqual(
      Object.keys(published.doc.components.schemas.JobRequest.properties),
    );
  });
});

describe('the published OpenAPI document against a node of a cluster (queue.backend bullmq)', () => {
  let redis: TestRedis;
  let node: Composed;
  let served: Served;
  let published: Published;
  const store = mkdtempSync(join(tmpdir(), 'fast3d-openapi-store-'));

  beforeAll(async () => {
    redis = await startRedis();
    const config = testConfig({
      auth: { enabled: true, token: TOKEN, token_env: '' },
      queue: { backend: 'bullmq', redis_url: redis.url, name: `oas${randomUUID().slice(0, 8)}`, node: 'node-a' },
      store: { backend: 'disk', directory: store },
      runtime: { pipeline_concurrency: 1 },
      pipeline: { retries: 0 },
    });
    node = await composeService(config, { stages: stages() });
    await node.service.start();
    served = await serveApp(node.app);
    published = await publishedBy(served);
  });
  afterAll(async () => {
    await served?.close();
    // As a node stops (main.ts): the service, its pools, its webhooks, then its Redis connections and store.
    await node?.service.close();
    await node?.renderPool.close();
    await node?.cpuPool?.close();
    await node?.assetPool.close();
    await node?.webhooks.close();
    await node?.closeCluster?.();
    await redis?.stop();
    rmSync(store, { recursive: true, force: true });
  });

  it("a job's view names the node that ran it; drafts, waiting and cancelled jobs as on one node", async () => {
    const created = async (res: Response) => (await published.check(res, '/jobs', 'post')).json!;
    const { id } = await created(
      await postJob(served, { prompt: 'a cluster chair', outputs: ['spz', 'glb'], faces: 500, progressive: true }),
    );
    await ended(served, id);
    const job = await viewChecked(published, served, id);
    expect([job.state, job.node, job.preset?.name]).toEqual(['done', 'node-a', 'balanced']);
    expect(job.artefacts.some((a: Json) => a.draft)).toBe(true);
    // Drafts, listed by the node that ran the draft, expire with the job as its own files do.
    expect(job.artefacts.map((a: Json) => typeof a.expiresAt)).toEqual(job.artefacts.map(() => 'string'));
    for (const artefact of job.artefacts) {
      const res = await call(served, `/jobs/${id}/artifacts/${artefact.name}`);
      expect(res.status, artefact.name).toBe(200);
      expect((await published.check(res, '/jobs/{id}/artifacts/{name}', 'get')).type).toBe(artefact.contentType);
    }
    const events = await published.events(await call(served, `/jobs/${id}/events`));
    expect(events.at(-1)).toMatchObject({ type: 'end', state: 'done' });

    const running = await created(await postJob(served, { prompt: `a cluster chair made ${SLOW}`, outputs: ['spz'] }));
    await until(async () => (await jobOf(served, running.id)).state === 'running');
    const waiting = await created(await postJob(served, { prompt: 'a cluster chair that waits', outputs: ['spz'] }));
    const queued = await viewChecked(published, served, waiting.id);
    expect([queued.state, queued.queuePosition]).toEqual(['queued', 1]);
    await published.check(await call(served, '/jobs'), '/jobs', 'get');
    expect((await published.events(await call(served, `/jobs/${waiting.id}/events`), 2)).map((e) => e.type)).toEqual([
      'queued',
      'position',
    ]);
    for (const job of [waiting, running]) {
      const cancel = await call(served, `/jobs/${job.id}`, { method: 'DELETE' });
      expect(cancel.status).toBe(202);
      await published.check(cancel, '/jobs/{id}', 'delete');
    }
    for (const job of [waiting, running]) {
      await ended(served, job.id);
      expect((await viewChecked(published, served, job.id)).state).toBe('cancelled');
      await published.events(await call(served, `/jobs/${job.id}/events`));
    }
  });
});

describe('the OpenAPI document with auth off', () => {
  it('names every operation and asks no token of any', () => {
    const doc = openApiDocument(BASE, false) as Json;
    expect(doc.security).toBeUndefined();
    for (const [path, item] of Object.entries(doc.paths as Json))
      for (const method of METHODS.filter((m) => item[m])) {
        const operation = item[method];
        expect(operation.operationId, `${method} ${path}`).toMatch(/^[A-Za-z]+$/);
        expect(operation.security ?? [], `${method} ${path}`).toEqual([]);
        expect(operation.responses['401'], `${method} ${path}`).toBeUndefined();
      }
  });
});
