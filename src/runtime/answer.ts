/**
 * The answer path: one parsed request in, the artefacts it asked for (or a decline) out, with no HTTP in it.
 * The contract routes call it, and so does every later entry point (job API, MCP).
 *
 *   request -> cache (decline memory, artefacts + report) -> job (registry) -> service (admission, pipeline)
 *           -> or a burst peer when the local queue is full -> encode each format once, check it -> cache
 *
 * Every artefact is encoded from the canonical asset on the way out: splats in the delivery's frame, meshes in
 * glTF's axes, videos and views upright (of the mesh in a mesh job). Bytes are checked by their format before
 * they are returned or cached, and cached bytes are checked again when read: an entry its format refuses is
 * evicted and made again.
 */
import { decodeImage, encodePng, resizeImage } from '../image/codec.js';
import type { RgbaImage } from '../image/rgba.js';
import type { JobSettings } from '../pipelines/context.js';
import type { Presets, ResolvedPreset } from '../pipelines/presets.js';
import { AssetRefusedError, BusyError, CancelledError, MeshUnsupportedError } from '../pipelines/errors.js';
import type { Delivery, Outcome, PresetReport, Report, Task } from '../pipelines/job.js';
import { renderFingerprint } from '../pipelines/settings.js';
import { cloneCloud, type GaussianCloud } from '../splat/cloud.js';
import { IDENTITY3, rotateCloud, transpose, type Matrix3 } from '../splat/frame.js';
import { specKey, type ArtefactSpec, type Asset, type Format, type FormatRegistry } from '../formats/registry.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import { nextTurn } from '../turns.js';
import type { Priority } from './admission.js';
import type { Burst, ForwardedAnswer, ForwardedRequest } from './burst.js';
import type { EntryKind, EntryName, ResultCache } from './cache.js';
import type { JobHandle, JobRegistry } from './jobs.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { GenerationService } from './service.js';

export type { ResolvedPreset };

export interface AnswerRequest {
  /** Id for the job (the request id); the registry makes one when absent or taken. */
  id?: string;
  task: Task;
  seed: number;
  /** Absent: the legacy contract's delivery (validator frame, decline on rejection). */
  delivery?: Delivery;
  priority: Priority;
  /** The artefacts to deliver, at least one. */
  wants: ArtefactSpec[];
  /**
   * A mesh job: image-to-3d makes a mesh too, and validation and renders use it. Implied when a GLB is wanted;
   * set it for a video or views of the mesh alone.
   */
  mesh?: boolean;
  /** The preset whose settings the job runs with (default: the service's default preset). */
  preset?: string;
  /** What lists call the job (default: the prompt's first words, or the image's size). */
  title?: string;
  /** The client's tag for jobs that belong together (the studio's A/B pairs). */
  group?: string;
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /** The request as received, for a burst peer when the local queue is full. */
  forward?: ForwardedRequest;
}

export interface Delivered {
  spec: ArtefactSpec;
  format: Format;
  bytes: Uint8Array;
}

/** What the cache remembers beside the artefacts, so a hit answers with the same headers as the miss did. */
interface StoredReport {
  seed: number;
  gaussians: number;
  report: Report;
}

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

export interface AnswerPathOptions {
  service: GenerationService;
  formats: FormatRegistry;
  jobs: JobRegistry;
  /** The named settings a request may choose. */
  presets: Presets;
  cache?: ResultCache;
  burst?: Burst;
  metrics?: Metrics;
  logger?: Logger;
}

const REPORT_ENTRY: EntryName = { kind: 'json', variant: 'report' };
/** A job's pictures (the one it was made from, and its matte), kept in the cache beside its asset. */
const PICTURES = { image: { kind: 'png', variant: 'picture' }, matte: { kind: 'png', variant: 'matte' } } as const satisfies Record<
  string,
  EntryName
>;
/** Cached pictures are ours (a pipeline's picture and matte): far under this, or not ours. */
const PICTURE_LIMITS = { maxPixels: 4096 * 4096, minSide: 1 };
/** Longest side of the picture an image task's job shows (its own image): the registry holds it until forgotten. */
const PICTURE_SIDE = 512;

export class AnswerPath {
  constructor(private readonly options: AnswerPathOptions) {}

  get formats(): FormatRegistry {
    return this.options.formats;
  }

  get jobs(): JobRegistry {
    return this.options.jobs;
  }

  get presets(): Presets {
    return this.options.presets;
  }

  /**
   * Answers a request. Throws what the service throws before a job starts (busy, not ready, shutting down),
   * DeadlineError, CancelledError, the backends' errors, and AssetRefusedError when a made artefact fails its
   * format's check (never returned, never cached).
   */
  answer(request: AnswerRequest): Promise<Answer> {
    if (!request.wants.length) throw new RangeError('an answer needs at least one artefact');
    const meshes = this.isMeshJob(request) ? this.options.service.pipeline.meshReadiness() : null;
    if (meshes && !meshes.ready) throw new MeshUnsupportedError(`this service cannot make meshes (${meshes.detail}): ask for ply or spz`);
    // Held from here to the last byte encoded: a shutdown waits for this answer, whatever phase it is in.
    return this.options.service.hold(() => this.run(request));
  }

  private async run(request: AnswerRequest): Promise<Answer> {
    const { service, cache } = this.options;
    const preset = this.options.presets.resolve(request.preset);
    const settings = preset.settings;
    const rendered = request.wants.some((w) => this.format(w).kind === 'render');
    const mesh = this.isMeshJob(request);
    // A mesh job is validated on its mesh, so it may be declined where the same splat job is not: its own key.
    const key = cache?.requestKey(request.task, request.seed, request.delivery, mesh ? `${preset.fingerprint}:mesh` : preset.fingerprint);
    const job = this.options.jobs.create({
      id: request.id,
      priority: request.priority,
      task: request.task.kind,
      seed: request.seed,
      title: request.title ?? titleOf(request.task),
      ...(request.group !== undefined && { group: request.group }),
      preset: presetOfReport(preset),
    });
    const signal = request.signal ? AbortSignal.any([request.signal, job.signal]) : job.signal;
    try {
      // An image task's picture is the image it was sent: its job shows it as a text task's shows the generated one.
      if (request.task.kind === 'image')
        job.progress.intermediate({ name: 'image', image: await shrunk(request.task.image, PICTURE_SIDE) }, 0);
      const cached = key === undefined ? null : await this.fromCache(key, request, preset, job);
      if (cached) return cached;
      // Refuse before generating when the video line is already full: an asset nobody renders wastes the GPU.
      if (rendered && service.videos.full) throw new BusyError('busy: the video queue is full');

      const assetHit = key === undefined || !rendered ? null : await this.cachedAsset(key, request, mesh);
      let outcome: Outcome;
      if (assetHit) {
        await this.showCachedPictures(key!, job);
        outcome = { kind: 'asset', ...assetHit };
      } else {
        const made = await this.generateOrForward(request, mesh, settings, job, signal);
        if ('forwarded' in made) {
          const { forwarded } = made;
          // A peer's bytes pass the same check as ours before anyone gets them.
          const violation = forwarded.status === 200 ? await this.format(request.wants[0]).violation(forwarded.body) : null;
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
      const geometry = key !== undefined && !assetHit ? await this.cacheGeometry(key, asset, request, settings, stored, job, signal) : [];
      const artefacts: Delivered[] = [];
      for (const spec of request.wants) {
        const made = geometry.find((g) => g.spec.format === spec.format);
        artefacts.push(made ?? (await this.encode(asset, spec, request.delivery, settings, outcome.report, signal)));
      }
      if (key !== undefined)
        await this.store(
          key,
          artefacts.filter((a) => !geometry.includes(a)),
          settings,
        );
      for (const a of artefacts) job.artefact(this.artefactRef(a, key, settings));
      job.end('done', { report: outcome.report, cached: assetHit !== null });
      return { kind: 'asset', jobId: job.id, preset: preset.name, artefacts, ...stored, cache: assetHit ? 'asset-hit' : 'miss' };
    } catch (err) {
      if (job.signal.aborted || request.signal?.aborted)
        job.end('cancelled', { error: ((job.signal.reason ?? request.signal?.reason) as Error | undefined)?.message ?? 'cancelled' });
      else job.end('failed', { error: (err as Error).message });
      throw job.signal.aborted && !(err instanceof CancelledError) ? job.signal.reason : err;
    }
  }

  private format(spec: ArtefactSpec): Format {
    return this.options.formats[spec.format];
  }

  private isMeshJob(request: AnswerRequest): boolean {
    return request.mesh === true || request.wants.some((w) => this.format(w).kind === 'mesh');
  }

  private entryName(spec: ArtefactSpec, settings: JobSettings): EntryName {
    const kind = this.format(spec).extension.slice(1) as EntryKind;
    const variant = specKey(spec, renderFingerprint(settings));
    return variant === spec.format ? { kind } : { kind, variant: variant.slice(spec.format.length + 1) };
  }

  /** Every wanted artefact and its report from the cache, or a remembered decline; null on any miss. */
  private async fromCache(key: string, request: AnswerRequest, preset: ResolvedPreset, job: JobHandle): Promise<Answer | null> {
    const cache = this.options.cache!;
    const settings = preset.settings;
    const reason = cache.declined(key);
    if (reason !== null) {
      this.options.metrics?.cacheLookup(request.wants[0].format, 'decline_hit');
      job.end('declined', { reason, cached: true });
      return { kind: 'declined', jobId: job.id, preset: preset.name, reason, report: null, cache: 'decline-hit' };
    }
    const artefacts: Delivered[] = [];
    for (const spec of request.wants) {
      const name = this.entryName(spec, settings);
      const bytes = await cache.get(key, name);
      if (!bytes) return null;
      const format = this.format(spec);
      if ((await format.violation(bytes)) !== null) {
        // Intact on disk but not a valid file (or the rules changed since): make it again.
        cache.discard(key, name);
        return null;
      }
      artefacts.push({ spec, format, bytes });
    }
    const stored = await this.readReport(key);
    if (!stored) return null;
    stored.report.preset = presetOfReport(preset);
    await this.showCachedPictures(key, job);
    for (const a of artefacts) job.artefact(this.artefactRef(a, key, settings));
    job.end('done', { report: stored.report, cached: true });
    return { kind: 'asset', jobId: job.id, preset: preset.name, artefacts, ...stored, cache: 'hit' };
  }

  private async readReport(key: string): Promise<StoredReport | null> {
    const cache = this.options.cache!;
    const bytes = await cache.get(key, REPORT_ENTRY);
    if (!bytes) return null;
    try {
      const stored = JSON.parse(new TextDecoder().decode(bytes)) as StoredReport;
      if (typeof stored.seed === 'number' && typeof stored.gaussians === 'number' && Array.isArray(stored.report?.attempts)) return stored;
    } catch {
      // Unreadable: evicted below.
    }
    cache.discard(key, REPORT_ENTRY);
    return null;
  }

  /**
   * The asset of this request cached as its geometry (say by /generate/ before /generate_video/): its PLY, and
   * a mesh job's GLB. A video or views then need no GPU work. Bytes that do not decode are evicted, and the
   * asset is made again.
   */
  private async cachedAsset(
    key: string,
    request: AnswerRequest,
    mesh: boolean,
  ): Promise<{ cloud: GaussianCloud; mesh?: TriangleMesh; seed: number; report: Report } | null> {
    const cloud = await this.cachedGeometry(key, 'ply', (format, bytes) => format.decodeCloud!(bytes));
    if (!cloud) return null;
    const made = mesh ? await this.cachedGeometry(key, 'glb', (format, bytes) => format.decodeMesh!(bytes)) : undefined;
    if (made === null) return null;
    const stored = await this.readReport(key);
    if (!stored) return null;
    // Cached splats are in the delivery's frame; the canonical cloud is the validator's. A GLB is in glTF's axes.
    if (request.delivery) rotateCloud(cloud, transpose(request.delivery.rotation));
    return { cloud, ...(made && { mesh: made }), seed: stored.seed, report: stored.report };
  }

  /** One cached geometry entry, checked by its format and read; null (and evicted) when it is refused or unreadable. */
  private async cachedGeometry<T>(
    key: string,
    kind: 'ply' | 'glb',
    read: (format: Format, bytes: Uint8Array) => T | Promise<T>,
  ): Promise<T | null> {
    const cache = this.options.cache!;
    const format = this.options.formats[kind];
    const name: EntryName = { kind };
    const bytes = await cache.get(key, name);
    if (!bytes) return null;
    try {
      if ((await format.violation(bytes)) !== null) throw new Error('refused by its format');
      return await read(format, bytes);
    } catch {
      cache.discard(key, name);
      return null;
    }
  }

  private async generateOrForward(
    request: AnswerRequest,
    mesh: boolean,
    settings: JobSettings,
    job: JobHandle,
    signal: AbortSignal,
  ): Promise<{ outcome: Outcome } | { forwarded: ForwardedAnswer }> {
    const { service, burst } = this.options;
    try {
      const outcome = await service.generate({
        job: { id: job.id, task: request.task, seed: request.seed, delivery: request.delivery, ...(mesh && { mesh }) },
        // The answer is held (see answer()): a shutdown that began since must still let it through.
        held: true,
        priority: request.priority,
        settings,
        signal,
        progress: job.progress,
        onStart: job.started,
      });
      return { outcome };
    } catch (err) {
      if (!(err instanceof BusyError) || !request.forward || !burst?.enabled) throw err;
      const forwarded = await burst.forward(request.forward, signal);
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
    const violation = await format.violation(bytes);
    if (violation) throw new AssetRefusedError(`refusing to serve a ${format.name} artefact that breaks its rules: ${violation}`);
    return { spec, format, bytes };
  }

  /**
   * Encodes, checks and caches the asset's PLY, a mesh job's GLB, the picture and matte it was made from, and
   * the report. Returns those that passed
   * their checks (one refused is logged and left out: a request that asked for it encodes it again, and is
   * refused, on its own). Nothing is cached when the PLY is refused.
   */
  private async cacheGeometry(
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
    await this.storePictures(key, job, request.task);
    // The report goes last: an entry is only ever found with the report that describes it.
    await this.store(key, geometry, settings, stored);
    return geometry;
  }

  /** Caches the job's picture and matte (an image task's picture is its own image, which a hit has again). */
  private async storePictures(key: string, job: JobHandle, task: Task): Promise<void> {
    const cache = this.options.cache!;
    try {
      for (const name of ['image', 'matte'] as const) {
        if (name === 'image' && task.kind === 'image') continue;
        const picture = this.options.jobs.intermediate(job.id, name);
        if (picture && 'data' in picture) await cache.put(key, PICTURES[name], await encodePng(picture));
      }
    } catch (err) {
      this.options.logger?.warn({ err: (err as Error).message }, 'cache write failed');
    }
  }

  /** A cache hit's job shows the picture and matte the asset was made from, when the cache kept them. */
  private async showCachedPictures(key: string, job: JobHandle): Promise<void> {
    const cache = this.options.cache!;
    for (const name of ['image', 'matte'] as const) {
      const bytes = await cache.get(key, PICTURES[name]);
      if (!bytes) continue;
      try {
        job.progress.intermediate({ name, image: await decodeImage(bytes, PICTURE_LIMITS) }, 0);
      } catch {
        cache.discard(key, PICTURES[name]);
      }
    }
  }

  /** Caches checked artefacts (and the report); a failed write is logged, never the request's failure. */
  private async store(key: string, artefacts: Delivered[], settings: JobSettings, stored?: StoredReport): Promise<void> {
    const cache = this.options.cache!;
    try {
      for (const a of artefacts) await cache.put(key, this.entryName(a.spec, settings), a.bytes);
      if (stored) await cache.put(key, REPORT_ENTRY, new TextEncoder().encode(JSON.stringify(stored)));
    } catch (err) {
      this.options.logger?.warn({ err: (err as Error).message }, 'cache write failed');
    }
  }

  private artefactRef(a: Delivered, key: string | undefined, settings: JobSettings) {
    const cache = this.options.cache;
    const name = this.entryName(a.spec, settings);
    // With a cache the registry reads the bytes from it; without one it holds them.
    const held = cache && key !== undefined ? null : a.bytes;
    return {
      name: a.spec.format,
      contentType: a.format.contentType,
      extension: a.format.extension,
      bytes: a.bytes.length,
      held: held !== null,
      read: async () => held ?? (await cache!.get(key!, name)),
    };
  }
}

/** A job's title when its request gives none: the prompt's first words, or the image's size. */
function titleOf(task: Task): string {
  return task.kind === 'text' ? task.prompt.slice(0, 80) : `image ${task.image.width}×${task.image.height}`;
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
