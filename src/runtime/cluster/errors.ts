/**
 * A job's failure as it crosses from the worker that ran it to the node that answers its client: the error's
 * class and message as JSON in BullMQ's failed reason, made the same class again on the other side, so it becomes
 * the same HTTP status it would have on one node.
 */
import {
  AssetRefusedError,
  BusyError,
  CancelledError,
  DeadlineError,
  MeshUnsupportedError,
  NotReadyError,
  ShuttingDownError,
} from '../../pipelines/errors.js';
import { GpuWorkerError } from '../../pipelines/gpu-worker.js';
import { UnknownPresetError } from '../../pipelines/presets.js';

interface Carried {
  name: string;
  message: string;
  status?: number;
  retryAfterS?: number;
}

/** The error as text for BullMQ's failed reason. */
export function carryError(err: unknown): string {
  const e = err as Error & { status?: number; retryAfterS?: number };
  const carried: Carried = { name: e?.name ?? 'Error', message: String(e?.message ?? err) };
  if (typeof e?.status === 'number') carried.status = e.status;
  if (typeof e?.retryAfterS === 'number') carried.retryAfterS = e.retryAfterS;
  return JSON.stringify(carried);
}

/** The error a failed reason carries, as its own class again (a plain Error when it is not one of ours). */
export function droppedError(reason: string): Error {
  let carried: Carried;
  try {
    carried = JSON.parse(reason) as Carried;
  } catch {
    return new Error(reason);
  }
  const { name, message } = carried;
  switch (name) {
    case 'BusyError':
      return new BusyError(message, carried.retryAfterS);
    case 'DeadlineError':
      return new DeadlineError(message);
    case 'ShuttingDownError':
      return new ShuttingDownError(message);
    case 'NotReadyError':
    case 'GpuWorkerUnavailableError':
      return new NotReadyError(message);
    case 'CancelledError':
      return new CancelledError(message);
    case 'MeshUnsupportedError':
      return new MeshUnsupportedError(message);
    case 'AssetRefusedError':
      return new AssetRefusedError(message);
    case 'GpuWorkerError':
      return new GpuWorkerError(message, carried.status);
    case 'UnknownPresetError': {
      const error = new Error(message);
      error.name = 'UnknownPresetError';
      return Object.setPrototypeOf(error, UnknownPresetError.prototype) as Error;
    }
    default:
      return new Error(message);
  }
}
