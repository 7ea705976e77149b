/**
 * Ctrl-C as the user gives it: `npm run preview` started as a process group of its own (as a terminal does),
 * and SIGINT sent to the whole group, so npm, the shell, the service and ffmpeg all receive it. The service
 * must drain as it does on SIGTERM: answers in flight (a PLY and an MP4 being encoded) complete; a second
 * Ctrl-C stops at once and says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { servablePlyViolation } from '../src/splat/servable.js';
import { until } from './helpers/fake-stages.js';
import { onLogLines } from './helpers/log-lines.js';

const groups: ChildProcess[] = [];
afterEach(() => {
  for (const child of groups.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

interface Preview {
  url: string;
  pid: number;
  stderr: () => string;
  /** The service's JSON log entries so far. */
  logs: { msg?: string; [key: string]: unknown }[];
  /** Resolves when every process holding the group's output has exited. */
  closed: Promise<number | null>;
}

async function startPreview(): Promise<Preview> {
  const child = spawn('npm', ['run', 'preview'], { detached: true, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.push(child);
  let err = '';
  const logs: Preview['logs'] = [];
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const closed = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const found = await new Promise<{ port: number; pid: number }>((resolve, reject) => {
    onLogLines(child.stdout!, (entry) => {
      logs.push(entry);
      if (entry.msg === 'listening' && entry.port) resolve({ port: entry.port, pid: entry.pid! });
    });
    void closed.then(() => reject(new Error(`preview exited before listening: ${err}`)));
  });
  const url = `http://127.0.0.1:${found.port}`;
  await until(async () => (await fetch(`${url}/health`)).status === 200, 30_000);
  return { url, pid: found.pid, stderr: () => err, logs, closed };
}

/** Pids of running ffmpeg processes whose parent is `pid`. */
function ffmpegChildren(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid && stat.includes('(ffmpeg)')) found.push(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return found;
}

async function running(url: string): Promise<number> {
  return ((await (await fetch(`${url}/health`)).json()) as { queue: { running: number } }).queue.running;
}

/** Top-level MP4 boxes; a complete file is exactly a sequence of them, with ftyp, moov and mdat. */
function mp4Boxes(bytes: Buffer): string[] | null {
  const boxes: string[] = [];
  for (let at = 0; at < bytes.length; ) {
    const size = bytes.readUInt32BE(at);
    if (size < 8 || at + size > bytes.length) return null;
    boxes.push(bytes.toString('latin1', at + 4, at + 8));
    at += size;
  }
  return boxes;
}

// The preview config caches results: a prompt of its own per run keeps the work real.
const run = `${process.pid}-${Date.now()}`;
const post = (url: string, path: string, fields: Record<string, string>) =>
  fetch(`${url}${path}`, { method: 'POST', body: new URLSearchParams({ ...fields, prompt: `${fields.prompt} ${run}` }) });

describe('Ctrl-C on npm run preview (SIGINT to the whole process group)', () => {
  it('drains: a PLY and an MP4 being encoded both answer a complete 200, then the service stops by draining', async () => {
    const preview = await startPreview();
    const video = post(preview.url, '/generate_video/', { prompt: 'a red chair', video_res: '384' });
    await until(() => ffmpegChildren(preview.pid).length > 0, 60_000);
    const ply = post(preview.url, '/generate/', { prompt: 'a blue teapot' });
    await until(async () => (await running(preview.url)) >= 1, 30_000);
    process.kill(-groups[0].pid!, 'SIGINT');

    const plyAnswer = await ply;
    expect(plyAnswer.status).toBe(200);
    expect(servablePlyViolation(new Uint8Array(await plyAnswer.arrayBuffer()))).toBeNull();
    const videoAnswer = await video;
    expect(videoAnswer.status).toBe(200);
    const mp4 = Buffer.from(await videoAnswer.arrayBuffer());
    expect(mp4.length).toBe(Number(videoAnswer.headers.get('content-length')));
    expect(mp4Boxes(mp4)).toEqual(expect.arrayContaining(['ftyp', 'moov', 'mdat']));
    await preview.closed;
    expect(preview.stderr()).toMatch(/SIGINT received, finishing in-flight jobs/);
    // The service stopped by draining, not by being killed (npm's own exit status is npm's).
    expect(preview.logs.find((e) => e.msg === 'stopped')).toMatchObject({ drained: true, flushed: true });
  });

  it('stops at once on a second Ctrl-C, and says so', async () => {
    const preview = await startPreview();
    const video = post(preview.url, '/generate_video/', { prompt: 'a long green sofa', video_res: '1024' })
      .then((r) => r.arrayBuffer())
      .then(
        () => 'answered',
        () => 'cut',
      );
    await until(() => ffmpegChildren(preview.pid).length > 0, 60_000);
    process.kill(-groups[0].pid!, 'SIGINT');
    await until(() => /finishing in-flight jobs/.test(preview.stderr()), 10_000);
    // Signals within 1 s of the first are the same Ctrl-C (npm forwards it); this one is a second.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const secondAt = performance.now();
    process.kill(-groups[0].pid!, 'SIGINT');
    await preview.closed;
    expect(performance.now() - secondAt).toBeLessThan(3000);
    expect(preview.stderr()).toMatch(/second SIGINT: stopping now/);
    expect(preview.logs.find((e) => e.msg === 'stopped')).toBeUndefined();
    expect(await video).toBe('cut');
  });
});
