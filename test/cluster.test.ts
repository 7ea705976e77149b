/**
 * One service on many machines: service processes (`fast3d serve --role api|worker|all`) that share a Redis (the
 * BullMQ queue, the jobs' records and events) and an artefact store (a directory here, as on a shared volume). A
 * job taken by one node runs on another and is followed from the first; the miner's /generate/ answered through
 * the queue gives the bytes a single node gives; a worker killed mid-job leaves its job to another; a job is
 * cancelled from any node; an Idempotency-Key holds across nodes; a webhook is signed; the gallery outlives a
 * restart; and a Redis that goes away makes the service say so rather than fail.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose, composeService } from '../src/compose.js';
import { verifyWebhookSignature } from '../src/runtime/webhooks.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { serveApp, testConfig, until } from './helpers/fake-stages.js';
import { startNode, type TestNode, untilReady } from './helpers/nodes.js';
import { freePort } from './helpers/ports.js';
import { startRedis, type TestRedis } from './helpers/redis.js';

const SECRET = 'cluster-webhook-secret';
const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-cluster-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Small preview jobs, the same on every node, and on the single node they are compared with. */
const JOB_SECTIONS = {
  pipeline: { image_size: 128, retries: 0 },
  image_to_3d: { inflate: { max_gaussians: 8000 } },
  render: { threads: 1 },
};

const sha = (bytes: ArrayBuffer) => createHash('sha256').update(new Uint8Array(bytes)).digest('hex');
const json = async <T>(response: Response) => (await response.json()) as T;
const postJob = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${url}/api/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
type View = { id: string; state: string; node?: string; stage: string | null; error: string | null; queuePosition?: number | null };
const view = (url: string, id: string) => fetch(`${url}/api/v1/jobs/${id}`).then((r) => json<View>(r));

/** Reads a job's SSE stream to its end: the events' types and stages, in order. */
async function eventsOf(url: string, id: string): Promise<string[]> {
  const text = await (await fetch(`${url}/api/v1/jobs/${id}/events`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => JSON.parse(line.slice(6)) as { type: string; phase?: string; stage?: string })
    .map((e) => (e.type === 'stage' ? `${e.phase}:${e.stage}` : e.type));
}

describe('a cluster of nodes on one Redis and one store', () => {
  let redis: TestRedis;
  let api: TestNode;
  let worker: TestNode;
  let config: Record<string, unknown>;
  const nodes: TestNode[] = [];
  const start = async (role: 'all' | 'api' | 'worker', extra: Record<string, unknown> = {}) => {
    const node = await startNode({ ...config, ...extra }, role, { FAST3D_WEBHOOK_SECRET: SECRET });
    nodes.push(node);
    return node;
  };

  beforeAll(async () => {
    redis = await startRedis();
    config = {
      ...JOB_SECTIONS,
      queue: { backend: 'bullmq', redis_url: redis.url, name: `t${randomUUID().slice(0, 8)}`, lock_s: 5 },
      store: { backend: 'disk', directory: tempDir() },
      webhooks: { allow_private: true, backoff_s: 0.2 },
    };
    [api, worker] = await Promise.all([
      start('api', { queue: { ...(config.queue as object), node: 'api-1' } }),
      start('worker', { queue: { ...(config.queue as object), node: 'worker-1' } }),
    ]);
    await Promise.all([untilReady(api.url), untilReady(worker.url)]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
    await redis?.stop();
  });

  it('runs a job taken by the api node on the worker, and the api node streams every stage of it', async () => {
    const health = await json<{ role: string; cluster: { redis: string } }>(await fetch(`${api.url}/health`));
    expect([health.role, health.cluster.redis]).toEqual(['api', 'up']);
    expect((await json<{ role: string }>(await fetch(`${worker.url}/health`))).role).toBe('worker');
    // A worker takes no requests.
    expect((await fetch(`${worker.url}/generate/`, { method: 'POST', body: new URLSearchParams({ prompt: 'x' }) })).status).toBe(404);

    const submitted = await postJob(api.url, { prompt: 'a copper kettle', outputs: ['ply', 'views'] });
    expect(submitted.status).toBe(202);
    const { id } = await json<{ id: string }>(submitted);
    const stream = eventsOf(api.url, id);
    const events = await stream;
    expect(events[0]).toBe('queued');
    for (const stage of ['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate']) {
      expect(events).toContain(`start:${stage}`);
      expect(events).toContain(`end:${stage}`);
    }
    expect(events.at(-1)).toBe('end');
    const done = await view(api.url, id);
    expect([done.state, done.node]).toEqual(['done', 'worker-1']);
    const ply = await fetch(`${api.url}/api/v1/jobs/${id}/artifacts/ply`);
    expect(ply.status).toBe(200);
    expect(servablePlyViolation(new Uint8Array(await ply.arrayBuffer()))).toBeNull();
  }, 60_000);

  it("answers the miner's /generate/ through the queue with the bytes a single node gives", async () => {
    const form = { prompt: 'a small wooden stool', seed: '11' };
    const clustered = await fetch(`${api.url}/generate/`, { method: 'POST', body: new URLSearchParams(form) });
    expect(clustered.status).toBe(200);
    const single = compose(testConfig(JOB_SECTIONS));
    await single.service.start();
    const served = await serveApp(single.app);
    try {
      const alone = await fetch(`${served.url}/generate/`, { method: 'POST', body: new URLSearchParams(form) });
      expect(alone.status).toBe(200);
      expect(sha(await clustered.arrayBuffer())).toBe(sha(await alone.arrayBuffer()));
    } finally {
      await served.close();
      await single.service.close();
      await single.renderPool.close();
      await single.cpuPool?.close();
    }
  }, 60_000);

  it('cancels a job from another node than the one that took it', async () => {
    const other = await start('api', { queue: { ...(config.queue as object), node: 'api-2' } });
    // A video at 1024 px keeps the job running long enough to be cancelled.
    const { id } = await json<{ id: string }>(await postJob(api.url, { prompt: 'a tall clock', outputs: ['ply', 'mp4'], videoSize: 1024 }));
    await until(async () => (await view(other.url, id)).state === 'running', 30_000);
    const cancelled = await fetch(`${other.url}/api/v1/jobs/${id}`, { method: 'DELETE' });
    expect(cancelled.status).toBe(202);
    await until(async () => (await view(api.url, id)).state === 'cancelled', 30_000);
    expect((await view(api.url, id)).error).toBe(`job ${id} was cancelled`);
    expect((await eventsOf(api.url, id)).at(-1)).toBe('end');
  }, 60_000);

  it('gives the same job for the same Idempotency-Key and body on any node, and 409 for another body', async () => {
    const other = nodes.find((n) => n !== api && n !== worker && n.child.exitCode === null) ?? (await start('api'));
    const key = `key-${randomUUID()}`;
    const first = await postJob(api.url, { prompt: 'a glass bottle', outputs: ['ply'] }, { 'Idempotency-Key': key });
    const again = await postJob(other.url, { prompt: 'a glass bottle', outputs: ['ply'] }, { 'Idempotency-Key': key });
    expect([first.status, again.status]).toEqual([202, 202]);
    expect((await json<{ id: string }>(again)).id).toBe((await json<{ id: string }>(first)).id);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const conflict = await postJob(other.url, { prompt: 'a glass jar', outputs: ['ply'] }, { 'Idempotency-Key': key });
    expect(conflict.status).toBe(409);
    expect(((await conflict.json()) as { error: string }).error).toMatch(/was used for another request/);
  }, 60_000);

  it("calls a job's webhook at its end, signed with the secret", async () => {
    const received: { body: Buffer; signature: string }[] = [];
    const receiver = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ body: Buffer.concat(chunks), signature: String(req.headers['x-fast3d-signature']) });
        res.end('ok');
      });
    });
    const port = await freePort();
    await new Promise<void>((resolve) => receiver.listen(port, '127.0.0.1', resolve));
    try {
      const submitted = await postJob(api.url, { prompt: 'a paper boat', outputs: ['ply'], webhook: `http://127.0.0.1:${port}/hook` });
      expect(submitted.status).toBe(202);
      const { id } = await json<{ id: string }>(submitted);
      await until(() => received.length > 0, 30_000);
      const { body, signature } = received[0];
      expect(verifyWebhookSignature(body, SECRET, signature)).toBe(true);
      expect(verifyWebhookSignature(body, 'another secret', signature)).toBe(false);
      const payload = JSON.parse(body.toString()) as {
        event: string;
        data: { job: { id: string; state: string }; artefacts: { name: string }[] };
      };
      expect(payload.event).toBe('job.ended');
      expect(payload.data.job).toMatchObject({ id, state: 'done' });
      expect(payload.data.artefacts.map((a) => a.name)).toEqual(['ply']);
    } finally {
      receiver.close();
    }
  }, 60_000);

  it('keeps the gallery across a restart of the api node', async () => {
    const before = await json<{ jobs: { id: string }[] }>(await fetch(`${api.url}/api/v1/jobs`));
    expect(before.jobs.length).toBeGreaterThan(0);
    await api.stop();
    api = await start('api', { queue: { ...(config.queue as object), node: 'api-1' } });
    await untilReady(api.url);
    const after = await json<{ jobs: { id: string }[] }>(await fetch(`${api.url}/api/v1/jobs`));
    expect(after.jobs.map((j) => j.id)).toEqual(before.jobs.map((j) => j.id));
  }, 90_000);

  it('hands the job of a worker killed mid-job to another worker, which finishes it', async () => {
    const { id } = await json<{ id: string }>(await postJob(api.url, { prompt: 'a stone tower', outputs: ['ply', 'mp4'], videoSize: 768 }));
    await until(async () => (await view(api.url, id)).state === 'running', 30_000);
    expect((await view(api.url, id)).node).toBe('worker-1');
    await worker.stop('SIGKILL');
    const second = await start('worker', { queue: { ...(config.queue as object), node: 'worker-2' } });
    await untilReady(second.url);
    await until(async () => ['done', 'failed', 'cancelled'].includes((await view(api.url, id)).state), 60_000);
    const ended = await view(api.url, id);
    expect([ended.state, ended.node]).toEqual(['done', 'worker-2']);
    const mp4 = await fetch(`${api.url}/api/v1/jobs/${id}/artifacts/mp4`);
    expect(mp4.status).toBe(200);
    expect(second.log()).toMatch(/taking up a job whose worker died/);
    const metrics = await (await fetch(`${second.url}/metrics`)).text();
    expect(metrics).toMatch(/^fast3d_jobs_recovered_total 1$/m);
  }, 120_000);
});

describe('a cluster whose Redis goes away', () => {
  it('refuses to start with a Redis it cannot reach, naming the URL', async () => {
    const port = await freePort();
    const config = testConfig({
      queue: { backend: 'bullmq', redis_url: `redis://127.0.0.1:${port}` },
      store: { backend: 'disk', directory: tempDir() },
    });
    await expect(composeService(config)).rejects.toThrow(
      new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port}/? \\(queue\\.redis_url\\)`),
    );
  });

  it('says degraded and refuses new jobs with 503 while Redis is down, and takes them again when it is back', async () => {
    let redis = await startRedis();
    const node = await startNode(
      {
        ...JOB_SECTIONS,
        queue: { backend: 'bullmq', redis_url: redis.url, name: 'down' },
        store: { backend: 'disk', directory: tempDir() },
      },
      'all',
    );
    try {
      await untilReady(node.url);
      await redis.stop();
      await until(async () => (await fetch(`${node.url}/health`)).status === 503, 20_000);
      const health = await json<{ status: string; cluster: { redis: string } }>(await fetch(`${node.url}/health`));
      expect([health.status, health.cluster.redis]).toEqual(['degraded', 'down']);
      const refused = await postJob(node.url, { prompt: 'a refused vase', outputs: ['ply'] });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).not.toBeNull();
      // Back on the same port: the node reconnects and takes jobs again.
      redis = await startRedisOn(redis.port);
      await untilReady(node.url, 30_000);
      const taken = await postJob(node.url, { prompt: 'a welcome vase', outputs: ['ply'] });
      expect(taken.status).toBe(202);
      const { id } = await json<{ id: string }>(taken);
      await until(async () => ['done', 'failed', 'cancelled'].includes((await view(node.url, id)).state), 60_000);
      const ended = await view(node.url, id);
      expect([ended.state, ended.error]).toEqual(['done', null]);
    } finally {
      await node.stop('SIGKILL');
      await redis.stop();
    }
  }, 120_000);
});

/** A Redis on a given port again (the one a node was using). */
async function startRedisOn(port: number): Promise<TestRedis> {
  for (let tries = 0; ; tries++) {
    const redis = await startRedis(port).catch((err: Error) => {
      if (tries > 20) throw err;
      return null;
    });
    if (redis) return redis;
    await new Promise((r) => setTimeout(r, 200));
  }
}
