/**
 * A BullMQ worker that is replaced when it stops taking jobs. After Redis goes away and comes back, a worker's
 * blocking connection can stay down for good while every other connection is back (BullMQ's issues #2964 and
 * #4585 describe it): the node looks healthy and jobs wait forever. The symptom is plain to see from outside: an
 * idle worker with jobs waiting takes one within milliseconds, so one that stays idle with jobs waiting for
 * `stuckMs` is stuck, and a new worker takes its place (the old one held no job, so nothing is lost).
 */
import { type Job, type Queue, Worker, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { ownConnection } from './redis.js';

export type Processor<D, R> = (job: Job<D, R>, token?: string, signal?: AbortSignal) => Promise<R>;

/**
 * Starts BullMQ workers of the queue `name`, each on a Redis connection of its own that closes with it (a replaced
 * worker's too). Its errors while Redis is away are the health poller's to report.
 */
export function workerStarter<D, R>(
  name: string,
  connection: Redis,
  options: Omit<WorkerOptions, 'connection'>,
): (processor: Processor<D, R>) => Worker<D, R> {
  return (processor) => {
    const own = ownConnection(connection);
    const worker = new Worker<D, R>(name, processor, { ...options, connection: own });
    worker.on('error', () => undefined);
    worker.once('closed', () => own.disconnect());
    return worker;
  };
}

export interface SupervisedWorkerOptions {
  concurrency: number;
  /** How long an idle worker may leave jobs waiting before it is replaced. */
  stuckMs: number;
  /** Called each time a stuck worker is replaced. */
  onReplaced?: (waiting: number) => void;
}

export class SupervisedWorker<D, R> {
  private worker: Worker<D, R>;
  private active = 0;
  private stuckSince: number | null = null;
  private checking = false;
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly queue: Queue<D, R>,
    private readonly start: (processor: Processor<D, R>) => Worker<D, R>,
    private readonly processor: Processor<D, R>,
    private readonly options: SupervisedWorkerOptions,
  ) {
    this.worker = this.startOne();
    this.timer = setInterval(() => void this.check(), Math.max(100, Math.round(options.stuckMs / 3)));
    this.timer.unref();
  }

  /** BullMQ's cancellation of a job this worker runs: its processor's signal aborts. False when it runs none such. */
  cancelJob(id: string, reason: string): boolean {
    return this.worker.cancelJob(id, reason);
  }

  /** Stops taking jobs; waits for those running here to end (or not, with `force`). */
  async close(force = false): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.worker.close(force);
  }

  private startOne(): Worker<D, R> {
    return this.start(async (job, token, signal) => {
      this.active++;
      try {
        return await this.processor(job, token, signal);
      } finally {
        this.active--;
      }
    });
  }

  private async check(): Promise<void> {
    if (this.closed || this.checking) return;
    this.checking = true;
    try {
      const waiting = this.active < this.options.concurrency ? await this.waitingJobs() : 0;
      if (waiting === 0 || this.active >= this.options.concurrency) {
        this.stuckSince = null;
        return;
      }
      this.stuckSince ??= Date.now();
      if (Date.now() - this.stuckSince < this.options.stuckMs || this.closed || this.active > 0) return;
      const stuck = this.worker;
      this.worker = this.startOne();
      this.stuckSince = null;
      this.options.onReplaced?.(waiting);
      void stuck.close(true).catch(() => undefined);
    } catch {
      // Redis does not answer: that is the health poller's to say, and no sign of a stuck worker.
      this.stuckSince = null;
    } finally {
      this.checking = false;
    }
  }

  private async waitingJobs(): Promise<number> {
    return this.queue.getJobCountByTypes('waiting', 'prioritized');
  }
}
