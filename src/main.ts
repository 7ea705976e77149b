/**
 * Composition root and process lifecycle: config -> backends -> pipeline -> service -> app -> server,
 * then signals. `fast3d serve` (src/commands/serve.ts) is the entry point that uses it.
 */
import type { ServerType } from '@hono/node-server';
import type { Server } from 'node:http';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { composeService } from './compose.js';
import type { NodeRole } from './runtime/service.js';
import { answerClientErrors } from './http/client-error.js';
import { ResponsesInFlight } from './http/in-flight.js';
import { listen } from './http/listen.js';
import { limitWriteStalls } from './http/write-timeout.js';
import type { Stages } from './pipelines/stages.js';
import { createLogger, type Logger } from './runtime/log.js';
import { VERSION } from './version.js';

// onnxruntime sends telemetry unless told not to before its first session.
process.env.ORT_DISABLE_TELEMETRY ??= '1';

export interface RunningServer {
  server: ServerType;
  port: number;
  /** server.shutdown_grace_s, for the stop message. */
  graceS: number;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Stages to use instead of the configured backends (tests, benches). */
  stages?: Partial<Stages>;
}

/** The flags `fast3d serve` takes. */
export const SERVER_FLAGS = { config: { type: 'string', short: 'c' }, role: { type: 'string' } } as const;

const ROLES: readonly NodeRole[] = ['all', 'api', 'worker'];

export async function startServer(argv: string[] = process.argv.slice(2), options: StartOptions = {}): Promise<RunningServer> {
  const { values } = parseArgs({ args: argv, options: SERVER_FLAGS, allowPositionals: true });
  const config = loadConfig({ path: values.config });
  const role = (values.role ?? 'all') as NodeRole;
  if (!ROLES.includes(role)) throw new ConfigError(`--role must be one of ${ROLES.join(', ')}, got "${String(values.role).slice(0, 40)}"`);
  const logger = createLogger(config.log.level, undefined, config.log.format);
  const composed = await composeService(config, { logger, stages: options.stages, role });
  const { service, app, renderPool, cpuPool, assetPool } = composed;

  if (service.mode === 'preview' && role !== 'api') printPreviewBanner();
  // An api node runs no stage: its backends stay unloaded.
  if (role !== 'api') void service.start();
  // Start the render workers now, so the first validator views or video do not wait for them.
  const warmStart = performance.now();
  renderPool.warm().then(
    () => logger.info({ workers: renderPool.started, ms: Math.round(performance.now() - warmStart) }, 'render workers ready'),
    (err: Error) => logger.warn({ err: err.message }, 'render workers failed to start; they will be retried on first use'),
  );

  const server: ServerType = await listen(app.fetch, config.server.host, config.server.port);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.server.port;
  logger.info(
    {
      version: VERSION,
      mode: service.mode,
      role,
      queue: config.queue.backend,
      host: config.server.host,
      port,
      auth: config.auth.enabled ? 'on' : 'off',
      pid: process.pid,
    },
    'listening',
  );
  logStartupNotes(logger, config, port);

  const http = server as Server;
  answerClientErrors(http);
  const inFlight = new ResponsesInFlight(http);
  limitWriteStalls(http, config.server.write_timeout_s * 1000, (req) =>
    logger.warn(
      { method: req.method, path: req.url, write_timeout_s: config.server.write_timeout_s },
      'client read nothing of its answer in time; connection closed',
    ),
  );
  let stopping: Promise<void> | undefined;
  /**
   * Graceful stop: admission closes at once (new jobs get 503 with Retry-After while the port stays open, so
   * clients get an answer rather than a refused connection), admitted requests get up to shutdown_grace_s to
   * finish whatever phase they are in (generating, waiting for the video line, rendering), and their answers up
   * to what is left of it to be flushed; then the server closes and the backends and render workers are released.
   */
  const stop = () => {
    stopping ??= (async () => {
      const graceMs = config.server.shutdown_grace_s * 1000;
      const started = performance.now();
      const left = () => graceMs - (performance.now() - started);
      const { running, waiting } = service.health().queue;
      logger.info(
        { grace_s: config.server.shutdown_grace_s, running, waiting, answering: service.answering },
        'shutting down: admission closed',
      );
      inFlight.close();
      const drained = await service.drain(graceMs);
      if (!drained) logger.warn({ grace_s: config.server.shutdown_grace_s }, 'grace period over: abandoning in-flight jobs');
      // Node's server.close() destroys every connection it deems idle, including one whose answer has ended
      // but is still queued behind a slow reader: so it waits until every answer is flushed.
      const pending = inFlight.size;
      const flushed = await inFlight.settled(left());
      if (!flushed) logger.warn({ responses: inFlight.size }, 'grace period over: cutting answers still being sent');
      else if (pending) logger.info({ responses: pending }, 'answers flushed');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(
          () => {
            http.closeAllConnections();
            resolve();
          },
          Math.max(1000, left()),
        );
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        // A keep-alive socket goes idle when its last answer is flushed: close it then.
        http.on('request', (_req, res) =>
          res.once('finish', () => {
            if (inFlight.size === 0) http.closeIdleConnections();
          }),
        );
      });
      await service.close();
      await renderPool.close();
      await cpuPool?.close();
      await assetPool.close();
      await composed.webhooks.close();
      await composed.closeCluster?.();
      logger.info({ drained, flushed }, 'stopped');
    })();
    return stopping;
  };
  return { server, port, graceS: config.server.shutdown_grace_s, stop };
}

const LOOPBACK_HOST = /^(localhost|127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

/**
 * What a newcomer would not see otherwise: that with auth off on an address other machines reach, anyone who can
 * reach the port can run jobs (the defaults: 0.0.0.0, auth off), and where the result cache writes, and how much.
 */
function logStartupNotes(logger: Logger, config: Config, port: number): void {
  const { host } = config.server;
  if (!config.auth.enabled && !LOOPBACK_HOST.test(host)) {
    const token = config.auth.token_env ? `export the token as ${config.auth.token_env} (auth.token_env)` : 'set auth.token';
    logger.warn(
      { host, port, auth: 'off' },
      `auth is off and the service listens on ${host}: anyone who can reach port ${port} can run jobs. To require a bearer token, ` +
        `set auth.enabled: true in a config file (--config FILE or FAST3D_CONFIG) and ${token}; or listen on this machine only with HOST=127.0.0.1`,
    );
  }
  if (config.queue.backend === 'bullmq' || config.store.backend === 's3') {
    const where = config.store.backend === 's3' ? `the bucket ${config.store.s3.bucket}` : resolve(config.store.directory);
    logger.info({ store: config.store.backend, where }, `results, artefacts and inputs in the shared store: ${where} (store.*)`);
  } else if (config.cache.enabled) {
    const directory = resolve(config.cache.directory);
    logger.info(
      { directory, max_size_mb: config.cache.max_size_mb },
      `result cache in ${directory}, up to ${config.cache.max_size_mb} MiB (cache.directory, cache.max_size_mb; cache.enabled: false turns it off)`,
    );
  }
}

function printPreviewBanner(): void {
  const line = '='.repeat(78);
  process.stderr.write(
    `${line}\n fast3d PREVIEW MODE: CPU stand-in backends (procedural image, keying, silhouette\n` +
      ` inflation). Outputs are valid PLY previews for testing the contract, NOT for mining:\n` +
      ` validators will score them low. Configure the GPU backends to mine.\n${line}\n`,
  );
}

/**
 * Ctrl-C reaches us twice within milliseconds when run through npm: once from the terminal's process group
 * and once forwarded by npm. A signal this soon after the first is that same interrupt, not a second one.
 */
const SAME_INTERRUPT_MS = 1000;

/**
 * Stops gracefully on the first SIGTERM or SIGINT, then exits (0 when stopped cleanly); a second signal
 * stops at once, abandoning what is in flight.
 */
export function stopOnSignals(running: RunningServer): void {
  let firstAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstAt === undefined) {
      firstAt = performance.now();
      const again = signal === 'SIGINT' ? 'press Ctrl-C again' : `send ${signal} again`;
      process.stderr.write(`fast3d: ${signal} received, finishing in-flight jobs (up to ${running.graceS} s); ${again} to stop at once\n`);
      running.stop().then(
        () => process.exit(0),
        (err: Error) => {
          process.stderr.write(`fast3d: error while stopping: ${err.message}\n`);
          process.exit(1);
        },
      );
      return;
    }
    if (performance.now() - firstAt < SAME_INTERRUPT_MS) return;
    process.stderr.write(`fast3d: second ${signal}: stopping now, abandoning in-flight jobs\n`);
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
