import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { parseConfig } from '../src/config/load.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { ffmpegPath } from '../src/render/index.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeStages, until } from './helpers/fake-stages.js';
import { summariseMp4 } from './helpers/mp4.js';
import { postForm, startTestServer } from './helpers/server.js';

async function listen(config: Record<string, unknown>): Promise<{ server: ServerType; url: string; close(): Promise<void> }> {
  const { app, service } = compose(parseConfig({ cache: { enabled: false }, ...config }));
  await service.start();
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await service.close();
    },
  };
}

const form = (fields: Record<string, string>) => ({
  method: 'POST',
  headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams(fields).toString(),
});

describe('POST /generate_video/ over HTTP (preview backends)', () => {
  let svc: Awaited<ReturnType<typeof listen>>;
  beforeAll(async () => {
    svc = await listen({
      render: { frames: 6, fps: 6, video_res: 96 },
      image_to_3d: { inflate: { max_gaussians: 20000 } },
      log: { level: 'silent' },
    });
  });
  afterAll(async () => {
    await svc?.close();
  });

  it('answers 200 video/mp4 at the asked video_res (odd rounded to even)', async () => {
    const res = await fetch(`${svc.url}/generate_video/`, form({ prompt: 'a red wooden chair', video_res: '129' }));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('video/mp4');
    const mp4 = new Uint8Array(await res.arrayBuffer());
    expect(Number(res.headers.get('content-length'))).toBe(mp4.length);
    const info = summariseMp4(mp4);
    expect([info.codec, info.width, info.height, info.samples, info.chromaFormat]).toEqual(['avc1', 128, 128, 6, 1]);
    expect(info.durationSeconds).toBeCloseTo(1, 2);
  });

  it('uses render.video_res without video_res, and serves /generate_video without the slash', async () => {
    const res = await fetch(`${svc.url}/generate_video`, form({ prompt: 'a blue teapot' }));
    expect(res.status).toBe(200);
    const info = summariseMp4(new Uint8Array(await res.arrayBuffer()));
    expect([info.width, info.height]).toEqual([96, 96]);
  });

  it('rejects a bad video_res with 400 JSON before generating', async () => {
    for (const video_res of ['5000', '63', 'big', '12.5']) {
      const res = await fetch(`${svc.url}/generate_video/`, form({ prompt: 'a chair', video_res }));
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/video_res must be an integer from 64 to 2048/);
    }
  });

  it('answers 500 JSON, never 200, when the encoder fails', async () => {
    const saved = process.env.FFMPEG_PATH;
    process.env.FFMPEG_PATH = '/bin/false';
    try {
      const res = await fetch(`${svc.url}/generate_video/`, form({ prompt: 'a green lamp', video_res: '64' }));
      expect(res.status).toBe(500);
      expect(((await res.json()) as { error: string }).error).toMatch(/ffmpeg/);
    } finally {
      if (saved === undefined) delete process.env.FFMPEG_PATH;
      else process.env.FFMPEG_PATH = saved;
    }
  });

  it('keeps the prompt rules of /generate/', async () => {
    const empty = await fetch(`${svc.url}/generate_video/`, form({ prompt: '   ' }));
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as { error: string }).error).toMatch(/prompt/);
    const json = await fetch(`${svc.url}/generate_video/`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(json.status).toBe(415);
  });
});

describe('POST /generate_video/ when self-validation declines', () => {
  it('answers 204 with no body', async () => {
    const svc = await listen({
      validate: { gates: { min_gaussians: 10_000_000 } },
      pipeline: { retries: 0 },
      image_to_3d: { inflate: { max_gaussians: 20000 } },
      log: { level: 'silent' },
    });
    try {
      const res = await fetch(`${svc.url}/generate_video/`, form({ prompt: 'a chair', video_res: '64' }));
      expect(res.status).toBe(204);
      expect((await res.arrayBuffer()).byteLength).toBe(0);
    } finally {
      await svc.close();
    }
  });
});

describe('POST /generate_video/ with the result cache', () => {
  it('caches the MP4 per video_res, and renders a video from a cached asset without GPU work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-video-cache-'));
    const fake = fakeStages();
    const server = await startTestServer(
      { cache: { enabled: true, directory: dir }, render: { frames: 4, fps: 4, video_res: 64 } },
      fake.stages,
    );
    try {
      const ply = await postForm(`${server.url}/generate/`, { prompt: 'a lamp' });
      expect(ply.status).toBe(200);
      expect(fake.calls.imageTo3d).toBe(1);

      const first = await postForm(`${server.url}/generate_video/`, { prompt: 'a lamp', video_res: '80' });
      expect(first.status).toBe(200);
      expect(first.headers.get('x-fast3d-cache')).toBe('asset-hit');
      expect(fake.calls.imageTo3d).toBe(1);
      const bytes = new Uint8Array(await first.arrayBuffer());
      expect(summariseMp4(bytes)).toMatchObject({ width: 80, height: 80 });

      const again = await postForm(`${server.url}/generate_video/`, { prompt: 'a lamp', video_res: '80' });
      expect(again.headers.get('x-fast3d-cache')).toBe('hit');
      expect(Buffer.from(await again.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);

      const other = await postForm(`${server.url}/generate_video/`, { prompt: 'a lamp', video_res: '64' });
      expect(other.headers.get('x-fast3d-cache')).toBe('asset-hit');
      expect(fake.calls.imageTo3d).toBe(1);
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('POST /generate_video/ for the newer contract', () => {
  it("renders the turntable upright even though the PLY goes out in the judges' Y-down frame", async () => {
    // Red on top, blue below: the first frame (the front view) must show red above blue.
    const sharp = (await import('sharp')).default;
    const size = 160;
    const raw = Buffer.alloc(size * size * 3, 255);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        if ((x - 80) ** 2 + (y - 80) ** 2 <= 60 ** 2) raw.set(y < 80 ? [220, 20, 20] : [20, 20, 220], (y * size + x) * 3);
      }
    }
    const png = await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
      .png()
      .toBuffer();
    const server = await startTestServer({ render: { frames: 2, fps: 2, video_res: 64 } });
    try {
      const form = new FormData();
      form.set('prompt_image_file', new Blob([png], { type: 'image/png' }), 'p.png');
      const response = await fetch(`${server.url}/generate_video`, { method: 'POST', body: form });
      expect(response.status).toBe(200);
      const dir = mkdtempSync(join(tmpdir(), 'fast3d-video-frame-'));
      const file = join(dir, 'v.mp4');
      writeFileSync(file, Buffer.from(await response.arrayBuffer()));
      const frame = execFileSync(
        ffmpegPath(),
        ['-loglevel', 'error', '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'],
        { maxBuffer: 1 << 22 },
      );
      rmSync(dir, { recursive: true, force: true });
      const redMinusBlue = (y0: number, y1: number) => {
        let sum = 0;
        for (let y = y0; y < y1; y++) for (let x = 0; x < 64; x++) sum += frame[(y * 64 + x) * 3] - frame[(y * 64 + x) * 3 + 2];
        return sum;
      };
      expect(redMinusBlue(0, 32)).toBeGreaterThan(0);
      expect(redMinusBlue(32, 64)).toBeLessThan(0);
    } finally {
      await server.close();
    }
  });
});

describe('POST /generate_video/ admission', () => {
  it('bounds concurrent videos: past the queue, a video request gets 503 with Retry-After', async () => {
    const fake = fakeStages();
    const server = await startTestServer(
      { runtime: { video_concurrency: 1, video_queue_length: 0 }, render: { frames: 48, fps: 24, video_res: 256 } },
      fake.stages,
    );
    try {
      const first = postForm(`${server.url}/generate_video/`, { prompt: 'one' });
      // Wait until the first video holds the only place.
      await until(() => server.service.videos.active === 1, 20_000);
      const second = await postForm(`${server.url}/generate_video/`, { prompt: 'two' });
      expect(second.status).toBe(503);
      expect(second.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(((await second.json()) as { error: string }).error).toMatch(/busy: the video queue is full/);
      expect(fake.calls.imageTo3d).toBe(1); // refused before any generation
      expect((await first).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
