/**
 * The GPU lock: one GPU call at a time, first come first served. The pipeline takes it only around backends
 * with `gpu: true`, so one job's CPU stages run while another job holds the GPU. It also measures how busy the
 * GPU is; each job counts its own GPU time through its context (pipelines/context.ts).
 */

export class GpuLock {
  private held = false;
  private readonly waiting: { grant: () => void; signal?: AbortSignal; onAbort: () => void }[] = [];
  private busyTotalMs = 0;
  private heldSince = 0;
  /** Closed busy intervals [start, end] of the last `windowMs`, for the busy ratio. */
  private readonly intervals: [number, number][] = [];

  constructor(
    private readonly windowMs = 60_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Runs `work` holding the lock. A caller whose signal aborts while waiting leaves the line. */
  async run<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.held) {
      await new Promise<void>((resolve, reject) => {
        const entry = {
          signal,
          grant: () => {
            signal?.removeEventListener('abort', entry.onAbort);
            resolve();
          },
          onAbort: () => {
            const at = this.waiting.indexOf(entry);
            if (at >= 0) this.waiting.splice(at, 1);
            reject(signal?.reason ?? new Error('aborted'));
          },
        };
        signal?.addEventListener('abort', entry.onAbort, { once: true });
        this.waiting.push(entry);
      });
      // The releasing caller handed the lock over: `held` is still true.
    } else {
      this.held = true;
    }
    const start = this.now();
    this.heldSince = start;
    try {
      return await work();
    } finally {
      const end = this.now();
      this.busyTotalMs += end - start;
      this.intervals.push([start, end]);
      this.trim(end);
      const next = this.waiting.shift();
      if (next) next.grant();
      else this.held = false;
    }
  }

  get busy(): boolean {
    return this.held;
  }

  /** Callers waiting for the lock. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Total seconds the lock was held since start (closed calls only). */
  get busySeconds(): number {
    return this.busyTotalMs / 1000;
  }

  /** Share of the last window (or of the time since `since`, if shorter) during which the lock was held. */
  busyRatio(since = 0): number {
    const end = this.now();
    const from = Math.max(end - this.windowMs, since);
    if (end <= from) return 0;
    this.trim(end);
    let busy = 0;
    for (const [s, e] of this.intervals) busy += Math.max(0, Math.min(e, end) - Math.max(s, from));
    if (this.held) busy += end - Math.max(this.heldSince, from);
    return Math.min(1, busy / (end - from));
  }

  private trim(end: number): void {
    const cutoff = end - this.windowMs;
    while (this.intervals.length && this.intervals[0][1] < cutoff) this.intervals.shift();
  }
}
