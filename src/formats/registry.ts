/**
 * The format registry: one entry per artefact kind a job can deliver, each with its name, file extension,
 * content type, encoder and the check its bytes must pass before any 200 (and before they are cached).
 * Encoders take the asset in the canonical frame (the validator's: +Y up, front toward +Z). Splat formats are
 * written in the delivery's frame; GLB in glTF's own axes, which are the canonical ones; rendered formats are
 * rendered upright, from the mesh in a mesh job and from the splats otherwise. Adding a kind is adding an entry.
 */
import { encodePng } from '../image/codec.js';
import { gridImage } from '../image/rgba.js';
import { decodeGlb, encodeGlb } from '../mesh/glb.js';
import { inspectGlb, type GlbInspection, type GlbRules } from '../mesh/rules.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import { renderViews, turntableMp4, validatorCameras, type RenderPool, type TurntableSettings } from '../render/index.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { decodePly, encodePlyInSlices } from '../splat/ply.js';
import { servablePlyViolation } from '../splat/servable.js';
import { decodeSpz, encodeSpzAsync, spzViolation } from '../splat/spz.js';
import { nextTurn } from '../turns.js';
import { mp4Violation, pngViolation } from './containers.js';

export const FORMAT_NAMES = ['ply', 'spz', 'glb', 'mp4', 'views'] as const;
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

/** What a format encodes: the canonical cloud, and in a mesh job the mesh made with it. */
export interface Asset {
  cloud: GaussianCloud;
  /** Canonical frame, fitted to pipeline.mesh_extent; rendered formats show it instead of the splats. */
  mesh?: TriangleMesh;
}

export interface Format {
  readonly name: FormatName;
  readonly extension: string;
  readonly contentType: string;
  /**
   * What the bytes hold. 'splats': written in the delivery's frame; 'mesh': in glTF's axes (the canonical
   * frame), needs the asset's mesh; 'render': pictures of the asset, upright, made in the video line.
   */
  readonly kind: 'splats' | 'mesh' | 'render';
  encode(asset: Asset, spec: ArtefactSpec, env: EncodeEnv): Promise<Uint8Array>;
  /** Why the bytes may not leave with a 200, or null when they are a complete, valid file of this kind. */
  violation: (bytes: Uint8Array) => Promise<string | null>;
  /** Splat formats read back (into the frame they were written in). */
  decodeCloud?(bytes: Uint8Array): GaussianCloud;
  /** Mesh formats read back. */
  decodeMesh?(bytes: Uint8Array): Promise<TriangleMesh>;
}


/** Validator views in one PNG: 16 views on its orbit, four to a row. */
export const VIEW_COUNT = 16;
export const DEFAULT_VIEW_SIZE = 256;

export type FormatRegistry = Readonly<Record<FormatName, Format>>;

/**
 * Where GLBs are written, checked and read: in this thread by default; the service hands in its CPU pool's, so that
 * glTF-Transform and the validator do not hold the event loop.
 */
export interface GlbCodec {
  encode(mesh: TriangleMesh): Promise<Uint8Array>;
  inspect(bytes: Uint8Array, rules: GlbRules): Promise<GlbInspection>;
  decode(bytes: Uint8Array): Promise<TriangleMesh>;
}

export const IN_PROCESS_GLB: GlbCodec = { encode: encodeGlb, inspect: inspectGlb, decode: decodeGlb };

export function createFormats(deps: { pool: RenderPool; mesh: GlbRules; glb?: GlbCodec }): FormatRegistry {
  const { pool, mesh: rules } = deps;
  const glb = deps.glb ?? IN_PROCESS_GLB;
  const formats: Record<FormatName, Format> = {
    ply: {
      name: 'ply',
      extension: '.ply',
      contentType: 'application/octet-stream',
      kind: 'splats',
      // A slice of Gaussians per turn of the event loop: 13 MB written at once would hold it.
      encode: ({ cloud }) => encodePlyInSlices(cloud, nextTurn),
      violation: async (bytes) => servablePlyViolation(bytes),
      decodeCloud: decodePly,
    },
    spz: {
      name: 'spz',
      extension: '.spz',
      contentType: 'application/x-spz',
      kind: 'splats',
      encode: ({ cloud }) => encodeSpzAsync(cloud),
      violation: async (bytes) => spzViolation(bytes),
      decodeCloud: decodeSpz,
    },
    glb: {
      name: 'glb',
      extension: '.glb',
      contentType: 'model/gltf-binary',
      kind: 'mesh',
      encode: ({ mesh }) => glb.encode(meshOf(mesh)),
      violation: async (bytes) => (await glb.inspect(bytes, rules)).violations[0] ?? null,
      decodeMesh: (bytes) => glb.decode(bytes),
    },
    mp4: {
      name: 'mp4',
      extension: '.mp4',
      contentType: 'video/mp4',
      kind: 'render',
      encode({ cloud, mesh }, spec, env) {
        const options = { ...env.turntable, size: sizeOf(spec), pool };
        return turntableMp4(mesh ?? cloud, options, env.signal);
      },
      violation: async (bytes) => mp4Violation(bytes),
    },
    views: {
      name: 'views',
      extension: '.png',
      contentType: 'image/png',
      kind: 'render',
      async encode({ cloud, mesh }, spec, env) {
        const cameras = validatorCameras(VIEW_COUNT, spec.size ?? DEFAULT_VIEW_SIZE);
        const images = await renderViews(mesh ?? cloud, cameras, { pool }, env.signal);
        return encodePng(gridImage(images));
      },
      violation: async (bytes) => pngViolation(bytes),
    },
  };
  for (const format of Object.values(formats)) format.violation = rememberVerdicts(format.violation);
  return formats;
}

/**
 * A check that remembers its verdict for the same bytes: the answer path checks an artefact before caching it
 * and the response checks it again before the 200, and 13 MB of PLY need not be read twice. Keyed on the array
 * itself, so other bytes (or a copy) are checked afresh. A check that failed to run (a worker gone) is forgotten,
 * so the next read checks again.
 */
function rememberVerdicts(check: (bytes: Uint8Array) => Promise<string | null>): (bytes: Uint8Array) => Promise<string | null> {
  const verdicts = new WeakMap<Uint8Array, Promise<string | null>>();
  return (bytes) => {
    let verdict = verdicts.get(bytes);
    if (!verdict) {
      verdict = check(bytes);
      verdicts.set(bytes, verdict);
      verdict.catch(() => verdicts.delete(bytes));
    }
    return verdict;
  };
}

function meshOf(mesh: TriangleMesh | undefined): TriangleMesh {
  if (!mesh) throw new Error('a glb artefact needs the mesh of a mesh job');
  return mesh;
}

function sizeOf(spec: ArtefactSpec): number {
  if (!spec.size) throw new Error(`a ${spec.format} artefact needs a size`);
  return spec.size;
}

/**
 * The part of a cache key that tells artefacts of one request apart (a video's size and render settings).
 * Whether a job is a mesh job is in the request's key itself: it changes validation, so the whole answer.
 */
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
