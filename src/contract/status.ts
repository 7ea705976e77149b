/**
 * The one place runtime errors become HTTP statuses: 503 with Retry-After while the service cannot take the
 * job (busy, not ready, shutting down, past its deadline), 502/504 when the GPU worker answered wrongly or too
 * late, 500 when a made artefact failed its check, and 503 for a job cancelled or abandoned by its client.
 * Anything else is an unexpected 500. Every 503 the service sends carries Retry-After (`retryAfter`).
 */
import { GpuWorkerError } from '../pipelines/gpu-worker.js';
import {
  AssetRefusedError,
  BusyError,
  CancelledError,
  DeadlineError,
  MeshUnsupportedError,
  NotReadyError,
  ShuttingDownError,
} from '../pipelines/errors.js';
import { UnknownPresetError } from '../pipelines/presets.js';
import { IdempotencyConflictError } from '../runtime/idempotency.js';
import { WebhookUrlError } from '../runtime/webhooks.js';
import { StoreError } from '../store/store.js';
import { HttpError } from './errors.js';

export interface StatusOptions {
  /** Retry-After when nothing better is known, in seconds. */
  retryAfterS: number;
}

/** The Retry-After header every 503 carries: a client told "unavailable" is also told when to come back. */
export function retryAfter(seconds: number): Record<string, string> {
  return { 'Retry-After': String(Math.ceil(seconds)) };
}

/** The HTTP error for a thrown value, or null when it is not one of the runtime's (an unexpected 500). */
export function httpErrorOf(err: unknown, options: StatusOptions): HttpError | null {
  const retry = (seconds = options.retryAfterS) => retryAfter(seconds);
  if (err instanceof HttpError) return err;
  if (err instanceof UnknownPresetError || err instanceof MeshUnsupportedError || err instanceof WebhookUrlError)
    return new HttpError(400, err.message);
  if (err instanceof IdempotencyConflictError) return new HttpError(409, err.message);
  // The shared store refused (or could not be reached): the service cannot take the request now.
  if (err instanceof StoreError) return new HttpError(503, err.message, retryAfter(options.retryAfterS));
  if (err instanceof BusyError) return new HttpError(503, `${err.message}; retry later`, retry(err.retryAfterS ?? options.retryAfterS));
  if (err instanceof DeadlineError) return new HttpError(503, err.message, retry());
  if (err instanceof ShuttingDownError) return new HttpError(503, err.message, { ...retry(), Connection: 'close' });
  if (err instanceof NotReadyError) return new HttpError(503, err.message, retry());
  if (err instanceof CancelledError) return new HttpError(503, err.message, retry());
  if (err instanceof AssetRefusedError) return new HttpError(500, err.message);
  // The GPU worker answered wrongly (502) or too late (504): say so, rather than an anonymous 500.
  if (err instanceof GpuWorkerError) return new HttpError(err.status === 504 ? 504 : 502, err.message);
  return null;
}
