/**
 * The answer path's dialogue with the result cache: a request's key, whole answers and remembered declines, a
 * cached asset to render again, and what a made answer leaves behind (its geometry, report and pictures, then
 * its other artefacts). Bytes are checked by their format before they are returned: an entry its format refuses,
 * or one that does not decode, is evicted and made again.
 */
import { decodeImage, encodePng } from '../image/codec.js';
import type { RgbaImage } from '../image/rgba.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import type { JobSettings } from '../pipelines/context.js';
import type { Delivery, Report } from '../pipelines/job.js';
import type { ResolvedPreset } from '../pipelines/presets.js';
import { renderFingerprint } from '../pipelines/settings.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { rotateCloud, transpose } from '../splat/frame.js';
import { artefactTriangles, specKey, type ArtefactSpec, type Format, type FormatRegistry } from '../formats/registry.js';
import type { CacheBackend, EntryKind, EntryName } from './cache.js';
import type { ArtefactRef } from './jobs.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { AnswerRequest, TaskRef } from './request.js';

/** An artefact made (or read back) for a request, checked by its format. */
export interface Delivered {
  spec: ArtefactSpec;
  format: Format;
  bytes: Uint8Array;
}

/** A delivered artefact as the job registry lists it; `source` says where its bytes are read from. */
export function deliveredRef(a: Delivered, source: Pick<ArtefactRef, 'held' | 'storeKey' | 'read'>): ArtefactRef {
  const triangles = artefactTriangles(a.spec.format, a.bytes);
  return {
    name: a.spec.format,
    contentType: a.format.contentType,
    extension: a.format.extension,
    bytes: a.bytes.length,
    spec: a.spec,
    ...(triangles !== undefined && { triangles }),
    ...source,
  };
}

/** What the cache remembers beside the artefacts, so a hit answers with the same headers as the miss did. */
export interface StoredReport {
  seed: number;
  gaussians: number;
  report: Report;
}

/** A cached asset, in the canonical frame, to render or encode again without GPU work. */
export interface CachedAsset {
  cloud: GaussianCloud;
  mesh?: TriangleMesh;
  seed: number;
  report: Report;
}

export type PictureName = 'image' | 'matte';

const REPORT_ENTRY: EntryName = { kind: 'json', variant: 'report' };
/** A job's pictures (the one it was made from, and its matte), kept beside its asset. */
const PICTURES = { image: { kind: 'png', variant: 'picture' }, matte: { kind: 'png', variant: 'matte' } } as const satisfies Record<
  PictureName,
  EntryName
>;
/** Cached pictures are ours (a pipeline's picture and matte): far under this, or not ours. */
const PICTURE_LIMITS = { maxPixels: 4096 * 4096, minSide: 1 };

export class AnswerCache {
  constructor(
    private readonly cache: CacheBackend,
    private readonly formats: FormatRegistry,
    private readonly logger?: Logger,
    private readonly metrics?: Metrics,
  ) {}

  /** A request's key under its preset; a mesh job is validated on its mesh, so it may be declined where the same splat job is not. */
  key(request: AnswerRequest, preset: ResolvedPreset, mesh: boolean): string {
    return this.cache.requestKey(request.task, request.seed, request.delivery, mesh ? `${preset.fingerprint}:mesh` : preset.fingerprint);
  }

  /** The cache entry an artefact of a request is kept under (a shared store reads it back by this name). */
  entryOf(spec: ArtefactSpec, settings: JobSettings): EntryName {
    return this.entryName(spec, settings);
  }

  /** Whether the cache holds this whole answer, or remembers its decline (read nothing yet). */
  async holds(key: string, wants: readonly ArtefactSpec[], settings: JobSettings): Promise<boolean> {
    if ((await this.cache.declined(key)) !== null) return true;
    if (!(await this.cache.has(key, REPORT_ENTRY))) return false;
    for (const spec of wants) if (!(await this.cache.has(key, this.entryName(spec, settings)))) return false;
    return true;
  }

  async declined(key: string, label: string): Promise<string | null> {
    const reason = await this.cache.declined(key);
    if (reason !== null) this.metrics?.cacheLookup(label, 'decline_hit');
    return reason;
  }

  rememberDecline(key: string, reason: string): void {
    this.cache.rememberDecline(key, reason);
  }

  /** Every wanted artefact, checked, and the report; null on any miss (a refused entry is evicted). */
  async answer(
    key: string,
    wants: readonly ArtefactSpec[],
    settings: JobSettings,
  ): Promise<{ artefacts: Delivered[]; stored: StoredReport } | null> {
    const artefacts: Delivered[] = [];
    for (const spec of wants) {
      const name = this.entryName(spec, settings);
      const bytes = await this.cache.get(key, name);
      if (!bytes) return null;
      const format = this.formats[spec.format];
      if ((await format.violation(bytes, spec)) !== null) {
        // Intact on disk but not a valid file (or the rules changed since): make it again.
        this.cache.discard(key, name);
        return null;
      }
      artefacts.push({ spec, format, bytes });
    }
    const stored = await this.report(key);
    return stored && { artefacts, stored };
  }

  /**
   * The asset of a request cached as its geometry (say by /generate/ before /generate_video/): its PLY, and a
   * mesh job's GLB. A video or views then need no GPU work.
   */
  async asset(key: string, delivery: Delivery | undefined, mesh: boolean): Promise<CachedAsset | null> {
    const cloud = await this.geometry(key, 'ply', (format, bytes) => format.decodeCloud!(bytes));
    if (!cloud) return null;
    const made = mesh ? await this.geometry(key, 'glb', (format, bytes) => format.decodeMesh!(bytes)) : undefined;
    if (made === null) return null;
    const stored = await this.report(key);
    if (!stored) return null;
    // Cached splats are in the delivery's frame; the canonical cloud is the validator's. A GLB is in glTF's axes.
    if (delivery) rotateCloud(cloud, transpose(delivery.rotation));
    return { cloud, ...(made && { mesh: made }), seed: stored.seed, report: stored.report };
  }

  /** The picture and matte kept beside an asset, decoded (an entry that does not decode is evicted). */
  async pictures(key: string): Promise<{ name: PictureName; image: RgbaImage }[]> {
    const found: { name: PictureName; image: RgbaImage }[] = [];
    for (const name of ['image', 'matte'] as const) {
      const bytes = await this.cache.get(key, PICTURES[name]);
      if (!bytes) continue;
      try {
        found.push({ name, image: await decodeImage(bytes, PICTURE_LIMITS) });
      } catch {
        this.cache.discard(key, PICTURES[name]);
      }
    }
    return found;
  }

  /**
   * What a made asset leaves behind whatever was asked: its geometry (checked artefacts), the pictures it was
   * made from (an image task's picture is its own image, which a hit has again), then the report, last: an entry
   * is only ever found with the report that describes it.
   */
  async keepAsset(
    key: string,
    geometry: Delivered[],
    settings: JobSettings,
    stored: StoredReport,
    task: TaskRef,
    pictures: { name: PictureName; image: RgbaImage | undefined }[],
  ): Promise<void> {
    try {
      for (const { name, image } of pictures) {
        if (!image || (name === 'image' && task.kind === 'image')) continue;
        await this.cache.put(key, PICTURES[name], await encodePng(image));
      }
    } catch (err) {
      this.logger?.warn({ err: (err as Error).message }, 'cache write failed');
    }
    await this.keep(key, geometry, settings, stored);
  }

  /** Caches checked artefacts (and a report); a failed write is logged, never the request's failure. */
  async keep(key: string, artefacts: Delivered[], settings: JobSettings, stored?: StoredReport): Promise<void> {
    try {
      for (const a of artefacts) await this.cache.put(key, this.entryName(a.spec, settings), a.bytes);
      if (stored) await this.cache.put(key, REPORT_ENTRY, new TextEncoder().encode(JSON.stringify(stored)));
    } catch (err) {
      this.logger?.warn({ err: (err as Error).message }, 'cache write failed');
    }
  }

  /** An artefact as the job registry lists it, its bytes read back through the cache. */
  ref(a: Delivered, key: string, settings: JobSettings): ArtefactRef {
    const name = this.entryName(a.spec, settings);
    return deliveredRef(a, {
      held: false,
      ...(this.cache.keyOf && { storeKey: this.cache.keyOf(key, name) }),
      read: () => this.cache.get(key, name),
    });
  }

  /** An artefact's entry: its file kind (its extension's last part), told apart by its spec when that is more. */
  private entryName(spec: ArtefactSpec, settings: JobSettings): EntryName {
    const kind = this.formats[spec.format].extension.split('.').pop() as EntryKind;
    const variant = specKey(spec, renderFingerprint(settings));
    return variant === kind ? { kind } : { kind, variant };
  }

  private async report(key: string): Promise<StoredReport | null> {
    const bytes = await this.cache.get(key, REPORT_ENTRY);
    if (!bytes) return null;
    try {
      const stored = JSON.parse(new TextDecoder().decode(bytes)) as StoredReport;
      if (typeof stored.seed === 'number' && typeof stored.gaussians === 'number' && Array.isArray(stored.report?.attempts)) return stored;
    } catch {
      // Unreadable: evicted below.
    }
    this.cache.discard(key, REPORT_ENTRY);
    return null;
  }

  /** One cached geometry entry, checked by its format and read; null (and evicted) when it is refused or unreadable. */
  private async geometry<T>(
    key: string,
    kind: 'ply' | 'glb',
    read: (format: Format, bytes: Uint8Array) => T | Promise<T>,
  ): Promise<T | null> {
    const format = this.formats[kind];
    const name: EntryName = { kind };
    const bytes = await this.cache.get(key, name);
    if (!bytes) return null;
    try {
      if ((await format.violation(bytes)) !== null) throw new Error('refused by its format');
      return await read(format, bytes);
    } catch {
      this.cache.discard(key, name);
      return null;
    }
  }
}
