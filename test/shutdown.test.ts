import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { mp4Violation } from '../src/formats/containers.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { errorOf, postPrompt, until } from './helpers/fake-stages.js';
import { onLogLines } from './helpers/log-lines.js';
import { rawPost, stallingClient } from './helpers/raw-http.js';

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Child {
  url: string;
  port: number;
  /** Messages of the JSON log lines the child has written so far. */
  logs: string[];
  exited: Promise<{ code: number | null; at: number }>;
  process: ChildProcess;
}

/** Starts test/helpers/slow-server.ts in a child process and waits for its "listening" log line. */
async function startChild(
  graceS: number,
  gpuMs: number,
  extra: { server?: string; env?: Record<string, string>; config?: string } = {},
): Promise<Child> {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-shutdown-test-'));
  dirs.push(dir);
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    `server: { host: 127.0.0.1, port: 0, shutdown_grace_s: ${graceS}${extra.server ?? ''} }\ncache: { enabled: false }\npipeline: { retries: 0 }\n${extra.config ?? ''}`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/slow-server.ts', '--config', config], {
    env: { ...process.env, FAKE_GPU_MS: String(gpuMs), ...extra.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const exited = new Promise<{ code: number | null; at: number }>((resolve) =>
    child.once('exit', (code) => resolve({ code, at: performance.now() })),
  );
  const logs: string[] = [];
  const port = await new Promise<number>((resolve, reject) => {
    onLogLines(child.stdout!, (entry) => {
      logs.push(entry.msg ?? '');
      if (entry.msg === 'listening' && entry.port) resolve(entry.port);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
  });
  return { url: `http://127.0.0.1:${port}`, port, logs, exited, process: child };
}

/** Jobs inside the child's pipeline, from its /health. */
async function runningJobs(url: string): Promise<number> {
  const health = (await (await fetch(`${url}/health`)).json()) as { queue: { running: number } };
  return health.queue.running;
}

describe('graceful shutdown', () => {
  it('on SIGTERM refuses new jobs with 503, finishes the job in flight, then exits 0', async () => {
    const child = await startChild(20, 2000);
    const inFlight = postPrompt(child.url, 'a chair in flight');
    await until(async () => runningJobs(child.url).then((n) => n === 1));
    const signalledAt = performance.now();
    child.process.kill('SIGTERM');
    await until(async () => ((await (await fetch(`${child.url}/health`)).json()) as { status: string }).status === 'stopping');
    const late = await postPrompt(child.url, 'a late chair');
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBeTruthy();
    expect(await errorOf(late)).toMatch(/shutting down/);
    expect((await fetch(`${child.url}/ping`)).status).toBe(503);
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(servablePlyViolation(new Uint8Array(await response.arrayBuffer()))).toBeNull();
    const { code, at } = await child.exited;
    expect(code).toBe(0);
    // It waited for the job (nearly 2 s were left) but not for the whole 20 s grace period.
    expect(at - signalledAt).toBeGreaterThan(1000);
    expect(at - signalledAt).toBeLessThan(10_000);
  });

  it('on SIGTERM answers 200 to both a /generate/ and a /generate_video/ in flight', async () => {
    const child = await startChild(20, 800, {
      config: 'render: { frames: 4, fps: 4, video_res: 64 }\nruntime: { pipeline_concurrency: 2 }\n',
    });
    const ply = postPrompt(child.url, 'a chair before the signal');
    const mp4 = postPrompt(child.url, 'a lamp before the signal', { path: '/generate_video/' });
    await until(async () => runningJobs(child.url).then((n) => n === 2));
    child.process.kill('SIGTERM');
    const [plyResponse, mp4Response] = await Promise.all([ply, mp4]);
    expect(plyResponse.status).toBe(200);
    expect(servablePlyViolation(new Uint8Array(await plyResponse.arrayBuffer()))).toBeNull();
    // The video's asset is made first, then it waits for the video line and renders: all after the signal.
    expect(mp4Response.status).toBe(200);
    expect(mp4Response.headers.get('content-type')).toBe('video/mp4');
    expect(mp4Violation(new Uint8Array(await mp4Response.arrayBuffer()))).toBeNull();
    expect((await child.exited).code).toBe(0);
  });

  it('exits after the grace period even when a job is still running', async () => {
    const child = await startChild(0.5, 10_000);
    const inFlight = postPrompt(child.url, 'an endless chair').then(
      (r) => r.status,
      () => 'closed',
    );
    await until(async () => runningJobs(child.url).then((n) => n === 1));
    const signalledAt = performance.now();
    child.process.kill('SIGTERM');
    const { code, at } = await child.exited;
    expect(code).toBe(0);
    expect(at - signalledAt).toBeLessThan(4000);
    expect(await inFlight).toBe('closed');
  });

  // 240k Gaussians: a 13.4 MB answer, several times what the kernel's socket buffers hold on loopback.
  const BIG = { FAKE_GAUSSIANS: '240000' };

  it('waits, within the grace period, until an answer is flushed to a client that stopped reading', async () => {
    const child = await startChild(15, 300, { env: BIG });
    const client = stallingClient(child.port, rawPost('/generate/', { prompt: 'a chair for a slow reader' }));
    // The job is done and its answer has begun; the client now reads nothing for 4 s.
    await client.firstChunk;
    child.process.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect(child.process.exitCode).toBeNull();
    client.resume();
    const { answer } = await client.done;
    expect(answer.status).toBe(200);
    expect(answer.expected).toBeGreaterThan(13_000_000);
    expect(answer.body.length).toBe(answer.expected);
    expect(servablePlyViolation(new Uint8Array(answer.body))).toBeNull();
    expect((await child.exited).code).toBe(0);
  });

  it('closes the connection of a client that reads none of its answer for server.write_timeout_s', async () => {
    const child = await startChild(15, 0, { env: BIG, server: ', write_timeout_s: 2' });
    const client = stallingClient(child.port, rawPost('/generate/', { prompt: 'a chair nobody reads' }));
    await client.firstChunk;
    const began = performance.now();
    await until(() => child.logs.some((msg) => msg.includes('read nothing of its answer')), 10_000);
    // Measured from when this process saw the first chunk, which a loaded machine may see late.
    expect(performance.now() - began).toBeGreaterThan(1200);
    // Reading again, the client finds its connection closed with the answer cut short.
    client.resume();
    const { answer } = await client.done;
    expect(answer.status).toBe(200);
    expect(answer.body.length).toBeLessThan(answer.expected!);
    // The service is unharmed: the next request is answered.
    expect((await postPrompt(child.url, 'a chair after the stall')).status).toBe(200);
  });
});
