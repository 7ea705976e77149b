import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMp4, ffmpegPath, RenderPool, renderTurntable, VideoEncodeError } from '../src/render/index.js';
import { configSchema } from '../src/config/schema.js';
import { ballCloud } from './helpers/clouds.js';
import { summariseMp4 } from './helpers/mp4.js';

const run = promisify(execFile);

describe('turntable video', () => {
  let dir: string;
  const pool = new RenderPool(2);
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fast3d-video-test-'));
  });
  afterAll(async () => {
    await pool.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is an H.264 yuv420p MP4 with +faststart, the asked frame count and duration', async () => {
    const settings = { ...configSchema.parse({}).render, frames: 36, fps: 12 };
    const out = join(dir, 'ball.mp4');
    const frames = await renderTurntable(ballCloud(3000), out, { ...settings, size: 97, pool });
    expect(frames).toBe(36);
    const mp4 = new Uint8Array(await readFile(out));
    const info = summariseMp4(mp4);
    expect(info.topLevel.indexOf('moov')).toBeLessThan(info.topLevel.indexOf('mdat')); // +faststart
    expect(info.codec).toBe('avc1');
    expect(info.chromaFormat).toBe(1); // 4:2:0
    expect([info.width, info.height]).toEqual([96, 96]); // odd size rounded down to even
    expect(info.samples).toBe(36);
    expect(info.durationSeconds).toBeCloseTo(3, 2);
    // ffmpeg itself decodes every frame and reports the pixel format.
    const probe = await run(ffmpegPath(), ['-hide_banner', '-i', out, '-f', 'null', '-'], { encoding: 'utf8' });
    expect(probe.stderr).toMatch(/Video: h264 .*yuv420p/);
    expect(probe.stderr).toMatch(/frame=\s*36\b/);
    // Nothing but the video is left behind.
    expect(await readdir(dir)).toEqual(['ball.mp4']);
  });

  it('changes from frame to frame as the camera turns', async () => {
    const out = join(dir, 'frames.mp4');
    const settings = { ...configSchema.parse({}).render, frames: 4, fps: 4, crf: 0 };
    await renderTurntable(ballCloud(2000), out, { ...settings, size: 64, pool });
    const { stdout } = await run(
      ffmpegPath(),
      ['-hide_banner', '-loglevel', 'error', '-i', out, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
      { encoding: 'buffer', maxBuffer: 1 << 24 },
    );
    const frame = 64 * 64 * 3;
    expect(stdout.length).toBe(4 * frame);
    const diff = (a: number, b: number) => {
      let d = 0;
      for (let i = 0; i < frame; i++) d += Math.abs(stdout[a * frame + i] - stdout[b * frame + i]);
      return d / frame;
    };
    expect(diff(0, 1)).toBeGreaterThan(1);
  });

  it('fails cleanly, leaving no file, when ffmpeg fails', async () => {
    const out = join(dir, 'broken.mp4');
    const saved = process.env.FFMPEG_PATH;
    process.env.FFMPEG_PATH = '/bin/false';
    try {
      async function* frames() {
        for (let i = 0; i < 3; i++) yield new Uint8Array(32 * 32 * 3);
      }
      await expect(encodeMp4(frames(), out, { width: 32, height: 32, fps: 10, crf: 20, preset: 'veryfast' })).rejects.toThrow(
        VideoEncodeError,
      );
    } finally {
      if (saved === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = saved;
    }
    expect((await readdir(dir)).filter((f) => f.includes('broken'))).toEqual([]);
  });

  it('refuses odd dimensions and frames of the wrong size', async () => {
    async function* frames(bytes: number) {
      yield new Uint8Array(bytes);
    }
    await expect(
      encodeMp4(frames(33 * 32 * 3), join(dir, 'odd.mp4'), { width: 33, height: 32, fps: 10, crf: 20, preset: 'veryfast' }),
    ).rejects.toThrow(/even/);
    await expect(
      encodeMp4(frames(10), join(dir, 'short.mp4'), { width: 32, height: 32, fps: 10, crf: 20, preset: 'veryfast' }),
    ).rejects.toThrow(/bytes/);
    expect((await readdir(dir)).filter((f) => f.includes('odd') || f.includes('short'))).toEqual([]);
  });
});
