import { afterEach, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { Admission, BusyError, ShuttingDownError, type Priority } from '../src/runtime/admission.js';
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
    const first = admission.run(
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
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
      // Long enough that a pause of the loaded machine cannot pass for time held.
      await sleep(200);
      intervals.push([start, performance.now()]);
    };
    // Each job counts the time it holds the lock, not the time it waits for it, through its own runner.
    const a = countingGpu((w, signal) => lock.run(w, signal));
    const b = countingGpu((w, signal) => lock.run(w, signal));
    const t0 = performance.now();
    await Promise.all([a.gpu(work), b.gpu(work), a.gpu(work)]);
    intervals.sort((x, y) => x[0] - y[0]);
    for (let i = 1; i < intervals.length; i++) expect(intervals[i][0]).toBeGreaterThanOrEqual(intervals[i - 1][1] - 1);
    expect(a.gpuMs()).toBeGreaterThanOrEqual(395);
    expect(b.gpuMs()).toBeGreaterThanOrEqual(195);
    // Had b counted its wait for a's first run too, it would hold at least 400 ms.
    expect(b.gpuMs()).toBeLessThan(390);
    expect(lock.busyRatio(t0)).toBeGreaterThan(0.8);
  });
});

describe('priority classes', () => {
  it('gives a freed place to the highest class waiting, and within a class to the first come', async () => {
    const admission = new Admission(1, { contract: 4, interactive: 4, background: 4 });
    const order: string[] = [];
    let release!: () => void;
    const first = admission.run(
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
    const queued = [
      ['background', 'b1'],
      ['interactive', 'i1'],
      ['background', 'b2'],
      ['contract', 'c1'],
      ['interactive', 'i2'],
      ['contract', 'c2'],
    ].map(([priority, name]) =>
      admission.run(
        async () => {
          order.push(name);
        },
        { priority: priority as Priority },
      ),
    );
    await sleep(0);
    expect([admission.depthOf('contract'), admission.depthOf('interactive'), admission.depthOf('background')]).toEqual([2, 2, 2]);
    expect(admission.ahead('contract')).toBe(3); // the running job and the two contract jobs
    release();
    await Promise.all([first, ...queued]);
    expect(order).toEqual(['c1', 'c2', 'i1', 'i2', 'b1', 'b2']);
  });

  it('each class has its own queue limit', async () => {
    const admission = new Admission(1, { contract: 1, interactive: 0, background: 2 });
    let release!: () => void;
    const first = admission.run(
      () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    );
    const background = [admission.run(async () => 1, { priority: 'background' }), admission.run(async () => 2, { priority: 'background' })];
    await expect(admission.run(async () => 3, { priority: 'background' })).rejects.toBeInstanceOf(BusyError);
    await expect(admission.run(async () => 4, { priority: 'interactive' })).rejects.toBeInstanceOf(BusyError);
    expect(admission.isFull('contract')).toBe(false);
    const contract = admission.run(async () => 5);
    release();
    expect(await Promise.all([first, ...background, contract])).toEqual([undefined, 1, 2, 5]);
  });

  it('over HTTP: a contract request behind 20 queued background jobs starts as soon as the running jobs finish', async () => {
    const s = await start({ pipeline_concurrency: 2, queue_length: 2, background_queue_length: 32 }, { imageTo3dMs: 250 });
    const background = Array.from({ length: 22 }, (_, i) =>
      postPrompt(s.url, `a background chair ${i}`, { headers: { 'X-Fast3d-Priority': 'background' } }),
    );
    await until(() => s.service.health().queue.running === 2 && s.service.admission.depthOf('background') === 20);
    const sent = performance.now();
    const contract = await postPrompt(s.url, "the miner's chair");
    const contractMs = performance.now() - sent;
    expect(contract.status).toBe(200);
    // It waited for at most the two running jobs (about 250 ms of GPU each, in turn), never for the queue, whose 20
    // jobs hold the GPU for 5 s.
    expect(contractMs).toBeLessThan(2500);
    expect(s.service.admission.depthOf('background')).toBeGreaterThanOrEqual(17);
    for (const r of await Promise.all(background)) expect(r.status).toBe(200);
  }, 30_000);

  it('refuses an unknown X-Fast3d-Priority with 400', async () => {
    const s = await start({}, {});
    const response = await postPrompt(s.url, 'a chair', { headers: { 'X-Fast3d-Priority': 'urgent' } });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatch(/X-Fast3d-Priority must be one of contract, interactive, background/);
  });
});

describe('admission over HTTP', () => {
  it('runs up to concurrency + queue_length jobs and answers 503 with Retry-After beyond', async () => {
    const s = await start({ queue_length: 1, pipeline_concurrency: 1, retry_after_s: 7 }, { imageTo3dMs: 1000 });
    const responses = await Promise.all(['a red chair', 'a blue chair', 'a green chair'].map((p) => postPrompt(s.url, p)));
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 503]);
    const refused = responses.find((r) => r.status === 503)!;
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(7);
    expect(await errorOf(refused)).toMatch(/busy/);
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
    expect(await errorOf(response)).toMatch(/deadline/);
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
    // One job measures ~1 s of GPU per job; with one running, a new job would finish after ~2 s > 1.8 s.
    const s = await start({ deadline_s: 1.8, queue_length: 4, pipeline_concurrency: 1, retry_after_s: 1 }, { imageTo3dMs: 1000 });
    expect((await postPrompt(s.url, 'a first chair')).status).toBe(200);
    expect(s.service.gpuMsPerJob()).toBeGreaterThanOrEqual(990);
    const running = postPrompt(s.url, 'a second chair');
    await until(() => s.service.admission.active === 1);
    const refused = await postPrompt(s.url, 'a third chair');
    expect(refused.status).toBe(503);
    expect(await errorOf(refused)).toMatch(/cannot finish within the 1.8 s deadline/);
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
