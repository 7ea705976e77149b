/**
 * The renderer's public face: validator views for self-validation, single views and grids for operators,
 * and turntable videos, of splat clouds and of meshes (triangles.ts, framed like clouds). Everything renders on
 * a worker pool its caller owns (the service builds one in its composition root; each command builds its own).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RgbaImage } from '../image/rgba.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { turntableCameras, validatorCameras, type Camera } from './camera.js';
import type { RenderPool, Scene } from './pool.js';
import { prepareCloud, type PreparedCloud } from './prepare.js';
import type { Rgb } from './rasterize.js';
import { isPreparedMesh, prepareMesh, type PreparedMesh } from './triangles.js';
import { encodeMp4 } from './video.js';

export {
  linspace,
  orbitCamera,
  turntableCameras,
  validatorCameras,
  VALIDATOR_ELEVATION,
  VALIDATOR_FOV,
  VALIDATOR_RADIUS,
  VALIDATOR_SIZE,
} from './camera.js';
export type { Camera, Lens, OrbitView, TurntablePath } from './camera.js';
export { prepareCloud, type PreparedCloud } from './prepare.js';
export { Rasterizer, type RasterOptions, type Rgb } from './rasterize.js';
export { RenderPool, RenderAbortedError, type Scene } from './pool.js';
export {
  AMBIENT,
  isPreparedMesh,
  MeshRasterizer,
  prepareMesh,
  type MeshNormalisation,
  type MeshRasterOptions,
  type PreparedMesh,
} from './triangles.js';
export { encodeMp4, ffmpegPath, VideoEncodeError, type VideoOptions } from './video.js';

export const WHITE: Rgb = [1, 1, 1];
import { VALIDATOR_EXTENT } from '../splat/frame.js';
export { VALIDATOR_EXTENT };

/** 'white', 'black' or '#rrggbb' -> linear 0..1 triple. */
export function parseBackground(text: string): Rgb {
  const value = text.trim().toLowerCase();
  if (value === 'white') return [1, 1, 1];
  if (value === 'black') return [0, 0, 0];
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/.exec(value);
  if (!m) throw new Error(`background must be white, black or #rrggbb, got "${text}"`);
  return [parseInt(m[1], 16) / 255, parseInt(m[2], 16) / 255, parseInt(m[3], 16) / 255];
}

function toRgba(pixels: Uint8Array, camera: Camera): RgbaImage {
  return { width: camera.width, height: camera.height, data: new Uint8ClampedArray(pixels.buffer, pixels.byteOffset, pixels.length) };
}

/** A cloud or a mesh, as given or already prepared for the renderers. */
export type Renderable = GaussianCloud | PreparedCloud | TriangleMesh | PreparedMesh;

/**
 * The views the validator scores, of a cloud or a mesh: its normalisation and orbit (`count` azimuths from
 * linspace(0, 360, count)), `size` pixels square, white background; opaque RGBA.
 */
export function renderValidatorViews(
  subject: GaussianCloud | TriangleMesh,
  views: { count: number; size: number },
  pool: RenderPool,
  signal?: AbortSignal,
): Promise<RgbaImage[]> {
  return renderViews(subject, validatorCameras(views.count, views.size), { pool }, signal);
}

export interface ViewsOptions {
  background?: Rgb;
  /** Largest bounding-box extent after normalisation; null keeps the cloud's own frame. */
  extent?: number | null;
  pool: RenderPool;
}

/** Renders any cameras (single views, grids) of a cloud or a mesh as opaque RGBA images. */
export async function renderViews(
  subject: Renderable,
  cameras: readonly Camera[],
  options: ViewsOptions,
  signal?: AbortSignal,
): Promise<RgbaImage[]> {
  const prepared = sceneOf(subject, options.extent === undefined ? VALIDATOR_EXTENT : options.extent);
  const frames = await options.pool.renderAll(prepared, cameras, { background: options.background ?? WHITE, channels: 4 }, signal);
  return frames.map((pixels, i) => toRgba(pixels, cameras[i]));
}

/**
 * What a view or a video is rendered of, prepared with `extent` (clouds: the validator's normalisation; meshes:
 * the bounding box centred and its largest side scaled to `extent`; never the caller's arrays). Prepared
 * scenes are used as they are.
 */
function sceneOf(subject: Renderable, extent: number | null): Scene {
  if ('columns' in subject) return prepareCloud(subject, { extent });
  if ('pitch' in subject || isPreparedMesh(subject)) return subject;
  return prepareMesh(subject, { extent });
}

/** The `render:` config section, as the renderer needs it. */
export interface TurntableSettings {
  fps: number;
  seconds: number;
  /** 0: fps * seconds. */
  frames: number;
  elevations: number[];
  turns: number;
  radius: number;
  fov: number;
  extent: number;
  background: string;
  crf: number;
  preset: string;
}

export interface TurntableOptions extends TurntableSettings {
  /** Square side in pixels; odd values are rounded down to even (H.264 yuv420p). */
  size: number;
  pool: RenderPool;
}

export function turntableFrameCount(settings: Pick<TurntableSettings, 'fps' | 'seconds' | 'frames'>): number {
  return settings.frames > 0 ? settings.frames : Math.max(1, Math.round(settings.fps * settings.seconds));
}

/**
 * Renders the turntable of a cloud or a mesh and streams it into an MP4 at `outPath` (written atomically).
 * Returns the frame count.
 */
export async function renderTurntable(
  cloud: Renderable,
  outPath: string,
  options: TurntableOptions,
  signal?: AbortSignal,
): Promise<number> {
  const size = Math.max(2, options.size - (options.size % 2));
  const prepared = sceneOf(cloud, options.extent);
  const cameras = turntableCameras(
    {
      frames: turntableFrameCount(options),
      elevations: options.elevations,
      turns: options.turns,
      radius: options.radius,
      fov: options.fov,
    },
    size,
    size,
  );
  const frames = options.pool.frames(prepared, cameras, { background: parseBackground(options.background), channels: 3 }, signal);
  return encodeMp4(frames, outPath, { width: size, height: size, fps: options.fps, crf: options.crf, preset: options.preset }, signal);
}

/** The turntable as MP4 bytes (encoded to a temporary file first; the bytes exist only once it is complete). */
export async function turntableMp4(
  cloud: GaussianCloud | TriangleMesh,
  options: TurntableOptions,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), 'fast3d-video-'));
  try {
    const path = join(dir, 'turntable.mp4');
    await renderTurntable(cloud, path, options, signal);
    return new Uint8Array(await readFile(path));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
