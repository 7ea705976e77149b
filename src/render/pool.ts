/**
 * A pool of worker threads that render views in parallel. The scene (a prepared cloud, or a prepared mesh) lives
 * in SharedArrayBuffers and is posted to each worker once per scene (posting shares it, never copies); afterwards
 * each job carries only a camera.
 * Workers are unreferenced while idle, so an idle pool never keeps the process alive.
 *
 * The worker entry is worker.js next to this file in the build, worker.ts from sources (src/threads.ts).
 */
import { availableParallelism } from 'node:os';
import { allocateCloud } from '../splat/cloud.js';
import { startWorker } from '../threads.js';
import type { Worker } from 'node:worker_threads';
import { VALIDATOR_EXTENT, VALIDATOR_FOV, VALIDATOR_RADIUS } from '../splat/frame.js';
import { orbitCamera, type Camera } from './camera.js';
import { prepareCloud, type PreparedCloud } from './prepare.js';
import type { RenderReply, WorkerRequest } from './protocol.js';
import { TILE, type RasterOptions } from './rasterize.js';
import { isPreparedMesh, type PreparedMesh } from './triangles.js';

/** What the pool renders: a prepared cloud (splats) or a prepared mesh (triangles). */
export type Scene = PreparedCloud | PreparedMesh;

interface Job {
  id: number;
  scene: Scene;
  camera: Camera;
  options: RasterOptions;
  /** Tile rows (a cloud) or pixel rows (a mesh) [first, end) of a view shared between workers; absent: the whole view. */
  rows?: readonly [number, number];
  resolve(pixels: Uint8Array): void;
  reject(err: Error): void;
}

/** Queues one view (or a band of one) as part of a batch. */
type Submit = (scene: Scene, camera: Camera, options: RasterOptions, rows?: readonly [number, number]) => Promise<Uint8Array>;

interface Slot {
  worker: Worker;
  scene: number;
  job: Job | null;
}

export class RenderAbortedError extends Error {
  override name = 'RenderAbortedError';
}

/** One Gaussian at the origin: what warm() renders. */
const WARM_CLOUD = (() => {
  const cloud = allocateCloud(1);
  const c = cloud.columns;
  c.rot_0[0] = 1;
  c.scale_0[0] = c.scale_1[0] = c.scale_2[0] = Math.log(0.2);
  return cloud;
})();

const sceneIds = new WeakMap<Scene, number>();
let nextScene = 1;

function sceneOf(cloud: Scene): number {
  let id = sceneIds.get(cloud);
  if (id === undefined) sceneIds.set(cloud, (id = nextScene++));
  return id;
}

export class RenderPool {
  readonly threads: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextJob = 1;
  private closed = false;

  /** threads <= 0: one per available core. */
  constructor(threads = 0) {
    this.threads = threads > 0 ? Math.floor(threads) : Math.max(1, availableParallelism());
  }

  /** Views waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  /** Worker threads started so far (they start on first use, or all at once with warm()). */
  get started(): number {
    return this.slots.length;
  }

  /**
   * Starts every worker and has each render a tiny view, so the first real render does not pay for thread
   * start-up, module loading and compiling the kernel (about 0.3 s here). Resolves once all have answered.
   */
  async warm(): Promise<void> {
    const cloud = prepareCloud(WARM_CLOUD, { extent: VALIDATOR_EXTENT });
    const camera = orbitCamera({ azimuth: 0, elevation: 0, radius: VALIDATOR_RADIUS }, { width: 8, height: 8, fov: VALIDATOR_FOV });
    await Promise.all(Array.from({ length: this.threads }, () => this.render(cloud, camera, { background: [1, 1, 1], channels: 3 })));
  }

  /** Renders one view; resolves with width * height * channels bytes. */
  render(scene: Scene, camera: Camera, options: RasterOptions, signal?: AbortSignal): Promise<Uint8Array> {
    return this.batch(signal, (submit) => submit(scene, camera, options));
  }

  /** Runs `work`, whose views form one batch (see openBatch). */
  private async batch<T>(signal: AbortSignal | undefined, work: (submit: Submit) => Promise<T>): Promise<T> {
    const batch = this.openBatch(signal);
    try {
      return await work(batch.submit);
    } finally {
      batch.close();
    }
  }

  /**
   * Views that share one listener on `signal`: 16 views in flight add one listener, not 16. On abort, and on
   * close() (the caller is done with the batch: it succeeded, one view failed, or a video's reader stopped), the
   * batch's queued views leave the queue and every unsettled one rejects; a view a worker is drawing finishes
   * there and is dropped.
   */
  private openBatch(signal: AbortSignal | undefined): { submit: Submit; close(): void } {
    if (this.closed) throw new Error('render pool is closed');
    if (signal?.aborted) throw new RenderAbortedError('render aborted');
    const unsettled = new Set<Job>();
    const drop = () => {
      for (const job of unsettled) {
        const i = this.queue.indexOf(job);
        if (i >= 0) this.queue.splice(i, 1);
        job.reject(new RenderAbortedError('render aborted'));
      }
    };
    signal?.addEventListener('abort', drop, { once: true });
    return {
      submit: (scene, camera, options, rows) => this.submit(scene, camera, options, unsettled, rows),
      close: () => {
        signal?.removeEventListener('abort', drop);
        drop();
      },
    };
  }

  private submit(
    scene: Scene,
    camera: Camera,
    options: RasterOptions,
    unsettled: Set<Job>,
    rows?: readonly [number, number],
  ): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new Error('render pool is closed'));
    return new Promise<Uint8Array>((resolve, reject) => {
      const job: Job = {
        id: this.nextJob++,
        scene,
        camera,
        options,
        rows,
        resolve: (pixels) => {
          if (unsettled.delete(job)) resolve(pixels);
        },
        reject: (err) => {
          if (unsettled.delete(job)) reject(err);
        },
      };
      unsettled.add(job);
      this.queue.push(job);
      this.dispatch();
    });
  }

  /**
   * Renders every camera; all views are in flight at once, spread over the workers. A camera equal to an earlier
   * one to 1e-9 (the validator's linspace(0, 360, n) repeats its first view at 360 degrees, up to
   * sin(2 pi) = -2e-16) is rendered once and copied. When the distinct views do not divide evenly among the
   * workers (the validator's 15 on 2), the last few are split into bands of tile rows, one per worker, so no
   * worker idles through a whole last view.
   */
  async renderAll(cloud: Scene, cameras: readonly Camera[], options: RasterOptions, signal?: AbortSignal): Promise<Uint8Array[]> {
    const first = new Map<string, number>();
    const source = cameras.map((camera, i) => {
      const key = JSON.stringify(camera, (_, v: unknown) => (typeof v === 'number' ? Math.round(v * 1e9) / 1e9 + 0 : v));
      const earlier = first.get(key);
      if (earlier !== undefined) return earlier;
      first.set(key, i);
      return i;
    });
    const distinct = source.filter((s, i) => s === i).length;
    const shared = this.threads > 1 ? distinct % this.threads : 0;
    let whole = distinct - shared;
    const frames = await this.batch(signal, (submit) =>
      Promise.all(
        cameras.map((camera, i) => {
          if (source[i] !== i) return null;
          return whole-- > 0 ? submit(cloud, camera, options) : this.renderInBands(submit, cloud, camera, options);
        }),
      ),
    );
    return frames.map((frame, i) => frame ?? frames[source[i]]!.slice());
  }

  /**
   * One view as `threads` bands, rendered as separate jobs and reassembled (same bytes): of whole tile rows for a
   * cloud (the workers use the default TILE), of pixel rows for a mesh.
   */
  private async renderInBands(submit: Submit, scene: Scene, camera: Camera, options: RasterOptions): Promise<Uint8Array> {
    const unit = isPreparedMesh(scene) ? 1 : TILE;
    const unitRows = Math.ceil(camera.height / unit);
    const bands = Math.min(this.threads, unitRows);
    const starts = Array.from({ length: bands + 1 }, (_, b) => Math.floor((b * unitRows) / bands));
    const parts = await Promise.all(starts.slice(0, bands).map((row0, b) => submit(scene, camera, options, [row0, starts[b + 1]])));
    const out = new Uint8Array(camera.width * camera.height * options.channels);
    parts.forEach((part, b) => out.set(part, starts[b] * unit * camera.width * options.channels));
    return out;
  }

  /**
   * Yields frames in camera order while keeping at most `ahead` views in flight, so a long video never holds
   * more than a few frames in memory.
   */
  async *frames(
    cloud: Scene,
    cameras: readonly Camera[],
    options: RasterOptions,
    signal?: AbortSignal,
    ahead = this.threads + 1,
  ): AsyncGenerator<Uint8Array> {
    const pending: Promise<Uint8Array>[] = [];
    let next = 0;
    const batch = this.openBatch(signal);
    try {
      while (next < cameras.length || pending.length) {
        while (next < cameras.length && pending.length < ahead) {
          const p = batch.submit(cloud, cameras[next++], options);
          p.catch(() => {}); // observed below, in order
          pending.push(p);
        }
        yield await pending.shift()!;
      }
    } finally {
      // Consumer stopped early: queued frames are dropped, frames being drawn finish and are dropped.
      batch.close();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('render pool closed'));
    await Promise.all(this.slots.splice(0).map((slot) => slot.worker.terminate()));
  }

  private dispatch(): void {
    while (this.queue.length) {
      let slot = this.slots.find((s) => s.job === null);
      if (!slot) {
        if (this.slots.length >= this.threads) return;
        slot = this.spawn();
      }
      const job = this.queue.shift()!;
      slot.job = job;
      const scene = sceneOf(job.scene);
      const fresh = slot.scene !== scene;
      slot.scene = scene;
      let message: WorkerRequest;
      if (isPreparedMesh(job.scene)) {
        message = { type: 'mesh', job: job.id, scene, camera: job.camera, options: job.options };
        if (fresh) message.mesh = job.scene;
      } else {
        message = {
          type: 'render',
          job: job.id,
          scene,
          count: job.scene.count,
          pitch: job.scene.pitch,
          camera: job.camera,
          options: job.options,
        };
        if (fresh) message.data = job.scene.data;
      }
      if (job.rows) message.rows = job.rows;
      slot.worker.ref();
      slot.worker.postMessage(message);
    }
  }

  private spawn(): Slot {
    const worker = startWorker(import.meta.url, 'worker');
    const slot: Slot = { worker, scene: -1, job: null };
    worker.unref();
    worker.on('message', (reply: RenderReply) => {
      const job = slot.job;
      slot.job = null;
      if (!this.queue.length) worker.unref();
      if (job && job.id === reply.job) {
        if (reply.type === 'frame') job.resolve(reply.pixels);
        else job.reject(new Error(`render failed: ${reply.message}`));
      }
      this.dispatch();
    });
    const fail = (err: Error) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      const job = slot.job;
      slot.job = null;
      job?.reject(new Error(`render worker failed: ${err.message}`));
      if (!this.closed) this.dispatch();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (this.slots.includes(slot)) fail(new Error(`exited with code ${code}`));
    });
    this.slots.push(slot);
    return slot;
  }
}
