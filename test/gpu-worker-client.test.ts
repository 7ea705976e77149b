/**
 * GpuWorkerClient against a scripted loopback HTTP server: timeouts, bounded retries on connection errors only,
 * readiness polling, and the worker's error answers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { GpuWorkerClient, GpuWorkerError, GpuWorkerUnavailableError, type GpuClientOptions } from '../src/runtime/gpu-client.js';
import { NotReadyError } from '../src/runtime/service.js';

type Handler = (req: IncomingMessage, res: ServerResponse, count: number, body: string) => void;

const servers: Server[] = [];
const clients: GpuWorkerClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(
    servers.splice(0).map(
      (s) =>
        new Promise((r) => {
          s.closeAllConnections();
          s.close(r);
        }),
    ),
  );
});

/** A server answering with `handler`; `hits` counts requests per path. */
async function scriptedWorker(handler: Handler): Promise<{ url: string; hits: Record<string, number> }> {
  const hits: Record<string, number> = {};
  const server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits[path] = (hits[path] ?? 0) + 1;
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => handler(req, res, hits[path], body));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

function client(url: string, options: Partial<GpuClientOptions> = {}): GpuWorkerClient {
  const c = new GpuWorkerClient({
    url,
    requestTimeoutMs: 2000,
    connectRetries: 2,
    retryDelayMs: 10,
    pollIntervalMs: 20,
    readyTimeoutMs: 2000,
    ...options,
  });
  clients.push(c);
  return c;
}

function json(res: ServerResponse, status: number, body: unknown, protocol: string | null = '2'): void {
  res
    .writeHead(status, { 'content-type': 'application/json', ...(protocol ? { 'x-fast3d-protocol': protocol } : {}) })
    .end(JSON.stringify(body));
}

const health = (status: 'loading' | 'ready' | 'failed', error: string | null = null) => ({
  protocol: 2,
  ready: status === 'ready',
  status,
  error,
  device: null,
  vram_total: null,
  vram_used: null,
  models: [
    { name: 'text-to-image', id: 'flux', loaded: status === 'ready' },
    { name: 'image-to-3d', id: 'trellis', loaded: false },
  ],
});

const imageRequest = { prompt: 'a cup', size: '64x64', steps: 4, seed: 1 };

/** A port nothing listens on. */
async function closedPort(): Promise<string> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise((r) => server.close(r));
  return `http://127.0.0.1:${port}`;
}

describe('GpuWorkerClient requests', () => {
  it('sends the OpenAI images request and returns the decoded bytes', async () => {
    let seen: unknown;
    const { url } = await scriptedWorker((_req, res, _count, body) => {
      seen = JSON.parse(body);
      json(res, 200, { data: [{ b64_json: Buffer.from('PNGBYTES').toString('base64') }] });
    });
    const bytes = await client(url).generateImage(imageRequest);
    expect(Buffer.from(bytes).toString()).toBe('PNGBYTES');
    expect(seen).toEqual({ prompt: 'a cup', size: '64x64', n: 1, response_format: 'b64_json', seed: 1, steps: 4 });
  });

  it('times out a slow answer without retrying it', async () => {
    const { url, hits } = await scriptedWorker((_req, res) => {
      setTimeout(() => json(res, 200, { data: [] }), 5000);
    });
    const started = Date.now();
    await expect(client(url, { requestTimeoutMs: 150 }).generateImage(imageRequest)).rejects.toThrow(
      /did not answer \/v1\/images\/generations within 0\.2 s/,
    );
    // Given up long before the answer would have come.
    expect(Date.now() - started).toBeLessThan(4000);
    expect(hits['/v1/images/generations']).toBe(1);
  });

  it('retries a reset connection and succeeds within the bound', async () => {
    const { url, hits } = await scriptedWorker((req, res, count) => {
      if (count <= 2) return req.socket.destroy();
      json(res, 200, { data: [{ b64_json: 'AAAA' }] });
    });
    await expect(client(url, { connectRetries: 2 }).generateImage(imageRequest)).resolves.toHaveLength(3);
    expect(hits['/v1/images/generations']).toBe(3);
  });

  it('gives up after connect_retries and says how to start the worker', async () => {
    const { url, hits } = await scriptedWorker((req) => req.socket.destroy());
    const error = await client(url, { connectRetries: 1 })
      .generateImage(imageRequest)
      .catch((e) => e);
    expect(error).toBeInstanceOf(GpuWorkerUnavailableError);
    expect(error.message).toMatch(/not reachable .*after 2 attempts.*pm2 start pm2\/ecosystem\.config\.cjs/);
    expect(hits['/v1/images/generations']).toBe(2);
  });

  it('reports a refused connection as unavailable (a 503 for the service)', async () => {
    const error = await client(await closedPort(), { connectRetries: 0 })
      .generateImage(imageRequest)
      .catch((e) => e);
    expect(error).toBeInstanceOf(NotReadyError);
    expect(error.message).toMatch(/not reachable \(ECONNREFUSED\)/);
  });

  it("does not retry HTTP errors: 503 becomes unavailable, 400 a worker error, both with the worker's message", async () => {
    const { url, hits } = await scriptedWorker((req, res) => {
      if (req.url === '/v1/images/generations')
        return json(res, 503, { error: 'CUDA out of memory during text-to-image; memory was freed' });
      if (req.url === '/v1/image-to-3d') return json(res, 400, { error: 'image must be an RGBA PNG' });
      json(res, 200, health('ready'));
    });
    const c = client(url);
    const oom = await c.generateImage(imageRequest).catch((e) => e);
    expect(oom).toBeInstanceOf(GpuWorkerUnavailableError);
    expect(oom.status).toBe(503);
    expect(oom.message).toContain('CUDA out of memory during text-to-image');
    const bad = await c
      .imageTo3d({ png: new Uint8Array(4), seed: 1, sparseStructureSteps: 1, sparseStructureCfg: 1, slatSteps: 1, slatCfg: 1 })
      .catch((e) => e);
    expect(bad).toBeInstanceOf(GpuWorkerError);
    expect(bad).not.toBeInstanceOf(NotReadyError);
    expect(bad.status).toBe(400);
    expect(bad.message).toContain('image must be an RGBA PNG');
    expect(hits['/v1/images/generations']).toBe(1);
    expect(hits['/v1/image-to-3d']).toBe(1);
  });

  it('an aborted job signal cancels the request', async () => {
    const { url } = await scriptedWorker((_req, res) => {
      setTimeout(() => json(res, 200, {}), 1000);
    });
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('client went away')), 50);
    await expect(client(url).generateImage(imageRequest, controller.signal)).rejects.toThrow('client went away');
  });
});

describe('GpuWorkerClient protocol', () => {
  it('refuses a worker whose /health reports another protocol version, at once and by name', async () => {
    const { url } = await scriptedWorker((_req, res) => json(res, 200, { ...health('ready'), protocol: 3 }));
    const started = Date.now();
    const readiness = await client(url, { readyTimeoutMs: 10_000 }).waitUntilReady();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(readiness.ready).toBe(false);
    expect(readiness.detail).toMatch(/speaks protocol 3, but this service speaks protocol 2: refused/);
  });

  it('refuses an older worker that reports no version, on /health and on its answers', async () => {
    const { protocol: _, ...old } = health('ready');
    const { url } = await scriptedWorker((req, res) =>
      json(res, 200, req.url === '/health' ? old : { data: [{ b64_json: 'AAAA' }] }, null),
    );
    const c = client(url);
    expect((await c.waitUntilReady()).detail).toMatch(/speaks protocol 1 \(it reports no version\)/);
    const error = await c.generateImage(imageRequest).catch((e) => e);
    expect(error).toBeInstanceOf(GpuWorkerError);
    expect(error.message).toMatch(/speaks protocol 1 .*this service speaks protocol 2.*answer to \/v1\/images\/generations/);
  });

  it('sends the mesh bake and unpacks the PLY and GLB parts', async () => {
    let seen: Record<string, unknown> = {};
    const part = (name: string, bytes: Buffer) => ({ name, bytes });
    const parts = [part('ply', Buffer.from('PLYDATA')), part('glb', Buffer.from('GLBDATA!!'))];
    const head = Buffer.alloc(16 + parts.length * 24);
    head.write('F3DPARTS', 0, 'latin1');
    head.writeUInt32LE(2, 8);
    head.writeUInt32LE(parts.length, 12);
    parts.forEach((p, i) => {
      head.write(p.name, 16 + i * 24, 'latin1');
      head.writeBigUInt64LE(BigInt(p.bytes.length), 32 + i * 24);
    });
    const container = Buffer.concat([head, ...parts.map((p) => p.bytes)]);
    const { url } = await scriptedWorker((_req, res, _count, body) => {
      seen = JSON.parse(body);
      res.writeHead(200, { 'content-type': 'application/x-fast3d-parts', 'x-fast3d-protocol': '2' }).end(container);
    });
    const request = { png: new Uint8Array(4), seed: 1, sparseStructureSteps: 2, sparseStructureCfg: 3, slatSteps: 4, slatCfg: 5 };
    const { ply, glb } = await client(url).imageTo3dWithMesh(request, { simplify: 0.9, textureSize: 512 });
    expect(Buffer.from(ply).toString()).toBe('PLYDATA');
    expect(Buffer.from(glb).toString()).toBe('GLBDATA!!');
    expect(seen).toMatchObject({ seed: 1, slat_steps: 4, mesh: { simplify: 0.9, texture_size: 512 } });
  });
});

describe('GpuWorkerClient readiness', () => {
  it('polls /health until the models are loaded', async () => {
    const { url, hits } = await scriptedWorker((_req, res, count) =>
      json(res, count < 3 ? 503 : 200, health(count < 3 ? 'loading' : 'ready')),
    );
    const c = client(url);
    expect(c.readiness().ready).toBe(false);
    const readiness = await c.waitUntilReady();
    expect(readiness).toEqual({ ready: true });
    expect(hits['/health']).toBeGreaterThanOrEqual(3);
    expect(c.readiness('text-to-image').ready).toBe(true);
    // A model the worker did not load keeps that stage not ready.
    expect(c.readiness('image-to-3d')).toEqual({ ready: false, detail: expect.stringContaining('no image-to-3d model loaded') });
  });

  it('stops waiting at once when the worker reports a load failure, with its reason', async () => {
    const { url } = await scriptedWorker((_req, res) => json(res, 503, health('failed', 'torch is not installed for /usr/bin/python3')));
    const started = Date.now();
    const readiness = await client(url, { readyTimeoutMs: 10_000 }).waitUntilReady();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(readiness.ready).toBe(false);
    expect(readiness.detail).toContain('torch is not installed');
  });

  it('gives up waiting after ready_timeout and keeps polling, so a late worker still becomes ready', async () => {
    let ready = false;
    const { url } = await scriptedWorker((_req, res) => json(res, ready ? 200 : 503, health(ready ? 'ready' : 'loading')));
    const c = client(url, { readyTimeoutMs: 150 });
    const readiness = await c.waitUntilReady();
    expect(readiness.ready).toBe(false);
    expect(readiness.detail).toMatch(/loading models .*not ready within/);
    ready = true;
    await expect.poll(() => c.readiness().ready, { timeout: 2000 }).toBe(true);
  });

  it('says the worker is not reachable when nothing listens', async () => {
    const c = client(await closedPort(), { readyTimeoutMs: 100 });
    const readiness = await c.waitUntilReady();
    expect(readiness.ready).toBe(false);
    expect(readiness.detail).toMatch(/not reachable \(ECONNREFUSED\)/);
  });
});

describe('the service over a misbehaving GPU worker', () => {
  it("answers 502 with the worker's message when it fails, and 504 when it is too slow", async () => {
    const { compose } = await import('../src/compose.js');
    const { parseConfig } = await import('../src/config/load.js');
    const { serveApp } = await import('./helpers/fake-stages.js');
    let slow = false;
    const { url } = await scriptedWorker((req, res) => {
      if (req.url === '/health') return json(res, 200, health('ready'));
      if (slow) return void setTimeout(() => json(res, 200, { data: [] }), 10_000);
      json(res, 500, { error: 'CUDA kernel failed: illegal memory access' });
    });
    const config = parseConfig({
      log: { level: 'silent' },
      cache: { enabled: false },
      text_to_image: { backend: 'gpu-worker', gpu_worker: { url, request_timeout_s: 2, poll_interval_s: 0.05 } },
    });
    const { service, app } = compose(config);
    await service.start();
    const served = await serveApp(app);
    try {
      const failed = await fetch(`${served.url}/generate/`, { method: 'POST', body: new URLSearchParams({ prompt: 'a cup' }) });
      expect(failed.status).toBe(502);
      expect(((await failed.json()) as { error: string }).error).toMatch(/CUDA kernel failed: illegal memory access/);
      slow = true;
      const late = await fetch(`${served.url}/generate/`, { method: 'POST', body: new URLSearchParams({ prompt: 'a cup' }) });
      expect(late.status).toBe(504);
      expect(((await late.json()) as { error: string }).error).toMatch(/did not answer \/v1\/images\/generations within 2 s/);
    } finally {
      await served.close();
      await service.close();
    }
  });
});
