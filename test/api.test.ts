/**
 * The job API over real HTTP: every route, every 4xx, SSE replay and reconnection, cancellation, busy and
 * not-ready refusals, auth, the OpenAPI document, and the studio's static files.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodePng } from '../src/image/codec.js';
import { createImage } from '../src/image/rgba.js';
import { needsAuth } from '../src/http/auth.js';
import { decodeSpz } from '../src/splat/spz.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { errorOf, fakeStages, HOPELESS, until } from './helpers/fake-stages.js';
import { startTestServer, type TestServer } from './helpers/server.js';

type Json = Record<string, any>;

async function postJob(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/api/v1/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function jobOf(url: string, id: string): Promise<Json> {
  return (await (await fetch(`${url}/api/v1/jobs/${id}`)).json()) as Json;
}

async function ended(url: string, id: string): Promise<Json> {
  let job: Json = {};
  await until(async () => ['done', 'declined', 'failed', 'cancelled'].includes((job = await jobOf(url, id)).state), 15_000);
  return job;
}

interface SseEvent {
  id: string;
  event: string;
  data: Json;
}

/** Reads an SSE stream to its end (or until `stopAfter` events), parsing each block. */
async function readEvents(url: string, headers: Record<string, string> = {}, stopAfter = Infinity): Promise<SseEvent[]> {
  const res = await fetch(url, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return events;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((l) => l && !l.startsWith(':'))
          .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
      );
      if (fields.data === undefined) continue;
      events.push({ id: fields.id, event: fields.event, data: JSON.parse(fields.data) });
      if (events.length >= stopAfter) {
        // Hang up mid-stream, as a dropped connection would.
        await reader.cancel();
        return events;
      }
    }
  }
}

async function objectPng(): Promise<Uint8Array> {
  const image = createImage(64, 64);
  image.data.fill(255);
  for (let y = 16; y < 48; y++) for (let x = 16; x < 48; x++) image.data.set([200, 30, 30, 255], (y * 64 + x) * 4);
  return encodePng(image);
}

describe('job API', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ server: { body_limit_mb: 0.5 } }, fakeStages().stages);
  });
  afterAll(() => server.close());

  it('POST /api/v1/jobs answers 202 with the id and links; the job runs interactive and delivers ply, spz and views by default', async () => {
    const res = await postJob(server.url, { prompt: 'a red chair', seed: 7 });
    expect(res.status).toBe(202);
    const created = (await res.json()) as Json;
    expect(created.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('location')).toBe(created.links.self);
    expect(created.links).toEqual({
      self: `/api/v1/jobs/${created.id}`,
      events: `/api/v1/jobs/${created.id}/events`,
      cancel: `/api/v1/jobs/${created.id}`,
    });

    const job = await ended(server.url, created.id);
    expect(job).toMatchObject({ state: 'done', priority: 'interactive', seed: 7, task: 'text', title: 'a red chair' });
    expect(Object.keys(job.timings.stages)).toEqual(['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate']);
    const checks = job.report.attempts[0].checks;
    expect(checks.length).toBeGreaterThan(0);
    for (const check of checks)
      expect(check).toMatchObject({ name: expect.any(String), value: expect.any(Number), threshold: expect.any(Number), passed: true });
    expect(job.artefacts.map((a: Json) => a.name).sort()).toEqual(['ply', 'spz', 'views']);

    const byName = Object.fromEntries(job.artefacts.map((a: Json) => [a.name, a]));
    const ply = await fetch(`${server.url}${byName.ply.url}`);
    expect(ply.status).toBe(200);
    expect(ply.headers.get('content-type')).toBe('application/octet-stream');
    expect(ply.headers.get('content-disposition')).toMatch(/attachment; filename="fast3d-.*\.ply"/);
    const plyBytes = new Uint8Array(await ply.arrayBuffer());
    expect(servablePlyViolation(plyBytes)).toBeNull();
    const spz = await fetch(`${server.url}${byName.spz.url}`);
    expect(spz.headers.get('content-type')).toBe('application/x-spz');
    expect(decodeSpz(new Uint8Array(await spz.arrayBuffer())).count).toBe(job.report.attempts[0].gaussians);
    const views = await fetch(`${server.url}${byName.views.url}`);
    expect(views.headers.get('content-type')).toBe('image/png');

    const matte = job.intermediates.find((i: Json) => i.name === 'matte');
    const png = await fetch(`${server.url}${matte.url}`);
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect([...new Uint8Array(await png.arrayBuffer()).subarray(1, 4)]).toEqual([0x50, 0x4e, 0x47]);
  });

  it('takes an image as a multipart file part or as a base64 data: URL, and only the outputs asked for', async () => {
    const png = await objectPng();
    const form = new FormData();
    form.append('image', new Blob([png as Uint8Array<ArrayBuffer>], { type: 'image/png' }), 'object.png');
    form.append('outputs', 'spz');
    const multipart = await fetch(`${server.url}/api/v1/jobs`, { method: 'POST', body: form });
    expect(multipart.status).toBe(202);
    const a = await ended(server.url, ((await multipart.json()) as Json).id);
    // Named by its file; its picture is the image it was sent.
    expect(a).toMatchObject({ state: 'done', task: 'image', title: 'object.png', cached: false });
    expect(a.artefacts.map((x: Json) => x.name)).toEqual(['spz']);

    const dataUrl = `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
    const json = await postJob(server.url, { image: dataUrl, outputs: ['ply'], seed: 3 });
    expect(json.status).toBe(202);
    const b = await ended(server.url, ((await json.json()) as Json).id);
    expect(b).toMatchObject({ state: 'done', task: 'image', seed: 3, title: 'image 64×64' });
    expect(b.artefacts.map((x: Json) => x.name)).toEqual(['ply']);
    for (const job of [a, b]) {
      const picture = job.intermediates.find((i: Json) => i.name === 'image');
      expect(picture?.url, job.title).toBe(`/api/v1/jobs/${job.id}/intermediates/image`);
      const bytes = new Uint8Array(await (await fetch(`${server.url}${picture.url}`)).arrayBuffer());
      expect(await sharp(bytes).metadata()).toMatchObject({ format: 'png', width: 64, height: 64 });
    }
  });

  it("shows a large image task's picture at most 512 pixels on a side", async () => {
    const image = createImage(1200, 600);
    image.data.fill(255);
    for (let y = 100; y < 500; y++) for (let x = 300; x < 900; x++) image.data.set([30, 90, 200, 255], (y * 1200 + x) * 4);
    const created = await postJob(server.url, { image: Buffer.from(await encodePng(image)).toString('base64'), outputs: ['spz'] });
    const job = await ended(server.url, ((await created.json()) as Json).id);
    expect(job.title).toBe('image 1200×600');
    const bytes = new Uint8Array(await (await fetch(`${server.url}/api/v1/jobs/${job.id}/intermediates/image`)).arrayBuffer());
    expect(await sharp(bytes).metadata()).toMatchObject({ width: 512, height: 256 });
  });

  it("echoes a group tag, the studio's mark of an A/B pair, and refuses a malformed one", async () => {
    const tagged = ((await (await postJob(server.url, { prompt: 'a pair', outputs: ['spz'], group: 'ab-1:x' })).json()) as Json).id;
    const plain = ((await (await postJob(server.url, { prompt: 'alone', outputs: ['spz'] })).json()) as Json).id;
    expect((await ended(server.url, tagged)).group).toBe('ab-1:x');
    expect((await ended(server.url, plain)).group).toBeNull();
    const form = new FormData();
    form.append('prompt', 'a pair by form');
    form.append('group', 'ab-2');
    const byForm = ((await (await fetch(`${server.url}/api/v1/jobs`, { method: 'POST', body: form })).json()) as Json).id;
    expect((await ended(server.url, byForm)).group).toBe('ab-2');
    for (const group of ['', 'a b', 'x'.repeat(65), 7]) {
      const res = await postJob(server.url, { prompt: 'x', group });
      expect(res.status, String(group)).toBe(400);
      expect(await errorOf(res)).toMatch(/group/);
    }
  });

  it('refuses bad requests with a 4xx JSON error that says what is wrong', async () => {
    const cases: [Promise<Response>, number, RegExp][] = [
      [
        fetch(`${server.url}/api/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'a chair' }),
        415,
        /Content-Type must be/,
      ],
      [
        fetch(`${server.url}/api/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"prompt":' }),
        400,
        /malformed JSON/,
      ],
      [postJob(server.url, { prompt: 'x', seed: -1 }), 400, /seed/],
      [postJob(server.url, { prompt: 'x', outputs: ['fbx'] }), 400, /outputs/],
      [postJob(server.url, { prompt: 'x', colour: 'red' }), 400, /colour/],
      [postJob(server.url, { prompt: 'x', image: 'aGVsbG8=' }), 400, /either "prompt" or "image"/],
      [postJob(server.url, {}), 400, /either "prompt" or "image"/],
      [postJob(server.url, { image: 'aGVsbG8=' }), 400, /not a PNG, JPEG or WebP/],
      [
        postJob(server.url, { prompt: 'x', preset: 'nope' }),
        400,
        /unknown preset "nope"; known presets: realtime, fast, balanced, quality/,
      ],
      [postJob(server.url, { prompt: 'x'.repeat(2000) }), 400, /limit is 1024/],
      [postJob(server.url, { prompt: 'x'.repeat(600_000) }), 413, /larger than/],
      [fetch(`${server.url}/api/v1/jobs`, { method: 'PUT' }), 405, /use GET, POST/],
      [fetch(`${server.url}/api/v1/jobs?limit=0`), 400, /limit/],
      [fetch(`${server.url}/api/v1/jobs/nope`), 404, /no job "nope"/],
      [fetch(`${server.url}/api/v1/jobs/nope`, { method: 'DELETE' }), 404, /no job/],
      [fetch(`${server.url}/api/v1/jobs/nope/events`), 404, /no job/],
      [fetch(`${server.url}/api/v1/jobs/nope/artifacts/ply`), 404, /no job/],
      [fetch(`${server.url}/api/v1/jobs/nope/intermediates/matte`), 404, /no job/],
      [fetch(`${server.url}/api/v1/presets`, { method: 'POST' }), 405, /use GET/],
    ];
    for (const [response, status, message] of cases) {
      const res = await response;
      expect(res.status, message.source).toBe(status);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      expect(await errorOf(res)).toMatch(message);
    }
  });

  it('answers what it refuses in a few hundred characters: a body of unknown keys, a huge key, a huge form field name, a huge path', async () => {
    const keys = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`key${i}`, 1]));
    const form = new FormData();
    form.append('prompt', 'a chair');
    form.append('f'.repeat(300_000), 'x');
    const cases: [Promise<Response>, number, RegExp][] = [
      // Refused on its count, before JSON.parse builds it.
      [postJob(server.url, { prompt: 'x', ...keys }), 400, /^JSON body has more than 64 keys and array items$/],
      [
        postJob(server.url, { prompt: 'x', a: 1, b: 2, c: 3, d: 4 }),
        400,
        /^invalid job request: unknown fields "a", "b", "c" and 1 more; the fields are prompt, image, seed, preset, outputs, videoSize, viewSize, group, webhook, faces, textureSize, pivot, sizeM, lods, compression, textureFormat, spzVersion, progressive$/,
      ],
      [
        postJob(server.url, { prompt: 'x', ['k'.repeat(400_000)]: 1 }),
        400,
        /^invalid job request: unknown field "k{40}"\.\.\. \(400000 characters\); the fields are/,
      ],
      [
        fetch(`${server.url}/api/v1/jobs`, { method: 'POST', body: form }),
        400,
        /^invalid job request: unknown field "f{40}"\.\.\. \(300000 characters\)/,
      ],
      [
        fetch(`${server.url}/api/v1/jobs`, {
          method: 'POST',
          body: new URLSearchParams(Array.from({ length: 5000 }, (_, i): [string, string] => [`f${i}`, 'x'])),
        }),
        400,
        /^form body has more than 32 fields$/,
      ],
      [fetch(`${server.url}/${'p'.repeat(12_000)}`), 404, /^no route for GET \/p+\.\.\. \(\d+ characters\)$/],
    ];
    for (const [response, status, message] of cases) {
      const res = await response;
      const text = await res.text();
      expect(res.status, message.source).toBe(status);
      expect(text.length, message.source).toBeLessThan(500);
      expect((JSON.parse(text) as { error: string }).error, message.source).toMatch(message);
    }
  });

  it('tells a client that sent JSON without its Content-Type which types are taken and how to send JSON', async () => {
    const body = JSON.stringify({ prompt: 'a chair' });
    const post = (headers: Record<string, string>, payload: string | Uint8Array<ArrayBuffer> = body) =>
      fetch(`${server.url}/api/v1/jobs`, { method: 'POST', headers, body: payload });
    const types =
      /^Content-Type must be application\/json \(a JSON job request\) or multipart\/form-data or application\/x-www-form-urlencoded \(its fields as a form\), got (.+); send JSON with "Content-Type: application\/json"$/;
    const cases: [Promise<Response>, RegExp][] = [
      // curl -d's default type: read as a form, the JSON would be one nameless field.
      [
        post({ 'Content-Type': 'application/x-www-form-urlencoded' }),
        /^the body is JSON but its Content-Type is application\/x-www-form-urlencoded \(what curl -d sends unless told otherwise\); send it with "Content-Type: application\/json"$/,
      ],
      [post({ 'Content-Type': 'text/plain' }), types],
      [post({}, new TextEncoder().encode(body)), types],
    ];
    for (const [response, message] of cases) {
      const res = await response;
      expect(res.status, message.source).toBe(415);
      expect(await errorOf(res), message.source).toMatch(message);
    }
  });

  it('refuses unknown artefacts and intermediates of a known job, a second cancel, and a bad Last-Event-ID', async () => {
    const { id } = (await (await postJob(server.url, { prompt: 'a lamp', outputs: ['spz'] })).json()) as Json;
    await ended(server.url, id);
    const cases: [string, RequestInit, number, RegExp][] = [
      [`/api/v1/jobs/${id}/artifacts/ply`, {}, 404, /has no ply artefact; it has spz/],
      [`/api/v1/jobs/${id}/artifacts/fbx`, {}, 404, /no artefact kind "fbx"/],
      [`/api/v1/jobs/${id}/artifacts/draft_spz`, {}, 404, /has no draft_spz artefact; it has spz/],
      [`/api/v1/jobs/${id}/intermediates/cloud`, {}, 404, /image, matte/],
      [`/api/v1/jobs/${id}`, { method: 'DELETE' }, 409, /already ended \(done\)/],
      [`/api/v1/jobs/${id}/events`, { headers: { 'Last-Event-ID': 'x' } }, 400, /Last-Event-ID/],
      // Only decimal integers: what Number() would also read is no id the stream sent.
      ...['0x2', '1e0', '+1', '1.0', '-2', 'Infinity'].map((value): [string, RequestInit, number, RegExp] => [
        `/api/v1/jobs/${id}/events`,
        { headers: { 'Last-Event-ID': value } },
        400,
        /must be an event id from this stream \(a decimal integer from 0\)/,
      ]),
      [`/api/v1/jobs/${id}/events?after=0x1`, {}, 400, /decimal integer/],
      ...['1e2', '0x10', '+5', '5.0', '%205', '', '1e1'].map((value): [string, RequestInit, number, RegExp] => [
        `/api/v1/jobs?limit=${value}`,
        {},
        400,
        /^limit must be a decimal integer from 1 to 100$/,
      ]),
    ];
    for (const [path, init, status, message] of cases) {
      const res = await fetch(`${server.url}${path}`, init);
      expect(res.status, path).toBe(status);
      expect(await errorOf(res)).toMatch(message);
    }
  });

  it('lists recent jobs newest first, and the presets', async () => {
    const first = ((await (await postJob(server.url, { prompt: 'first one', outputs: ['spz'] })).json()) as Json).id;
    await ended(server.url, first);
    const second = ((await (await postJob(server.url, { prompt: 'second one', outputs: ['spz'] })).json()) as Json).id;
    await ended(server.url, second);
    const list = (await (await fetch(`${server.url}/api/v1/jobs?limit=2`)).json()) as Json;
    expect(list.jobs.map((j: Json) => j.id)).toEqual([second, first]);
    expect(list.jobs[0].links.self).toBe(`/api/v1/jobs/${second}`);

    const presets = (await (await fetch(`${server.url}/api/v1/presets`)).json()) as Json;
    expect(presets.presets).toContainEqual({ name: presets.default, default: true });
    expect(presets.presets.filter((p: Json) => p.default)).toHaveLength(1);
  });
});

describe('job API with a result cache', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(
      { cache: { enabled: true, directory: mkdtempSync(join(tmpdir(), 'fast3d-api-cache-')) } },
      fakeStages().stages,
    );
  });
  afterAll(() => server.close());

  it('a cache hit says so and shows the picture and matte the asset was made from', async () => {
    const made = await ended(server.url, ((await (await postJob(server.url, { prompt: 'a cached chair', seed: 4 })).json()) as Json).id);
    expect(made).toMatchObject({ state: 'done', cached: false });
    const hit = await ended(server.url, ((await (await postJob(server.url, { prompt: 'a cached chair', seed: 4 })).json()) as Json).id);
    expect(hit).toMatchObject({ state: 'done', cached: true, timings: { stages: {} } });
    expect(hit.report.attempts).toHaveLength(1);
    expect(hit.intermediates.map((i: Json) => i.name).sort()).toEqual(['image', 'matte']);
    for (const name of ['image', 'matte']) {
      const [before, after] = await Promise.all(
        [made, hit].map(
          async (job) => new Uint8Array(await (await fetch(`${server.url}/api/v1/jobs/${job.id}/intermediates/${name}`)).arrayBuffer()),
        ),
      );
      expect(await sharp(after).raw().toBuffer(), name).toEqual(await sharp(before).raw().toBuffer());
    }
  });

  it('a remembered decline says it came from the cache, with no report rather than "0 attempts"', async () => {
    const prompt = `a ${HOPELESS} case`;
    const first = await ended(server.url, ((await (await postJob(server.url, { prompt, seed: 1 })).json()) as Json).id);
    expect(first).toMatchObject({ state: 'declined', cached: false });
    expect(first.report.attempts.length).toBeGreaterThan(0);
    const again = await ended(server.url, ((await (await postJob(server.url, { prompt, seed: 1 })).json()) as Json).id);
    expect(again).toMatchObject({ state: 'declined', cached: true, report: null, reason: first.reason });
  });
});

describe('job events (SSE)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({}, fakeStages({ imageTo3dMs: 300 }).stages);
  });
  afterAll(() => server.close());

  it('a live client gets every stage start and end in order, the intermediates, the artefacts and a last end event', async () => {
    const { id, links } = (await (await postJob(server.url, { prompt: 'a live chair', outputs: ['spz'] })).json()) as Json;
    const events = await readEvents(`${server.url}${links.events}`);
    expect(events.map((e) => e.id)).toEqual(events.map((_, i) => String(i)));
    const stages = events.filter((e) => e.event === 'stage').map((e) => `${e.data.phase}:${e.data.stage}`);
    expect(stages).toEqual(['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate'].flatMap((s) => [`start:${s}`, `end:${s}`]));
    const pictures = events.filter((e) => e.event === 'intermediate' && e.data.url).map((e) => e.data.name);
    expect(pictures).toEqual(['image', 'matte']);
    expect(events.find((e) => e.event === 'artefact')!.data).toMatchObject({ name: 'spz', url: `/api/v1/jobs/${id}/artifacts/spz` });
    expect(events.at(-1)).toMatchObject({ event: 'end', data: { state: 'done' } });
  });

  it('a client that connects late gets the events so far, then the live ones; one that reconnects gets only the rest', async () => {
    const { links } = (await (await postJob(server.url, { prompt: 'a late chair', outputs: ['spz'] })).json()) as Json;
    // Leave after the first stage started (the job is still running), as a dropped connection would.
    const head = await readEvents(`${server.url}${links.events}`, {}, 3);
    expect(head.map((e) => e.event)).toEqual(['queued', 'running', 'stage']);
    const rest = await readEvents(`${server.url}${links.events}`, { 'Last-Event-ID': head.at(-1)!.id });
    expect(rest[0].id).toBe('3');
    expect(rest.at(-1)!.event).toBe('end');

    // After the end, a new client gets the whole story again, ending with the same end event.
    const replay = await readEvents(`${server.url}${links.events}`);
    expect(replay.map((e) => e.data)).toEqual([...head, ...rest].map((e) => e.data));
  });

  it('DELETE cancels a running job: 202, the events end with "cancelled", and the job says so', async () => {
    const slow = await startTestServer({}, fakeStages({ imageTo3dMs: 30_000 }).stages);
    try {
      const { id, links } = (await (await postJob(slow.url, { prompt: 'a slow chair' })).json()) as Json;
      await until(async () => (await jobOf(slow.url, id)).stage === 'image_to_3d');
      const cancel = await fetch(`${slow.url}${links.cancel}`, { method: 'DELETE' });
      expect(cancel.status).toBe(202);
      expect(((await cancel.json()) as Json).state).toBe('cancelling');
      const events = await readEvents(`${slow.url}${links.events}`);
      expect(events.at(-1)).toMatchObject({ event: 'end', data: { state: 'cancelled' } });
      const job = await jobOf(slow.url, id);
      expect(job.state).toBe('cancelled');
      expect(job.artefacts).toEqual([]);
    } finally {
      await slow.close();
    }
  });
});

describe("the job API and the generate routes' jobs", () => {
  it("lists a miner's /generate_video/ job with no cancel link, and refuses to cancel it (409 saying why); the miner gets its video", async () => {
    const slow = await startTestServer({ render: { frames: 4, fps: 4, video_res: 64 } }, fakeStages({ imageTo3dMs: 1500 }).stages);
    try {
      const video = fetch(`${slow.url}/generate_video/`, {
        method: 'POST',
        body: new URLSearchParams({ prompt: "a miner's chair" }),
        headers: { 'X-Request-Id': 'miner-request-1' },
      });
      let listed: Json | undefined;
      await until(
        async () =>
          (listed = ((await (await fetch(`${slow.url}/api/v1/jobs`)).json()) as Json).jobs.find(
            (j: Json) => j.id === 'miner-request-1',
          )) !== undefined,
      );
      expect(listed).toMatchObject({ priority: 'contract', links: { self: '/api/v1/jobs/miner-request-1', cancel: null } });

      const refused = await fetch(`${slow.url}/api/v1/jobs/miner-request-1`, { method: 'DELETE' });
      expect(refused.status).toBe(409);
      expect(refused.headers.get('content-type')).toMatch(/application\/json/);
      expect(await errorOf(refused)).toMatch(/contract job: it belongs to a request on a generate route.*cannot be cancelled here/);

      const answer = await video;
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe('video/mp4');
      expect((await jobOf(slow.url, 'miner-request-1')).state).toBe('done');
    } finally {
      await slow.close();
    }
  });
});

describe('job API refusals', () => {
  it('answers 503 with Retry-After when the interactive queue is full, and when the service is not ready', async () => {
    const busy = await startTestServer(
      { runtime: { pipeline_concurrency: 1, interactive_queue_length: 0, retry_after_s: 7 } },
      fakeStages({ imageTo3dMs: 30_000 }).stages,
    );
    try {
      const { id } = (await (await postJob(busy.url, { prompt: 'first' })).json()) as Json;
      await until(async () => (await jobOf(busy.url, id)).state === 'running');
      const refused = await postJob(busy.url, { prompt: 'second' });
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(7);
      expect(await errorOf(refused)).toMatch(/interactive queue is full/);
      await fetch(`${busy.url}/api/v1/jobs/${id}`, { method: 'DELETE' });
    } finally {
      await busy.close();
    }

    const stages = fakeStages().stages;
    const notReady = await startTestServer(
      {},
      { ...stages, textToImage: { ...stages.textToImage!, readiness: () => ({ ready: false, detail: 'weights missing' }) } },
    );
    try {
      const res = await postJob(notReady.url, { prompt: 'x' });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).not.toBeNull();
      expect(await errorOf(res)).toMatch(/degraded/);
      // Every 503 says when to come back, the load balancer's probes included.
      for (const path of ['/health', '/ping']) {
        const probe = await fetch(`${notReady.url}${path}`);
        expect(probe.status, path).toBe(503);
        expect(probe.headers.get('retry-after'), path).toBe('10');
      }
    } finally {
      await notReady.close();
    }
  });
});

describe('job API auth, OpenAPI and the studio files', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ auth: { enabled: true, token: 's3cret', token_env: '' } }, fakeStages().stages);
  });
  afterAll(() => server.close());

  it('bearer auth protects the job routes as it protects the generate routes; the page and the document stay open', async () => {
    for (const path of [
      '/api/v1/jobs',
      '/api/v1/jobs/x',
      '/api/v1/jobs/x/events',
      '/api/v1/jobs/x/artifacts/ply',
      '/api/v1/presets',
      '/generate',
    ]) {
      expect(needsAuth(path), path).toBe(true);
    }
    expect((await fetch(`${server.url}/api/v1/jobs`)).status).toBe(401);
    expect((await postJob(server.url, { prompt: 'x' })).status).toBe(401);
    expect((await fetch(`${server.url}/api/v1/presets`, { headers: { Authorization: 'Bearer wrong' } })).status).toBe(401);
    const ok = await postJob(server.url, { prompt: 'an authorised chair', outputs: ['spz'] }, { Authorization: 'Bearer s3cret' });
    expect(ok.status).toBe(202);
    expect((await fetch(`${server.url}/api/v1/jobs`, { headers: { Authorization: 'Bearer s3cret' } })).status).toBe(200);
    expect((await fetch(`${server.url}/api/v1/openapi.json`)).status).toBe(200);
    expect((await fetch(`${server.url}/studio`)).status).toBe(200);
  });

  it('serves an OpenAPI 3.1 document generated from the request schema, with every route', async () => {
    const doc = (await (await fetch(`${server.url}/api/v1/openapi.json`)).json()) as Json;
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/jobs',
      '/jobs/{id}',
      '/jobs/{id}/artifacts/{name}',
      '/jobs/{id}/events',
      '/jobs/{id}/intermediates/{name}',
      '/openapi.json',
      '/presets',
    ]);
    const request = doc.components.schemas.JobRequest;
    expect(Object.keys(request.properties)).toEqual([
      'prompt',
      'image',
      'seed',
      'preset',
      'outputs',
      'videoSize',
      'viewSize',
      'group',
      'webhook',
      ...['faces', 'textureSize', 'pivot', 'sizeM', 'lods', 'compression', 'textureFormat', 'spzVersion', 'progressive'],
    ]);
    expect(request.properties.outputs.items.enum).toEqual([
      ...['ply', 'spz', 'glb', 'mp4', 'views', 'obj', 'glb_splat'],
      ...['glb_lod1', 'glb_lod2', 'glb_lod3', 'glb_lod4', 'glb_lod5', 'glb_lod6', 'glb_lod7'],
    ]);
    // The game options with their ranges and choices, as a client generated from the document sees them.
    expect(request.properties.faces).toMatchObject({ type: 'integer', minimum: 500 });
    expect(request.properties.textureSize).toMatchObject({ type: 'integer', minimum: 256, maximum: 4096 });
    expect(request.properties.pivot.enum).toEqual(['center', 'bottom']);
    expect(request.properties.sizeM).toMatchObject({ type: 'number', minimum: 0.001, maximum: 1000 });
    expect(request.properties.lods).toMatchObject({ type: 'array', maxItems: 8 });
    expect(request.properties.compression.enum).toEqual(['none', 'meshopt', 'draco']);
    expect(request.properties.progressive.type).toBe('boolean');
    expect(doc.components.schemas.Job.properties.artefacts.items).toEqual({ $ref: '#/components/schemas/Artefact' });
    const artefact = doc.components.schemas.Artefact.properties;
    expect(Object.keys(artefact)).toEqual(['name', 'contentType', 'bytes', 'triangles', 'draft', 'expiresAt', 'url']);
    expect(doc.components.schemas.JobEvent.description).toMatch(/draft: true/);
    const artefactEvent = doc.components.schemas.JobEvent.oneOf.find((v: Json) => v.properties.type.const === 'artefact');
    expect(artefactEvent.properties.draft).toMatchObject({ const: true });
    expect(artefactEvent.properties.triangles.type).toBe('number');
    const name = doc.paths['/jobs/{id}/artifacts/{name}'].parameters[1].schema.pattern;
    for (const kind of ['glb', 'glb_lod3', 'obj', 'draft_spz', 'draft_glb']) expect(kind).toMatch(new RegExp(name));
    expect('fbx').not.toMatch(new RegExp(name));
    expect(request.additionalProperties).toBe(false);
    expect(doc.security).toEqual([{ bearer: [] }]);
  });

  it('redirects / to /studio and serves the page, its import map targets from node_modules, and nothing outside them', async () => {
    const root = await fetch(`${server.url}/`, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/studio');
    const html = await (await fetch(`${server.url}/studio`)).text();
    const map = JSON.parse(/<script type="importmap">([\s\S]*?)<\/script>/.exec(html)![1]) as { imports: Record<string, string> };
    for (const target of [
      map.imports.three,
      map.imports['@sparkjsdev/spark'],
      `${map.imports['three/addons/']}controls/OrbitControls.js`,
      '/studio/studio.js',
      '/studio/viewer.js',
      '/studio/studio.css',
    ]) {
      const res = await fetch(`${server.url}${target}`);
      expect(res.status, target).toBe(200);
      expect(res.headers.get('content-type'), target).toMatch(/text\/(javascript|css)/);
    }
    for (const path of [
      '/studio/vendor/three/..%2f..%2fpackage.json',
      '/studio/vendor/three/../../../package.json',
      '/studio/vendor/nope/x.js',
      '/studio/..%2f..%2fpackage.json',
      '/studio/vendor/spark/%E0%A4%A.js',
    ]) {
      const res = await fetch(`${server.url}${path}`);
      // A path that climbs out of the studio lands outside the open paths: with auth on, 401 before anything.
      expect([400, 401, 404], path).toContain(res.status);
      expect(res.status, path).not.toBe(200);
    }
    // Names an object inherits are no packages: 404 JSON, not a 500.
    for (const pkg of ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
      const res = await fetch(`${server.url}/studio/vendor/${pkg}/x.js`);
      expect(res.status, pkg).toBe(404);
      expect(res.headers.get('content-type'), pkg).toMatch(/application\/json/);
      expect(await errorOf(res), pkg).toBe(`no vendored package "${pkg}"`);
    }
  });
});
