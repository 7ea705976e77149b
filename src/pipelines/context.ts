/**
 * The job context: what every stage call receives. One per job, built by the runtime when the job is admitted;
 * outside a job (tests, scripts) `standaloneContext()` gives one that runs GPU work directly and reports nowhere.
 */
import type { Config } from '../config/schema.js';
import type { RgbaImage } from '../image/rgba.js';
import type { GaussianCloud } from '../splat/cloud.js';
import type { GpuRunner } from './stages.js';

/** The stages a job reports, in the order a text job runs them. */
export const STAGE_NAMES = ['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate'] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/** The config sections that decide what a job makes; a job carries them resolved (a preset may change them). */
export type JobSettings = Readonly<Pick<Config, 'pipeline' | 'text_to_image' | 'matting' | 'image_to_3d' | 'validate' | 'render'>>;

/** What a stage may show before the job ends: the text-to-image picture, the matte, the raw cloud. */
export type Intermediate = { name: 'image' | 'matte'; image: RgbaImage } | { name: 'cloud'; cloud: GaussianCloud };

/** Where a job's progress goes (the job registry, in the service). Calls must be cheap and never throw. */
export interface ProgressSink {
  stageStarted(stage: StageName, attempt: number): void;
  stageEnded(stage: StageName, attempt: number, ms: number): void;
  intermediate(item: Intermediate, attempt: number): void;
}

export interface JobContext {
  readonly id: string;
  /** Aborted when the job is cancelled, its client goes away or its deadline passes. */
  readonly signal: AbortSignal;
  /** Runs GPU work under the runtime's GPU lock and counts it as this job's GPU time. */
  readonly gpu: GpuRunner;
  readonly settings: JobSettings;
  readonly progress: ProgressSink;
  /** Milliseconds this job has held the GPU so far. */
  gpuMs(): number;
}

export const silentProgress: ProgressSink = {
  stageStarted() {},
  stageEnded() {},
  intermediate() {},
};

/**
 * Wraps a GPU runner so that the time each call holds the lock (not the time it waits for it) is summed: the
 * per-job GPU time the admission estimates come from.
 */
export function countingGpu(run: GpuRunner): { gpu: GpuRunner; gpuMs(): number } {
  let total = 0;
  const gpu: GpuRunner = (work, signal) =>
    run(async () => {
      const start = performance.now();
      try {
        return await work();
      } finally {
        total += performance.now() - start;
      }
    }, signal);
  return { gpu, gpuMs: () => total };
}

const direct: GpuRunner = (work) => work();

/** A context for stage calls outside any job: GPU work runs directly, progress goes nowhere. */
export function standaloneContext(
  settings: JobSettings,
  init: { id?: string; signal?: AbortSignal; gpu?: GpuRunner; progress?: ProgressSink } = {},
): JobContext {
  const counted = countingGpu(init.gpu ?? direct);
  return {
    id: init.id ?? 'standalone',
    signal: init.signal ?? new AbortController().signal,
    gpu: counted.gpu,
    gpuMs: counted.gpuMs,
    settings,
    progress: init.progress ?? silentProgress,
  };
}
