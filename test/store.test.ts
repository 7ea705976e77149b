/**
 * The artefact store: one suite of behaviour run on both backends (a directory and an S3-protocol server started
 * here), then what only one backend has: two processes writing one key of a shared directory, dead writers' temp
 * files, a directory or a bucket that refuses writes, and the config that opens them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { DiskStore, HEADER_BYTES } from '../src/store/disk.js';
import { openStore, StoreConfigError } from '../src/store/index.js';
import { S3Store } from '../src/store/s3.js';
import { type ArtefactStore, StoreError, type StoreEvent, StoreKeyError, StoreWriteError } from '../src/store/store.js';
import { S3RVER_CREDENTIALS, startS3Server, type S3TestServer } from './helpers/s3-server.js';

const BUCKET = 'fast3d-test';
const MIB = 1024 * 1024;

/** How a test damages a stored object behind the store's back. */
type Damage = 'flip' | 'truncate' | 'foreign';

interface Backend {
  /** A store on this test's location (every call: the same objects, as two nodes see them). */
  open(options?: { maxObjectBytes?: number; observe?: (event: StoreEvent) => void }): Promise<ArtefactStore>;
  damage(key: string, how: Damage): Promise<void>;
  /** Whether the underlying file or object is there, seen without the store. */
  present(key: string): Promise<boolean>;
}

let s3: S3TestServer;
beforeAll(async () => {
  s3 = await startS3Server([BUCKET]);
});
afterAll(async () => {
  await s3?.stop();
});

const opened: ArtefactStore[] = [];
const folders: string[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function tempFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'fast3d-store-'));
  folders.push(folder);
  return folder;
}

function diskBackend(): Backend {
  const directory = tempFolder();
  const file = (key: string) => join(directory, `${key}.blob`);
  return {
    async open(options = {}) {
      const store = await DiskStore.open({
        directory,
        maxObjectBytes: options.maxObjectBytes ?? 16 * MIB,
        tempMaxAgeMs: 3_600_000,
        observe: options.observe,
      });
      opened.push(store);
      return store;
    },
    async damage(key, how) {
      const bytes = readFileSync(file(key));
      if (how === 'flip') {
        bytes[bytes.length - 1] ^= 0xff;
        writeFileSync(file(key), bytes);
      } else if (how === 'truncate') {
        truncateSync(file(key), bytes.length - 7);
      } else {
        writeFileSync(file(key), bytes.subarray(HEADER_BYTES));
      }
    },
    async present(key) {
      return existsSync(file(key));
    },
  };
}

function s3Backend(): Backend {
  const prefix = `t${Math.random().toString(36).slice(2, 10)}/`;
  const objectKey = (key: string) => prefix + key;
  return {
    async open(options = {}) {
      const store = new S3Store({
        endpoint: s3.endpoint,
        bucket: BUCKET,
        region: 'us-east-1',
        prefix,
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
        maxObjectBytes: options.maxObjectBytes ?? 16 * MIB,
        timeoutMs: 20_000,
        observe: options.observe,
      });
      opened.push(store);
      return store;
    },
    async damage(key, how) {
      const got = await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: objectKey(key) }));
      const bytes = await got.Body!.transformToByteArray();
      let body = bytes;
      let metadata = got.Metadata;
      if (how === 'flip') {
        body = bytes.slice();
        body[body.length - 1] ^= 0xff;
      } else if (how === 'truncate') {
        body = bytes.subarray(0, bytes.length - 7);
      } else {
        metadata = {};
      }
      await s3.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: objectKey(key), Body: body, Metadata: metadata }));
    },
    async present(key) {
      try {
        await s3.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: objectKey(key) }));
        return true;
      } catch {
        return false;
      }
    },
  };
}

function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed * 7) & 0xff;
  return bytes;
}

async function keysOf(store: ArtefactStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) keys.push(object.key);
  return keys.sort();
}

describe.each([
  ['disk', diskBackend],
  ['s3', s3Backend],
])('artefact store: %s', (_name, make) => {
  let backend: Backend;
  beforeEach(() => {
    backend = make();
  });

  it('gives back what was put, to a second store on the same location, and null for a missing key', async () => {
    const writer = await backend.open();
    const reader = await backend.open();
    const bytes = pattern(300_000, 1);
    await writer.put('results/abc/ply', bytes);
    expect(await reader.get('results/abc/ply')).toEqual(bytes);
    expect(await reader.get('results/abc/glb')).toBeNull();
    expect(await reader.has('results/abc/ply')).toBe(true);
    expect(await reader.has('results/none')).toBe(false);
    const stat = await reader.stat('results/abc/ply');
    expect(stat?.size).toBe(300_000);
    expect(stat?.modified).toBeInstanceOf(Date);
    expect(await reader.stat('results/none')).toBeNull();
  });

  it('replaces an object on a second put, keeps an empty object, and deletes (twice is fine)', async () => {
    const store = await backend.open();
    await store.put('k', pattern(1000, 1));
    await store.put('k', pattern(10, 2));
    expect(await store.get('k')).toEqual(pattern(10, 2));
    await store.put('empty', new Uint8Array(0));
    expect(await store.get('empty')).toEqual(new Uint8Array(0));
    await store.delete('k');
    await store.delete('k');
    expect(await store.get('k')).toBeNull();
    expect(await backend.present('k')).toBe(false);
  });

  it('lists by key prefix, and a key may be both an object and the start of others', async () => {
    const store = await backend.open();
    for (const key of ['jobs/a', 'jobs/a/ply', 'jobs/a/mp4.512', 'jobs/b/ply', 'inputs/x']) await store.put(key, pattern(5, 1));
    expect(await keysOf(store, 'jobs/a')).toEqual(['jobs/a', 'jobs/a/mp4.512', 'jobs/a/ply']);
    expect(await keysOf(store, 'jobs/a/')).toEqual(['jobs/a/mp4.512', 'jobs/a/ply']);
    expect(await keysOf(store, 'jobs/')).toEqual(['jobs/a', 'jobs/a/mp4.512', 'jobs/a/ply', 'jobs/b/ply']);
    expect(await keysOf(store, '')).toHaveLength(5);
    expect(await keysOf(store, 'none/')).toEqual([]);
    for await (const object of store.list('inputs/')) expect(object.size).toBe(5);
  });

  it('refuses keys outside the key rules before touching anything', async () => {
    const store = await backend.open();
    for (const key of ['', '../x', 'a/../b', '/a', 'a//b', 'a/', '.hidden', 'a/.b', 'x.blob', 'a b', 'a\\b', 'x'.repeat(513)]) {
      await expect(store.put(key, pattern(1, 1)), key).rejects.toThrow(StoreKeyError);
      await expect(store.get(key), key).rejects.toThrow(StoreKeyError);
    }
    for (const prefix of ['../', 'a/../', '/', '.', 'a//'])
      await expect(store.list(prefix)[Symbol.asyncIterator]().next(), prefix).rejects.toThrow(StoreKeyError);
  });

  for (const how of ['flip', 'truncate', 'foreign'] as const) {
    it(`reads a damaged object (${how}) as missing, deletes it and says so`, async () => {
      const events: StoreEvent[] = [];
      const store = await backend.open({ observe: (event) => events.push(event) });
      await store.put('results/r/ply', pattern(50_000, 3));
      await backend.damage('results/r/ply', how);
      expect(await store.get('results/r/ply')).toBeNull();
      expect(events.at(-1)).toMatchObject({ op: 'get', outcome: 'corrupt', key: 'results/r/ply' });
      expect(await backend.present('results/r/ply')).toBe(false);
      // Made again, it reads back.
      await store.put('results/r/ply', pattern(50_000, 3));
      expect(await store.get('results/r/ply')).toEqual(pattern(50_000, 3));
    });
  }

  it('refuses to write an object over its limit, and reads a larger one as missing without deleting it', async () => {
    const big = await backend.open({ maxObjectBytes: 4096 });
    const small = await backend.open({ maxObjectBytes: 1024 });
    const events: StoreEvent[] = [];
    const observed = await backend.open({ maxObjectBytes: 1024, observe: (event) => events.push(event) });
    await big.put('large', pattern(2048, 1));
    const refusal = await small.put('large2', pattern(2048, 1)).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(StoreWriteError);
    expect((refusal as StoreWriteError).reason).toBe('too-large');
    expect((refusal as Error).message).toContain(small.description);
    expect(await observed.get('large')).toBeNull();
    expect(events.at(-1)).toMatchObject({ outcome: 'oversize' });
    expect(await backend.present('large')).toBe(true);
    expect(await big.get('large')).toEqual(pattern(2048, 1));
  });

  it('passes its start-up probe and leaves nothing behind', async () => {
    const store = await backend.open();
    await store.probe();
    expect(await keysOf(store, '')).toEqual([]);
  });
});

describe('disk store', () => {
  it('two processes writing one key never let a reader open a torn object', async () => {
    const directory = tempFolder();
    const corrupt: StoreEvent[] = [];
    const reader = await DiskStore.open({
      directory,
      maxObjectBytes: 64 * MIB,
      tempMaxAgeMs: 3_600_000,
      observe: (e) => e.outcome === 'corrupt' && corrupt.push(e),
    });
    opened.push(reader);
    const sizes = { 0xaa: 3 * MIB, 0xbb: 1 * MIB + 17 };
    const writers = Object.entries(sizes).map(([fill, size]) =>
      spawn(process.execPath, ['--import', 'tsx', 'test/helpers/store-writer.ts', directory, 'shared/key', fill, String(size), '40'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      }),
    );
    const finished = writers.map((child) => new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code))));
    let running = true;
    void Promise.all(finished).then(() => (running = false));
    let reads = 0;
    const seen = new Set<number>();
    while (running) {
      const bytes = await reader.get('shared/key');
      if (!bytes) continue;
      reads++;
      const fill = bytes[0];
      expect(bytes.length).toBe(sizes[fill as 0xaa | 0xbb]);
      expect(bytes.every((b) => b === fill)).toBe(true);
      seen.add(fill);
    }
    expect(await Promise.all(finished)).toEqual([0, 0]);
    expect(reads).toBeGreaterThan(0);
    // Not even a torn file caught by its CRC: every file the reader opened was whole.
    expect(corrupt).toEqual([]);
    const last = await reader.get('shared/key');
    expect(last?.every((b) => b === last[0]) && last.length === sizes[last[0] as 0xaa | 0xbb]).toBe(true);
    // Nothing but the one object is left: no temp file of either writer.
    expect(execFileSync('find', [directory, '-type', 'f'], { encoding: 'utf8' }).trim().split('\n')).toEqual([
      join(directory, 'shared/key.blob'),
    ]);
  });

  it('sweeps temp files of dead writers (only old ones), and never reads or lists them', async () => {
    const directory = tempFolder();
    const store = await DiskStore.open({ directory, maxObjectBytes: MIB, tempMaxAgeMs: 60_000 });
    opened.push(store);
    await store.put('jobs/j1/ply', pattern(100, 1));
    const stale = join(directory, 'jobs/j1/.ply.blob.999-0a0b0c.tmp');
    const fresh = join(directory, 'jobs/j1/.glb.blob.998-0a0b0c.tmp');
    writeFileSync(stale, pattern(50, 2));
    writeFileSync(fresh, pattern(50, 3));
    const old = new Date(Date.now() - 120_000);
    utimesSync(stale, old, old);
    expect(await keysOf(store, '')).toEqual(['jobs/j1/ply']);
    expect(await store.get('jobs/j1/glb')).toBeNull();
    expect(await store.sweep()).toBe(1);
    expect(existsSync(stale)).toBe(false);
    expect(existsSync(fresh)).toBe(true);
    expect(await store.get('jobs/j1/ply')).toEqual(pattern(100, 1));
  });

  it('a stale temp file is swept when a store opens on the directory', async () => {
    const directory = tempFolder();
    const stale = join(directory, '.k.blob.1-000000.tmp');
    writeFileSync(stale, pattern(10, 1));
    const old = new Date(Date.now() - 7_200_000);
    utimesSync(stale, old, old);
    opened.push(await DiskStore.open({ directory, maxObjectBytes: MIB, tempMaxAgeMs: 3_600_000 }));
    await expect.poll(() => existsSync(stale)).toBe(false);
  });

  it('a read-only directory refuses writes with an error naming the store and why', async () => {
    const directory = tempFolder();
    const store = await DiskStore.open({ directory, maxObjectBytes: MIB, tempMaxAgeMs: 3_600_000 });
    opened.push(store);
    const undo = makeReadOnly(directory);
    try {
      const refusal = await store.put('jobs/j/ply', pattern(10, 1)).catch((err: unknown) => err);
      expect(refusal).toBeInstanceOf(StoreWriteError);
      const error = refusal as StoreWriteError;
      expect(['read-only', 'permission']).toContain(error.reason);
      expect(error.message).toContain(`disk store at ${directory}`);
      expect(error.message).toContain('"jobs/j/ply"');
      expect(error.message).toMatch(/read-only|permission denied|not permitted/);
      await expect(store.probe()).rejects.toThrow(StoreWriteError);
    } finally {
      undo();
    }
    // Writable again: the same store works, and the refused write left nothing behind.
    await store.put('jobs/j/ply', pattern(10, 1));
    expect(execFileSync('find', [directory, '-type', 'f'], { encoding: 'utf8' }).trim()).toBe(join(directory, 'jobs/j/ply.blob'));
  });

  it('a directory that is a file is refused at opening, naming it', async () => {
    const file = join(tempFolder(), 'not-a-folder');
    writeFileSync(file, 'x');
    await expect(DiskStore.open({ directory: file, maxObjectBytes: MIB, tempMaxAgeMs: 1000 })).rejects.toThrow(
      `disk store at ${file} could not write its objects: cannot use ${file} as its directory`,
    );
  });
});

/**
 * Makes a directory refuse writes: its mode, or for root (whom modes do not stop) the immutable attribute.
 * Fails the test if neither works here, rather than testing nothing.
 */
function makeReadOnly(directory: string): () => void {
  chmodSync(directory, 0o555);
  let immutable = false;
  if (process.getuid?.() === 0) {
    execFileSync('chattr', ['+i', directory]);
    immutable = true;
  }
  const undo = () => {
    if (immutable) execFileSync('chattr', ['-i', directory]);
    chmodSync(directory, 0o755);
  };
  try {
    writeFileSync(join(directory, 'probe'), 'x');
  } catch {
    return undo;
  }
  undo();
  throw new Error(`cannot make ${directory} read-only here`);
}

describe('s3 store', () => {
  it('a missing bucket refuses writes with an error naming the store, the bucket and why', async () => {
    const store = new S3Store({
      endpoint: s3.endpoint,
      bucket: 'no-such-bucket',
      region: 'us-east-1',
      prefix: '',
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      maxObjectBytes: MIB,
      timeoutMs: 10_000,
    });
    opened.push(store);
    const refusal = await store.put('jobs/j/ply', pattern(10, 1)).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(StoreWriteError);
    expect((refusal as StoreWriteError).reason).toBe('bucket-missing');
    expect((refusal as Error).message).toBe(
      `s3 store s3://no-such-bucket/ at ${s3.endpoint} could not write "jobs/j/ply": the bucket "no-such-bucket" does not exist (NoSuchBucket)`,
    );
    await expect(store.probe()).rejects.toThrow('does not exist');
    // A read of a missing bucket is an error too, not a miss that would make the job again and again.
    await expect(store.get('jobs/j/ply')).rejects.toThrow(StoreError);
  });

  it('an endpoint that does not answer is said to be unreachable', async () => {
    const store = new S3Store({
      endpoint: 'http://127.0.0.1:9',
      bucket: BUCKET,
      region: 'us-east-1',
      prefix: '',
      forcePathStyle: true,
      credentials: S3RVER_CREDENTIALS,
      maxObjectBytes: MIB,
      timeoutMs: 10_000,
    });
    opened.push(store);
    const refusal = await store.put('k', pattern(10, 1)).catch((err: unknown) => err);
    expect(refusal).toBeInstanceOf(StoreWriteError);
    expect((refusal as StoreWriteError).reason).toBe('unreachable');
    expect((refusal as Error).message).toContain('the endpoint cannot be reached');
  });
});

describe('s3 store against a service that stalls', () => {
  it('a body that stops coming fails the read at the timeout, as a timeout', async () => {
    // Answers every GET with a well-formed object's headers and the first bytes of its body, then nothing.
    const server = createServer((req, res) => {
      res.writeHead(200, {
        'Content-Length': '1000',
        'x-amz-meta-fast3d-length': '1000',
        'x-amz-meta-fast3d-crc32': '00000000',
        ETag: '"x"',
      });
      res.write(Buffer.alloc(100));
      req.socket.on('close', () => res.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const store = new S3Store({
        endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        bucket: BUCKET,
        region: 'us-east-1',
        prefix: '',
        forcePathStyle: true,
        credentials: S3RVER_CREDENTIALS,
        maxObjectBytes: MIB,
        timeoutMs: 500,
      });
      opened.push(store);
      const started = performance.now();
      const failure = await store.get('k').catch((err: unknown) => err);
      expect(performance.now() - started).toBeLessThan(10_000);
      expect(failure).toBeInstanceOf(StoreError);
      expect((failure as StoreError).reason).toBe('timeout');
      expect((failure as Error).message).toContain('no answer within 0.5 s (store.s3.timeout_s)');
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('store config', () => {
  it("defaults to a disk store in the result cache's directory", () => {
    const config = parseConfig({});
    expect(config.store).toMatchObject({ backend: 'disk', directory: '.fast3d-cache', max_object_mb: 512 });
    expect(config.store.s3).toMatchObject({
      access_key_env: 'AWS_ACCESS_KEY_ID',
      secret_key_env: 'AWS_SECRET_ACCESS_KEY',
      force_path_style: false,
      bucket: '',
    });
  });

  it('rejects bad values naming the key path', () => {
    expect(() => parseConfig({ store: { backend: 's3' } })).toThrow('store.s3.bucket: required when store.backend is s3');
    expect(() => parseConfig({ store: { backend: 'ftp' } })).toThrow('store.backend');
    expect(() => parseConfig({ store: { s3: { endpoint: 'ftp://x' } } })).toThrow('store.s3.endpoint');
    expect(() => parseConfig({ store: { s3: { access_key_env: 'MY KEY' } } })).toThrow('store.s3.access_key_env');
    expect(() => parseConfig({ store: { s3: { prefix: 'no-slash' } } })).toThrow('store.s3.prefix');
    expect(() => parseConfig({ store: { s3: { bucket: 'x' } } })).toThrow('store.s3.bucket');
    expect(() => parseConfig({ store: { max_object_mb: 0 } })).toThrow('store.max_object_mb');
    expect(() => parseConfig({ store: { s3: { secret: 'x' } } })).toThrow('store.s3.secret: unknown key');
  });

  it('an s3 store whose key variables are not set is refused at opening, naming the key and the variable', async () => {
    const config = parseConfig({
      store: {
        backend: 's3',
        s3: { bucket: BUCKET, endpoint: s3.endpoint, access_key_env: 'TEST_S3_ID', secret_key_env: 'TEST_S3_SECRET' },
      },
    });
    await expect(openStore(config.store, { env: { TEST_S3_ID: 'x' } })).rejects.toThrow(
      new StoreConfigError('store.s3.secret_key_env: the environment variable TEST_S3_SECRET is not set (store.backend is s3)'),
    );
    await expect(openStore(config.store, { env: {} })).rejects.toThrow(
      'store.s3.access_key_env: the environment variable TEST_S3_ID is not set',
    );
  });

  it('opens each backend from the config, reading the credentials from the variables it names', async () => {
    const directory = tempFolder();
    const disk = await openStore(parseConfig({ store: { directory } }).store);
    opened.push(disk);
    expect(disk.description).toBe(`disk store at ${directory}`);
    await disk.put('a', pattern(3, 1));
    expect(await disk.get('a')).toEqual(pattern(3, 1));

    const config = parseConfig({
      store: {
        backend: 's3',
        max_object_mb: 1,
        s3: {
          bucket: BUCKET,
          endpoint: s3.endpoint,
          prefix: 'cfg/',
          force_path_style: true,
          access_key_env: 'TEST_S3_ID',
          secret_key_env: 'TEST_S3_SECRET',
        },
      },
    });
    const bucket = await openStore(config.store, {
      env: { TEST_S3_ID: S3RVER_CREDENTIALS.accessKeyId, TEST_S3_SECRET: S3RVER_CREDENTIALS.secretAccessKey },
    });
    opened.push(bucket);
    expect(bucket.maxObjectBytes).toBe(MIB);
    await bucket.probe();
    await bucket.put('a', pattern(3, 2));
    expect(await bucket.get('a')).toEqual(pattern(3, 2));
    // A key id the service does not know: the error says the credentials.
    const wrong = await openStore(config.store, { env: { TEST_S3_ID: 'NOT-A-KEY', TEST_S3_SECRET: S3RVER_CREDENTIALS.secretAccessKey } });
    opened.push(wrong);
    const refusal = await wrong.put('a', pattern(3, 2)).catch((err: unknown) => err);
    expect((refusal as StoreWriteError).reason).toBe('credentials');
    expect((refusal as Error).message).toContain('refused the credentials');
  });
});
