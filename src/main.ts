/**
 * Composition root and process lifecycle: config -> backends -> pipeline -> service -> app -> server,
 * then signals. `fast3d serve` and `npm run preview` land here.
 */
import { serve, type ServerType } from '@hono/node-server';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig } from './config/load.js';
import { compose } from './compose.js';
import { createLogger } from './runtime/log.js';
import { VERSION } from './version.js';

// onnxruntime sends telemetry unless told not to before its first session.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export interface RunningServer {
  server: ServerType;
  port: number;
  stop(): Promise<void>;
}

export async function startServer(argv: string[] = process.argv.slice(2)): Promise<RunningServer> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } }, allowPositionals: true });
  const config = loadConfig({ path: values.config });
  const logger = createLogger(config.log.level);
  const { service, app } = compose(config, { logger });

  if (service.mode === 'preview') printPreviewBanner();
  void service.start();

  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.server.host, port: config.server.port }, () => resolve(s));
    s.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  logger.info({ version: VERSION, mode: service.mode, host: config.server.host, port }, 'listening');

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      logger.info({ grace_s: config.server.shutdown_grace_s }, 'shutting down: no new connections');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          resolve();
        }, config.server.shutdown_grace_s * 1000);
        timer.unref();
        server.close(() => { clearTimeout(timer); resolve(); });
        (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
      });
      await service.close();
      logger.info('stopped');
    })();
    return stopping;
  };
  return { server, port, stop };
}

function printPreviewBanner(): void {
  const line = '='.repeat(78);
  process.stderr.write(
    `${line}\n fast3d PREVIEW MODE: CPU stand-in backends (procedural image, keying, silhouette\n` +
      ` inflation). Outputs are valid PLY previews for testing the contract, NOT for mining:\n` +
      ` validators will score them low. Configure the GPU backends to mine.\n${line}\n`,
  );
}

async function main(): Promise<void> {
  let running: RunningServer;
  try {
    running = await startServer();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fast3d: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`fast3d: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const onSignal = (signal: string) => {
    process.stderr.write(`fast3d: ${signal} received, finishing in-flight jobs\n`);
    void running.stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main();
