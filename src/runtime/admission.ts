/**
 * Admission: one job runs at a time, a bounded number wait. A job that cannot get a place is refused at once
 * (the caller answers 503 with Retry-After), and a waiting job whose signal aborts leaves the line.
 */
export class BusyError extends Error {
  override name = 'BusyError';
}

export class Admission {
  private running = 0;
  private readonly waiting: { start: () => void; abort: () => void; signal?: AbortSignal }[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly queueLength: number,
  ) {}

  get depth(): number {
    return this.waiting.length;
  }

  get active(): number {
    return this.running;
  }

  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.running < this.concurrency) {
      this.running++;
    } else {
      if (this.waiting.length >= this.queueLength) throw new BusyError(`busy: ${this.running} running, ${this.waiting.length} waiting`);
      await new Promise<void>((resolve, reject) => {
        const entry = {
          signal,
          start: () => { signal?.removeEventListener('abort', entry.abort); resolve(); },
          abort: () => {
            const at = this.waiting.indexOf(entry);
            if (at >= 0) this.waiting.splice(at, 1);
            reject(signal?.reason ?? new Error('aborted'));
          },
        };
        signal?.addEventListener('abort', entry.abort, { once: true });
        this.waiting.push(entry);
      });
      // The finishing job handed its slot over: `running` already counts this one.
    }
    try {
      return await work();
    } finally {
      const next = this.waiting.shift();
      if (next) next.start();
      else this.running--;
    }
  }
}
