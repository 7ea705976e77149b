/**
 * Responses whose bytes have not all been handed to the kernel yet. Draining jobs is not enough for a
 * graceful stop: a finished job's 13 MB answer may still sit in the socket's queue behind a slow reader, and
 * closing the server then would cut that 200 short. 'finish' fires once the last byte is flushed to the
 * kernel, which delivers the rest even after the socket is closed.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export class ResponsesInFlight {
  private readonly open = new Set<ServerResponse>();
  private waiters: (() => void)[] = [];
  private closing = false;

  constructor(server: Server) {
    server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      this.open.add(res);
      // Answers begun while stopping say "Connection: close", so their sockets end with them.
      if (this.closing) res.shouldKeepAlive = false;
      const done = () => {
        if (!this.open.delete(res)) return;
        if (this.open.size === 0) for (const wake of this.waiters.splice(0)) wake();
      };
      res.once('finish', done);
      res.once('close', done);
    });
  }

  get size(): number {
    return this.open.size;
  }

  /** From now on, responses close their connection when done. */
  close(): void {
    this.closing = true;
  }

  /** Resolves true once no response is in flight, or false after `ms`. */
  settled(ms: number): Promise<boolean> {
    if (this.open.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(
        () => {
          this.waiters = this.waiters.filter((w) => w !== wake);
          resolve(false);
        },
        Math.max(0, ms),
      );
      timer.unref();
      this.waiters.push(wake);
    });
  }
}
