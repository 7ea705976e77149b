/** Starts the real app on an ephemeral loopback port, built from a config object and optional test stages. */
import { compose } from '../../src/compose.js';
import { parseConfig } from '../../src/config/load.js';
import type { Stages } from '../../src/pipelines/stages.js';
import type { GenerationService } from '../../src/runtime/service.js';
import { serveApp } from './fake-stages.js';

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
  const served = await serveApp(app);
  return { url: served.url, service, close: served.close };
}

/** POSTs an urlencoded form exactly as the miner's aiohttp client does. */
export function postForm(url: string, fields: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', body: new URLSearchParams(fields) });
}
