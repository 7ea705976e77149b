/**
 * `fast3d mcp [--url URL] [--token TOKEN]`: an MCP server on stdin/stdout for desktop clients (editors, agents),
 * with the service's tools; each call is forwarded to a running service's /mcp. Nothing but the protocol is
 * written to stdout; problems go to stderr.
 */
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createProxyServer, mcpEndpoint } from '../mcp/proxy.js';
import { parseFlags } from './args.js';

export const summary = 'MCP server on stdio for desktop clients, forwarding to a running service (--url, --token)';

const DEFAULT_URL = 'http://127.0.0.1:8093';

export const usage = `usage: fast3d mcp [--url URL] [--token TOKEN]

Serves MCP on stdin/stdout with the service's tools (generate_3d_asset, get_job, list_recent_assets,
render_views, check_asset) and its artefacts as resources; every call goes to the running service at URL.

  --url URL       the service (default: FAST3D_URL, else ${DEFAULT_URL}); its /mcp endpoint is used
  --token TOKEN   bearer token of a service with auth on (default: FAST3D_API_TOKEN)
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseFlags(
      'mcp',
      argv,
      { url: { type: 'string' }, token: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      false,
    ));
  } catch (err) {
    process.stderr.write(`fast3d mcp: ${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const url = values.url ?? process.env.FAST3D_URL ?? DEFAULT_URL;
  try {
    mcpEndpoint(url);
  } catch (err) {
    process.stderr.write(`fast3d mcp: ${(err as Error).message}\n`);
    return 2;
  }
  const proxy = createProxyServer({ url, token: values.token ?? process.env.FAST3D_API_TOKEN });
  const transport = new StdioServerTransport();
  proxy.server.server.onerror = (err) => process.stderr.write(`fast3d mcp: ${err.message}\n`);
  await proxy.server.connect(transport);
  process.stderr.write(`fast3d mcp: serving on stdio, forwarding to ${mcpEndpoint(url).href}\n`);
  // The client ends the session by closing stdin.
  await new Promise<void>((resolve) => {
    process.stdin.once('end', resolve);
    process.stdin.once('close', resolve);
  });
  await proxy.close();
  return 0;
}
