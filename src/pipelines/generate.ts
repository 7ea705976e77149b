/**
 * The generation pipeline: one Job in, one Outcome out. It owns the one decision rule of the service:
 * run the chain, self-validate, retry with a new seed up to `retries` times, then decline.
 */
import type { RgbaImage } from '../image/rgba.js';
import { centreAndFit, withoutUnusedVertices, type TriangleMesh } from '../mesh/mesh.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { centreAndScale, dropNonFinite } from '../splat/frame.js';
import { VALIDATOR_GATES } from '../splat/gates.js';
import { pruneToBudget } from '../splat/prune.js';
import type { JobContext, JobSettings, StageName } from './context.js';
import { MeshUnsupportedError } from './errors.js';
import type { Attempt, Check, Job, Outcome, Report } from './job.js';
import { attemptSeed } from './seed.js';
import { nextTurn } from '../turns.js';
import { allBackends, type Backend, type Readiness, type Stages, type ValidationInput } from './stages.js';

export class Pipeline {
  readonly preview: boolean;

  constructor(readonly stages: Stages) {
    this.preview = allBackends(stages).some(({ backend }) => backend.preview);
  }

  /** Whether a job may ask for a mesh now: its image-to-3d backend makes one beside the cloud; if not, why. */
  meshReadiness(): Readiness {
    const backend = this.stages.imageTo3d;
    if (typeof backend.generateWithMesh !== 'function')
      return { ready: false, detail: `image-to-3d backend "${backend.name}" makes no meshes` };
    return backend.meshReadiness?.() ?? { ready: true };
  }

  /**
   * Runs the job under its context: retries and extent come from the job's settings, every stage reports its
   * start and end, and the picture, matte and raw cloud are shown as they appear.
   */
  async run(job: Job, ctx: JobContext): Promise<Outcome> {
    const report: Report = { attempts: [], timings: {}, preview: this.preview };
    const { stages } = this;
    const { signal, progress } = ctx;
    const { retries, extent, mesh_extent: meshExtent } = ctx.settings.pipeline;
    const meshes = job.mesh ? this.meshReadiness() : null;
    if (meshes && !meshes.ready) throw new MeshUnsupportedError(`${meshes.detail}: ask for a splat format`);
    const budget = gaussianBudget(ctx.settings);
    // An image task's matte does not depend on the seed: compute it once for every attempt.
    let userMatte: RgbaImage | null | undefined;
    let lastMade: { cloud: GaussianCloud; mesh?: TriangleMesh; seed: number } | undefined;

    for (let attempt = 0; attempt <= retries; attempt++) {
      const seed = attemptSeed(job.seed, attempt);
      const record: Attempt = { seed, checks: [], gaussians: 0, accepted: false };
      report.attempts.push(record);
      signal.throwIfAborted();
      const time = stageTimer(report.timings, ctx, attempt);

      let framed: RgbaImage | null;
      if (job.task.kind === 'text') {
        const prompt = job.task.prompt;
        const image = await time('text_to_image', () =>
          this.onBackend(stages.textToImage, ctx, () => stages.textToImage.generate(prompt, seed, ctx)),
        );
        progress.intermediate({ name: 'image', image }, attempt);
        signal.throwIfAborted();
        framed = await time('matting', () =>
          this.onBackend(stages.matting, ctx, () => stages.matting.matte({ image, fromUser: false }, ctx)),
        );
      } else {
        const image = job.task.image;
        if (userMatte === undefined) {
          userMatte = await time('matting', () =>
            this.onBackend(stages.matting, ctx, () => stages.matting.matte({ image, fromUser: true }, ctx)),
          );
        }
        framed = userMatte;
      }
      if (!framed) {
        record.reason = 'no object found in the image';
        // The same image gives the same empty matte: another seed cannot help an image task.
        if (job.task.kind === 'image') break;
        continue;
      }
      progress.intermediate({ name: 'matte', image: framed }, attempt);
      signal.throwIfAborted();

      const image = framed;
      const shape = await time('image_to_3d', () => this.onBackend(stages.imageTo3d, ctx, () => this.imageTo3d(job, image, seed, ctx)));
      const raw = shape.cloud;
      progress.intermediate({ name: 'cloud', cloud: raw }, attempt);
      const made = raw.count;
      const { cloud, mesh } = await time('normalise', async () => ({
        cloud: await normalise(raw, extent, budget),
        mesh: shape.mesh && fitMesh(shape.mesh, meshExtent),
      }));
      record.gaussians = cloud.count;
      if (made > cloud.count) record.dropped = made - cloud.count;
      if (job.mesh && !mesh?.indices.length) {
        // Nothing to deliver, nor to return as a best effort: another seed may make a surface.
        record.reason = 'image-to-3d made a mesh with no triangles';
        continue;
      }
      if (cloud.count > 0) lastMade = { cloud, mesh, seed };
      signal.throwIfAborted();

      const failed = await time('validate', () => this.validate({ job, cloud, mesh, image }, record.checks, ctx));
      if (failed) {
        record.reason = `${failed.name} ${failed.value} failed threshold ${failed.threshold} (${failed.by})`;
        continue;
      }
      record.accepted = true;
      return { kind: 'asset', cloud, ...(mesh && { mesh }), seed, report };
    }
    if (job.delivery?.onReject === 'best-effort' && lastMade) {
      report.bestEffort = true;
      return { kind: 'asset', ...lastMade, report };
    }
    const last = report.attempts[report.attempts.length - 1];
    return { kind: 'declined', reason: last?.reason ?? 'self-validation failed', report };
  }

  /** The cloud, and for a mesh job the mesh made with it in the same run. */
  private async imageTo3d(
    job: Job,
    image: RgbaImage,
    seed: number,
    ctx: JobContext,
  ): Promise<{ cloud: GaussianCloud; mesh?: TriangleMesh }> {
    const backend = this.stages.imageTo3d;
    if (job.mesh && backend.generateWithMesh) return backend.generateWithMesh(image, seed, ctx);
    return { cloud: await backend.generate(image, seed, ctx) };
  }

  /** Runs the validators in order; returns the first failing check, or null when all pass. */
  private async validate(input: ValidationInput, into: Check[], ctx: JobContext): Promise<Check | null> {
    for (const validator of this.stages.validators) {
      const checks = await this.onBackend(validator, ctx, () => validator.validate(input, ctx));
      into.push(...checks);
      const failed = checks.find((c) => !c.passed);
      if (failed) return failed;
    }
    return null;
  }

  /** GPU backends run under the job's GPU runner (the runtime's lock), so CPU stages of other jobs overlap. */
  private onBackend<T>(backend: Backend, ctx: JobContext, work: () => Promise<T>): Promise<T> {
    return backend.gpu ? ctx.gpu(work, ctx.signal) : work();
  }
}

/**
 * Every asset leaves in the same frame and scale, whatever backend made it, and within its Gaussian budget
 * (0: none). The cut comes before centring and scaling, so the kept Gaussians set the extent. Each step reads
 * the whole cloud, so each takes a turn of the event loop of its own.
 */
export async function normalise(cloud: GaussianCloud, extent: number, budget = 0): Promise<GaussianCloud> {
  let finite = dropNonFinite(cloud);
  if (budget > 0) {
    await nextTurn();
    finite = pruneToBudget(finite, budget).cloud;
  }
  await nextTurn();
  centreAndScale(finite, { extent });
  return finite;
}

/** A mesh job's mesh in its delivered frame and scale: unused vertices dropped, centred, fitted to the cube. */
export function fitMesh(mesh: TriangleMesh, extent: number): TriangleMesh {
  const used = withoutUnusedVertices(mesh);
  centreAndFit(used, extent);
  return used;
}

/**
 * The job's Gaussian budget (pipeline.max_gaussians, 0 = none), never below the gates' minimum nor the
 * validator's 7,000: a budget must not make an asset the validator refuses.
 */
export function gaussianBudget(settings: JobSettings): number {
  const budget = settings.pipeline.max_gaussians;
  if (budget <= 0) return 0;
  return Math.max(budget, settings.validate.gates.min_gaussians, VALIDATOR_GATES.minGaussians);
}

/** Times each stage into the report and tells the job's progress sink when it starts and ends. */
function stageTimer(into: Record<string, number>, ctx: JobContext, attempt: number) {
  return async <T>(stage: StageName, work: () => Promise<T>): Promise<T> => {
    // Each stage starts on a turn of the event loop of its own (not shared with another job's stage): CPU stages
    // run back to back would otherwise hold it for their sum, and /ping, /health and every other answer would wait.
    await nextTurn();
    ctx.progress.stageStarted(stage, attempt);
    const start = performance.now();
    try {
      return await work();
    } finally {
      const ms = performance.now() - start;
      into[stage] = Math.round(((into[stage] ?? 0) + ms) * 10) / 10;
      ctx.progress.stageEnded(stage, attempt, ms);
    }
  };
}
