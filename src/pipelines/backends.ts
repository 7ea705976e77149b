/** Builds each stage's backend from the config: swapping a backend is a config line. */
import { applyPreset } from '../config/presets.js';
import type { Config } from '../config/schema.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import { orientationMatrix } from '../splat/frame.js';
import { GpuWorkerImageTo3d } from './image-to-3d/gpu-worker.js';
import { IsnetMatting } from './matting/isnet.js';
import type { GpuWorker } from './gpu-worker.js';
import type { ModelStore } from './model-files.js';
import type { ModelRunner } from './model-runner.js';
import { inflateImageTo3d, keyingMatting, previewTextToImage } from './preview-backends.js';
import type { ImageTo3d, Matting, Stages, TextToImage, Validator, ViewRenderer } from './stages.js';
import { GpuWorkerTextToImage } from './text-to-image/gpu-worker.js';
import { clipFolderFiles, ClipValidator } from './validate/clip.js';
import { GatesValidator } from './validate/gates.js';
import { ValidatorServiceValidator } from './validate/validator-service.js';

export type GpuWorkerSection = Config['text_to_image']['gpu_worker'] | Config['image_to_3d']['gpu_worker'];

/** What backends need from outside the pipeline layer; compose.ts provides it (see defaultStageDeps). */
export interface StageDeps {
  /** The GPU worker's client for a config section. */
  gpuWorker?: (section: GpuWorkerSection) => GpuWorker;
  /** Renders the validator's views of a cloud; the "clip" check needs it. */
  renderViews?: ViewRenderer;
  /** The model files of backends that load models (isnet, clip), checked as `npm run weights -- --check` does. */
  models?: ModelStore;
  /** Where those models run: compose.ts's runner keeps each in a worker thread, off the event loop. */
  modelRunner?: ModelRunner;
  /**
   * Reads the GPU worker's GLBs (compose.ts hands in its CPU pool's, off the event loop); default: in this thread.
   * A file that cannot be read rejects with GlbReadError, as decodeGlb does.
   */
  decodeGlb?: (bytes: Uint8Array) => Promise<TriangleMesh>;
}

export function createStages(config: Config, deps: StageDeps = {}): Stages {
  return {
    textToImage: createTextToImage(config, deps),
    matting: createMatting(config, deps),
    imageTo3d: createImageTo3d(config, deps),
    validators: config.validate.checks.map((check) => createValidator(config, check, deps)),
  };
}

function createTextToImage(config: Config, deps: StageDeps): TextToImage {
  const section = config.text_to_image;
  switch (section.backend) {
    case 'preview':
      return previewTextToImage(config);
    case 'gpu-worker':
      return new GpuWorkerTextToImage({
        client: gpuWorker(deps, section.gpu_worker),
        promptSuffix: section.gpu_worker.prompt_suffix,
      });
  }
}

function createMatting(config: Config, deps: StageDeps): Matting {
  const section = config.matting;
  const frame = { size: section.output_size, margin: section.margin, alphaThreshold: section.alpha_threshold };
  switch (section.backend) {
    case 'keying':
      return keyingMatting(config);
    case 'isnet': {
      const store = models(deps);
      return new IsnetMatting({
        ...frame,
        model: store.files([store.resolve(section.isnet.model)]),
        executionProvider: section.isnet.execution_provider,
        inputSize: section.isnet.input_size,
        threads: section.isnet.threads,
        minCoverage: section.min_coverage,
        keepInputAlpha: section.keep_input_alpha,
        runner: modelRunner(deps),
      });
    }
  }
}

function createImageTo3d(config: Config, deps: StageDeps): ImageTo3d {
  const section = config.image_to_3d;
  switch (section.backend) {
    case 'inflate':
      return inflateImageTo3d(config);
    case 'gpu-worker': {
      const worker = section.gpu_worker;
      return new GpuWorkerImageTo3d({
        client: gpuWorker(deps, worker),
        orientation: orientationMatrix(worker.orientation),
        decodeGlb: deps.decodeGlb,
      });
    }
  }
}

function models(deps: StageDeps): ModelStore {
  if (!deps.models) throw new Error("model backends need the model files: build stages with compose.ts's defaultStageDeps(config)");
  return deps.models;
}

function modelRunner(deps: StageDeps): ModelRunner {
  if (!deps.modelRunner) throw new Error("model backends need a model runner: build stages with compose.ts's defaultStageDeps(config)");
  return deps.modelRunner;
}

function gpuWorker(deps: StageDeps, section: GpuWorkerSection): GpuWorker {
  if (!deps.gpuWorker)
    throw new Error("gpu-worker backends need a GPU worker client: build stages with compose.ts's defaultStageDeps(config)");
  return deps.gpuWorker(section);
}

function createValidator(config: Config, check: Config['validate']['checks'][number], deps: StageDeps): Validator {
  switch (check) {
    case 'gates':
      return new GatesValidator();
    case 'clip': {
      if (!deps.renderViews) {
        throw new Error(
          'validate.checks lists "clip", but no view renderer was given to createStages (it scores rendered views of the asset)',
        );
      }
      const clip = config.validate.clip;
      const store = models(deps);
      const modelDir = store.resolve(clip.model);
      // The aesthetic head is loaded when the config or any preset asks for its score.
      const aesthetic = [config.validate, ...Object.values(config.presets).map((p) => applyPreset(config, p).validate)].some(
        (v) => v.clip.min_aesthetic > 0,
      );
      const aestheticPath = aesthetic ? store.resolve(clip.aesthetic_weights) : null;
      const paths = clipFolderFiles(clip.dtype).map((f) => `${modelDir}/${f}`);
      if (aestheticPath) paths.push(aestheticPath);
      return new ClipValidator(
        {
          modelDir,
          files: store.files(paths),
          aestheticPath,
          dtype: clip.dtype,
          device: clip.device,
          lockModelsOnGpu: clip.device === 'cuda',
          views: clip.views,
          viewSize: clip.view_size,
          textCache: clip.text_cache,
          runner: modelRunner(deps),
        },
        deps.renderViews,
      );
    }
    case 'validator-service': {
      const service = config.validate.validator_service;
      return new ValidatorServiceValidator({ url: service.url, timeoutMs: service.timeout_s * 1000 });
    }
  }
}
