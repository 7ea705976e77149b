/**
 * The stdio side of `fast3d mcp`: an MCP server offering the tools of tools.ts (same names, descriptions and
 * input schemas, so bad input is refused here with the same words) whose calls are forwarded, with the SDK's
 * client, to a running service's /mcp. Progress notifications travel back to the desktop client, and artefact
 * resources are read through the service too.
 *
 * The service's /mcp is stateless, so one client connection serves every call and survives a service restart;
 * when the service cannot be reached, the call is a tool error saying so and the next call connects again.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolResultSchema,
  McpError,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import type { ZodRawShape } from 'zod';
import { VERSION } from '../version.js';
import { ARTEFACT_URI_TEMPLATE, TOOL_NAMES, TOOLS } from './tools.js';

export interface ProxyOptions {
  /** The service's base URL (http://host:port) or its /mcp endpoint. */
  url: string;
  token?: string;
  /** Longest wait for one tool call without a progress notification, in ms. */
  callTimeoutMs?: number;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

const DEFAULT_CALL_TIMEOUT_MS = 10 * 60 * 1000;

/** The /mcp endpoint of a service URL: the URL itself when it already names /mcp. */
export function mcpEndpoint(url: string): URL {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error(`--url must be an http or https URL, got "${url}"`);
  if (!/\/mcp\/?$/.test(parsed.pathname)) parsed.pathname = `${parsed.pathname.replace(/\/+$/, '')}/mcp`;
  return parsed;
}

export function createProxyServer(options: ProxyOptions): { server: McpServer; close(): Promise<void> } {
  const endpoint = mcpEndpoint(options.url);
  const timeout = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  let connecting: Promise<Client> | null = null;

  const remote = (): Promise<Client> => {
    connecting ??= (async () => {
      const client = new Client({ name: 'fast3d-mcp-stdio', version: VERSION });
      const headers: Record<string, string> = options.token ? { Authorization: `Bearer ${options.token}` } : {};
      await client.connect(new StreamableHTTPClientTransport(endpoint, { requestInit: { headers } }));
      return client;
    })();
    // A failed connection is forgotten, so the next call tries again (the service may just be starting).
    connecting.catch(() => {
      connecting = null;
    });
    return connecting;
  };

  /** A call to the service; a connection that broke is dropped so the next call reconnects. */
  const withRemote = async <T>(work: (client: Client) => Promise<T>): Promise<T> => {
    const pending = remote();
    try {
      return await work(await pending);
    } catch (err) {
      if (!(err instanceof McpError)) {
        if (connecting === pending) connecting = null;
        throw new Error(`cannot use the fast3d service at ${endpoint.href}: ${(err as Error).message}`);
      }
      throw err;
    }
  };

  const server = new McpServer({ name: 'fast3d', version: VERSION });
  const forward =
    (name: string) =>
    async (args: Record<string, unknown>, extra: Extra): Promise<CallToolResult> => {
      const token = extra._meta?.progressToken;
      try {
        return (await withRemote((client) =>
          client.callTool({ name, arguments: args }, CallToolResultSchema, {
            signal: extra.signal,
            timeout,
            resetTimeoutOnProgress: true,
            onprogress: (progress) => {
              if (token === undefined) return;
              extra.sendNotification({ method: 'notifications/progress', params: { ...progress, progressToken: token } }).catch(() => {});
            },
          }),
        )) as CallToolResult;
      } catch (err) {
        return { isError: true, content: [{ type: 'text', text: (err as Error).message }] };
      }
    };
  for (const name of TOOL_NAMES) {
    const definition: { title: string; description: string; inputSchema: ZodRawShape } = TOOLS[name];
    server.registerTool(name, definition, forward(name));
  }

  server.registerResource(
    'artefact',
    new ResourceTemplate(ARTEFACT_URI_TEMPLATE, { list: () => withRemote((client) => client.listResources()) }),
    { title: 'Job artefact', description: 'An artefact of a finished job of the service: ply, spz, glb, mp4 or views (PNG).' },
    (uri) => withRemote((client) => client.readResource({ uri: uri.href })),
  );

  return {
    server,
    async close() {
      await server.close();
      const client = await connecting?.catch(() => null);
      await client?.close();
    },
  };
}
