/**
 * /mcp: MCP's Streamable HTTP transport, stateless. Each HTTP request gets its own server and web-standard
 * transport (the SDK's pattern for stateless servers), so nothing is shared between clients and no session
 * outlives its request. A tool call answers as a server-sent event stream, which carries its progress
 * notifications before the result. A client that goes away closes the server, which aborts its tool calls
 * (and so their jobs).
 */
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { countJsonValues } from '../contract/bounded-body.js';
import { HttpError } from '../contract/errors.js';
import { mediaType } from '../contract/request.js';
import { errorResponse } from '../contract/responses.js';
import { createMcpServer, type McpDeps } from './server.js';

export type McpHandler = (request: Request) => Promise<Response>;

/**
 * Keys and array items a POST body may hold (a batch of up to 100 calls with their arguments is far fewer): the
 * SDK parses the body whole, and a million keys would hold the event loop for seconds.
 */
export const MAX_JSON_VALUES = 4096;

export function mcpHandler(deps: McpDeps, options: { maxBodyBytes: number }): McpHandler {
  return async (request) => {
    // DELETE ends a session, and a stateless server has none (the SDK would answer an empty 200).
    if (request.method === 'DELETE') {
      return errorResponse(
        new HttpError(405, 'DELETE is not allowed on /mcp: this server is stateless and keeps no sessions to end; use POST (or GET)', {
          Allow: 'GET, POST',
        }),
      );
    }
    const bounded = await boundedBody(request);
    if (bounded instanceof Response) return bounded;
    const { request: forSdk, parsedBody } = bounded;
    const server = createMcpServer(deps);
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: false,
      maxRequestBodySize: options.maxBodyBytes,
    });
    const close = () => {
      void server.close().catch(() => {});
    };
    request.signal.addEventListener('abort', close, { once: true });
    await server.connect(transport);
    return transport.handleRequest(forSdk, parsedBody === undefined ? undefined : { parsedBody });
  };
}

/**
 * A JSON POST's keys and items counted, then parsed once, before the SDK sees it (a tool call carrying a base64
 * asset is megabytes: reading it again would hold the event loop as long): the parsed body, or a 400. A body that
 * is not JSON goes to the SDK as it came, which answers JSON-RPC's parse error.
 */
async function boundedBody(request: Request): Promise<{ request: Request; parsedBody?: unknown } | Response> {
  if (request.method !== 'POST' || mediaType(request.headers.get('content-type') ?? undefined) !== 'application/json') return { request };
  const text = await request.text();
  if (countJsonValues(text, MAX_JSON_VALUES) > MAX_JSON_VALUES)
    return errorResponse(new HttpError(400, `JSON body has more than ${MAX_JSON_VALUES} keys and array items`));
  try {
    return { request, parsedBody: JSON.parse(text) };
  } catch {
    return { request: new Request(request, { body: text }) };
  }
}
