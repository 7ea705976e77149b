/** What the MCP tests share: a client over HTTP, and readers for the parts of a tool result. */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';

export async function httpClient(url: string, token?: string): Promise<Client> {
  const client = new Client({ name: 'fast3d-test', version: '1.0.0' });
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { requestInit: { headers } }));
  return client;
}

type Content = CallToolResult['content'][number];

export function textOf(result: CallToolResult): string {
  return result.content
    .filter((c): c is Extract<Content, { type: 'text' }> => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

export function imagesOf(result: CallToolResult): Extract<Content, { type: 'image' }>[] {
  return result.content.filter((c): c is Extract<Content, { type: 'image' }> => c.type === 'image');
}

export function linksOf(result: CallToolResult): Extract<Content, { type: 'resource_link' }>[] {
  return result.content.filter((c): c is Extract<Content, { type: 'resource_link' }> => c.type === 'resource_link');
}

/** The bytes of a resource read as one blob. */
export async function readBlob(client: Client, uri: string): Promise<{ bytes: Uint8Array; mimeType?: string }> {
  const read = await client.readResource({ uri });
  const first = read.contents[0] as { blob?: string; mimeType?: string };
  if (typeof first?.blob !== 'string') throw new Error(`${uri} is not a blob resource`);
  return { bytes: new Uint8Array(Buffer.from(first.blob, 'base64')), mimeType: first.mimeType };
}
