/**
 * The HTTP server the app runs in: Node's server with @hono/node-server's request listener. That listener
 * refuses some requests before the app sees them (a backslash in the path, a Host header that is no host, a
 * target that is no URL), by default with an empty 400; here they get the JSON error every other 4xx has.
 * (`serve()` builds the same listener but does not pass an error handler on to it.)
 */
import { getRequestListener, RequestError } from '@hono/node-server';
import { createServer, type Server } from 'node:http';
import { HttpError } from '../contract/errors.js';
import { errorResponse } from '../contract/responses.js';

export type FetchHandler = (request: Request) => Response | Promise<Response>;

/** The answer to a request the listener could not turn into a Request, or to a fetch handler that threw. */
export function listenerErrorResponse(err: unknown): Response {
  if (err instanceof RequestError) {
    const reason = err.message.charAt(0).toLowerCase() + err.message.slice(1);
    return errorResponse(new HttpError(400, `malformed request: ${reason}`));
  }
  return errorResponse(new HttpError(500, 'internal error'));
}

/** Starts listening on `hostname:port` (0: any free port); resolves once it listens. */
export function listen(fetch: FetchHandler, hostname: string, port: number): Promise<Server> {
  const server = createServer(getRequestListener(fetch, { hostname, errorHandler: listenerErrorResponse }));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, hostname, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
