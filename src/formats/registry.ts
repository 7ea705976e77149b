/**
 * The format registry: one entry per artefact kind a job can deliver, each with its name, file extension,
 * content type, encoder and the check its bytes must pass before any 200 (and before they are cached).
 * Encoders take the cloud in the canonical frame (the validator's: +Y up, front toward +Z); geometry formats
 * are written in the delivery's frame, rendered formats are rendered upright. Adding a kind is adding an entry.
 */
import { encodePng } from '../image/codec.js';
import { gridImage } from '../image/rgba.js';
import { renderViews, turntableMp4, validatorCameras, type RenderPool, type TurntableSettings } from '../render/index.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { decodePly, encodePly } from '../splat/ply.js';
import { servablePlyViolation } from '../splat/servable.js';
import { decodeSpz, encodeSpzAsync, spzViolation } from '../splat/spz.js';
import { mp4Violation, pngViolation } from './containers.js';

export const FORMAT_NAMES = ['ply', 'spz', 'mp4', 'views'] as const;
export type FormatName = (typeof FORMAT_NAMES)[number];

/** One artefact a request wants: a format, and for rendered ones the side in pixels. */
export interface ArtefactSpec {
  format: FormatName;
  /** Side of a video or of each view, in pixels (rendered formats only). */
  size?: number;
}

export interface EncodeEnv {
  /** The render settings of the job (turntable path, background, x264 settings). */
  turntable: TurntableSettings;
  signal?: AbortSignal;
}

export interface Format {
  readonly name: FormatName;
  readonly extension: string;
  readonly contentType: string;
  /** 'delivery': geometry, written in the client's frame; 'canonical': rendered upright. */
  readonly frame: 'delivery' | 'canonical';
  encode(cloud: GaussianCloud, spec: ArtefactSpec, env: EncodeEnv): Promise<Uint8Array>;
  /** Why the bytes may not leave with a 200, or null when they are a complete, valid file of this kind. */
  violation: (bytes: Uint8Array) => string | null;
  /** Geometry formats read back (into the frame they were written in). */
  decode?(bytes: Uint8Array): GaussianCloud;
}

/** Validator views in one PNG: 16 views on its orbit, four to a row. */
export const VIEW_COUNT = 16;
export const DEFAULT_VIEW_SIZE = 256;

export type FormatRegistry = Readonly<Record<FormatName, Format>>;

export function createFormats(deps: { pool: RenderPool }): FormatRegistry {
  const { pool } = deps;
  const formats: Record<FormatName, Format> = {
    ply: {
      name: 'ply',
      extension: '.ply',
      contentType: 'application/octet-stream',
      frame: 'delivery',
      encode: async (cloud) => encodePly(cloud),
      violation: servablePlyViolation,
      decode: decodePly,
    },
    spz: {
      name: 'spz',
      extension: '.spz',
      contentType: 'application/x-spz',
      frame: 'delivery',
      encode: encodeSpzAsync,
      violation: spzViolation,
      decode: decodeSpz,
    },
    mp4: {
      name: 'mp4',
      extension: '.mp4',
      contentType: 'video/mp4',
      frame: 'canonical',
      encode: (cloud, spec, env) => turntableMp4(cloud, { ...env.turntable, size: sizeOf(spec), pool }, env.signal),
      violation: mp4Violation,
    },
    views: {
      name: 'views',
      extension: '.png',
      contentType: 'image/png',
      frame: 'canonical',
      async encode(cloud, spec, env) {
        const images = await renderViews(cloud, validatorCameras(VIEW_COUNT, spec.size ?? DEFAULT_VIEW_SIZE), { pool }, env.signal);
        return encodePng(gridImage(images));
      },
      violation: pngViolation,
    },
  };
  for (const format of Object.values(formats)) format.violation = rememberVerdicts(format.violation);
  return formats;
}

/**
 * A check that remembers its verdict for the same bytes: the answer path checks an artefact before caching it
 * and the response checks it again before the 200, and 13 MB of PLY need not be read twice. Keyed on the array
 * itself, so other bytes (or a copy) are checked afresh.
 */
function rememberVerdicts(check: (bytes: Uint8Array) => string | null): (bytes: Uint8Array) => string | null {
  const verdicts = new WeakMap<Uint8Array, string | null>();
  return (bytes) => {
    const known = verdicts.get(bytes);
    if (known !== undefined) return known;
    const verdict = check(bytes);
    verdicts.set(bytes, verdict);
    return verdict;
  };
}

function sizeOf(spec: ArtefactSpec): number {
  if (!spec.size) throw new Error(`a ${spec.format} artefact needs a size`);
  return spec.size;
}

/** The part of a cache key that tells artefacts of one request apart (a video's size and render settings). */
export function specKey(spec: ArtefactSpec, renderFingerprint: string): string {
  switch (spec.format) {
    case 'mp4':
      return `mp4:${spec.size}:${renderFingerprint}`;
    case 'views':
      return `views:${spec.size ?? DEFAULT_VIEW_SIZE}:${renderFingerprint}`;
    default:
      return spec.format;
  }
}

/** The format whose files end with `path`'s extension, or null. */
export function formatForPath(formats: FormatRegistry, path: string): Format | null {
  const lower = path.toLowerCase();
  return Object.values(formats).find((f) => lower.endsWith(f.extension)) ?? null;
}
