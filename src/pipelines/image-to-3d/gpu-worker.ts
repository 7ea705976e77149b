/**
 * Image-to-3D on the GPU worker: TRELLIS-image-large. The worker returns the Gaussians in TRELLIS's internal
 * frame; the one configured rotation turns them into the validator's frame (+Y up, front toward +Z).
 */
import { encodePng } from '../../image/codec.js';
import type { RgbaImage } from '../../image/rgba.js';
import type { JobContext } from '../context.js';
import { GpuWorkerError, type GpuWorker } from '../gpu-worker.js';
import type { GaussianCloud } from '../../splat/cloud.js';
import { rotateCloud, rotationProblem, type Matrix3 } from '../../splat/frame.js';
import { decodePly } from '../../splat/ply.js';
import type { ImageTo3d, Readiness } from '../stages.js';

export interface TrellisSampling {
  sparseStructureSteps: number;
  sparseStructureCfg: number;
  slatSteps: number;
  slatCfg: number;
}

export interface GpuWorkerImageTo3dOptions {
  /** The worker's client (compose.ts builds it from the config). */
  client: GpuWorker;
  sampling: TrellisSampling;
  /** TRELLIS internal frame -> validator frame. */
  orientation: Matrix3;
}

export class GpuWorkerImageTo3d implements ImageTo3d {
  readonly name = 'gpu-worker';
  readonly preview = false;
  readonly gpu = true;
  readonly client: GpuWorker;

  constructor(private readonly options: GpuWorkerImageTo3dOptions) {
    assertRotation(options.orientation);
    this.client = options.client;
  }

  readiness(): Readiness {
    return this.client.readiness('image-to-3d');
  }

  async init(): Promise<void> {
    await this.client.waitUntilReady();
  }

  async close(): Promise<void> {
    this.client.close();
  }

  async generate(image: RgbaImage, seed: number, ctx?: JobContext): Promise<GaussianCloud> {
    const png = await encodePng(image);
    const ply = await this.client.imageTo3d({ png, seed, ...(ctx ? trellisSampling(ctx.settings.image_to_3d.gpu_worker) : this.options.sampling) }, ctx?.signal);
    let cloud: GaussianCloud;
    try {
      cloud = decodePly(ply);
    } catch (err) {
      throw new GpuWorkerError(`GPU worker returned a PLY that cannot be read: ${(err as Error).message}`);
    }
    rotateCloud(cloud, this.options.orientation);
    return cloud;
  }
}

/** The sampler parameters of a config section (the job's: a preset may change them). */
export function trellisSampling(section: { sparse_structure_steps: number; sparse_structure_cfg: number; slat_steps: number; slat_cfg: number }): TrellisSampling {
  return {
    sparseStructureSteps: section.sparse_structure_steps,
    sparseStructureCfg: section.sparse_structure_cfg,
    slatSteps: section.slat_steps,
    slatCfg: section.slat_cfg,
  };
}

/** Rejects at start-up what is not a proper rotation: a reflection or a shear would corrupt every asset. */
export function assertRotation(r: Matrix3): void {
  const problem = rotationProblem(r);
  if (problem) throw new Error(`orientation [${r.join(', ')}] ${problem}`);
}
