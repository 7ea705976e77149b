/** Builds each stage's backend from the config: swapping a backend is a config line. */
import type { Config } from '../config/schema.js';
import type { GpuClientOptions } from '../runtime/gpu-client.js';
import { orientationMatrix } from '../splat/frame.js';
import { GpuWorkerImageTo3d } from './image-to-3d/gpu-worker.js';
import { InflateImageTo3d } from './image-to-3d/inflate.js';
import { KeyingMatting } from './matting/keying.js';
import type { ImageTo3d, Matting, Stages, TextToImage, Validator } from './stages.js';
import { GpuWorkerTextToImage } from './text-to-image/gpu-worker.js';
import { PreviewTextToImage } from './text-to-image/preview.js';
import { GatesValidator } from './validate/gates.js';

export function createStages(config: Config): Stages {
  return {
    textToImage: createTextToImage(config),
    matting: createMatting(config),
    imageTo3d: createImageTo3d(config),
    validators: config.validate.checks.map((check) => createValidator(config, check)),
  };
}

function createTextToImage(config: Config): TextToImage {
  const section = config.text_to_image;
  switch (section.backend) {
    case 'preview':
      return new PreviewTextToImage({ size: config.pipeline.image_size, lightJitter: section.preview.light_jitter });
    case 'gpu-worker':
      return new GpuWorkerTextToImage({
        client: gpuClientOptions(section.gpu_worker),
        promptSuffix: section.gpu_worker.prompt_suffix,
        steps: section.gpu_worker.steps,
        size: section.gpu_worker.size,
      });
  }
}

function createMatting(config: Config): Matting {
  const section = config.matting;
  const frame = { size: section.output_size, margin: section.margin, alphaThreshold: section.alpha_threshold };
  switch (section.backend) {
    case 'keying':
      return new KeyingMatting({
        ...frame,
        tolerance: section.keying.tolerance,
        softness: section.keying.softness,
        minCoverage: section.min_coverage,
        keepInputAlpha: section.keep_input_alpha,
      });
  }
}

function createImageTo3d(config: Config): ImageTo3d {
  const section = config.image_to_3d;
  switch (section.backend) {
    case 'inflate':
      return new InflateImageTo3d({
        maxGaussians: section.inflate.max_gaussians,
        depthRatio: section.inflate.depth_ratio,
        opacity: section.inflate.opacity,
        alphaThreshold: config.matting.alpha_threshold,
      });
    case 'gpu-worker': {
      const worker = section.gpu_worker;
      return new GpuWorkerImageTo3d({
        client: gpuClientOptions(worker),
        sampling: {
          sparseStructureSteps: worker.sparse_structure_steps,
          sparseStructureCfg: worker.sparse_structure_cfg,
          slatSteps: worker.slat_steps,
          slatCfg: worker.slat_cfg,
        },
        orientation: orientationMatrix(worker.orientation),
      });
    }
  }
}

function gpuClientOptions(section: Config['text_to_image']['gpu_worker'] | Config['image_to_3d']['gpu_worker']): GpuClientOptions {
  return {
    url: section.url,
    requestTimeoutMs: section.request_timeout_s * 1000,
    connectRetries: section.connect_retries,
    retryDelayMs: section.retry_delay_ms,
    pollIntervalMs: section.poll_interval_s * 1000,
    readyTimeoutMs: section.ready_timeout_s * 1000,
  };
}

function createValidator(config: Config, check: Config['validate']['checks'][number]): Validator {
  switch (check) {
    case 'gates':
      return new GatesValidator({
        minGaussians: config.validate.gates.min_gaussians,
        transparentBelow: config.validate.gates.transparent_below,
        maxTransparentShare: config.validate.gates.max_transparent_share,
      });
  }
}
