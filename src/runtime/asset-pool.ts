/**
 * The asset pool: worker threads that read the assets users send (MCP's check_asset and render_views), apart
 * from the CPU pool that every job's stages share. Each worker reads one asset at a time, under a time budget
 * and a heap limit: past its time, or when its worker dies (a stack overflow, a heap out of memory), the call
 * fails with the file's fault and the worker is replaced. A hostile file so fails only its own call, and no
 * job waits behind it. Workers start on first use and are unreferenced while idle.
 */
import type { Worker } from 'node:worker_threads';
import type { GlbInspection, GlbRules } from '../mesh/rules.js';
import { BusyError, ShuttingDownError } from '../pipelines/errors.js';
import type { Scene } from '../render/pool.js';
import { startWorker } from '../threads.js';
import type { AssetCall, AssetReply } from './asset-protocol.js';

/** The file's fault: it breaks a rule, is over a limit, or took its reader past the time budget or down. */
export class UserAssetError extends Error {
  override name = 'UserAssetError';
}

export interface AssetPoolOptions {
  /** Workers, each reading one asset at a time. */
  workers: number;
  /** Time budget of one call, from the moment its worker takes it. */
  timeoutMs: number;
  /** Heap limit of each worker (resourceLimits.maxOldGenerationSizeMb). */
  memoryMb: number;
  /** Calls that may wait for a worker; more are refused as busy. */
  queueLength: number;
  /** The GLB check's rules and limits. */
  rules: GlbRules;
}

type Work = { type: 'inspect-glb'; bytes: Uint8Array } | { type: 'open'; kind: 'glb' | 'ply'; bytes: Uint8Array; extent: number | null };

interface Call {
  work: Work;
  resolve(value: unknown): void;
  reject(err: Error): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  call: Call | null;
  timer: NodeJS.Timeout | null;
}

export class AssetPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Call[] = [];
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: AssetPoolOptions) {}

  /** Calls waiting for a worker. */
  get waiting(): number {
    return this.queue.length;
  }

  /** The GLB check before any 200, with what it found (a file over the limits is a violation, not an error). */
  inspectGlb(bytes: Uint8Array, signal?: AbortSignal): Promise<GlbInspection> {
    return this.submit({ type: 'inspect-glb', bytes }, signal);
  }

  /**
   * A user's GLB or PLY, checked and ready to render: a GLB must have no fault (limits, the Khronos validator,
   * triangles with area), a PLY must keep the packer's rules; then it is read and prepared with `extent` in the
   * worker (its arrays shared, not copied back). A file that fails throws a UserAssetError saying why.
   */
  openScene(kind: 'glb' | 'ply', bytes: Uint8Array, extent: number | null, signal?: AbortSignal): Promise<Scene> {
    return this.submit({ type: 'open', kind, bytes, extent }, signal);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const call of this.queue.splice(0)) this.settle(call, new ShuttingDownError('the asset pool was closed'));
    const slots = this.slots.splice(0);
    for (const slot of slots) if (slot.call) this.settle(slot.call, new ShuttingDownError('the asset pool was closed'));
    await Promise.all(
      slots.map((slot) => {
        if (slot.timer) clearTimeout(slot.timer);
        return slot.worker.terminate();
      }),
    );
  }

  private submit<T>(work: Work, signal?: AbortSignal): Promise<T> {
    if (this.closed) return Promise.reject(new ShuttingDownError('the asset pool is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const call: Call = { work, resolve: resolve as (value: unknown) => void, reject, signal };
      const free = this.freeSlot();
      if (!free && this.queue.length >= this.options.queueLength) {
        reject(new BusyError(`${this.queue.length} assets are already waiting to be read`));
        return;
      }
      if (signal) {
        call.onAbort = () => this.abort(call);
        signal.addEventListener('abort', call.onAbort, { once: true });
      }
      if (free) this.start(free, call);
      else this.queue.push(call);
    });
  }

  /** An idle worker, a new one while there are fewer than `workers`, or null. */
  private freeSlot(): Slot | null {
    const idle = this.slots.find((s) => s.call === null);
    if (idle) return idle;
    return this.slots.length < this.options.workers ? this.spawn() : null;
  }

  private start(slot: Slot, call: Call): void {
    slot.call = call;
    slot.worker.ref();
    if (slot.ready) this.post(slot);
  }

  /** Hands the slot's call to its worker and starts the clock. */
  private post(slot: Slot): void {
    const call = slot.call!;
    const id = this.nextId++;
    // The worker gets a copy of its own: the caller keeps its bytes, and a dead worker takes nothing with it.
    const bytes = call.work.bytes.slice();
    const message: AssetCall =
      call.work.type === 'inspect-glb'
        ? { id, type: 'inspect-glb', bytes, rules: this.options.rules }
        : { id, type: 'open', kind: call.work.kind, bytes, rules: this.options.rules, extent: call.work.extent };
    slot.timer = setTimeout(() => {
      this.replace(slot, new UserAssetError(`reading the asset took longer than ${this.options.timeoutMs / 1000} s; it was refused`));
    }, this.options.timeoutMs);
    slot.worker.postMessage(message, [bytes.buffer as ArrayBuffer]);
  }

  private spawn(): Slot {
    const worker = startWorker(import.meta.url, 'asset-worker', {
      resourceLimits: { maxOldGenerationSizeMb: this.options.memoryMb },
    });
    const slot: Slot = { worker, ready: false, call: null, timer: null };
    worker.on('message', (reply: AssetReply) => {
      if (reply.type === 'ready') {
        slot.ready = true;
        if (slot.call) this.post(slot);
        return;
      }
      const call = slot.call;
      if (!call) return;
      this.finish(slot);
      if (reply.ok) this.settle(call, null, reply.value);
      else this.settle(call, new UserAssetError(reply.error));
    });
    worker.on('error', (err) =>
      this.replace(slot, new UserAssetError(`the asset could not be read: its reader failed (${describe(err)})`)),
    );
    worker.on('exit', (code) =>
      this.replace(slot, new UserAssetError(`the asset could not be read: its reader stopped (exit code ${code})`)),
    );
    this.slots.push(slot);
    return slot;
  }

  /** The slot's call is over: the worker is free for the next one in the queue. */
  private finish(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.call = null;
    const next = this.queue.shift();
    if (next) this.start(slot, next);
    else slot.worker.unref();
  }

  /** Fails the slot's call (if any) with `err`, stops its worker, and gives its place to a fresh one. */
  private replace(slot: Slot, err: Error): void {
    const at = this.slots.indexOf(slot);
    if (at < 0) return;
    this.slots.splice(at, 1);
    if (slot.timer) clearTimeout(slot.timer);
    const call = slot.call;
    slot.call = null;
    void slot.worker.terminate();
    if (call) this.settle(call, err);
    const next = this.closed ? undefined : this.queue.shift();
    if (next) this.start(this.spawn(), next);
  }

  private abort(call: Call): void {
    const queued = this.queue.indexOf(call);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.settle(call, call.signal!.reason);
      return;
    }
    // A call being read: its worker's work is of no use to anyone now.
    const slot = this.slots.find((s) => s.call === call);
    if (slot) this.replace(slot, call.signal!.reason);
  }

  private settle(call: Call, err: Error | null, value?: unknown): void {
    if (call.onAbort) call.signal!.removeEventListener('abort', call.onAbort);
    if (err) call.reject(err);
    else call.resolve(value);
  }
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  if (code === 'ERR_WORKER_OUT_OF_MEMORY') return 'out of memory';
  return String((err as Error).message ?? err).slice(0, 200);
}
