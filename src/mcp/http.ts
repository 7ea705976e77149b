/**
 * /mcp: MCP's Streamable HTTP transport, stateless. Each HTTP request gets its own server and web-standard
 * transport (the SDK's pattern for stateless servers), so nothing is shared between clients and no session
 * outlives its request. A tool call answers as a server-sent event stream, which carries its progress
 * notifications before the result. A client that goes away closes the server, which aborts its tool calls
 * (and so their jobs).
 */
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import { createMcpServer, type McpDeps } from './server.js';

export type McpHandler = (request: Request) => Promise<Response>;

export function mcpHandler(deps: McpDeps, options: { maxBodyBytes: number }): McpHandler {
  return async (request) => {
    const server = createMcpServer(deps);
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: false, maxRequestBodySize: options.maxBodyBytes });
    const close = () => { void server.close().catch(() => {}); };
    request.signal.addEventListener('abort', close, { once: true });
    await server.connect(transport);
    return transport.handleRequest(request);
  };
}
