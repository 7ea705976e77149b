/**
 * `fast3d turntable FILE.ply --out OUT.mp4`: a turntable video of a splat file or a GLB mesh (H.264, yuv420p, +faststart),
 * frames streamed into ffmpeg as they are rendered. Camera path, fps and encoder settings come from the
 * config's `render:` section (--config FILE or FAST3D_CONFIG); the flags override size, frames and fps.
 */
import { stat } from 'node:fs/promises';
import { loadConfig } from '../config/load.js';
import { RenderPool, renderTurntable } from '../render/index.js';
import { assertAssetPath, loadAsset } from './asset.js';
import { assertExtension, integerFlag, parseCommandArgs, tenths } from './args.js';

export const summary = 'render a turntable MP4 of a PLY, SPZ or GLB (--size, --frames, --fps, --json)';

const USAGE = `usage: fast3d turntable FILE.ply|FILE.spz|FILE.glb --out OUT.mp4 [--size N] [--frames N] [--fps N] [--threads N] [--config FILE] [--json]
  --size    square side in pixels (odd values are rounded down to even); default render.video_res
  --frames  number of frames; default render.frames, or render.fps x render.seconds
  --json    print {"n","frames","size","load_ms","render_ms","ms_per_frame","bytes"} as one line
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'turntable',
    USAGE,
    argv,
    {
      out: { type: 'string', short: 'o' },
      size: { type: 'string' },
      frames: { type: 'string' },
      fps: { type: 'string' },
      threads: { type: 'string' },
      config: { type: 'string', short: 'c' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    ['out'],
  );
  if (typeof args === 'number') return args;
  const { values, target } = args;
  const out = values.out!;
  let settings;
  let size: number;
  try {
    assertExtension(out, 'out', ['.mp4']);
    assertAssetPath(target);
    const config = loadConfig({ path: values.config });
    settings = { ...config.render };
    size = values.size !== undefined ? integerFlag(values.size, 'size', 16, 4096) : settings.video_res;
    if (values.frames !== undefined) settings.frames = integerFlag(values.frames, 'frames', 1, 100_000);
    if (values.fps !== undefined) settings.fps = integerFlag(values.fps, 'fps', 1, 240);
    if (values.threads !== undefined) settings.threads = integerFlag(values.threads, 'threads', 0, 256);
  } catch (err) {
    process.stderr.write(`fast3d turntable: ${(err as Error).message}\n`);
    return 2;
  }

  const t0 = performance.now();
  const asset = await loadAsset(target, settings.extent);
  const t1 = performance.now();
  const pool = new RenderPool(settings.threads);
  let frames: number;
  try {
    frames = await renderTurntable(asset.scene, out, { ...settings, size, pool });
  } finally {
    await pool.close();
  }
  const t2 = performance.now();
  const bytes = (await stat(out)).size;
  const even = size - (size % 2);
  if (values.json) {
    const line = {
      n: asset.count,
      frames,
      size: even,
      load_ms: tenths(t1 - t0),
      render_ms: tenths(t2 - t1),
      ms_per_frame: tenths((t2 - t1) / frames),
      bytes,
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  } else {
    process.stdout.write(
      `${target}: ${frames} frames of ${even}x${even} at ${settings.fps} fps in ${tenths(t2 - t1)} ms -> ${out} (${bytes} bytes)\n`,
    );
  }
  return 0;
}
