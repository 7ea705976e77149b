/**
 * H.264 MP4 from raw RGB frames streamed into ffmpeg's stdin (nothing but the frames in flight is held in
 * memory). ffmpeg writes to a temporary file beside the target, which is renamed into place only after ffmpeg
 * exits cleanly, so a reader never sees half a video. The binary comes from @ffmpeg-installer/ffmpeg;
 * FFMPEG_PATH overrides it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { rename, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';

export interface VideoOptions {
  width: number;
  height: number;
  fps: number;
  /** x264 constant rate factor (0 best .. 51 worst). */
  crf: number;
  /** x264 speed preset (ultrafast .. veryslow). */
  preset: string;
}

export class VideoEncodeError extends Error {
  override name = 'VideoEncodeError';
}

export function ffmpegPath(): string {
  if (process.env.FFMPEG_PATH) return process.env.FFMPEG_PATH;
  const installer = createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string };
  return installer.path;
}

/** Running ffmpeg processes, killed when this process exits (being detached, they would outlive it). */
const encoders = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of encoders) child.kill('SIGKILL');
});

/** Encodes RGB24 frames (width * height * 3 bytes each) to `outPath`; returns the number of frames written. */
export async function encodeMp4(
  frames: AsyncIterable<Uint8Array>,
  outPath: string,
  options: VideoOptions,
  signal?: AbortSignal,
): Promise<number> {
  const { width, height, fps } = options;
  if (width % 2 || height % 2) throw new VideoEncodeError(`H.264 yuv420p needs even dimensions, got ${width}x${height}`);
  const tmp = join(dirname(outPath), `.${basename(outPath)}.${process.pid}.${Date.now()}.part`);
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    '-s',
    `${width}x${height}`,
    '-framerate',
    String(fps),
    '-i',
    'pipe:0',
    '-an',
    '-c:v',
    'libx264',
    '-preset',
    options.preset,
    '-crf',
    String(options.crf),
    '-pix_fmt',
    'yuv420p',
    '-movflags',
    '+faststart',
    '-f',
    'mp4',
    tmp,
  ];
  // Its own process group: a Ctrl-C (or a signal to the control group) is the service's to handle by draining;
  // reaching ffmpeg too, it would kill the video mid-encode. It still dies with its job or with the process.
  const child = spawn(ffmpegPath(), args, { stdio: ['pipe', 'ignore', 'pipe'], detached: true });
  encoders.add(child);
  child.once('exit', () => encoders.delete(child));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  exited.catch(() => {});
  child.stdin.on('error', () => {}); // EPIPE when ffmpeg dies early; reported through its exit code
  const onAbort = () => child.kill('SIGKILL');
  signal?.addEventListener('abort', onAbort, { once: true });
  const frameBytes = width * height * 3;
  let count = 0;
  try {
    for await (const frame of frames) {
      if (frame.length !== frameBytes) throw new VideoEncodeError(`frame ${count} has ${frame.length} bytes, expected ${frameBytes}`);
      if (child.exitCode !== null || child.stdin.destroyed) break;
      if (!child.stdin.write(frame)) await drained(child.stdin);
      count++;
    }
    child.stdin.end();
    let code: number | null;
    try {
      code = await exited;
    } catch (err) {
      throw new VideoEncodeError(`cannot run ffmpeg (${ffmpegPath()}): ${(err as Error).message}; set FFMPEG_PATH`);
    }
    if (signal?.aborted) throw new VideoEncodeError('video encoding aborted');
    if (code !== 0) throw new VideoEncodeError(`ffmpeg exited with code ${code}: ${stderr.trim() || 'no message'}`);
    if (count === 0) throw new VideoEncodeError('no frames to encode');
    await rename(tmp, outPath);
    return count;
  } catch (err) {
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(tmp, { force: true });
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** Resolves when the stream wants more data, or when it can take no more (ffmpeg exited; its code tells why). */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('error', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
    stream.on('close', done);
  });
}
