/**
 * Models as the backends that run them see them: a port. An inference holds the thread that runs it for its
 * whole length (onnxruntime-node's run is synchronous underneath: seconds for ISNet on a CPU), so compose.ts
 * hands in a runner whose models live in worker threads of their own (runtime/model-host.ts), and the event
 * loop keeps answering /ping meanwhile. What a kind of model loads with and offers is declared here; the code
 * that loads it (`loadModel`) runs in the thread that owns it.
 */
import type { IsnetModel, IsnetModelOptions } from './matting/isnet-model.js';
import type { ClipModel, ClipModelOptions } from './validate/clip-model.js';

/** Each kind of model: the options it is loaded with, and what it offers once loaded. */
export interface ModelKinds {
  isnet: { options: IsnetModelOptions; model: IsnetModel };
  clip: { options: ClipModelOptions; model: ClipModel };
}

export type ModelKind = keyof ModelKinds;

/** A loaded model's calls: its methods but `release`. */
export type ModelCalls<K extends ModelKind> = Omit<ModelKinds[K]['model'], 'release'>;
type Args<F> = F extends (...args: infer A) => unknown ? A : never;
type Result<F> = F extends (...args: never[]) => Promise<infer R> ? R : never;

export interface ModelCallOptions {
  /** Buffers of the arguments handed over rather than copied: the caller must not use them after. */
  transfer?: ArrayBuffer[];
  /** The job's signal: an aborted call rejects at once (a queued one never runs). */
  signal?: AbortSignal;
}

/** A loaded model, wherever it runs. */
export interface RunningModel<K extends ModelKind> {
  call<M extends keyof ModelCalls<K> & string>(
    method: M,
    args: Args<ModelCalls<K>[M]>,
    options?: ModelCallOptions,
  ): Promise<Result<ModelCalls<K>[M]>>;
  release(): Promise<void>;
}

export interface ModelRunner {
  /** Loads a model; rejects with the reason it cannot be loaded. */
  load<K extends ModelKind>(kind: K, options: ModelKinds[K]['options']): Promise<RunningModel<K>>;
}

const LOADERS: { [K in ModelKind]: (options: ModelKinds[K]['options']) => Promise<ModelKinds[K]['model']> } = {
  isnet: async (options) => (await import('./matting/isnet-model.js')).loadIsnetModel(options),
  clip: async (options) => (await import('./validate/clip-model.js')).loadClipModel(options),
};

/** Loads a model in the calling thread: the thread that will own its sessions. */
export function loadModel<K extends ModelKind>(kind: K, options: ModelKinds[K]['options']): Promise<ModelKinds[K]['model']> {
  const load = LOADERS[kind] as (options: ModelKinds[K]['options']) => Promise<ModelKinds[K]['model']>;
  if (!load) return Promise.reject(new Error(`unknown model kind "${String(kind)}"`));
  return load(options);
}
