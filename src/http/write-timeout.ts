/**
 * A client that stops reading must not hold its answer (up to ~15 MB) and its socket forever: once a
 * response has begun, a socket that accepts no bytes for `ms` is destroyed. The clock starts at the
 * response's head, not at the request, so a long generation is not a stall. (Node's socket timeout is reset
 * by every completed write, so a slow reader that keeps reading is never cut.)
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export function limitWriteStalls(server: Server, ms: number, onTimeout?: (req: IncomingMessage) => void): void {
  if (ms <= 0) return;
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    // Node has no event for "headers written"; every path to the wire passes through writeHead.
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: Parameters<ServerResponse['writeHead']>) {
      res.writeHead = writeHead;
      res.setTimeout(ms, () => {
        onTimeout?.(req);
        res.destroy();
      });
      return writeHead.apply(this, args);
    } as ServerResponse['writeHead'];
  });
}
