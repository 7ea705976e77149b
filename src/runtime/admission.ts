/**
 * Admission: up to `concurrency` jobs are inside the pipeline at once (their GPU calls still take turns under
 * the GPU lock, so one job's CPU stages overlap another's GPU stage) and a bounded number wait for a place, in
 * priority classes. A place that frees up goes to the highest class waiting, and within a class to the job that
 * came first; so a flood of background jobs delays a contract job by at most the jobs already running.
 * A job that cannot get a place is refused at once (the caller answers 503 with Retry-After); a waiting job
 * whose signal aborts leaves the line; once closed, nothing new is admitted.
 */
import { BusyError, ShuttingDownError } from '../pipelines/errors.js';

export { BusyError, DeadlineError, ShuttingDownError } from '../pipelines/errors.js';

/** Priority classes, highest first: the miner's requests, people and agents, pregeneration. */
export const PRIORITIES = ['contract', 'interactive', 'background'] as const;
export type Priority = (typeof PRIORITIES)[number];

export type QueueLimits = Record<Priority, number>;

export interface RunOptions {
  signal?: AbortSignal;
  /** Default 'contract'. */
  priority?: Priority;
  /** Admit even after close(): the work belongs to a request admitted before (a held answer). */
  evenIfClosed?: boolean;
  /** The job's id, by which its place in line is told (`position`). */
  id?: string;
}

interface Waiter {
  id?: string;
  start: () => void;
  abort: () => void;
}

/** Finished jobs averaged for the job-time estimate behind Retry-After. */
const ESTIMATE_JOBS = 20;

export class Admission {
  private running = 0;
  private closed = false;
  private readonly waiting: Record<Priority, Waiter[]> = { contract: [], interactive: [], background: [] };
  private readonly limits: QueueLimits;
  private readonly idleWaiters: (() => void)[] = [];
  /** Wall milliseconds of recently finished jobs, newest last. */
  private readonly recentMs: number[] = [];

  /** @param queueLength one limit for every class, or one per class. */
  constructor(
    readonly concurrency: number,
    queueLength: number | QueueLimits,
  ) {
    if (!(concurrency >= 1)) throw new RangeError('admission needs a concurrency of at least 1');
    this.limits =
      typeof queueLength === 'number' ? { contract: queueLength, interactive: queueLength, background: queueLength } : { ...queueLength };
  }

  /** Jobs waiting for a place, in every class (or in one). */
  depthOf(priority?: Priority): number {
    if (priority) return this.waiting[priority].length;
    return PRIORITIES.reduce((n, p) => n + this.waiting[p].length, 0);
  }

  get depth(): number {
    return this.depthOf();
  }

  /** Jobs inside the pipeline. */
  get active(): number {
    return this.running;
  }

  /** True when a new job of this class would be refused right now. */
  isFull(priority: Priority = 'contract'): boolean {
    return this.closed || (this.running >= this.concurrency && this.waiting[priority].length >= this.limits[priority]);
  }

  get full(): boolean {
    return this.isFull('contract');
  }

  /** Jobs a new job of this class would wait behind: those running and those waiting in its class or higher. */
  ahead(priority: Priority = 'contract'): number {
    let n = this.running;
    for (const p of PRIORITIES) {
      n += this.waiting[p].length;
      if (p === priority) break;
    }
    return n;
  }

  /**
   * A waiting job's place in line, counting from 1 (the jobs of higher classes first, then its own class's in
   * order), or null when it is not waiting.
   */
  position(id: string): number | null {
    let ahead = 0;
    for (const p of PRIORITIES) {
      const at = this.waiting[p].findIndex((w) => w.id === id);
      if (at >= 0) return ahead + at + 1;
      ahead += this.waiting[p].length;
    }
    return null;
  }

  /** When a job at `position` in line likely starts, in ms from now (null before any job finished). */
  startInMs(position: number): number | null {
    const perJob = this.meanJobMs();
    return perJob === null ? null : Math.ceil(position / this.concurrency) * perJob;
  }

  /** Mean wall time of recent jobs in ms, or null before the first one finished. */
  meanJobMs(): number | null {
    if (!this.recentMs.length) return null;
    return this.recentMs.reduce((a, b) => a + b, 0) / this.recentMs.length;
  }

  /** How long a new job of this class would likely wait for a place, in ms (0 when one is free or unknown). */
  estimatedWaitMs(priority: Priority = 'contract'): number {
    const perJob = this.meanJobMs();
    const ahead = this.ahead(priority);
    if (perJob === null || ahead < this.concurrency) return 0;
    return Math.ceil((ahead - this.concurrency + 1) / this.concurrency) * perJob;
  }

  /** Stops admitting: later `run` calls throw ShuttingDownError; admitted and waiting jobs carry on. */
  close(): void {
    this.closed = true;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Resolves once no job is running or waiting. */
  idle(): Promise<void> {
    if (this.running === 0 && this.depth === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async run<T>(work: () => Promise<T>, options: RunOptions = {}): Promise<T> {
    const { signal, priority = 'contract' } = options;
    if (this.closed && !options.evenIfClosed) throw new ShuttingDownError('service is shutting down; no new jobs are admitted');
    signal?.throwIfAborted();
    if (this.running < this.concurrency) {
      this.running++;
    } else {
      const line = this.waiting[priority];
      if (line.length >= this.limits[priority]) {
        throw new BusyError(`busy: ${this.running} running, ${line.length} ${priority} jobs waiting`);
      }
      await new Promise<void>((resolve, reject) => {
        const entry: Waiter = {
          id: options.id,
          start: () => {
            signal?.removeEventListener('abort', entry.abort);
            resolve();
          },
          abort: () => {
            const at = line.indexOf(entry);
            if (at >= 0) line.splice(at, 1);
            this.notifyIdle();
            reject(signal?.reason ?? new Error('aborted'));
          },
        };
        signal?.addEventListener('abort', entry.abort, { once: true });
        line.push(entry);
      });
      // The finishing job handed its place over: `running` already counts this one.
    }
    const start = performance.now();
    try {
      return await work();
    } finally {
      this.recentMs.push(performance.now() - start);
      if (this.recentMs.length > ESTIMATE_JOBS) this.recentMs.shift();
      const next = this.nextWaiter();
      if (next) next.start();
      else this.running--;
      this.notifyIdle();
    }
  }

  /** The first waiter of the highest class that has one. */
  private nextWaiter(): Waiter | undefined {
    for (const p of PRIORITIES) {
      const next = this.waiting[p].shift();
      if (next) return next;
    }
    return undefined;
  }

  private notifyIdle(): void {
    if (this.running !== 0 || this.depth !== 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
