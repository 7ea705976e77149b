/**
 * A cache read that is still on disk when the entry changes under it. The file read is held open by a gate, so
 * the interleaving is certain rather than left to the disk's timing.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

let gate: Promise<void> | null = null;
vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    open: async (...args: Parameters<typeof actual.open>) => {
      const handle = await actual.open(...args);
      if (gate) await gate;
      return handle;
    },
  };
});

const { ResultCache } = await import('../src/runtime/cache.js');

const dirs: string[] = [];
afterEach(() => {
  gate = null;
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function setup(maxBytes: number) {
  const directory = mkdtempSync(join(tmpdir(), 'fast3d-cache-race-'));
  dirs.push(directory);
  const cache = new ResultCache({ directory, maxBytes, declineTtlMs: 0, fingerprint: 'f', memoryBytes: 0 });
  const files = () => readdirSync(directory).filter((f) => f !== '.tmp');
  return { cache, files };
}

function holdReads(): () => void {
  let open!: () => void;
  gate = new Promise<void>((resolve) => {
    open = resolve;
  });
  return () => {
    gate = null;
    open();
  };
}

const text = (prompt: string) => ({ kind: 'text' as const, prompt });
const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('ResultCache under concurrent change', () => {
  it('a read overtaken by a replacement returns the current artefact and leaves one file, counted once', async () => {
    const { cache, files } = setup(1 << 20);
    const key = cache.requestKey(text('a lamp'), 1);
    await cache.put(key, { kind: 'ply' }, bytes(1000, 1));
    const release = holdReads();
    const reading = cache.get(key, { kind: 'ply' });
    await new Promise((r) => setTimeout(r, 10));
    await cache.put(key, { kind: 'ply' }, bytes(1200, 2));
    release();
    expect(await reading).toEqual(bytes(1200, 2));
    expect(cache.size()).toMatchObject({ entries: 1, bytes: 1200 });
    expect(files()).toHaveLength(1);
  });

  it('a read overtaken by an eviction does not bring the entry back past the size bound', async () => {
    const { cache, files } = setup(2500);
    const key = cache.requestKey(text('a lamp'), 1);
    await cache.put(key, { kind: 'ply' }, bytes(1000, 1));
    const release = holdReads();
    const reading = cache.get(key, { kind: 'ply' });
    await new Promise((r) => setTimeout(r, 10));
    await cache.put(cache.requestKey(text('b'), 1), { kind: 'ply' }, bytes(1200, 3));
    await cache.put(cache.requestKey(text('c'), 1), { kind: 'ply' }, bytes(1200, 4));
    release();
    expect(await reading).toBeNull();
    expect(cache.size()).toMatchObject({ entries: 2, bytes: 2400 });
    expect(files()).toHaveLength(2);
  });
});
