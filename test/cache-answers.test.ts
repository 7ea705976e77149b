/**
 * What the cache answers: a hit carries the same report headers as the miss that stored it, and an entry that
 * reads back intact but is not a usable file (an empty .ply whose name carries its CRC, an MP4 without its
 * index) is discarded and made again, never answered with a 500.
 */
import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { mp4Violation } from '../src/formats/containers.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { until } from './helpers/fake-stages.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

const dirs: string[] = [];
const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function serverOn(directory: string): Promise<TestServer> {
  const server = await startTestServer({
    cache: { enabled: true, directory, memory_mb: 0 },
    render: { frames: 4, fps: 4, video_res: 64 },
    image_to_3d: { inflate: { max_gaussians: 20000 } },
  });
  servers.push(server);
  return server;
}

/** Replaces every cached entry of this kind with `bytes`, under a name whose CRC matches them. */
function spoil(directory: string, extension: string, bytes: Uint8Array): number {
  let spoiled = 0;
  for (const name of readdirSync(directory)) {
    const m = new RegExp(`^([0-9a-f]{64})-[0-9a-f]{8}\\.${extension}$`).exec(name);
    if (!m) continue;
    const renamed = `${m[1]}-${crc32(bytes).toString(16).padStart(8, '0')}.${extension}`;
    renameSync(join(directory, name), join(directory, renamed));
    writeFileSync(join(directory, renamed), bytes);
    spoiled++;
  }
  return spoiled;
}

describe('cache answers', () => {
  it('a hit carries the seed, report and Gaussian count of the miss that stored it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-cache-answers-'));
    dirs.push(dir);
    const server = await serverOn(dir);
    const miss = await postForm(`${server.url}/generate/`, { prompt: 'a blue teapot', seed: '12' });
    expect(miss.headers.get('x-fast3d-cache')).toBe('miss');
    const hit = await postForm(`${server.url}/generate/`, { prompt: 'a blue teapot', seed: '12' });
    expect(hit.headers.get('x-fast3d-cache')).toBe('hit');
    for (const header of ['x-fast3d-seed', 'x-fast3d-report', 'x-fast3d-gaussians']) {
      expect(hit.headers.get(header), header).toBeTruthy();
      expect(hit.headers.get(header), header).toBe(miss.headers.get(header));
    }
    expect(Buffer.compare(Buffer.from(await hit.arrayBuffer()), Buffer.from(await miss.arrayBuffer()))).toBe(0);
  });

  it('an empty .ply whose name carries its CRC is discarded and made again, for /generate/ and /generate_video/', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-cache-answers-'));
    dirs.push(dir);
    const first = await serverOn(dir);
    expect((await postForm(`${first.url}/generate/`, { prompt: 'a green lamp', seed: '3' })).status).toBe(200);
    await first.close();
    servers.length = 0;
    expect(spoil(dir, 'ply', new Uint8Array(0))).toBe(1);

    const second = await serverOn(dir);
    // The video route would render from the cached PLY: it must not be a 500 either.
    const video = await postForm(`${second.url}/generate_video/`, { prompt: 'a green lamp', seed: '3', video_res: '64' });
    expect(video.status).toBe(200);
    expect(video.headers.get('x-fast3d-cache')).toBe('miss');
    expect(mp4Violation(new Uint8Array(await video.arrayBuffer()))).toBeNull();
    const ply = await postForm(`${second.url}/generate/`, { prompt: 'a green lamp', seed: '3' });
    expect(ply.status).toBe(200);
    expect(servablePlyViolation(new Uint8Array(await ply.arrayBuffer()))).toBeNull();
  });

  it('an MP4 without its moov box is refused and made again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-cache-answers-'));
    dirs.push(dir);
    const first = await serverOn(dir);
    const made = new Uint8Array(
      await (await postForm(`${first.url}/generate_video/`, { prompt: 'a red box', seed: '5', video_res: '64' })).arrayBuffer(),
    );
    expect(mp4Violation(made)).toBeNull();
    await first.close();
    servers.length = 0;
    // Only the ftyp box: what a broken encode that stopped early leaves.
    const ftypOnly = made.subarray(0, new DataView(made.buffer, made.byteOffset).getUint32(0));
    expect(mp4Violation(ftypOnly)).toMatch(/moov/);
    expect(spoil(dir, 'mp4', ftypOnly)).toBe(1);

    const second = await serverOn(dir);
    const again = await postForm(`${second.url}/generate_video/`, { prompt: 'a red box', seed: '5', video_res: '64' });
    expect(again.status).toBe(200);
    expect(again.headers.get('x-fast3d-cache')).toBe('asset-hit'); // the PLY was fine: only the video is made again
    expect(Buffer.compare(Buffer.from(await again.arrayBuffer()), Buffer.from(made))).toBe(0);
  });

  it('a video request caches its asset before rendering: a client that goes away mid-render loses no GPU work', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-cache-answers-'));
    dirs.push(dir);
    const server = await startTestServer({
      cache: { enabled: true, directory: dir, memory_mb: 0 },
      render: { frames: 48, fps: 24, video_res: 512 },
      image_to_3d: { inflate: { max_gaussians: 60000 } },
    });
    servers.push(server);
    const controller = new AbortController();
    const video = fetch(`${server.url}/generate_video/`, {
      method: 'POST',
      body: new URLSearchParams({ prompt: 'a slow vase', seed: '8' }),
      signal: controller.signal,
    })
      .then((r) => r.arrayBuffer())
      .catch((err: Error) => err);
    // The PLY and its report are stored while the video is still being rendered (the video line is busy).
    await until(() => readdirSync(dir).filter((f) => /\.(ply|json)$/.test(f)).length === 2 && server.service.videos.active === 1, 20_000);
    controller.abort();
    expect(await video).toBeInstanceOf(Error);
    const ply = await postForm(`${server.url}/generate/`, { prompt: 'a slow vase', seed: '8' });
    expect(ply.headers.get('x-fast3d-cache')).toBe('hit');
    expect(servablePlyViolation(new Uint8Array(await ply.arrayBuffer()))).toBeNull();
  });
});
