/**
 * The CPU pool: worker threads that run the CPU preview backends (text-to-image, keying, silhouette inflation),
 * so their hundreds of milliseconds of work per job never stall the event loop that answers /ping, /health and
 * every other request. Each worker builds the same backends from the service's settings; a call carries the job's settings
 * and returns the image, cloud or cloud and mesh transferred. The artefact work runs there too: GLBs written, checked
 * and read, game meshes and their LODs, compressed GLBs, the OBJ zip and the splat GLB. Workers start on first use
 * and are unreferenced while idle.
 */
import type { Worker } from 'node:worker_threads';
import { GlbReadError } from '../mesh/glb.js';
import { artefactWorkerOf, type ArtefactWorker } from '../formats/artefact-work.js';
import type { JobContext, JobSettings } from '../pipelines/context.js';
import type { Backend, CloudAndMesh, ImageTo3d, Matting, MattingInput, TextToImage } from '../pipelines/stages.js';
import type { RgbaImage } from '../image/rgba.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { startWorker } from '../threads.js';
import type { CpuArtefactCall, CpuFormCall, CpuMessage, CpuReply, OffloadedStage } from './cpu-protocol.js';
import { ownCopy } from './transfer.js';

/** A message for the worker and the buffers it hands over; made anew for each attempt. */
type Dispatch = (id: number) => { message: CpuMessage; transfer: ArrayBuffer[] };

interface Pending {
  dispatch: Dispatch;
  /** Workers this call has been sent to (a call whose worker died is sent to a fresh one, once). */
  attempts: number;
  /** Where it is now. */
  at: { slot: Slot; id: number } | null;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

/** Workers a call may be sent to: every call is a pure function of its message, so running it again is safe. */
const MAX_ATTEMPTS = 2;

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

export class CpuPool {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly settings: JobSettings,
    readonly threads: number,
  ) {}

  /** Runs one stage call, under the job's settings, in the least busy worker; rejects at once when the job's signal aborts. */
  run<T>(stage: OffloadedStage, args: unknown[], ctx: JobContext): Promise<T> {
    const settings = ctx.settings;
    return this.send<T>((id) => ({ message: { type: 'call', id, stage, args, settings }, transfer: [] }), ctx.signal);
  }

  /**
   * Parses an urlencoded form body in a worker: decoding tens of MiB of it takes the event loop hundreds of
   * milliseconds. The worker gets a copy of the body.
   */
  parseUrlencoded(body: ArrayBuffer): Promise<Record<string, string | string[]>> {
    return this.send((id) => {
      const copy = body.slice(0);
      return { message: { type: 'form', id, body: copy } satisfies CpuFormCall, transfer: [copy] };
    });
  }

  /**
   * The artefact work (GLBs written, checked and read; game meshes, LODs, compressed GLBs, the OBJ zip, the splat
   * GLB) in a worker: each takes 0.1 to 3 s of a thread on a preview mesh. Same results as in this thread; the
   * caller keeps its arguments.
   */
  readonly artefacts: ArtefactWorker = artefactWorkerOf((name, args) =>
    this.send((id) => {
      const own = ownCopy(args);
      return { message: { type: 'artefact', id, name, args: own.value } satisfies CpuArtefactCall, transfer: own.transfer };
    }),
  );

  /** Sends one call to the least busy worker and waits for its reply (or for `signal` to abort). */
  private send<T>(dispatch: Dispatch, signal?: AbortSignal): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the CPU pool is closed'));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => {
        // The worker finishes the call; its result is dropped.
        const { slot, id } = pending.at!;
        slot.pending.delete(id);
        this.settle(slot);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const pending: Pending = {
        dispatch,
        attempts: 0,
        at: null,
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(value as T);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.dispatch(pending);
    });
  }

  /** Sends a call (anew) to the least busy worker. */
  private dispatch(pending: Pending): void {
    const slot = this.leastBusy();
    const id = this.nextId++;
    pending.attempts++;
    pending.at = { slot, id };
    slot.pending.set(id, pending);
    slot.worker.ref();
    try {
      const { message, transfer } = pending.dispatch(id);
      slot.worker.postMessage(message, transfer);
    } catch (err) {
      // A message that cannot be cloned fails its own call, here and now (this may run in a worker's exit handler).
      slot.pending.delete(id);
      this.settle(slot);
      pending.reject(err as Error);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const slots = this.slots.splice(0);
    for (const slot of slots) {
      for (const p of slot.pending.values()) p.reject(new Error('the CPU pool was closed'));
      slot.pending.clear();
    }
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  private leastBusy(): Slot {
    if (this.slots.length < this.threads) {
      const idle = this.slots.find((s) => s.pending.size === 0);
      if (idle) return idle;
      return this.spawn();
    }
    return this.slots.reduce((a, b) => (b.pending.size < a.pending.size ? b : a));
  }

  private settle(slot: Slot): void {
    if (slot.pending.size === 0) slot.worker.unref();
  }

  private spawn(): Slot {
    const worker = startWorker(import.meta.url, 'cpu-worker');
    const slot: Slot = { worker, pending: new Map() };
    worker.postMessage({ type: 'init', settings: this.settings });
    worker.on('message', (reply: CpuReply) => {
      const pending = slot.pending.get(reply.id);
      slot.pending.delete(reply.id);
      this.settle(slot);
      if (!pending) return;
      if (reply.ok) pending.resolve(reply.value);
      else pending.reject(reply.name === 'GlbReadError' ? new GlbReadError(reply.error) : new Error(reply.error));
    });
    // A dying worker fails no call for it: each call it held goes to a fresh worker. Only a call whose second
    // worker dies too (it may be what kills them) fails, with the reason.
    const fail = (err: Error) => {
      const at = this.slots.indexOf(slot);
      if (at >= 0) this.slots.splice(at, 1);
      const held = [...slot.pending.values()];
      slot.pending.clear();
      for (const p of held) {
        if (this.closed || p.attempts >= MAX_ATTEMPTS) p.reject(new Error(`CPU worker failed: ${err.message}`));
        else this.dispatch(p);
      }
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.slots.includes(slot)) fail(new Error(`exited with code ${code}`));
    });
    this.slots.push(slot);
    return slot;
  }
}

/** What an offloaded backend says of itself: the wrapped backend's name, label and readiness. */
function describedAs(backend: Backend): Backend {
  return { name: backend.name, preview: backend.preview, readiness: () => backend.readiness() };
}

/** A CPU preview backend, run in the pool (inputs are copied to the worker, results transferred back). */
export function offloadTextToImage(backend: TextToImage, pool: CpuPool): TextToImage {
  return { ...describedAs(backend), generate: (prompt, seed, ctx) => pool.run<RgbaImage>('textToImage', [prompt, seed], ctx) };
}

export function offloadMatting(backend: Matting, pool: CpuPool): Matting {
  return {
    ...describedAs(backend),
    matte: (input: MattingInput, ctx) => pool.run<RgbaImage | null>('matting', [{ image: input.image, fromUser: input.fromUser }], ctx),
  };
}

/** Offers generateWithMesh too when the backend has it, run in the pool as well. */
export function offloadImageTo3d(backend: ImageTo3d, pool: CpuPool): ImageTo3d {
  return {
    ...describedAs(backend),
    generate: (image, seed, ctx) => pool.run<GaussianCloud>('imageTo3d', [image, seed], ctx),
    ...(backend.generateWithMesh && {
      generateWithMesh: (image: RgbaImage, seed: number, ctx: JobContext) =>
        pool.run<CloudAndMesh>('imageTo3dWithMesh', [image, seed], ctx),
    }),
    ...(backend.meshReadiness && { meshReadiness: () => backend.meshReadiness!() }),
  };
}
