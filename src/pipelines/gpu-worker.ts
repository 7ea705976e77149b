/**
 * The GPU worker as the pipeline's backends see it: a port. The runtime's client (runtime/gpu-client.ts)
 * implements it over HTTP and compose.ts hands it to the backends, so pipelines never import the runtime.
 */
import type { Readiness } from './stages.js';

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

export interface GpuWorker {
  /** Whether the worker can serve `model` ("text-to-image" | "image-to-3d") now. */
  readiness(model?: string): Readiness;
  /** Resolves when the worker is ready, or has failed to load (see readiness for why). */
  waitUntilReady(signal?: AbortSignal): Promise<Readiness>;
  /** FLUX: a PNG. */
  generateImage(request: ImageGenerationRequest, signal?: AbortSignal): Promise<Uint8Array>;
  /** TRELLIS: a PLY in its internal frame. */
  imageTo3d(request: ImageTo3dRequest, signal?: AbortSignal): Promise<Uint8Array>;
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
