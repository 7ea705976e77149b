/**
 * Composition root and process lifecycle: config -> backends -> pipeline -> service -> app -> server,
 * then signals. `fast3d serve` (src/commands/serve.ts) is the entry point that uses it.
 */
import { serve, type ServerType } from '@hono/node-server';
import { parseArgs } from 'node:util';
import { loadConfig } from './config/load.js';
import { compose } from './compose.js';
import type { Stages } from './pipelines/stages.js';
import { createLogger } from './runtime/log.js';
import { VERSION } from './version.js';

// onnxruntime sends telemetry unless told not to before its first session.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export interface RunningServer {
  server: ServerType;
  port: number;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Stages to use instead of the configured backends (tests, benches). */
  stages?: Partial<Stages>;
}

export async function startServer(argv: string[] = process.argv.slice(2), options: StartOptions = {}): Promise<RunningServer> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' } }, allowPositionals: true });
  const config = loadConfig({ path: values.config });
  const logger = createLogger(config.log.level);
  const { service, app, renderPool } = compose(config, { logger, stages: options.stages });

  if (service.mode === 'preview') printPreviewBanner();
  void service.start();
  // Start the render workers now, so the first validator views or video do not wait for them.
  const warmStart = performance.now();
  renderPool.warm().then(
    () => logger.info({ workers: renderPool.started, ms: Math.round(performance.now() - warmStart) }, 'render workers ready'),
    (err: Error) => logger.warn({ err: err.message }, 'render workers failed to start; they will be retried on first use'),
  );

  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.server.host, port: config.server.port }, () => resolve(s));
    s.once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  logger.info({ version: VERSION, mode: service.mode, host: config.server.host, port }, 'listening');

  const http = server as ServerType & { closeIdleConnections?: () => void; closeAllConnections?: () => void };
  let stopping: Promise<void> | undefined;
  /**
   * Graceful stop: admission closes at once (new jobs get 503 with Retry-After while the port stays open, so
   * clients get an answer rather than a refused connection), admitted requests get up to shutdown_grace_s to
   * finish and answer whatever phase they are in (generating, waiting for the video line, rendering), then the
   * server closes and the backends and render workers are released.
   */
  const stop = () => {
    stopping ??= (async () => {
      const graceMs = config.server.shutdown_grace_s * 1000;
      const started = performance.now();
      const { running, waiting } = service.health().queue;
      logger.info({ grace_s: config.server.shutdown_grace_s, running, waiting, answering: service.answering }, 'shutting down: admission closed');
      const drained = await service.drain(graceMs);
      if (!drained) logger.warn({ grace_s: config.server.shutdown_grace_s }, 'grace period over: abandoning in-flight jobs');
      // Let the answers of the last jobs go out (bounded by what is left of the grace period, at least 1 s).
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          http.closeAllConnections?.();
          resolve();
        }, Math.max(1000, graceMs - (performance.now() - started)));
        timer.unref();
        server.close(() => { clearTimeout(timer); resolve(); });
        http.closeIdleConnections?.();
      });
      await service.close();
      await renderPool.close();
      logger.info({ drained }, 'stopped');
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

/** Stops gracefully on the first SIGTERM or SIGINT, then exits (0 when stopped cleanly). */
export function stopOnSignals(running: RunningServer): void {
  const onSignal = (signal: string) => {
    process.stderr.write(`fast3d: ${signal} received, finishing in-flight jobs\n`);
    running.stop().then(
      () => process.exit(0),
      (err: Error) => {
        process.stderr.write(`fast3d: error while stopping: ${err.message}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
}
