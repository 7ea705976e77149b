/**
 * A budget of bytes that admitted requests hold while they run: decoded input images (40 Mpx is 160 MB of
 * RGBA each) are taken from it before decoding and given back when the answer is done. A request that does not
 * fit is refused at once with BusyError (503 and Retry-After), so waiting jobs cannot take the process's memory.
 */
import { BusyError } from '../pipelines/errors.js';

export class MemoryBudget {
  private used = 0;

  constructor(
    readonly limitBytes: number,
    private readonly retryAfterS: () => number,
    private readonly onRefusal?: () => void,
  ) {}

  get usedBytes(): number {
    return this.used;
  }

  /** Takes `bytes` from the budget; returns the function that gives them back (once). */
  reserve(bytes: number, what = 'decoded images'): () => void {
    if (this.used + bytes > this.limitBytes) {
      this.onRefusal?.();
      const mib = (n: number) => Math.ceil(n / 1048576);
      throw new BusyError(
        `busy: ${what} of requests in flight hold ${mib(this.used)} MiB of ${mib(this.limitBytes)} MiB; this one needs ${mib(bytes)} MiB`,
        this.retryAfterS(),
      );
    }
    this.used += bytes;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= bytes;
    };
  }
}
