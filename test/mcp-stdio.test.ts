/**
 * `fast3d mcp` over stdio with the SDK's own client: the CLI runs as a child process and forwards to a real
 * service with auth on. The same tools, progress, a valid PLY resource, PNG views, and failures (bad input, a
 * wrong token, no service) as tool errors while the process keeps serving.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose, type Composed } from '../src/compose.js';
import { decodeImage } from '../src/image/codec.js';
import { decodePly } from '../src/splat/ply.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { fakeStages, serveApp, testConfig, type Served } from './helpers/fake-stages.js';
import { imagesOf, linksOf, readBlob, textOf } from './helpers/mcp.js';

const TOKEN = 'stdio-test-token';
const ROOT = new URL('..', import.meta.url).pathname;

/** The CLI's MCP server as a child process, and a client on its stdin/stdout. */
async function stdioClient(args: string[], env: Record<string, string> = {}): Promise<Client> {
  const client = new Client({ name: 'fast3d-stdio-test', version: '1.0.0' });
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !e[0].startsWith('FAST3D_')),
  );
  await client.connect(
    new StdioClientTransport({
      command: process.execPath,
      args: ['--import', 'tsx', 'src/cli.ts', 'mcp', ...args],
      cwd: ROOT,
      env: { ...inherited, ...env },
      stderr: 'ignore',
    }),
  );
  return client;
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('fast3d mcp (stdio) against a running service', () => {
  let served: Served;
  let composed: Composed;
  const clients: Client[] = [];
  let client: Client;

  beforeAll(async () => {
    composed = compose(testConfig({ auth: { enabled: true, token: TOKEN }, pipeline: { retries: 0 }, render: { threads: 2 } }), {
      stages: fakeStages().stages,
    });
    await composed.service.start();
    served = await serveApp(composed.app);
    // The token comes from the environment, as the README's client configuration passes it.
    client = await stdioClient(['--url', served.url], { FAST3D_API_TOKEN: TOKEN });
    clients.push(client);
  }, 30_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await served?.close();
    await composed?.service.close();
    await composed?.renderPool.close();
  });

  const call = (c: Client, name: string, args: Record<string, unknown>) => c.callTool({ name, arguments: args }) as Promise<CallToolResult>;

  it('lists the same tools as /mcp', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(['check_asset', 'generate_3d_asset', 'get_job', 'list_recent_assets', 'render_views']);
    const generate = tools.find((t) => t.name === 'generate_3d_asset')!;
    expect(Object.keys(generate.inputSchema.properties!)).toEqual(
      expect.arrayContaining(['prompt', 'image_base64', 'preset', 'seed', 'formats']),
    );
  });

  it('generates with progress, reads the PLY resource, and renders decodable PNG views', async () => {
    const progress: string[] = [];
    const result = (await client.callTool({ name: 'generate_3d_asset', arguments: { prompt: 'a brass telescope' } }, undefined, {
      onprogress: (p) => progress.push(p.message ?? ''),
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(progress).toContain('image_to_3d started (attempt 1)');
    expect(progress.at(-1)).toBe('done');
    const jobId = (result.structuredContent as { job_id: string }).job_id;
    // The job ran in the service the command forwards to.
    expect((await composed.answers.get(jobId))?.state).toBe('done');

    const [link] = linksOf(result);
    expect(link.uri).toBe(`fast3d://jobs/${jobId}/ply`);
    const { bytes } = await readBlob(client, link.uri);
    expect(servablePlyViolation(bytes)).toBeNull();
    expect(decodePly(bytes).count).toBeGreaterThan(7000);

    const views = await call(client, 'render_views', { job_id: jobId, count: 2, size: 64 });
    expect(imagesOf(views)).toHaveLength(2);
    const image = await decodeImage(new Uint8Array(Buffer.from(imagesOf(views)[0].data, 'base64')), { maxPixels: 1 << 20, minSide: 1 });
    expect([image.width, image.height]).toEqual([64, 64]);

    const checked = await call(client, 'check_asset', { uri: link.uri });
    expect(checked.structuredContent).toMatchObject({ ok: true });
  });

  it('bad input is a tool error, and the process goes on serving', async () => {
    const missing = await call(client, 'generate_3d_asset', {});
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toMatch(/exactly one of "prompt"/);
    const badSeed = await call(client, 'generate_3d_asset', { prompt: 'a chair', seed: 'seven' });
    expect(badSeed.isError).toBe(true);
    expect(textOf(badSeed)).toMatch(/seed/);
    const unknown = await call(client, 'get_job', { job_id: 'no-such-job' });
    expect(textOf(unknown)).toMatch(/no job "no-such-job"/);
    expect((await client.listTools()).tools).toHaveLength(5);
  });

  it('a wrong token or an unreachable service is a tool error naming the service', async () => {
    const wrong = await stdioClient(['--url', served.url, '--token', 'not-the-token']);
    clients.push(wrong);
    const refused = await call(wrong, 'get_job', { job_id: 'x' });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toMatch(new RegExp(`${served.url}/mcp.*invalid bearer token`));

    const nowhere = `http://127.0.0.1:${await closedPort()}`;
    const lonely = await stdioClient(['--url', nowhere]);
    clients.push(lonely);
    expect((await lonely.listTools()).tools).toHaveLength(5);
    const unreachable = await call(lonely, 'list_recent_assets', {});
    expect(unreachable.isError).toBe(true);
    expect(textOf(unreachable)).toContain(`cannot use the fast3d service at ${nowhere}/mcp`);
    // Still serving after the failure.
    expect((await call(lonely, 'list_recent_assets', {})).isError).toBe(true);
  });
});
