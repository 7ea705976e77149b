/**
 * Model threads: each loaded model (ISNet, CLIP) lives in a worker thread of its own that owns its sessions, so
 * an inference (seconds of onnxruntime on a CPU, synchronous underneath) never holds the event loop that answers
 * /ping. A model's calls run one at a time, in order; inputs and outputs are transferred. A call whose signal
 * aborts rejects at once: a queued one never runs, a running one finishes in its thread and its result is
 * dropped. A thread that dies fails only the call it was running; the next call starts a fresh thread, which
 * loads the model again. Idle threads are unreferenced: they keep no process alive. A thread is never
 * terminated inside an inference (onnxruntime-node's native code would abort the process): it is asked to end
 * after its call.
 */
import type { Worker } from 'node:worker_threads';
import type { ModelCallOptions, ModelKind, ModelKinds, ModelRunner, RunningModel } from '../pipelines/model-runner.js';
import { startWorker } from '../threads.js';
import type { ModelMessage, ModelReply } from './model-protocol.js';

/** The service's model runner: every model in a thread of its own. */
export function workerModels(): ModelRunner {
  return { load: (kind, options) => ModelThread.start(kind, options) };
}

interface Queued {
  method: string;
  args: unknown[];
  transfer: ArrayBuffer[];
  /** Answered, failed or aborted: a late reply is dropped. */
  settled: boolean;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

class ModelThread<K extends ModelKind> implements RunningModel<K> {
  /** The thread being started or started, with its model loaded; null before the first call or after a death. */
  private thread: Promise<Worker> | null = null;
  private worker: Worker | null = null;
  private readonly queue: Queued[] = [];
  /** A call is being sent or run (only one at a time: an inference holds its thread). */
  private busy = false;
  private running: { entry: Queued; id: number; worker: Worker } | null = null;
  private nextId = 1;
  private released = false;

  /** Starts the thread and loads the model; rejects with the reason it cannot be loaded. */
  static async start<K extends ModelKind>(kind: K, options: ModelKinds[K]['options']): Promise<ModelThread<K>> {
    const thread = new ModelThread(kind, options);
    await thread.ready();
    return thread;
  }

  private constructor(
    readonly kind: K,
    private readonly options: ModelKinds[K]['options'],
  ) {}

  call(method: string, args: unknown[], options: ModelCallOptions = {}): Promise<never> {
    const { transfer = [], signal } = options;
    if (this.released) return Promise.reject(new Error(`the ${this.kind} model was released`));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const at = this.queue.indexOf(entry);
        if (at >= 0) this.queue.splice(at, 1);
        entry.reject(signal!.reason);
      };
      const settle = () => {
        entry.settled = true;
        signal?.removeEventListener('abort', onAbort);
      };
      const entry: Queued = {
        method,
        args,
        transfer,
        settled: false,
        resolve: (value) => {
          if (!entry.settled) {
            settle();
            resolve(value as never);
          }
        },
        reject: (err) => {
          if (!entry.settled) {
            settle();
            reject(err);
          }
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
      void this.pump();
    });
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const error = new Error(`the ${this.kind} model was released`);
    for (const entry of this.queue.splice(0)) entry.reject(error);
    this.running?.entry.reject(error);
    this.running = null;
    const thread = this.thread;
    this.thread = null;
    this.worker = null;
    const worker = await thread?.catch(() => null);
    if (!worker || worker.threadId < 0) return;
    // The thread frees its sessions and ends once the call it may be running is over.
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.ref();
    const message: ModelMessage = { type: 'release' };
    worker.postMessage(message);
    await exited;
  }

  /** Sends the next queued call, starting a thread first when there is none. */
  private async pump(): Promise<void> {
    if (this.busy || this.released) return;
    const entry = this.queue.shift();
    if (!entry) return;
    this.busy = true;
    let worker: Worker;
    try {
      worker = await this.ready();
    } catch (err) {
      // The model cannot be loaded again: the calls waiting for it fail with the reason.
      this.busy = false;
      const error = new Error(`the ${this.kind} model could not be loaded again: ${(err as Error).message}`);
      for (const waiting of [entry, ...this.queue.splice(0)]) waiting.reject(error);
      return;
    }
    if (this.released || entry.settled) {
      // Released, or aborted while the thread started.
      entry.reject(new Error(`the ${this.kind} model was released`));
      this.busy = false;
      void this.pump();
      return;
    }
    const id = this.nextId++;
    this.running = { entry, id, worker };
    worker.ref();
    try {
      const message: ModelMessage = { type: 'call', id, method: entry.method, args: entry.args };
      worker.postMessage(message, entry.transfer);
    } catch (err) {
      // Arguments that cannot be sent (a detached buffer): this call fails, the thread is fine.
      this.finish(worker, { id, ok: false, error: (err as Error).message });
    }
  }

  /** The loaded thread, started (and its model loaded) when there is none. */
  private ready(): Promise<Worker> {
    if (!this.thread) {
      const started = this.spawn();
      this.thread = started;
      started.then(
        (worker) => {
          if (this.thread === started) this.worker = worker;
        },
        () => {
          if (this.thread === started) this.thread = null;
        },
      );
    }
    return this.thread;
  }

  private spawn(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const worker = startWorker(import.meta.url, 'model-worker');
      let loaded = false;
      let gone = false;
      worker.on('message', (reply: ModelReply) => {
        if (loaded) {
          this.finish(worker, reply);
        } else if (reply.ok) {
          loaded = true;
          worker.unref();
          resolve(worker);
        } else {
          gone = true;
          reject(new Error(reply.error));
          // Asked, not terminated: a model's other sessions may still be loading in native code.
          const release: ModelMessage = { type: 'release' };
          worker.postMessage(release);
        }
      });
      const died = (err: unknown) => {
        if (gone) return;
        gone = true;
        const reason = err instanceof Error ? err.message : String(err);
        if (loaded) this.died(worker, reason);
        else reject(new Error(`its thread stopped while loading: ${reason}`));
      };
      worker.on('error', died);
      worker.on('exit', (code) => died(`exited with code ${code}`));
      const message: ModelMessage = { type: 'load', kind: this.kind, options: this.options };
      worker.postMessage(message);
    });
  }

  /** A reply from the thread: settles the running call (unless it was aborted meanwhile), then sends the next. */
  private finish(worker: Worker, reply: ModelReply): void {
    const running = this.running;
    if (!running || running.worker !== worker || running.id !== reply.id) return;
    this.running = null;
    this.busy = false;
    worker.unref();
    if (reply.ok) running.entry.resolve(reply.value);
    else running.entry.reject(new Error(reply.error));
    void this.pump();
  }

  /** The thread died: only the call it was running fails; the next call starts a fresh one. */
  private died(worker: Worker, reason: string): void {
    if (this.worker === worker) {
      this.worker = null;
      this.thread = null;
    }
    const running = this.running;
    if (running?.worker === worker) {
      this.running = null;
      this.busy = false;
      running.entry.reject(new Error(`the ${this.kind} model's thread failed: ${reason}`));
    }
    if (!this.released) void this.pump();
  }
}
