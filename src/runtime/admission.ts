/**
 * Admission: up to `concurrency` jobs are inside the pipeline at once (their GPU calls still take turns under
 * the GPU lock, so one job's CPU stages overlap another's GPU stage) and a bounded number wait for a place.
 * A job that cannot get a place is refused at once (the caller answers 503 with Retry-After); a waiting job
 * whose signal aborts leaves the line; once closed, nothing new is admitted.
 */
export class BusyError extends Error {
  override name = 'BusyError';

  /** @param retryAfterS seconds after which a retry is likely to be admitted, when known. */
  constructor(message: string, readonly retryAfterS?: number) {
    super(message);
  }
}

/** The job ran (or waited) past its deadline and was abandoned. */
export class DeadlineError extends Error {
  override name = 'DeadlineError';
}

/** The service is shutting down and admits no new jobs. */
export class ShuttingDownError extends Error {
  override name = 'ShuttingDownError';
}

interface Waiter {
  start: () => void;
  abort: () => void;
  signal?: AbortSignal;
}

export class Admission {
  private running = 0;
  private closed = false;
  private readonly waiting: Waiter[] = [];
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    readonly concurrency: number,
    readonly queueLength: number,
  ) {
    if (!(concurrency >= 1)) throw new RangeError('admission needs a concurrency of at least 1');
  }

  /** Jobs waiting for a place. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Jobs inside the pipeline. */
  get active(): number {
    return this.running;
  }

  /** True when a new job would be refused right now. */
  get full(): boolean {
    return this.closed || (this.running >= this.concurrency && this.waiting.length >= this.queueLength);
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
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.closed) throw new ShuttingDownError('service is shutting down; no new jobs are admitted');
    signal?.throwIfAborted();
    if (this.running < this.concurrency) {
      this.running++;
    } else {
      if (this.waiting.length >= this.queueLength) {
        throw new BusyError(`busy: ${this.running} running, ${this.waiting.length} waiting`);
      }
      await new Promise<void>((resolve, reject) => {
        const entry: Waiter = {
          signal,
          start: () => { signal?.removeEventListener('abort', entry.abort); resolve(); },
          abort: () => {
            const at = this.waiting.indexOf(entry);
            if (at >= 0) this.waiting.splice(at, 1);
            this.notifyIdle();
            reject(signal?.reason ?? new Error('aborted'));
          },
        };
        signal?.addEventListener('abort', entry.abort, { once: true });
        this.waiting.push(entry);
      });
      // The finishing job handed its place over: `running` already counts this one.
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next.start();
      else this.running--;
      this.notifyIdle();
    }
  }

  private notifyIdle(): void {
    if (this.running !== 0 || this.waiting.length !== 0) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}
