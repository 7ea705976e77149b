import { afterEach, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { Admission, BusyError, ShuttingDownError } from '../src/runtime/admission.js';
import { GpuLock } from '../src/runtime/gpu-lock.js';
import { countingGpu } from '../src/pipelines/context.js';
import { errorOf, fakeStages, postPrompt, serveApp, sleep, testConfig, until, type Served } from './helpers/fake-stages.js';

const servers: Served[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(runtime: Record<string, unknown>, fakes: Parameters<typeof fakeStages>[0]) {
  const fake = fakeStages(fakes);
  const composed = compose(testConfig({ runtime, pipeline: { retries: 0 } }), { stages: fake.stages });
  const served = await serveApp(composed.app);
  servers.push(served);
  return { ...composed, ...fake, url: served.url };
}

describe('Admission', () => {
  it('admits `concurrency` jobs, queues `queueLength` more and refuses the rest', async () => {
    const admission = new Admission(2, 1);
    const gates: (() => void)[] = [];
    const job = () => admission.run(() => new Promise<void>((resolve) => gates.push(resolve)));
    const running = [job(), job(), job()];
    await sleep(0);
    expect(admission.active).toBe(2);
    expect(admission.depth).toBe(1);
    expect(admission.full).toBe(true);
    await expect(job()).rejects.toBeInstanceOf(BusyError);
    gates.shift()!();
    await sleep(0);
    expect(admission.depth).toBe(0);
    expect(admission.active).toBe(2);
    for (const open of gates.splice(0)) open();
    await Promise.all(running);
    expect(admission.active).toBe(0);
  });

  it('drops a waiting job whose signal aborts, and refuses everything once closed', async () => {
    const admission = new Admission(1, 4);
    let release!: () => void;
    const first = admission.run(() => new Promise<void>((resolve) => { release = resolve; }));
    const controller = new AbortController();
    const waiting = admission.run(async () => 'ran', { signal: controller.signal });
    await sleep(0);
    expect(admission.depth).toBe(1);
    controller.abort(new Error('client went away'));
    await expect(waiting).rejects.toThrow('client went away');
    expect(admission.depth).toBe(0);
    admission.close();
    await expect(admission.run(async () => 1)).rejects.toBeInstanceOf(ShuttingDownError);
    const idle = admission.idle();
    release();
    await first;
    await idle;
  });
});

describe('GpuLock', () => {
  it('serialises GPU work and reports per-job usage and the busy ratio', async () => {
    const lock = new GpuLock();
    const intervals: [number, number][] = [];
    const work = async () => {
      const start = performance.now();
      await sleep(40);
      intervals.push([start, performance.now()]);
    };
    // Each job counts the time it holds the lock, not the time it waits for it, through its own runner.
    const a = countingGpu((w, signal) => lock.run(w, signal));
    const b = countingGpu((w, signal) => lock.run(w, signal));
    const t0 = performance.now();
    await Promise.all([a.gpu(work), b.gpu(work), a.gpu(work)]);
    intervals.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < intervals.length; i++) expect(intervals[i][0]).toBeGreaterThanOrEqual(intervals[i - 1][1] - 1);
    expect(a.gpuMs()).toBeGreaterThanOrEqual(75);
    expect(b.gpuMs()).toBeGreaterThanOrEqual(35);
    expect(b.gpuMs()).toBeLessThan(70);
    expect(lock.busyRatio(t0)).toBeGreaterThan(0.8);
  });
});

describe('admission over HTTP', () => {
  it('runs up to concurrency + queue_length jobs and answers 503 with Retry-After beyond', async () => {
    const s = await start({ queue_length: 1, pipeline_concurrency: 1, retry_after_s: 7 }, { imageTo3dMs: 300 });
    const responses = await Promise.all(['a red chair', 'a blue chair', 'a green chair'].map((p) => postPrompt(s.url, p)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 503]);
    const refused = responses.find((r) => r.status === 503)!;
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(7);
    expect((await errorOf(refused))).toMatch(/busy/);
    expect(s.calls.imageTo3d).toBe(2);
  });

  it('lets several jobs into the pipeline while their GPU stages never overlap', async () => {
    const s = await start({ queue_length: 0, pipeline_concurrency: 3 }, { textToImageMs: 60, imageTo3dMs: 60, mattingCpuMs: 30 });
    const responses = await Promise.all(['one', 'two', 'three'].map((p) => postPrompt(s.url, `a chair ${p}`)));
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    const gpu = [...s.gpuIntervals].sort((x, y) => x[0] - y[0]);
    expect(gpu).toHaveLength(6);
    for (let i = 1; i < gpu.length; i++) expect(gpu[i][0]).toBeGreaterThanOrEqual(gpu[i - 1][1] - 1);
  });

  it('abandons a job that runs past its deadline with 503', async () => {
    const s = await start({ deadline_s: 0.3 }, { imageTo3dMs: 1500, ignoreAbort: true });
    const t0 = performance.now();
    const response = await postPrompt(s.url, 'a slow chair');
    const elapsed = performance.now() - t0;
    expect(response.status).toBe(503);
    expect((await errorOf(response))).toMatch(/deadline/);
    expect(response.headers.get('retry-after')).toBeTruthy();
    expect(elapsed).toBeLessThan(1200);
  });

  it('abandons a job still waiting in the queue at its deadline, which then leaves the queue', async () => {
    // The GPU stage ignores aborts, so the first job keeps its place until 1.5 s, long past the second's deadline.
    const s = await start({ deadline_s: 0.4, queue_length: 2, pipeline_concurrency: 1 }, { imageTo3dMs: 1500, ignoreAbort: true });
    const running = postPrompt(s.url, 'a running chair');
    await until(() => s.service.admission.active === 1);
    const t0 = performance.now();
    const waiting = await postPrompt(s.url, 'a waiting chair');
    expect(waiting.status).toBe(503);
    expect(await errorOf(waiting)).toMatch(/deadline/);
    // Answered at its own deadline, not when the first job let go of its place.
    expect(performance.now() - t0).toBeLessThan(1200);
    expect(s.service.admission.depth).toBe(0);
    // The first job itself ran past 0.4 s: abandoned too; the queued one never reached a stage.
    expect((await running).status).toBe(503);
    await until(() => s.service.admission.active === 0);
    expect(s.calls.textToImage).toBe(1);
  });

  it('refuses up front a job whose estimated finish misses the deadline', async () => {
    // One job measures ~250 ms of GPU per job; with one running, a new job would finish after ~500 ms > 400 ms.
    const s = await start({ deadline_s: 0.4, queue_length: 4, pipeline_concurrency: 1, retry_after_s: 1 }, { imageTo3dMs: 250 });
    expect((await postPrompt(s.url, 'a first chair')).status).toBe(200);
    expect(s.service.gpuMsPerJob()).toBeGreaterThanOrEqual(240);
    const running = postPrompt(s.url, 'a second chair');
    await until(() => s.service.admission.active === 1);
    const refused = await postPrompt(s.url, 'a third chair');
    expect(refused.status).toBe(503);
    expect((await errorOf(refused))).toMatch(/cannot finish within the 0.4 s deadline/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await running).status).toBe(200);
    expect(s.calls.imageTo3d).toBe(2);
  });

  it('cancels queued work when the client disconnects', async () => {
    const s = await start({ queue_length: 2, pipeline_concurrency: 1 }, { imageTo3dMs: 300 });
    const first = postPrompt(s.url, 'a running chair');
    await until(() => s.service.admission.active === 1);
    const controller = new AbortController();
    const queued = postPrompt(s.url, 'a queued chair', { signal: controller.signal });
    await until(() => s.service.admission.depth === 1);
    controller.abort();
    await expect(queued).rejects.toThrow();
    await until(() => s.service.admission.depth === 0);
    expect((await first).status).toBe(200);
    await until(() => s.service.admission.active === 0);
    expect(s.calls.textToImage).toBe(1);
  });
});
