/**
 * Builds the object graph from a config: backends -> pipeline (with the GPU lock) -> service -> cache, burst,
 * metrics -> app. Tests pass their own stages.
 */
import type { Hono } from 'hono';
import { createApp } from './app.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { createStages, type GpuWorkerSection, type StageDeps } from './pipelines/backends.js';
import { Pipeline } from './pipelines/generate.js';
import type { GpuRunner, Stages, ViewRenderer } from './pipelines/stages.js';
import { orientationMatrix } from './splat/frame.js';
import { Burst } from './runtime/burst.js';
import { configFingerprint, ResultCache, videoFingerprint } from './runtime/cache.js';
import { GpuWorkerClient } from './runtime/gpu-client.js';
import { GpuLock } from './runtime/gpu-lock.js';
import { renderValidatorViews, sharedRenderPool, turntableMp4 } from './render/index.js';
import type { Logger } from './runtime/log.js';
import { Metrics } from './runtime/metrics.js';
import { GenerationService } from './runtime/service.js';

export interface Composed {
  service: GenerationService;
  app: Hono<any>;
  gpu: GpuLock;
  cache?: ResultCache;
  metrics?: Metrics;
}

export interface ComposeOptions {
  logger?: Logger;
  stages?: Partial<Stages>;
  /** Renders the validator's views (the "clip" check needs it). */
  renderViews?: ViewRenderer;
  env?: NodeJS.ProcessEnv;
}

export function compose(config: Config, options: ComposeOptions = {}): Composed {
  const env = options.env ?? process.env;
  const logger = options.logger;
  const gpu = new GpuLock();
  const runOnGpu: GpuRunner = (work, signal) => gpu.run(work, signal);
  // Created first so that render.threads applies to every user of the shared pool (videos, validator views).
  const renderPool = sharedRenderPool(config.render.threads);
  const deps = { ...defaultStageDeps(), renderViews: options.renderViews ?? renderValidatorViews, gpu: runOnGpu };
  const stages: Stages = { ...createStages(config, deps), ...options.stages };
  const pipeline = new Pipeline(stages, { retries: config.pipeline.retries, extent: config.pipeline.extent, gpu: runOnGpu });
  const metrics = config.metrics.enabled ? new Metrics() : undefined;
  const service = new GenerationService(
    pipeline,
    {
      queueLength: config.runtime.queue_length,
      concurrency: config.runtime.pipeline_concurrency,
      deadlineMs: config.runtime.deadline_s * 1000,
      retryAfterS: config.runtime.retry_after_s,
      estimateJobs: config.runtime.estimate_jobs,
      videoConcurrency: config.runtime.video_concurrency,
      videoQueueLength: config.runtime.video_queue_length,
      gpu,
      metrics,
    },
    logger,
  );
  const cache = config.cache.enabled
    ? new ResultCache({
        directory: config.cache.directory,
        maxBytes: config.cache.max_size_mb * 1024 * 1024,
        memoryBytes: config.cache.memory_mb * 1024 * 1024,
        declineTtlMs: config.cache.decline_ttl_s * 1000,
        fingerprint: configFingerprint(config),
        metrics,
        logger,
      })
    : undefined;
  if (cache) metrics?.watch({ cacheSize: () => cache.size() });
  const peers = config.burst.peers.map((peer) => {
    const token = peer.token_env ? env[peer.token_env] : undefined;
    if (peer.token_env && !token) logger?.warn({ peer: peer.url, token_env: peer.token_env }, 'burst peer token variable is not set; sending no token');
    return { url: peer.url, token };
  });
  const burst = peers.length ? new Burst(peers, config.burst.timeout_s * 1000, metrics, logger) : undefined;
  const app = createApp(service, {
    limits: {
      maxPromptChars: config.contract.max_prompt_chars,
      maxImagePixels: config.contract.max_image_pixels,
      minImageSide: config.contract.min_image_side,
      imageFileDelivery: {
        rotation: orientationMatrix(config.contract.image_file_rotation),
        onReject: config.contract.image_file_on_reject,
      },
    },
    bodyLimitBytes: Math.round(config.server.body_limit_mb * 1024 * 1024),
    healthOkStatus: config.server.health_ok_status,
    retryAfterSeconds: config.runtime.retry_after_s,
    logger,
    metrics,
    cache,
    burst,
    authToken: authToken(config, env),
    metricsAuth: config.server.metrics_auth === 'token',
    video: {
      defaultRes: config.render.video_res,
      settings: videoFingerprint(config),
      turntable: (cloud, { size }, signal) => turntableMp4(cloud, { ...config.render, size, pool: renderPool }, signal),
    },
  });
  return { service, app, gpu, cache, metrics };
}

/** The runtime's implementations of what backends need: one GPU worker client per worker section. */
export function defaultStageDeps(): StageDeps {
  return {
    gpuWorker: (section: GpuWorkerSection) =>
      new GpuWorkerClient({
        url: section.url,
        requestTimeoutMs: section.request_timeout_s * 1000,
        connectRetries: section.connect_retries,
        retryDelayMs: section.retry_delay_ms,
        pollIntervalMs: section.poll_interval_s * 1000,
        readyTimeoutMs: section.ready_timeout_s * 1000,
      }),
  };
}

/** The bearer token the generate routes require, or undefined when auth is off. */
export function authToken(config: Config, env: NodeJS.ProcessEnv): string | undefined {
  if (config.server.metrics_auth === 'token' && !config.auth.enabled) {
    throw new ConfigError('server.metrics_auth is "token" but auth.enabled is false: enable auth and set its token');
  }
  if (!config.auth.enabled) return undefined;
  const token = (config.auth.token_env && env[config.auth.token_env]) || config.auth.token;
  if (!token) {
    throw new ConfigError(
      `auth.enabled is true but no token is set: export ${config.auth.token_env || 'the variable named in auth.token_env'} or set auth.token`,
    );
  }
  return token;
}

