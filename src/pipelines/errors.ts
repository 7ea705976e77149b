/**
 * The ways a job can end without an outcome. The runtime raises them, the contract turns each into one HTTP
 * status (contract/status.ts); they live here, below both, so neither imports the other.
 */

/** Refused before any work: the queue of the job's class is full, or the wait would miss the deadline. */
export class BusyError extends Error {
  override name = 'BusyError';

  /** @param retryAfterS seconds after which a retry is likely to be admitted, when known. */
  constructor(
    message: string,
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** The job ran (or waited) past its deadline and was abandoned. */
export class DeadlineError extends Error {
  override name = 'DeadlineError';
}

/** The service is shutting down and admits no new jobs. */
export class ShuttingDownError extends Error {
  override name = 'ShuttingDownError';
}

/** A stage is not ready (models loading, a file missing, the GPU worker unreachable). */
export class NotReadyError extends Error {
  override name = 'NotReadyError';
}

/** The job was cancelled by id (job API, MCP) or its client went away. */
export class CancelledError extends Error {
  override name = 'CancelledError';
}

/** The job asks for a mesh and this service's image-to-3d backend makes none (a 400: the request asks the impossible). */
export class MeshUnsupportedError extends Error {
  override name = 'MeshUnsupportedError';
}

/** A made artefact failed its format's check: it is never served or cached (a 500, never a bad 200). */
export class AssetRefusedError extends Error {
  override name = 'AssetRefusedError';
}
