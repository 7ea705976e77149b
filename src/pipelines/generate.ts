/**
 * The generation pipeline: one Job in, one Outcome out. It owns the one decision rule of the service:
 * run the chain, self-validate, retry with a new seed up to `retries` times, then decline.
 */
import type { RgbaImage } from '../image/rgba.js';
import { cloneCloud, type GaussianCloud } from '../splat/cloud.js';
import { centreAndScale, dropNonFinite, rotateCloud, type Matrix3 } from '../splat/frame.js';
import { encodePly } from '../splat/ply.js';
import type { Attempt, Check, Job, Outcome, Report } from './job.js';
import { attemptSeed } from './seed.js';
import { allBackends, type Backend, type GpuRunner, type Stages } from './stages.js';

export interface PipelineOptions {
  /** Extra attempts after a failed self-validation. */
  retries: number;
  /** Largest extent of the normalised asset (0 keeps the scale). */
  extent: number;
  /**
   * Runs work that needs the GPU; the runtime passes its GPU lock here so that CPU stages of one job
   * overlap GPU stages of another. Defaults to running the work directly.
   */
  gpu?: GpuRunner;
}

export class Pipeline {
  readonly preview: boolean;

  constructor(
    readonly stages: Stages,
    private readonly options: PipelineOptions,
  ) {
    this.preview = allBackends(stages).some(({ backend }) => backend.preview);
  }

  async run(job: Job): Promise<Outcome> {
    const report: Report = { attempts: [], timings: {}, preview: this.preview };
    const time = timer(report.timings);
    const { stages } = this;
    const signal = job.signal;
    // An image task's matte does not depend on the seed: compute it once for every attempt.
    let userMatte: RgbaImage | null | undefined;
    let lastMade: { cloud: GaussianCloud; seed: number } | undefined;
    // The bytes go out in the delivery's frame; the cloud stays in the validator's (videos, views).
    const deliver = (cloud: GaussianCloud, seed: number): Outcome => {
      const ply = time.sync('encode', () => encodePly(job.delivery ? rotatedCopy(cloud, job.delivery.rotation) : cloud));
      return { kind: 'asset', cloud, ply, seed, report };
    };

    for (let attempt = 0; attempt <= this.options.retries; attempt++) {
      const seed = attemptSeed(job.seed, attempt);
      const record: Attempt = { seed, checks: [], gaussians: 0, accepted: false };
      report.attempts.push(record);
      signal?.throwIfAborted();

      let framed: RgbaImage | null;
      if (job.task.kind === 'text') {
        const prompt = job.task.prompt;
        const image = await time('text_to_image', () => this.onBackend(stages.textToImage, () => stages.textToImage.generate(prompt, seed, signal), signal));
        signal?.throwIfAborted();
        framed = await time('matting', () => this.onBackend(stages.matting, () => stages.matting.matte({ image, fromUser: false }, signal), signal));
      } else {
        const image = job.task.image;
        if (userMatte === undefined) {
          userMatte = await time('matting', () => this.onBackend(stages.matting, () => stages.matting.matte({ image, fromUser: true }, signal), signal));
        }
        framed = userMatte;
      }
      if (!framed) {
        record.reason = 'no object found in the image';
        // The same image gives the same empty matte: another seed cannot help an image task.
        if (job.task.kind === 'image') break;
        continue;
      }
      signal?.throwIfAborted();

      const image = framed;
      const raw = await time('image_to_3d', () => this.onBackend(stages.imageTo3d, () => stages.imageTo3d.generate(image, seed, signal), signal));
      const cloud = time.sync('normalise', () => normalise(raw, this.options.extent));
      record.gaussians = cloud.count;
      if (cloud.count > 0) lastMade = { cloud, seed };
      signal?.throwIfAborted();

      const failed = await time('validate', () => this.validate(job, cloud, image, record.checks, signal));
      if (failed) {
        record.reason = `${failed.name} ${failed.value} failed threshold ${failed.threshold} (${failed.by})`;
        continue;
      }
      record.accepted = true;
      return deliver(cloud, seed);
    }
    if (job.delivery?.onReject === 'best-effort' && lastMade) {
      report.bestEffort = true;
      return deliver(lastMade.cloud, lastMade.seed);
    }
    const last = report.attempts[report.attempts.length - 1];
    return { kind: 'declined', reason: last?.reason ?? 'self-validation failed', report };
  }

  /** Runs the validators in order; returns the first failing check, or null when all pass. */
  private async validate(job: Job, cloud: GaussianCloud, image: RgbaImage, into: Check[], signal?: AbortSignal): Promise<Check | null> {
    for (const validator of this.stages.validators) {
      const checks = await this.onBackend(validator, () => validator.validate({ job, cloud, image }, signal), signal);
      into.push(...checks);
      const failed = checks.find((c) => !c.passed);
      if (failed) return failed;
    }
    return null;
  }

  private onBackend<T>(backend: Backend, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return backend.gpu && this.options.gpu ? this.options.gpu(work, signal) : work();
  }
}

function rotatedCopy(cloud: GaussianCloud, rotation: Matrix3): GaussianCloud {
  const copy = cloneCloud(cloud);
  rotateCloud(copy, rotation);
  return copy;
}

/** Every asset leaves in the same frame and scale, whatever backend made it. */
export function normalise(cloud: GaussianCloud, extent: number): GaussianCloud {
  const finite = dropNonFinite(cloud);
  centreAndScale(finite, { extent });
  return finite;
}

type Timer = (<T>(stage: string, work: () => Promise<T>) => Promise<T>) & {
  sync<T>(stage: string, work: () => T): T;
};

function timer(into: Record<string, number>): Timer {
  const add = (stage: string, start: number) => {
    into[stage] = Math.round(((into[stage] ?? 0) + performance.now() - start) * 10) / 10;
  };
  const time = (async (stage, work) => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      add(stage, start);
    }
  }) as Timer;
  time.sync = (stage, work) => {
    const start = performance.now();
    try {
      return work();
    } finally {
      add(stage, start);
    }
  };
  return time;
}
