/** Messages between a model thread's host (model-host.ts) and its worker (model-worker.ts). */
import type { ModelKind, ModelKinds } from '../pipelines/model-runner.js';

/** Loads the thread's one model; answered with id 0. */
export interface ModelLoad {
  type: 'load';
  kind: ModelKind;
  options: ModelKinds[ModelKind]['options'];
}

/** One call of the loaded model's method (arguments' buffers transferred when the caller hands them over). */
export interface ModelCall {
  type: 'call';
  id: number;
  method: string;
  args: unknown[];
}

/**
 * Releases the model and ends the thread, after the call it may be running: a thread must never be terminated
 * inside an inference (onnxruntime-node's native code then aborts the whole process).
 */
export interface ModelRelease {
  type: 'release';
}

export type ModelMessage = ModelLoad | ModelCall | ModelRelease;

export type ModelReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
