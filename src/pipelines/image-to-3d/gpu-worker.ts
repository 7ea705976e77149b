/**
 * Image-to-3D on the GPU worker: TRELLIS-image-large. The worker returns the Gaussians in TRELLIS's internal
 * frame; the one configured rotation turns them into the validator's frame (+Y up, front toward +Z).
 *
 * Meshes come baked by TRELLIS's to_glb, which has already rotated them: `vertices @ [[1, 0, 0], [0, 0, -1],
 * [0, 1, 0]]` on row vectors, i.e. (x, y, z) -> (x, z, -y), the matrix TO_GLB_ROTATION below (the same as the
 * "z-up" orientation). A GLB vertex g is thus TO_GLB_ROTATION * p for the internal-frame point p, and the
 * Gaussians' canonical point is orientation * p; so the mesh goes to the canonical frame by
 * orientation * TO_GLB_ROTATION^T, and splat and mesh of one job face the same way whatever the orientation
 * says. With the default orientation ("z-up") that product is the identity: to_glb's glTF frame is already
 * +Y up, front toward +Z.
 */
import { encodePng } from '../../image/codec.js';
import type { RgbaImage } from '../../image/rgba.js';
import type { JobContext } from '../context.js';
import { GpuWorkerError, type GpuWorker, type MeshBake } from '../gpu-worker.js';
import { decodeGlb, GlbReadError } from '../../mesh/glb.js';
import { rotateMesh, triangleCount, type TriangleMesh } from '../../mesh/mesh.js';
import type { GaussianCloud } from '../../splat/cloud.js';
import { IDENTITY3, rotateCloud, rotationProblem, transpose, type Matrix3 } from '../../splat/frame.js';
import { decodePly } from '../../splat/ply.js';
import type { CloudAndMesh, ImageTo3d, Readiness } from '../stages.js';

/** The rotation TRELLIS's to_glb applies before writing the GLB: its Z-up internal frame into glTF's Y-up. */
export const TO_GLB_ROTATION: Matrix3 = [1, 0, 0, 0, 0, 1, 0, -1, 0];

export interface TrellisSampling {
  sparseStructureSteps: number;
  sparseStructureCfg: number;
  slatSteps: number;
  slatCfg: number;
}

export interface GpuWorkerImageTo3dOptions {
  /** The worker's client (compose.ts builds it from the config). */
  client: GpuWorker;
  /** TRELLIS internal frame -> validator frame. */
  orientation: Matrix3;
  /** Reads the worker's GLB (default: in this thread). */
  decodeGlb?: (bytes: Uint8Array) => Promise<TriangleMesh>;
}

export class GpuWorkerImageTo3d implements ImageTo3d {
  readonly name = 'gpu-worker';
  readonly preview = false;
  readonly gpu = true;
  readonly client: GpuWorker;
  /** GLB frame -> validator frame: orientation * TO_GLB_ROTATION^T (see the file's comment). */
  readonly meshRotation: Matrix3;

  constructor(private readonly options: GpuWorkerImageTo3dOptions) {
    assertRotation(options.orientation);
    this.client = options.client;
    this.meshRotation = multiply(options.orientation, transpose(TO_GLB_ROTATION));
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

  /** The sampler settings are the job's (a preset may change them). */
  async generate(image: RgbaImage, seed: number, ctx: JobContext): Promise<GaussianCloud> {
    const png = await encodePng(image);
    const ply = await this.client.imageTo3d({ png, seed, ...trellisSampling(ctx.settings.image_to_3d.gpu_worker) }, ctx.signal);
    return this.cloudOf(ply);
  }

  /** A worker started without meshes says so on /health: mesh requests are refused before they are queued. */
  meshReadiness(): Readiness {
    if (this.client.makesMeshes() === false)
      return { ready: false, detail: 'the GPU worker was started without meshes (--mesh, FAST3D_WORKER_MESH=1)' };
    return { ready: true };
  }

  /** One TRELLIS run: the cloud and the baked mesh, both in the validator's frame; sampler and bake are the job's. */
  async generateWithMesh(image: RgbaImage, seed: number, ctx: JobContext): Promise<CloudAndMesh> {
    const png = await encodePng(image);
    const section = ctx.settings.image_to_3d.gpu_worker;
    const { ply, glb } = await this.client.imageTo3dWithMesh({ png, seed, ...trellisSampling(section) }, meshBake(section), ctx.signal);
    const cloud = this.cloudOf(ply);
    let mesh: TriangleMesh;
    try {
      mesh = await (this.options.decodeGlb ?? decodeGlb)(glb);
    } catch (err) {
      // The worker's fault only when the file is (a closed or failed CPU pool is ours).
      if (!(err instanceof GlbReadError)) throw err;
      throw new GpuWorkerError(`GPU worker returned a GLB that cannot be read: ${err.message}`, 502);
    }
    if (triangleCount(mesh) === 0) throw new GpuWorkerError('GPU worker returned a GLB without triangles', 502);
    if (!this.meshRotation.every((v, i) => v === IDENTITY3[i])) rotateMesh(mesh, this.meshRotation);
    return { cloud, mesh };
  }

  private cloudOf(ply: Uint8Array): GaussianCloud {
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

/** The mesh bake of a config section (the job's: a preset may change it). */
export function meshBake(section: { mesh_simplify: number; mesh_texture_size: number }): MeshBake {
  return { simplify: section.mesh_simplify, textureSize: section.mesh_texture_size };
}

/** a * b for row-major 3x3 matrices. */
export function multiply(a: Matrix3, b: Matrix3): Matrix3 {
  const out = new Array<number>(9);
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 3; c++) out[r * 3 + c] = a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c];
  }
  // Exact zeros rather than -0, so an axis-aligned product compares equal to the identity.
  return out.map((v) => (v === 0 ? 0 : v)) as unknown as Matrix3;
}

/** The sampler parameters of a config section (the job's: a preset may change them). */
export function trellisSampling(section: {
  sparse_structure_steps: number;
  sparse_structure_cfg: number;
  slat_steps: number;
  slat_cfg: number;
}): TrellisSampling {
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
