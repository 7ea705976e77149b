/** Builds the object graph from a config: backends -> pipeline -> service -> app. Tests pass their own stages. */
import type { Hono } from 'hono';
import { createApp } from './app.js';
import type { Config } from './config/schema.js';
import { createStages } from './pipelines/backends.js';
import { Pipeline } from './pipelines/generate.js';
import type { Stages } from './pipelines/stages.js';
import { sharedRenderPool, turntableMp4 } from './render/index.js';
import type { Logger } from './runtime/log.js';
import { GenerationService } from './runtime/service.js';

export interface Composed {
  service: GenerationService;
  app: Hono<any>;
}

export function compose(config: Config, options: { logger?: Logger; stages?: Partial<Stages> } = {}): Composed {
  const stages: Stages = { ...createStages(config), ...options.stages };
  const pipeline = new Pipeline(stages, { retries: config.pipeline.retries, extent: config.pipeline.extent });
  const service = new GenerationService(pipeline, { queueLength: config.runtime.queue_length }, options.logger);
  // Created here so that render.threads applies to every user of the shared pool (videos, validator views).
  const renderPool = sharedRenderPool(config.render.threads);
  const app = createApp(service, {
    limits: {
      maxPromptChars: config.contract.max_prompt_chars,
      maxImagePixels: config.contract.max_image_pixels,
      minImageSide: config.contract.min_image_side,
    },
    bodyLimitBytes: Math.round(config.server.body_limit_mb * 1024 * 1024),
    healthOkStatus: config.server.health_ok_status,
    retryAfterSeconds: config.runtime.retry_after_s,
    logger: options.logger,
    video: {
      defaultRes: config.render.video_res,
      turntable: (cloud, { size }, signal) => turntableMp4(cloud, { ...config.render, size, pool: renderPool }, signal),
    },
  });
  return { service, app };
}
