/**
 * The format registry: one entry per artefact kind a job can deliver, each with its name, file extension,
 * content type, encoder and the check its bytes must pass before any 200 (and before they are cached).
 * Encoders take the asset in the canonical frame (the validator's: +Y up, front toward +Z). Splat formats are
 * written in the delivery's frame; GLB in glTF's own axes, which are the canonical ones; rendered formats are
 * rendered upright, from the mesh in a mesh job and from the splats otherwise. Adding a kind is adding an entry.
 */
import { encodePng } from '../image/codec.js';
import { gridImage } from '../image/rgba.js';
import { gameMeshViolation, type GameMesh, type GameMeshOptions } from '../mesh/game.js';
import type { GlbTextureFormat } from '../mesh/glb.js';
import { decodeSplatGlb } from '../mesh/glb-splat.js';
import { GLB_COMPRESSIONS, type GlbCompression } from '../mesh/glb-variants.js';
import { glbBounds } from '../mesh/glb-limits.js';
import { MAX_LODS } from '../mesh/lod.js';
import type { GlbRules } from '../mesh/rules.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import { renderViews, turntableMp4, validatorCameras, type RenderPool, type TurntableSettings } from '../render/index.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { decodePly, encodePlyInSlices } from '../splat/ply.js';
import { servablePlyViolation } from '../splat/servable.js';
import { decodeSpz, encodeSpzAsync, spzVersionViolation, spzViolation, type SpzVersion } from '../splat/spz.js';
import { nextTurn } from '../turns.js';
import { mp4Violation, pngViolation } from './containers.js';
import { IN_THREAD, type ArtefactWorker } from './artefact-work.js';

/** The kinds the request surfaces offer today. */
export const FORMAT_NAMES = ['ply', 'spz', 'glb', 'mp4', 'views'] as const;
/** LOD artefacts: glb_lod1 is the level after the top one (the `glb`), up to the most levels `lods` may list. */
export const LOD_FORMAT_NAMES = Array.from({ length: MAX_LODS - 1 }, (_, i) => `glb_lod${i + 1}` as const);
/** Kinds for game teams: OBJ (a zip with MTL and texture), splats in glTF, and the levels of detail. */
export const GAME_FORMAT_NAMES = ['obj', 'glb_splat', ...LOD_FORMAT_NAMES] as const;
export const ALL_FORMAT_NAMES = [...FORMAT_NAMES, ...GAME_FORMAT_NAMES] as const;
export type FormatName = (typeof ALL_FORMAT_NAMES)[number];

/** The LOD artefact of a level (1 is the level after the top), or the level of a LOD artefact's name. */
export const lodFormat = (level: number): FormatName => `glb_lod${level}` as FormatName;
export const lodLevelOf = (name: FormatName): number | null => (/^glb_lod(\d)$/.test(name) ? Number(name.slice(7)) : null);

/** The content type each kind is served with (downloads, job views, the OpenAPI document). */
export const CONTENT_TYPES: Readonly<Record<FormatName, string>> = {
  ply: 'application/octet-stream',
  spz: 'application/x-spz',
  glb: 'model/gltf-binary',
  mp4: 'video/mp4',
  views: 'image/png',
  obj: 'application/zip',
  glb_splat: 'model/gltf-binary',
  ...(Object.fromEntries(LOD_FORMAT_NAMES.map((name) => [name, 'model/gltf-binary'])) as Record<(typeof LOD_FORMAT_NAMES)[number], string>),
};

/**
 * What a request asked of its mesh: the game options (faces, texture size, pivot, size, LODs), the GLB's
 * compression and its texture's format. One object for every mesh artefact of a request (glb, glb_lodN, obj),
 * so each level comes from the same chain.
 */
export interface MeshRequest extends GameMeshOptions {
  compression?: GlbCompression;
  textureFormat?: GlbTextureFormat;
}

/** One artefact a request wants: a format, and for rendered ones the side in pixels. */
export interface ArtefactSpec {
  format: FormatName;
  /** Side of a video or of each view, in pixels (rendered formats only). */
  size?: number;
  /** Mesh formats (glb, glb_lodN, obj): what the request asked of the mesh; absent, the job's mesh as it is. */
  mesh?: MeshRequest;
  /** spz: the SPZ version to write (3 by default: Spark reads it; 4 is zstd, which three.js reads). */
  spzVersion?: SpzVersion;
}

/**
 * Why a request's artefact cannot be made, in one sentence for a 400, or null: the mesh options against the
 * preset's most faces, the compression, a LOD artefact whose level the request's lods do not have, the SPZ
 * version. The request plumbing calls it before a job is queued.
 */
export function specViolation(spec: ArtefactSpec, limits: { maxFaces: number }): string | null {
  if (spec.spzVersion !== undefined) {
    if (spec.format !== 'spz') return 'spz_version applies to spz artefacts only';
    const violation = spzVersionViolation(spec.spzVersion);
    if (violation) return violation;
  }
  const mesh = spec.mesh;
  if (mesh) {
    const violation = gameMeshViolation(mesh, limits);
    if (violation) return violation;
    if (mesh.compression !== undefined && !GLB_COMPRESSIONS.includes(mesh.compression))
      return `compression must be one of ${GLB_COMPRESSIONS.join(', ')}`;
    if (mesh.textureFormat !== undefined && !['png', 'webp'].includes(mesh.textureFormat)) return 'the texture format must be png or webp';
  }
  const level = lodLevelOf(spec.format);
  if (level !== null && (mesh?.lods?.length ?? 1) <= level) {
    return `${spec.format} is level ${level + 1} of the LOD chain: lods must list at least ${level + 1} levels (for example [1, 0.5, 0.25, 0.1])`;
  }
  return null;
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
  /**
   * Why the bytes may not leave with a 200, or null when they are a complete, valid file of this kind. A mesh
   * artefact made for a spec that asked for a size or pivot is checked against those bounds: pass the spec.
   */
  violation: (bytes: Uint8Array, spec?: ArtefactSpec) => Promise<string | null>;
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
 * `work`: where mesh artefacts and splat GLBs are made, checked and read: in this thread by default; the service
 * hands in its CPU pool's, so that none of it holds the event loop.
 */
export function createFormats(deps: { pool: RenderPool; mesh: GlbRules; work?: ArtefactWorker }): FormatRegistry {
  const { pool, mesh: rules } = deps;
  const work = deps.work ?? IN_THREAD;
  const inspect = async (bytes: Uint8Array, spec: ArtefactSpec | undefined) =>
    (await work.inspectGlb(bytes, rulesFor(rules, spec))).violations[0] ?? null;
  const decodeMesh = (bytes: Uint8Array) => work.decodeGlb(bytes, rules.limits);
  const level = (mesh: TriangleMesh | undefined, request: MeshRequest, at: number) => encodeLevel(work, meshOf(mesh), request, at);
  const formats = {
    ply: {
      name: 'ply',
      extension: '.ply',
      contentType: CONTENT_TYPES.ply,
      kind: 'splats',
      // A slice of Gaussians per turn of the event loop: 13 MB written at once would hold it.
      encode: ({ cloud }) => encodePlyInSlices(cloud, nextTurn),
      violation: async (bytes) => servablePlyViolation(bytes),
      decodeCloud: decodePly,
    },
    spz: {
      name: 'spz',
      extension: '.spz',
      contentType: CONTENT_TYPES.spz,
      kind: 'splats',
      encode: ({ cloud }, spec) => encodeSpzAsync(cloud, spec.spzVersion),
      violation: async (bytes) => spzViolation(bytes),
      decodeCloud: decodeSpz,
    },
    glb: {
      name: 'glb',
      extension: '.glb',
      contentType: CONTENT_TYPES.glb,
      kind: 'mesh',
      encode: ({ mesh }, spec) => (spec.mesh ? level(mesh, spec.mesh, 0) : work.encodeGlb(meshOf(mesh))),
      violation: inspect,
      decodeMesh,
    },
    obj: {
      name: 'obj',
      extension: '.obj.zip',
      contentType: CONTENT_TYPES.obj,
      kind: 'mesh',
      async encode({ mesh }, spec) {
        const top = spec.mesh ? (await gameMeshOf(work, meshOf(mesh), spec.mesh)).levels[0].mesh : meshOf(mesh);
        return work.encodeObjZip(top, { textureSize: spec.mesh?.textureSize });
      },
      violation: (bytes) => work.objZipViolation(bytes, { maxBytes: rules.maxBytes, maxUnzippedBytes: 4 * rules.maxBytes }),
    },
    glb_splat: {
      name: 'glb_splat',
      extension: '.splat.glb',
      contentType: CONTENT_TYPES.glb_splat,
      kind: 'splats',
      encode: ({ cloud }) => work.encodeSplatGlb(cloud),
      violation: (bytes) => work.splatGlbViolation(bytes, rules.maxBytes),
      decodeCloud: decodeSplatGlb,
    },
    ...Object.fromEntries(
      LOD_FORMAT_NAMES.map((name, i): [FormatName, Format] => [
        name,
        {
          name,
          extension: `.lod${i + 1}.glb`,
          contentType: CONTENT_TYPES[name],
          kind: 'mesh',
          encode: ({ mesh }, spec) => level(mesh, spec.mesh ?? {}, i + 1),
          violation: inspect,
          decodeMesh,
        },
      ]),
    ),
    mp4: {
      name: 'mp4',
      extension: '.mp4',
      contentType: CONTENT_TYPES.mp4,
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
      contentType: CONTENT_TYPES.views,
      kind: 'render',
      async encode({ cloud, mesh }, spec, env) {
        const cameras = validatorCameras(VIEW_COUNT, spec.size ?? DEFAULT_VIEW_SIZE);
        const images = await renderViews(mesh ?? cloud, cameras, { pool }, env.signal);
        return encodePng(gridImage(images));
      },
      violation: async (bytes) => pngViolation(bytes),
    },
  } as Record<FormatName, Format>;
  for (const format of Object.values(formats)) format.violation = rememberVerdicts(format.violation);
  return formats;
}

/** The rules a mesh artefact is checked against: the request's size and pivot when it asked for either. */
function rulesFor(rules: GlbRules, spec: ArtefactSpec | undefined): GlbRules {
  const mesh = spec?.mesh;
  if (!mesh || (mesh.sizeM === undefined && mesh.pivot === undefined)) return rules;
  return { ...rules, placement: { sizeM: mesh.sizeM ?? 1, pivot: mesh.pivot ?? 'center' } };
}

/**
 * The game mesh of a job's mesh for a request, made once: every mesh artefact of the request (glb, each
 * glb_lodN, obj) takes its level from the same chain. Keyed on the mesh object, so it goes with the asset.
 */
const gameMeshes = new WeakMap<TriangleMesh, Map<string, Promise<GameMesh>>>();

function gameMeshOf(work: ArtefactWorker, mesh: TriangleMesh, request: MeshRequest): Promise<GameMesh> {
  const { faces, textureSize, pivot, sizeM, lods } = request;
  const key = JSON.stringify([faces, textureSize, pivot, sizeM, lods]);
  let byOptions = gameMeshes.get(mesh);
  if (!byOptions) gameMeshes.set(mesh, (byOptions = new Map()));
  let game = byOptions.get(key);
  if (!game) {
    game = work.prepareGameMesh(mesh, { faces, textureSize, pivot, sizeM, lods });
    byOptions.set(key, game);
    game.catch(() => byOptions.delete(key));
  }
  return game;
}

/** One level of the request's game mesh as a GLB in the compression and texture format it asked for. */
async function encodeLevel(work: ArtefactWorker, mesh: TriangleMesh, request: MeshRequest, level: number): Promise<Uint8Array> {
  const game = await gameMeshOf(work, mesh, request);
  const at = game.levels[level];
  if (!at) throw new RangeError(`level ${level} of the LOD chain was not asked for (lods has ${game.levels.length} levels)`);
  return work.encodeGlbVariant(at.mesh, { compression: request.compression ?? 'none', texture: request.textureFormat ?? 'png' });
}

/**
 * A check that remembers its verdict for the same bytes: the answer path checks an artefact before caching it
 * and the response checks it again before the 200, and 13 MB of PLY need not be read twice. Keyed on the array
 * itself, so other bytes (or a copy) are checked afresh. A check that failed to run (a worker gone) is forgotten,
 * so the next read checks again.
 */
function rememberVerdicts(check: Format['violation']): Format['violation'] {
  const verdicts = new WeakMap<Uint8Array, Map<string, Promise<string | null>>>();
  return (bytes, spec) => {
    // The same bytes may be checked against other bounds (a size or pivot asked for): one verdict per spec.
    const key = spec?.mesh ? JSON.stringify([spec.mesh.sizeM, spec.mesh.pivot]) : '';
    let bySpec = verdicts.get(bytes);
    if (!bySpec) verdicts.set(bytes, (bySpec = new Map()));
    let verdict = bySpec.get(key);
    if (!verdict) {
      verdict = check(bytes, spec);
      bySpec.set(key, verdict);
      verdict.catch(() => bySpec.delete(key));
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
    case 'spz':
      return spec.spzVersion === undefined || spec.spzVersion === 3 ? 'spz' : `spz:v${spec.spzVersion}`;
    default: {
      // A mesh artefact asked for with options is another file than the default one.
      const m = spec.mesh;
      if (!m) return spec.format;
      return `${spec.format}:${JSON.stringify([m.faces, m.textureSize, m.pivot, m.sizeM, m.lods, m.compression, m.textureFormat])}`;
    }
  }
}

/** Whether a kind is a GLB mesh: the glb, or one of its levels of detail. */
export const isGlbFormat = (name: FormatName): boolean => name === 'glb' || lodLevelOf(name) !== null;

/**
 * The triangles a GLB artefact holds, as its JSON declares them (no geometry is decoded: the count faces and
 * lods reached, for job views and headers), or undefined for another kind or a file the bounds refuse.
 */
export function artefactTriangles(name: FormatName, bytes: Uint8Array): number | undefined {
  if (!isGlbFormat(name)) return undefined;
  const bounds = glbBounds(bytes);
  return 'shape' in bounds ? bounds.shape.triangles : undefined;
}

/** The format whose files end with `path`'s extension (the longest that matches: x.lod1.glb is a LOD), or null. */
export function formatForPath(formats: FormatRegistry, path: string): Format | null {
  const lower = path.toLowerCase();
  const matching = Object.values(formats).filter((f) => lower.endsWith(f.extension));
  return matching.sort((a, b) => b.extension.length - a.extension.length)[0] ?? null;
}
