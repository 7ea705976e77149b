/**
 * The shared job queue: BullMQ over Redis. A job is an answer request (a JSON value) under its id; the priority
 * classes map onto BullMQ's priorities (a lower number runs first: contract, then interactive, then background),
 * and each class keeps its queue limit. A worker that dies holding a job loses its lock: BullMQ moves the job back
 * to wait and another worker takes it up, at most `attempts` times in all. Everything else a job can end with is
 * final (UnrecoverableError), so nothing runs twice for any other reason.
 */
import { type Job, Queue, QueueEvents, UnrecoverableError } from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { BusyError, CancelledError } from '../../pipelines/errors.js';
import type { Priority, QueueLimits } from '../admission.js';
import type { AnswerRequest } from '../request.js';
import { carryError, droppedError } from './errors.js';
import { ownConnection } from './redis.js';
import { SupervisedWorker, workerStarter } from './supervised-worker.js';

/** BullMQ's priority of each class: lower runs first. */
export const PRIORITY: Record<Priority, number> = { contract: 1, interactive: 2, background: 3 };

/** How often a waited-for job's state is read back, beside its events. */
const FINISHED_POLL_MS = 2000;

/** What a job carries. */
export interface QueuedJob {
  request: AnswerRequest;
  /** When the job must have ended (ms since the epoch), for contract jobs. */
  deadlineAt?: number;
  /** The node that took the request. */
  from: string;
}

/** What a finished job hands back to the node that waits for it (small: the bytes are in the store). */
export interface JobSummary {
  kind: 'asset' | 'declined';
  preset: string;
  seed?: number;
  gaussians?: number;
  reason?: string;
  cache: 'hit' | 'miss' | 'asset-hit' | 'decline-hit';
  /** The report (JSON), for the answer's headers. */
  report: unknown;
  /** Each artefact asked for, where it is in the shared store. */
  artefacts: { index: number; storeKey: string }[];
}

export interface JobQueueOptions {
  /** The queue's name (and BullMQ's key prefix). */
  name: string;
  limits: QueueLimits;
  /** Runs of a job at most, counting those a dead worker lost. */
  attempts: number;
  /** How long a worker's lock on its job lasts without renewal: a dead worker's job is taken up after it. */
  lockMs: number;
  retryAfterS: number;
  /** How long an idle worker may leave jobs waiting before it is taken for stuck and replaced (default 15 s). */
  stuckMs?: number;
  /** Called when a stuck worker is replaced. */
  onStuckWorker?: (waiting: number) => void;
}

export class JobQueue {
  readonly queue: Queue<QueuedJob, JobSummary>;
  private readonly events: QueueEvents;
  private running: SupervisedWorker<QueuedJob, JobSummary>[] = [];
  /** The events' own connection (BullMQ leaves a connection it was given open): closed with the queue. */
  private readonly eventsConnection: Redis;

  constructor(
    private readonly connection: Redis,
    private readonly options: JobQueueOptions,
  ) {
    this.queue = new Queue(options.name, {
      connection,
      defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } },
    });
    this.eventsConnection = ownConnection(connection);
    this.events = new QueueEvents(options.name, { connection: this.eventsConnection });
  }

  /** Jobs waiting per class, across the cluster. */
  async waiting(): Promise<Record<Priority, number>> {
    const counts = await this.queue.getCountsPerPriority(Object.values(PRIORITY));
    return {
      contract: counts[String(PRIORITY.contract)] ?? 0,
      interactive: counts[String(PRIORITY.interactive)] ?? 0,
      background: counts[String(PRIORITY.background)] ?? 0,
    };
  }

  /** Nodes taking jobs from the queue now. */
  async workers(): Promise<number> {
    return this.queue.getWorkersCount();
  }

  /** Refuses (BusyError) a job whose class's queue is full. */
  async admissible(priority: Priority): Promise<void> {
    const limit = typeof this.options.limits === 'number' ? this.options.limits : this.options.limits[priority];
    const waiting = (await this.waiting())[priority];
    if (waiting >= limit) throw new BusyError(`busy: ${waiting} ${priority} jobs are waiting across the cluster`, this.options.retryAfterS);
  }

  /** Puts a job on the queue under its request's id; resolves once it is there. */
  async add(job: QueuedJob): Promise<Job<QueuedJob, JobSummary>> {
    const id = job.request.id;
    if (!id) throw new Error('a queued request needs its id');
    return this.queue.add('answer', job, {
      jobId: id,
      priority: PRIORITY[job.request.priority],
      attempts: this.options.attempts,
      backoff: { type: 'fixed', delay: 0 },
    });
  }

  /**
   * Waits for a job's end: its summary, or its error as its own class again. QueueEvents reads the events from
   * its first read on, so a job that ends just before that read (a node's first job) sends no event it sees:
   * the job's state is read back every few seconds as well.
   */
  async finished(job: Job<QueuedJob, JobSummary>, ttlMs?: number): Promise<JobSummary> {
    await this.events.waitUntilReady();
    const stop = new AbortController();
    try {
      return await Promise.race([job.waitUntilFinished(this.events, ttlMs), this.endRead(job.id!, stop.signal)]);
    } catch (err) {
      throw droppedError((err as Error).message);
    } finally {
      stop.abort();
    }
  }

  /** A job's end, read from Redis every FINISHED_POLL_MS until `signal`; never settles otherwise. */
  private async endRead(id: string, signal: AbortSignal): Promise<JobSummary> {
    while (!signal.aborted) {
      await sleep(FINISHED_POLL_MS, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      // The state first: a job read after it is complete holds its summary (or its reason).
      const state = await this.queue.getJobState(id).catch(() => 'unknown');
      if (state !== 'completed' && state !== 'failed') continue;
      const job = await this.queue.getJob(id).catch(() => undefined);
      if (!job) continue;
      if (state === 'failed') throw new Error(job.failedReason);
      return job.returnvalue;
    }
    return new Promise<never>(() => undefined);
  }

  /** Removes a job that no worker has taken yet; false when one has (or it has ended). */
  async removeWaiting(id: string): Promise<boolean> {
    const job = await this.queue.getJob(id);
    if (!job) return false;
    const state = await job.getState();
    if (state !== 'waiting' && state !== 'prioritized' && state !== 'delayed') return false;
    try {
      await job.remove();
      return true;
    } catch {
      return false; // a worker took it meanwhile
    }
  }

  /** A waiting job's place in line, counting from 1 (jobs of higher classes first), or null when it is not waiting. */
  async position(id: string): Promise<number | null> {
    const waiting = await this.queue.getJobs(['prioritized', 'waiting'], 0, -1, true);
    waiting.sort((a, b) => (a.priority ?? 0) - (b.priority ?? 0) || a.timestamp - b.timestamp);
    const at = waiting.findIndex((job) => job.id === id);
    return at < 0 ? null : at + 1;
  }

  /**
   * Takes jobs from the queue, `concurrency` at a time, and runs each with `run`. A job whose run throws is
   * failed for good: only a lost lock (a dead worker) runs it again.
   */
  work(
    run: (job: QueuedJob, id: string, signal: AbortSignal, recovered: boolean) => Promise<JobSummary>,
    concurrency: number,
  ): SupervisedWorker<QueuedJob, JobSummary> {
    const start = workerStarter<QueuedJob, JobSummary>(this.options.name, this.connection, {
      concurrency,
      lockDuration: this.options.lockMs,
      stalledInterval: Math.max(1000, Math.round(this.options.lockMs / 2)),
      maxStalledCount: Math.max(0, this.options.attempts - 1),
    });
    const worker = new SupervisedWorker<QueuedJob, JobSummary>(
      this.queue,
      start,
      async (job, _token, signal) => {
        // A job started before (by a worker that died holding it) is taken up again here.
        const controller = new AbortController();
        // BullMQ aborts with the reason it was given (a string): the job ends cancelled, saying so.
        const abort = () => {
          const reason = signal?.reason;
          controller.abort(reason instanceof Error ? reason : new CancelledError(String(reason ?? `job ${job.id} was cancelled`)));
        };
        signal?.addEventListener('abort', abort, { once: true });
        try {
          return await run(job.data, job.id!, controller.signal, job.attemptsStarted > 1 || job.stalledCounter > 0);
        } catch (err) {
          throw new UnrecoverableError(carryError(err));
        } finally {
          signal?.removeEventListener('abort', abort);
        }
      },
      { concurrency, stuckMs: this.options.stuckMs ?? 15_000, onReplaced: this.options.onStuckWorker },
    );
    this.running.push(worker);
    return worker;
  }

  /** Stops taking jobs; waits for those running here to end (or not, with `force`). */
  async close(force = false): Promise<void> {
    await Promise.all(this.running.map((w) => w.close(force)));
    await this.events.close();
    await this.queue.close();
    this.eventsConnection.disconnect();
  }
}
