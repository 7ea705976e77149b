/**
 * A worker that stops taking jobs (after a Redis outage its blocking connection can stay down for good) is
 * replaced, so jobs do not wait forever behind a node that looks healthy; a worker busy with its jobs is not. And a
 * node waiting for a job's end learns it even when the event that says so never reaches it.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JobQueue, type JobSummary, type QueuedJob } from '../src/runtime/cluster/queue.js';
import { until } from './helpers/fake-stages.js';
import { startRedis, type TestRedis } from './helpers/redis.js';

const DECLINED: JobSummary = { kind: 'declined', preset: 'balanced', cache: 'miss', report: null, artefacts: [] };

function job(id: string): QueuedJob {
  return {
    request: {
      id,
      task: { kind: 'text', prompt: 'a vase' },
      seed: 1,
      priority: 'interactive',
      wants: [{ format: 'ply' }],
      title: 'a vase',
    },
    from: 'test',
  };
}

describe('the queue worker', () => {
  let redis: TestRedis;
  const open: { queue: JobQueue; connection: Redis }[] = [];

  const queueOf = (stuck: number[]) => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new JobQueue(connection, {
      name: `w${randomUUID().slice(0, 8)}`,
      limits: { contract: 100, interactive: 100, background: 100 },
      attempts: 1,
      lockMs: 30_000,
      retryAfterS: 1,
      stuckMs: 600,
      onStuckWorker: (waiting) => stuck.push(waiting),
    });
    open.push({ queue, connection });
    return queue;
  };

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    for (const { queue, connection } of open) {
      await queue.close(true);
      connection.disconnect();
    }
    await redis?.stop();
  });

  it('is replaced when it stays idle while a job waits, and the job runs', async () => {
    const stuck: number[] = [];
    const queue = queueOf(stuck);
    const ran: string[] = [];
    const worker = queue.work(async (_job, id) => {
      ran.push(id);
      return DECLINED;
    }, 1);
    await queue.finished(await queue.add(job('first')), 10_000);
    // A worker that takes no job: what a worker whose blocking connection never came back looks like. Paused, it
    // ends its loop once the fetch in flight returns (BullMQ blocks for at most its drainDelay, 5 s).
    const inner = (worker as unknown as { worker: { pause(doNotWait: boolean): Promise<void>; isRunning(): boolean } }).worker;
    await inner.pause(true);
    await until(async () => !inner.isRunning(), 10_000);
    const waiting = await queue.add(job('second'));
    await until(async () => ran.includes('second'), 10_000);
    expect(await queue.finished(waiting, 10_000)).toMatchObject({ kind: 'declined' });
    // Replaced with one job waiting (a loaded machine may take long enough to start the new worker that it is
    // replaced once more, each time for the same job).
    expect(stuck.length).toBeGreaterThanOrEqual(1);
    expect(stuck.every((waiting) => waiting === 1)).toBe(true);
  }, 30_000);

  it('is not replaced while it is busy with as many jobs as it runs at once, however many wait', async () => {
    const stuck: number[] = [];
    const queue = queueOf(stuck);
    const ran: string[] = [];
    queue.work(async (_job, id) => {
      ran.push(id);
      await new Promise((r) => setTimeout(r, 1500));
      return DECLINED;
    }, 1);
    const jobs = await Promise.all(['a', 'b', 'c'].map((id) => queue.add(job(id))));
    for (const added of jobs) await queue.finished(added, 15_000);
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(stuck).toEqual([]);
  }, 30_000);

  it("lets a node waiting for a job's end read it back from Redis when its event never comes", async () => {
    const queue = queueOf([]);
    queue.work(async () => DECLINED, 1);
    const added = await queue.add(job('missed'));
    // What QueueEvents does with an event that comes before its first read: it never tells of it.
    added.waitUntilFinished = () => new Promise(() => undefined);
    expect(await queue.finished(added, 10_000)).toMatchObject({ kind: 'declined' });
  }, 15_000);
});
