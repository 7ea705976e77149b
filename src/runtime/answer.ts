/**
 * The answer path: the one runtime object every entry point talks to (the legacy and newer generate routes, the
 * job API, MCP). It takes an answer request (runtime/request.ts, built by contract/build.ts) and says whether it
 * would be taken now (`admissible`), runs it as a job (`submit`, or `answer` to wait for the end), and reads jobs
 * back by id (state, events, artefacts, intermediates, cancel). No HTTP in it.
 *
 *   request -> cache (answer-cache.ts: a remembered decline, artefacts + report) -> job (registry)
 *           -> service (admission, pipeline) or a burst peer when the local queue is full
 *           -> encode each format once, check it -> cache
 *
 * Every artefact is encoded from the canonical asset on the way out: splats in the delivery's frame, meshes in
 * glTF's axes, videos and views upright (of the mesh in a mesh job). Bytes are checked by their format before
 * they are returned or cached, and cached bytes are checked again when read.
 */
import { resizeImage } from '../image/codec.js';
import type { RgbaImage } from '../image/rgba.js';
import type { JobSettings } from '../pipelines/context.js';
import { AssetRefusedError, BusyError, CancelledError, MeshUnsupportedError, ShuttingDownError } from '../pipelines/errors.js';
import type { Delivery, Outcome, PresetReport, Report, Task } from '../pipelines/job.js';
import type { Presets, ResolvedPreset } from '../pipelines/presets.js';
import { cloneCloud, type GaussianCloud } from '../splat/cloud.js';
import { IDENTITY3, rotateCloud, type Matrix3 } from '../splat/frame.js';
import type { ArtefactSpec, Asset, Format, FormatRegistry } from '../formats/registry.js';
import { nextTurn } from '../turns.js';
import { AnswerCache, type Delivered, deliveredRef, type StoredReport } from './answer-cache.js';
import type { Burst, ForwardedAnswer } from './burst.js';
import type { CacheBackend } from './cache.js';
import type { InputStore } from './inputs.js';
import type { WebhookDispatch } from './webhook-dispatch.js';
import type { ArtefactRef, JobEvent, JobHandle, JobRegistry, JobView } from './jobs.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { AnswerOptions, AnswerRequest, TaskRef } from './request.js';
import type { GenerationService, Health, Mode } from './service.js';

export type { AnswerOptions, AnswerRequest, Delivered, ResolvedPreset, TaskRef };

export type CacheSource = 'hit' | 'miss' | 'asset-hit' | 'decline-hit';

/** `preset` names the preset the request resolved to; the report's `preset` gives its values. */
export type Answer =
  | {
      kind: 'asset';
      jobId: string;
      preset: string;
      artefacts: Delivered[];
      seed: number;
      gaussians: number;
      report: Report;
      cache: CacheSource;
    }
  | { kind: 'declined'; jobId: string; preset: string; reason: string; report: Report | null; cache: CacheSource }
  | { kind: 'forwarded'; jobId: string; answer: ForwardedAnswer };

/** A submitted job: its id (readable at once) and its answer to come. */
export interface Submitted {
  id: string;
  done: Promise<Answer>;
}

/**
 * What every entry point talks to: the answer path of one node (AnswerPath), or of a cluster that shares a queue
 * and a store (cluster/answers.ts). Nothing else of the runtime is theirs to call.
 */
export interface Answers {
  readonly formats: FormatRegistry;
  readonly presets: Presets;
  /** Preview (CPU stand-ins) or GPU backends. */
  readonly mode: Mode;
  health(): Health;
  submit(request: AnswerRequest, options?: AnswerOptions): Promise<Submitted>;
  answer(request: AnswerRequest, options?: AnswerOptions): Promise<Answer>;
  get(id: string): Promise<JobView | null>;
  list(limit?: number): Promise<JobView[]>;
  events(id: string, signal?: AbortSignal): AsyncIterable<JobEvent>;
  cancel(id: string): Promise<boolean>;
  artefact(id: string, name: string): Promise<ArtefactRef | null>;
  intermediate(id: string, name: 'image' | 'matte'): Promise<RgbaImage | null>;
  /** Lists a draft's artefact on a running job (progressive jobs); false once the job has an artefact of its own. */
  attachDraft(id: string, ref: ArtefactRef): Promise<boolean>;
  /** Runs `work` in the video line (views and videos share it): refused at once when the line is full. */
  renderLine<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T>;
}

export interface AnswerPathOptions {
  service: GenerationService;
  formats: FormatRegistry;
  jobs: JobRegistry;
  /** The named settings a request may choose. */
  presets: Presets;
  /** Where the images of requests wait for their jobs. */
  inputs: InputStore;
  /** Where a job's webhook goes at its end. */
  webhooks?: WebhookDispatch;
  cache?: CacheBackend;
  burst?: Burst;
  metrics?: Metrics;
  logger?: Logger;
}

/** Longest side of the picture an image task's job shows (its own image): the registry holds it until forgotten. */
const PICTURE_SIDE = 512;

export class AnswerPath implements Answers {
  private readonly cache: AnswerCache | undefined;

  constructor(private readonly options: AnswerPathOptions) {
    this.cache = options.cache && new AnswerCache(options.cache, options.formats, options.logger, options.metrics);
  }

  get formats(): FormatRegistry {
    return this.options.formats;
  }

  get presets(): Presets {
    return this.options.presets;
  }

  /** Preview (CPU stand-ins) or GPU backends. */
  get mode(): Mode {
    return this.options.service.mode;
  }

  health(): Health {
    return this.options.service.health();
  }

  /**
   * Throws what the request would be refused with now, before any job: shutting down, no meshes here, then,
   * unless the cache holds its whole answer, not ready, its class's queue full (not when a burst peer may take
   * it) or, when it renders, the video line full. A 202 or an answer therefore always means an admitted job.
   */
  async admissible(request: AnswerRequest, options: AnswerOptions = {}): Promise<void> {
    if (!request.wants.length) throw new RangeError('an answer needs at least one artefact');
    const { service } = this.options;
    if (!service.accepting) throw new ShuttingDownError('service is shutting down; no new jobs are admitted');
    const mesh = this.isMeshJob(request);
    const meshes = mesh ? service.pipeline.meshReadiness() : null;
    if (meshes && !meshes.ready) throw new MeshUnsupportedError(`this service cannot make meshes (${meshes.detail}): ask for ply or spz`);
    const preset = this.options.presets.resolve(request.preset);
    if (this.cache && (await this.cache.holds(this.cache.key(request, preset, mesh), request.wants, preset.settings))) return;
    const rendered = request.wants.some((w) => this.format(w).kind === 'render');
    const refusal = service.refusal(request.priority, { rendered, mayOverflow: !!options.forward && !!this.options.burst?.enabled });
    if (refusal) throw refusal;
  }

  /** Whether the cache holds this request's whole answer, or remembers its decline (nothing read yet). */
  async holds(request: AnswerRequest): Promise<boolean> {
    if (!this.cache) return false;
    const preset = this.options.presets.resolve(request.preset);
    return this.cache.holds(this.cache.key(request, preset, this.isMeshJob(request)), request.wants, preset.settings);
  }

  /** Holds the service open for `work` (an answer waited for elsewhere): a shutdown waits for it. */
  hold<T>(work: () => Promise<T>): Promise<T> {
    return this.options.service.hold(work);
  }

  /** False once shutdown began: nothing new is taken. */
  get accepting(): boolean {
    return this.options.service.accepting;
  }

  /**
   * Takes a request (refused as `admissible` says), registers its job and runs it; resolves with the job's id
   * as soon as it is registered, the answer to come beside it. The request's input image is let go at its end.
   */
  async submit(request: AnswerRequest, options: AnswerOptions = {}): Promise<Submitted> {
    try {
      await this.admissible(request, options);
    } catch (err) {
      this.release(request);
      throw err;
    }
    let job: JobHandle | undefined;
    // Held from here to the last byte encoded: a shutdown waits for this answer, whatever phase it is in.
    const done = this.options.service.hold(async () => {
      job = this.register(request);
      return this.run(request, job, options);
    });
    const ended = () => {
      this.release(request);
      if (request.webhook && job) this.callWebhook(request.webhook, job.id);
    };
    done.then(ended, ended);
    if (!job) await done; // refused before its job began (a shutdown began): rejects with why
    return { id: job!.id, done };
  }

  /**
   * Answers a request. Throws what `admissible` throws, what the service throws before a job starts, DeadlineError,
   * CancelledError, the backends' errors, and AssetRefusedError when a made artefact fails its format's check
   * (never returned, never cached).
   */
  async answer(request: AnswerRequest, options: AnswerOptions = {}): Promise<Answer> {
    return (await this.submit(request, options)).done;
  }

  /** A job as readers see it, or null (unknown, or forgotten). */
  async get(id: string): Promise<JobView | null> {
    const view = this.options.jobs.get(id);
    if (!view) return null;
    if (view.state !== 'queued') return view;
    // Where it waits now, and when it likely starts: from the line as it is.
    const { admission } = this.options.service;
    const position = admission.position(id);
    const startIn = position === null ? null : admission.startInMs(position);
    return { ...view, queuePosition: position, estimatedStartAt: startIn === null ? null : new Date(Date.now() + startIn).toISOString() };
  }

  /** Recent jobs, newest first. */
  async list(limit = 50): Promise<JobView[]> {
    return this.options.jobs.list(limit);
  }

  /** A job's events: those so far, then live ones until its end (or `signal`). */
  events(id: string, signal?: AbortSignal): AsyncIterable<JobEvent> {
    return this.options.jobs.events(id, signal);
  }

  /** Cancels a job by id; false when it has already ended (or is unknown). */
  async cancel(id: string): Promise<boolean> {
    return this.options.jobs.cancel(id);
  }

  async artefact(id: string, name: string): Promise<ArtefactRef | null> {
    return this.options.jobs.artefact(id, name) ?? null;
  }

  /** Lists a draft's artefact on a running job (runtime/progressive.ts); false once the job has its own. */
  async attachDraft(id: string, ref: ArtefactRef): Promise<boolean> {
    return this.options.jobs.attachDraft(id, ref);
  }

  /** A picture (the image, the matte) or the raw cloud of a job, as soon as it exists. */
  async intermediate(id: string, name: 'image' | 'matte'): Promise<RgbaImage | null>;
  async intermediate(id: string, name: 'cloud'): Promise<GaussianCloud | null>;
  async intermediate(id: string, name: 'image' | 'matte' | 'cloud'): Promise<RgbaImage | GaussianCloud | null> {
    return this.options.jobs.intermediate(id, name) ?? null;
  }

  /** Runs `work` in the video line (views and videos share it): refused at once when the line is full. */
  renderLine<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.options.service.renderVideo(work, signal);
  }

  private register(request: AnswerRequest): JobHandle {
    const preset = this.options.presets.resolve(request.preset);
    return this.options.jobs.create({
      id: request.id,
      priority: request.priority,
      task: request.task.kind,
      seed: request.seed,
      title: request.title,
      ...(request.group !== undefined && { group: request.group }),
      ...(request.draftOf !== undefined && { draftOf: request.draftOf }),
      preset: presetOfReport(preset),
    });
  }

  /** Calls a job's webhook with its end: its state, reason or error, and where its artefacts are. */
  private callWebhook(url: string, id: string): void {
    const view = this.options.jobs.get(id);
    if (!view || !this.options.webhooks) return;
    const self = `/api/v1/jobs/${encodeURIComponent(id)}`;
    this.options.webhooks.send(url, {
      job: {
        id,
        state: view.state,
        reason: view.reason,
        error: view.error,
        title: view.title,
        seed: view.seed,
        preset: view.preset?.name ?? null,
        url: self,
      },
      artefacts: view.artefacts.map((a) => ({
        name: a.name,
        contentType: a.contentType,
        bytes: a.bytes,
        url: `${self}/artifacts/${a.name}`,
      })),
    });
  }

  private release(request: AnswerRequest): void {
    if (request.task.kind === 'image') this.options.inputs.drop(request.task.input);
  }

  private async run(request: AnswerRequest, job: JobHandle, options: AnswerOptions): Promise<Answer> {
    const { service } = this.options;
    const cache = this.cache;
    const preset = this.options.presets.resolve(request.preset);
    const settings = preset.settings;
    const rendered = request.wants.some((w) => this.format(w).kind === 'render');
    const mesh = this.isMeshJob(request);
    const key = cache?.key(request, preset, mesh);
    const signal = options.signal ? AbortSignal.any([options.signal, job.signal]) : job.signal;
    try {
      const task = await this.taskOf(request.task);
      // An image task's picture is the image it was sent: its job shows it as a text task's shows the generated one.
      if (task.kind === 'image') job.progress.intermediate({ name: 'image', image: await shrunk(task.image, PICTURE_SIDE) }, 0);
      if (cache && key !== undefined) {
        const reason = await cache.declined(key, request.wants[0].format);
        if (reason !== null) {
          job.end('declined', { reason, cached: true });
          return { kind: 'declined', jobId: job.id, preset: preset.name, reason, report: null, cache: 'decline-hit' };
        }
        const hit = await cache.answer(key, request.wants, settings);
        if (hit) {
          hit.stored.report.preset = presetOfReport(preset);
          await this.showPictures(key, job);
          for (const a of hit.artefacts) job.artefact(cache.ref(a, key, settings));
          job.end('done', { report: hit.stored.report, cached: true });
          return { kind: 'asset', jobId: job.id, preset: preset.name, artefacts: hit.artefacts, ...hit.stored, cache: 'hit' };
        }
      }
      // Refuse before generating when the video line is already full: an asset nobody renders wastes the GPU.
      if (rendered && service.videos.full) throw new BusyError('busy: the video queue is full');

      const assetHit = cache && key !== undefined && rendered ? await cache.asset(key, request.delivery, mesh) : null;
      let outcome: Outcome;
      if (assetHit) {
        await this.showPictures(key!, job);
        outcome = { kind: 'asset', ...assetHit };
      } else {
        const made = await this.generateOrForward(request, task, mesh, settings, job, signal, options);
        if ('forwarded' in made) {
          const { forwarded } = made;
          // A peer's bytes pass the same check as ours before anyone gets them.
          const violation =
            forwarded.status === 200 ? await this.format(request.wants[0]).violation(forwarded.body, request.wants[0]) : null;
          if (violation) throw new BusyError(`busy, and burst peer ${forwarded.peer} returned unservable bytes (${violation})`);
          job.end(forwarded.status === 200 ? 'done' : 'declined', { reason: `answered by burst peer ${forwarded.peer}` });
          return { kind: 'forwarded', jobId: job.id, answer: made.forwarded };
        }
        outcome = made.outcome;
      }
      // The report says which settings made the answer (a cached report: the same settings, by the key).
      outcome.report.preset = presetOfReport(preset);
      if (outcome.kind === 'declined') {
        if (key !== undefined) cache?.rememberDecline(key, outcome.reason);
        job.end('declined', { report: outcome.report, reason: outcome.reason });
        return { kind: 'declined', jobId: job.id, preset: preset.name, reason: outcome.reason, report: outcome.report, cache: 'miss' };
      }
      const stored: StoredReport = { seed: outcome.seed, gaussians: outcome.cloud.count, report: outcome.report };
      const asset: Asset = { cloud: outcome.cloud, mesh: outcome.mesh };
      // A made asset is cached as its PLY (and a mesh job's GLB), with its report, before anything else is
      // encoded, whatever was asked: a later request for it, or for a video or views of it, needs no GPU work,
      // even when this client goes away or its render fails.
      const geometry =
        cache && key !== undefined && !assetHit ? await this.keepAsset(key, asset, request, settings, stored, job, signal) : [];
      const artefacts: Delivered[] = [];
      for (const spec of request.wants) {
        const made = geometry.find((g) => g.spec.format === spec.format && g.spec.mesh === undefined && spec.mesh === undefined);
        artefacts.push(made ?? (await this.encode(asset, spec, request.delivery, settings, outcome.report, signal)));
      }
      if (cache && key !== undefined)
        await cache.keep(
          key,
          artefacts.filter((a) => !geometry.includes(a)),
          settings,
        );
      for (const a of artefacts)
        job.artefact(cache && key !== undefined ? cache.ref(a, key, settings) : deliveredRef(a, { held: true, read: async () => a.bytes }));
      job.end('done', { report: outcome.report, cached: assetHit !== null });
      return { kind: 'asset', jobId: job.id, preset: preset.name, artefacts, ...stored, cache: assetHit ? 'asset-hit' : 'miss' };
    } catch (err) {
      if (job.signal.aborted || options.signal?.aborted)
        job.end('cancelled', { error: ((job.signal.reason ?? options.signal?.reason) as Error | undefined)?.message ?? 'cancelled' });
      else job.end('failed', { error: (err as Error).message });
      throw job.signal.aborted && !(err instanceof CancelledError) ? job.signal.reason : err;
    }
  }

  /** The pipeline's task: a text prompt, or the request's image from the input store. */
  private async taskOf(task: TaskRef): Promise<Task> {
    if (task.kind === 'text') return task;
    return { kind: 'image', image: await this.options.inputs.image(task.input), digest: task.digest };
  }

  private format(spec: ArtefactSpec): Format {
    return this.options.formats[spec.format];
  }

  private isMeshJob(request: AnswerRequest): boolean {
    return request.mesh === true || request.wants.some((w) => this.format(w).kind === 'mesh');
  }

  /** A cache hit's job shows the picture and matte the asset was made from, when the cache kept them. */
  private async showPictures(key: string, job: JobHandle): Promise<void> {
    for (const { name, image } of await this.cache!.pictures(key)) job.progress.intermediate({ name, image }, 0);
  }

  private async generateOrForward(
    request: AnswerRequest,
    task: Task,
    mesh: boolean,
    settings: JobSettings,
    job: JobHandle,
    signal: AbortSignal,
    options: AnswerOptions,
  ): Promise<{ outcome: Outcome } | { forwarded: ForwardedAnswer }> {
    const { service, burst } = this.options;
    try {
      const outcome = await service.generate({
        job: { id: job.id, task, seed: request.seed, delivery: request.delivery, ...(mesh && { mesh }) },
        // The answer is held (see submit()): a shutdown that began since must still let it through.
        held: true,
        priority: request.priority,
        settings,
        signal,
        progress: job.progress,
        onStart: job.started,
        onQueued: job.waiting,
      });
      return { outcome };
    } catch (err) {
      if (!(err instanceof BusyError) || !options.forward || !burst?.enabled) throw err;
      const forwarded = await burst.forward(options.forward, signal);
      if (!forwarded) throw err;
      return { forwarded };
    }
  }

  /** Encodes one artefact from the canonical asset and checks it; rendered formats wait in the video line. */
  private async encode(
    asset: Asset,
    spec: ArtefactSpec,
    delivery: Delivery | undefined,
    settings: JobSettings,
    report: Report,
    signal: AbortSignal,
  ): Promise<Delivered> {
    const format = this.format(spec);
    const start = performance.now();
    const env = { turntable: settings.render, signal };
    let bytes: Uint8Array;
    switch (format.kind) {
      case 'render':
        bytes = await this.options.service.renderVideo(() => format.encode(asset, spec, env), signal);
        break;
      case 'splats':
        bytes = await format.encode({ cloud: inFrame(asset.cloud, delivery?.rotation) }, spec, env);
        break;
      case 'mesh':
        bytes = await format.encode(asset, spec, env);
        break;
    }
    const name = spec.format === 'ply' ? 'encode' : `encode_${spec.format}`;
    // The check of 13 MB reads it all: on a turn of its own, apart from the encoding.
    await nextTurn();
    report.timings[name] = Math.round(((report.timings[name] ?? 0) + performance.now() - start) * 10) / 10;
    const violation = await format.violation(bytes, spec);
    if (violation) throw new AssetRefusedError(`refusing to serve a ${format.name} artefact that breaks its rules: ${violation}`);
    return { spec, format, bytes };
  }

  /**
   * Encodes and checks the asset's PLY and a mesh job's GLB, and leaves them in the cache with the pictures it
   * was made from and its report. Returns those that passed their checks (one refused is logged and left out: a
   * request that asked for it encodes it again, and is refused, on its own). Nothing is cached when the PLY is
   * refused.
   */
  private async keepAsset(
    key: string,
    asset: Asset,
    request: AnswerRequest,
    settings: JobSettings,
    stored: StoredReport,
    job: JobHandle,
    signal: AbortSignal,
  ): Promise<Delivered[]> {
    const geometry: Delivered[] = [];
    for (const format of asset.mesh ? (['ply', 'glb'] as const) : (['ply'] as const)) {
      try {
        geometry.push(await this.encode(asset, { format }, request.delivery, settings, stored.report, signal));
      } catch (err) {
        if (!(err instanceof AssetRefusedError)) throw err;
        this.options.logger?.error({ err: err.message }, `asset refused by the ${format} rules: not cached`);
        if (format === 'ply') return [];
      }
    }
    const pictures = (['image', 'matte'] as const).map((name) => {
      const image = this.options.jobs.intermediate(job.id, name);
      return { name, image: image && 'data' in image ? image : undefined };
    });
    await this.cache!.keepAsset(key, geometry, settings, stored, request.task, pictures);
    return geometry;
  }
}

/** The image itself when its longest side is within `side`, else a copy scaled down to it. */
async function shrunk(image: RgbaImage, side: number): Promise<RgbaImage> {
  const scale = side / Math.max(image.width, image.height);
  if (scale >= 1) return image;
  return resizeImage(image, Math.max(1, Math.round(image.width * scale)), Math.max(1, Math.round(image.height * scale)));
}

/** What a report and a job view say of the preset: its name, fingerprint and the values of its knobs. */
function presetOfReport(preset: ResolvedPreset): PresetReport {
  return { name: preset.name, fingerprint: preset.fingerprint.slice(0, 16), values: preset.values };
}

/** The cloud in the delivery's frame: the canonical cloud itself when no rotation applies, else a rotated copy. */
function inFrame(cloud: GaussianCloud, rotation: Matrix3 | undefined): GaussianCloud {
  if (!rotation || rotation.every((v, i) => v === IDENTITY3[i])) return cloud;
  const copy = cloneCloud(cloud);
  rotateCloud(copy, rotation);
  return copy;
}
