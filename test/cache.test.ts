import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import type { Task } from '../src/pipelines/job.js';
import { configSettings } from '../src/compose.js';
import { renderFingerprint, settingsFingerprint } from '../src/pipelines/settings.js';
import { ResultCache } from '../src/runtime/cache.js';
import { Metrics } from '../src/runtime/metrics.js';
import { HOPELESS, fakeStages, postPrompt, serveApp, sleep, testConfig, until, type Served } from './helpers/fake-stages.js';

const dirs: string[] = [];
const servers: Served[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-cache-test-'));
  dirs.push(dir);
  return dir;
}

const text = (prompt: string): Task => ({ kind: 'text', prompt });
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const entryFiles = (dir: string) => readdirSync(dir).filter((f) => f !== '.tmp');

describe('ResultCache', () => {
  // Disk only (memoryBytes 0) unless a test says otherwise, so reads exercise the files.
  const open = (directory: string, maxBytes = 1 << 20, metrics?: Metrics, memoryBytes = 0) =>
    new ResultCache({ directory, maxBytes, declineTtlMs: 1000, fingerprint: 'f1', metrics, memoryBytes });

  it('misses, then hits with the same bytes; keys separate content, seed, config and artefact kind', async () => {
    const cache = open(tempDir());
    const key = cache.requestKey(text('a red chair'), 7);
    expect(await cache.get(key, { kind: 'ply' })).toBeNull();
    await cache.put(key, { kind: 'ply' }, bytes(1000, 1));
    expect(await cache.get(key, { kind: 'ply' })).toEqual(bytes(1000, 1));
    // The trimmed prompt is the content; an image task is keyed by its bytes' digest.
    expect(cache.requestKey(text('  a red chair \n'), 7)).toBe(key);
    expect(cache.requestKey(text('a red chair'), 8)).not.toBe(key);
    expect(cache.requestKey(text('a blue chair'), 7)).not.toBe(key);
    const image = (digest: string): Task => ({ kind: 'image', image: { width: 1, height: 1, data: new Uint8ClampedArray(4) }, digest });
    expect(cache.requestKey(image('ab'), 7)).not.toBe(cache.requestKey(image('cd'), 7));
    const other = new ResultCache({ directory: tempDir(), maxBytes: 1 << 20, declineTtlMs: 0, fingerprint: 'f2' });
    expect(other.requestKey(text('a red chair'), 7)).not.toBe(key);
    // Another artefact of the same request is a separate entry.
    expect(await cache.get(key, { kind: 'mp4', variant: '512:s' })).toBeNull();
    await cache.put(key, { kind: 'mp4', variant: '512:s' }, bytes(500, 2));
    expect(await cache.get(key, { kind: 'mp4', variant: '256:s' })).toBeNull();
    expect(await cache.get(key, { kind: 'mp4', variant: '512:s' })).toEqual(bytes(500, 2));
    expect(await cache.get(key, { kind: 'ply' })).toEqual(bytes(1000, 1));
  });

  it('fingerprints only output-changing config, whatever the key order', () => {
    const configFingerprint = (config: ReturnType<typeof testConfig>) => settingsFingerprint(configSettings(config));
    const videoFingerprint = (config: ReturnType<typeof testConfig>) => renderFingerprint(configSettings(config));
    const base = testConfig();
    expect(configFingerprint(testConfig({ server: { port: 1234 }, runtime: { queue_length: 1 } }))).toBe(configFingerprint(base));
    expect(configFingerprint(testConfig({ pipeline: { retries: 2 } }))).not.toBe(configFingerprint(base));
    expect(configFingerprint(testConfig({ image_to_3d: { inflate: { opacity: 0.5 } } }))).not.toBe(configFingerprint(base));
    // Video settings key the MP4s only; the render thread count keys nothing.
    expect(configFingerprint(testConfig({ render: { crf: 30, threads: 1 } }))).toBe(configFingerprint(base));
    expect(videoFingerprint(testConfig({ render: { crf: 30 } }))).not.toBe(videoFingerprint(base));
    expect(videoFingerprint(testConfig({ render: { threads: 1 } }))).toBe(videoFingerprint(base));
  });

  it('survives a restart: a new instance on the same directory finds the entries', async () => {
    const dir = tempDir();
    const first = open(dir);
    const key = first.requestKey(text('a lamp'), 1);
    await first.put(key, { kind: 'ply' }, bytes(2000, 3));
    writeFileSync(join(dir, '.tmp', 'half-written'), 'x');
    const second = open(dir);
    expect(second.size()).toMatchObject({ entries: 1, bytes: 2000 });
    expect(await second.get(key, { kind: 'ply' })).toEqual(bytes(2000, 3));
    expect(readdirSync(join(dir, '.tmp'))).toEqual([]);
  });

  it('drops a corrupt entry (checksum mismatch) and counts it', async () => {
    const dir = tempDir();
    const metrics = new Metrics({ defaultMetrics: false });
    const cache = open(dir, 1 << 20, metrics);
    const key = cache.requestKey(text('a vase'), 1);
    await cache.put(key, { kind: 'ply' }, bytes(3000, 4));
    const [file] = entryFiles(dir);
    const damaged = readFileSync(join(dir, file));
    damaged[1234] ^= 0xff;
    writeFileSync(join(dir, file), damaged);
    expect(await cache.get(key, { kind: 'ply' })).toBeNull();
    await until(() => entryFiles(dir).length === 0);
    expect(cache.size().entries).toBe(0);
    expect(await metrics.text()).toMatch(/^fast3d_cache_corrupt_total 1$/m);
    // A truncated file is corrupt too, also after a restart.
    await cache.put(key, { kind: 'ply' }, bytes(3000, 4));
    const [again] = entryFiles(dir);
    writeFileSync(join(dir, again), bytes(100, 4));
    expect(await open(dir).get(key, { kind: 'ply' })).toBeNull();
  });

  it('evicts the least recently used entries beyond the size bound', async () => {
    const dir = tempDir();
    const cache = open(dir, 2500);
    const keys = ['a', 'b', 'c'].map((p) => cache.requestKey(text(p), 1));
    await cache.put(keys[0], { kind: 'ply' }, bytes(1000, 1));
    await cache.put(keys[1], { kind: 'ply' }, bytes(1000, 2));
    // Using "a" makes "b" the least recently used.
    expect(await cache.get(keys[0], { kind: 'ply' })).not.toBeNull();
    await cache.put(keys[2], { kind: 'ply' }, bytes(1000, 3));
    expect(cache.size()).toMatchObject({ entries: 2, bytes: 2000 });
    expect(await cache.get(keys[1], { kind: 'ply' })).toBeNull();
    expect(await cache.get(keys[0], { kind: 'ply' })).not.toBeNull();
    expect(await cache.get(keys[2], { kind: 'ply' })).not.toBeNull();
    await until(() => entryFiles(dir).length === 2);
    // The bound also holds for what a restart finds.
    expect(open(dir, 1500).size().entries).toBe(1);
  });

  it('holds recently used artefacts in memory within its own bound', async () => {
    const dir = tempDir();
    const cache = open(dir, 1 << 20, undefined, 2500);
    const keys = ['a', 'b', 'c'].map((p) => cache.requestKey(text(p), 1));
    for (const [i, key] of keys.entries()) await cache.put(key, { kind: 'ply' }, bytes(1000, i + 1));
    expect(cache.size().memoryBytes).toBe(2000);
    // A held artefact is served from memory: removing its file does not change the answer.
    for (const file of entryFiles(dir)) rmSync(join(dir, file));
    expect(await cache.get(keys[2], { kind: 'ply' })).toEqual(bytes(1000, 3));
    // The oldest one was not held, so it is read from disk, which is gone: a miss that drops the entry.
    expect(await cache.get(keys[0], { kind: 'ply' })).toBeNull();
    expect(cache.size().entries).toBe(2);
  });

  it('remembers declines for the TTL only', () => {
    let now = 1000;
    const cache = new ResultCache({ directory: tempDir(), maxBytes: 1 << 20, declineTtlMs: 500, fingerprint: 'f', now: () => now });
    const key = cache.requestKey(text('nothing'), 1);
    expect(cache.declined(key)).toBeNull();
    cache.rememberDecline(key, 'no object found in the image');
    now += 499;
    expect(cache.declined(key)).toBe('no object found in the image');
    now += 2;
    expect(cache.declined(key)).toBeNull();
  });
});

describe('result cache over HTTP', () => {
  async function start(cache: Record<string, unknown>) {
    const fake = fakeStages({ imageTo3dMs: 20 });
    const composed = compose(testConfig({ cache: { directory: tempDir(), ...cache }, pipeline: { retries: 1 } }), { stages: fake.stages });
    const served = await serveApp(composed.app);
    servers.push(served);
    return { ...composed, ...fake, url: served.url };
  }

  it('answers a repeated request from the cache without GPU work, with the same bytes', async () => {
    const s = await start({ enabled: true });
    const first = await postPrompt(s.url, 'a wooden chair');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-fast3d-cache')).toBe('miss');
    const body = new Uint8Array(await first.arrayBuffer());
    const second = await postPrompt(s.url, '  a wooden chair ');
    expect(second.status).toBe(200);
    expect(second.headers.get('x-fast3d-cache')).toBe('hit');
    expect(second.headers.get('content-type')).toBe('application/octet-stream');
    expect(second.headers.get('x-fast3d-gaussians')).toBe(first.headers.get('x-fast3d-gaussians'));
    expect(new Uint8Array(await second.arrayBuffer())).toEqual(body);
    expect(s.calls.imageTo3d).toBe(1);
    // Another seed is another request.
    expect((await postPrompt(s.url, 'a wooden chair', { seed: 5 })).headers.get('x-fast3d-cache')).toBe('miss');
    expect(s.calls.imageTo3d).toBe(2);
  });

  it('regenerates every time when disabled', async () => {
    const s = await start({ enabled: false });
    await postPrompt(s.url, 'a wooden chair');
    const again = await postPrompt(s.url, 'a wooden chair');
    expect(again.status).toBe(200);
    expect(again.headers.get('x-fast3d-cache')).toBe('miss');
    expect(s.calls.imageTo3d).toBe(2);
  });

  it('answers a recently declined request 204 again without GPU work until the TTL passes', async () => {
    const s = await start({ enabled: true, decline_ttl_s: 0.4 });
    const first = await postPrompt(s.url, `a ${HOPELESS} request`);
    expect(first.status).toBe(204);
    expect(s.calls.textToImage).toBe(2);
    const second = await postPrompt(s.url, `a ${HOPELESS} request`);
    expect(second.status).toBe(204);
    expect(second.headers.get('x-fast3d-cache')).toBe('decline-hit');
    expect(second.headers.get('x-fast3d-decline-reason')).toMatch(/no object/);
    expect(s.calls.textToImage).toBe(2);
    await sleep(450);
    const third = await postPrompt(s.url, `a ${HOPELESS} request`);
    expect(third.status).toBe(204);
    expect(third.headers.get('x-fast3d-cache')).toBe('miss');
    expect(s.calls.textToImage).toBe(4);
  });
});
