/** Builds the object graph from a config: backends -> pipeline -> service -> app. Tests pass their own stages. */
import type { Hono } from 'hono';
import { createApp } from './app.js';
import type { Config } from './config/schema.js';
import { createStages, type GpuWorkerSection, type StageDeps } from './pipelines/backends.js';
import { Pipeline } from './pipelines/generate.js';
import type { Stages, ViewRenderer } from './pipelines/stages.js';
import { orientationMatrix } from './splat/frame.js';
import type { Logger } from './runtime/log.js';
import { GpuWorkerClient } from './runtime/gpu-client.js';
import { GenerationService } from './runtime/service.js';

export interface Composed {
  service: GenerationService;
  app: Hono<any>;
}

export function compose(config: Config, options: { logger?: Logger; stages?: Partial<Stages>; renderViews?: ViewRenderer } = {}): Composed {
  const stages: Stages = { ...createStages(config, { ...defaultStageDeps(), renderViews: options.renderViews }), ...options.stages };
  const pipeline = new Pipeline(stages, { retries: config.pipeline.retries, extent: config.pipeline.extent });
  const service = new GenerationService(pipeline, { queueLength: config.runtime.queue_length }, options.logger);
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
    logger: options.logger,
  });
  return { service, app };
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
