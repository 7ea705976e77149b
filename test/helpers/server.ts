/** Starts the real app on an ephemeral loopback port, built from a config object and optional test stages. */
import { serve, type ServerType } from '@hono/node-server';
import { compose } from '../../src/compose.js';
import { parseConfig } from '../../src/config/load.js';
import type { Stages } from '../../src/pipelines/stages.js';
import type { GenerationService } from '../../src/runtime/service.js';

export interface TestServer {
  url: string;
  service: GenerationService;
  close(): Promise<void>;
}

/** The result cache is off unless the test's config turns it on: a repeated request must exercise the pipeline. */
export async function startTestServer(config: Record<string, unknown> = {}, stages?: Partial<Stages>): Promise<TestServer> {
  const parsed = parseConfig({ log: { level: 'silent' }, cache: { enabled: false }, ...config });
  const { service, app } = compose(parsed, { stages });
  void service.start();
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    service,
    close: () => new Promise<void>((resolve) => {
      (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

/** POSTs an urlencoded form exactly as the miner's aiohttp client does. */
export function postForm(url: string, fields: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', body: new URLSearchParams(fields) });
}
