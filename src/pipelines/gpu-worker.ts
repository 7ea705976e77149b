/**
 * The GPU worker as the pipeline's backends see it: a port. The runtime's client (runtime/gpu-client.ts)
 * implements it over HTTP and compose.ts hands it to the backends, so pipelines never import the runtime.
 */
import type { Readiness } from './stages.js';

/**
 * The worker protocol this service speaks (docs/gpu-worker.md "Protocol"): the worker reports its own on
 * GET /health (`protocol`) and on every answer (the X-Fast3d-Protocol header); a worker speaking another is
 * refused. 2 added meshes beside the Gaussians.
 */
export const GPU_WORKER_PROTOCOL = 2;
export const GPU_WORKER_PROTOCOL_HEADER = 'x-fast3d-protocol';

export interface ImageGenerationRequest {
  prompt: string;
  /** "WIDTHxHEIGHT". */
  size: string;
  steps: number;
  seed: number;
}

export interface ImageTo3dRequest {
  /** RGBA PNG bytes. */
  png: Uint8Array;
  seed: number;
  sparseStructureSteps: number;
  sparseStructureCfg: number;
  slatSteps: number;
  slatCfg: number;
}

/** How TRELLIS's to_glb bakes the mesh: the share of triangles removed and the texture's side in pixels. */
export interface MeshBake {
  simplify: number;
  textureSize: number;
}

/** One TRELLIS run decoded twice: the Gaussians' PLY (internal frame) and the baked GLB (to_glb's glTF frame). */
export interface CloudAndMeshBytes {
  ply: Uint8Array;
  glb: Uint8Array;
}

export interface GpuWorker {
  /** Whether the worker can serve `model` ("text-to-image" | "image-to-3d") now. */
  readiness(model?: string): Readiness;
  /** Resolves when the worker is ready, or has failed to load (see readiness for why). */
  waitUntilReady(signal?: AbortSignal): Promise<Readiness>;
  /** FLUX: a PNG. */
  generateImage(request: ImageGenerationRequest, signal?: AbortSignal): Promise<Uint8Array>;
  /** TRELLIS: a PLY in its internal frame. */
  imageTo3d(request: ImageTo3dRequest, signal?: AbortSignal): Promise<Uint8Array>;
  /** Whether the worker makes meshes (it says so on /health); unknown until it first answers. */
  makesMeshes(): boolean | undefined;
  /** TRELLIS with formats ["gaussian", "mesh"], the mesh baked by to_glb: the PLY and the GLB. */
  imageTo3dWithMesh(request: ImageTo3dRequest, mesh: MeshBake, signal?: AbortSignal): Promise<CloudAndMeshBytes>;
  close(): void;
}

/** The worker answered with an error status (4xx/500), or with something that is not what the protocol says. */
export class GpuWorkerError extends Error {
  override name = 'GpuWorkerError';

  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}
