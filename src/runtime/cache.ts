/**
 * The result cache: finished artefacts on disk, addressed by what determines them, so a repeated request costs
 * no GPU time. A request key is the sha256 of the task's content (trimmed prompt text, or the digest of the
 * image bytes), the seed, the delivery, and a fingerprint of the settings that change the output. Each artefact
 * (one per format, e.g. the PLY of /generate/ or the MP4 of /generate_video/ at a given resolution) is a
 * separate entry under it, and so is the report that came with them.
 *
 * Entries are plain files named `<entry key>-<crc32>.<kind>`: written to a temp file and renamed (never
 * half-written), checked against the CRC on every read (a corrupt entry is deleted and counts as a miss), kept
 * under a size bound by evicting the least recently used, and found again after a restart by listing the
 * directory (file mtimes carry the recency). The most recently used artefacts are also held in memory up to a
 * second bound, so a hot hit touches no file. Declines are remembered in memory for a short TTL. An entry that
 * reads back intact but that its format refuses is discarded by the caller (`discard`) and made again.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { open, rename, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { Delivery } from '../pipelines/job.js';
import { sha256, stableJson } from '../pipelines/settings.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

/** File kinds of entries: the extension of their files. */
export const ENTRY_KINDS = ['ply', 'spz', 'glb', 'mp4', 'png', 'json', 'zip'] as const;
export type EntryKind = (typeof ENTRY_KINDS)[number];

/**
 * One entry of a request: its file kind and, when a request can have several of a kind (videos at several
 * sizes), what tells them apart.
 */
export interface EntryName {
  kind: EntryKind;
  variant?: string;
}

/** What a request's content is to the cache: its text, or the digest of its image's bytes. */
export type CacheContent = { kind: 'text'; prompt: string } | { kind: 'image'; digest: string };

/**
 * What the answer path needs of a result cache: this file's (one node, an index in memory, LRU eviction) or the
 * shared store's (store-cache.ts: every node sees every entry). Reads and the decline memory may be asynchronous.
 */
export interface CacheBackend {
  requestKey(task: CacheContent, seed: number, delivery: Delivery | undefined, settings: string): string;
  has(requestKey: string, artefact: EntryName): boolean | Promise<boolean>;
  get(requestKey: string, artefact: EntryName): Promise<Uint8Array | null>;
  put(requestKey: string, artefact: EntryName, bytes: Uint8Array): Promise<void>;
  discard(requestKey: string, artefact: EntryName): void;
  declined(requestKey: string): string | null | Promise<string | null>;
  rememberDecline(requestKey: string, reason: string): void;
  /** Where an entry is in a shared store, when the cache keeps its entries there. */
  keyOf?(requestKey: string, artefact: EntryName): string;
}

export interface CacheOptions {
  directory: string;
  maxBytes: number;
  /** How long a decline is remembered; 0 disables the memory. */
  declineTtlMs: number;
  /** Bytes of recently used artefacts also kept in memory (verified when read from disk); 0 = none. */
  memoryBytes?: number;
  /** settingsFingerprint(settings): requests under other settings never share entries. */
  fingerprint: string;
  metrics?: Metrics;
  logger?: Logger;
  now?: () => number;
}

interface Entry {
  file: string;
  size: number;
  crc: number;
  /** When the file's mtime was last set (ms), to limit those writes. */
  touched?: number;
}

const ENTRY_FILE = new RegExp(`^([0-9a-f]{64})-([0-9a-f]{8})\\.(${ENTRY_KINDS.join('|')})$`);
const TMP = '.tmp';
const MAX_DECLINES = 10_000;
const TOUCH_INTERVAL_MS = 60_000;

export class ResultCache implements CacheBackend {
  /** Insertion order is recency order: the first entry is the least recently used. */
  private readonly index = new Map<string, Entry>();
  private readonly declines = new Map<string, { reason: string; until: number }>();
  private bytes = 0;
  /** Recently used artefacts in memory, least recently used first: a hit from here touches no file. */
  private readonly memory = new Map<string, Uint8Array>();
  private memoryBytes = 0;
  private readonly now: () => number;

  constructor(private readonly options: CacheOptions) {
    this.now = options.now ?? Date.now;
    this.load();
  }

  /**
   * The key of a request: content, seed, delivery and settings fingerprint (the job's, when it runs with other
   * settings than the cache's own). Artefacts and declines hang off it.
   */
  requestKey(task: CacheContent, seed: number, delivery?: Delivery, settings = this.options.fingerprint): string {
    return requestKey(task, seed, delivery, settings);
  }

  /** Whether an entry is indexed, without reading it: what `get` finds unless the entry turns out corrupt. */
  has(requestKey: string, artefact: EntryName): boolean {
    return this.index.has(entryKey(requestKey, artefact));
  }

  /** The cached bytes of one artefact of a request, or null (missing, or corrupt and now dropped). */
  async get(requestKey: string, artefact: EntryName): Promise<Uint8Array | null> {
    const key = entryKey(requestKey, artefact);
    const entry = this.index.get(key);
    const label = artefact.kind;
    if (!entry) {
      this.options.metrics?.cacheLookup(label, 'miss');
      return null;
    }
    const held = this.memory.get(key);
    if (held) {
      this.touch(key, entry);
      this.memory.delete(key);
      this.memory.set(key, held);
      this.options.metrics?.cacheLookup(label, 'hit');
      return held;
    }
    let bytes: Buffer;
    try {
      bytes = await readWhole(join(this.options.directory, entry.file), entry.size);
    } catch {
      if (this.index.get(key) !== entry) return this.get(requestKey, artefact);
      this.drop(key, entry, false);
      this.options.metrics?.cacheLookup(label, 'miss');
      return null;
    }
    // A put or an eviction during the read changed the entry: what was read is no longer what the index holds.
    if (this.index.get(key) !== entry) return this.get(requestKey, artefact);
    if (bytes.length !== entry.size || crc32(bytes) !== entry.crc) {
      this.options.logger?.warn({ file: entry.file, bytes: bytes.length }, 'cache entry corrupt: dropped');
      this.options.metrics?.cacheCorruption();
      this.drop(key, entry, true);
      this.options.metrics?.cacheLookup(label, 'miss');
      return null;
    }
    this.touch(key, entry);
    const view = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    this.hold(key, view);
    this.options.metrics?.cacheLookup(label, 'hit');
    return view;
  }

  /**
   * Most recently used: move to the end, and let the file's mtime say so after a restart (at most once a minute
   * per entry: recency across restarts needs no finer grain, and a hot entry then costs no syscall per hit).
   */
  private touch(key: string, entry: Entry): void {
    this.index.delete(key);
    this.index.set(key, entry);
    const now = this.now();
    if (now - (entry.touched ?? 0) < TOUCH_INTERVAL_MS) return;
    entry.touched = now;
    const at = new Date(now);
    utimes(join(this.options.directory, entry.file), at, at).catch(() => undefined);
  }

  private hold(key: string, bytes: Uint8Array): void {
    const limit = this.options.memoryBytes ?? 0;
    this.release(key);
    if (bytes.length > limit) return;
    this.memory.set(key, bytes);
    this.memoryBytes += bytes.length;
    while (this.memoryBytes > limit) this.release(this.memory.keys().next().value as string);
  }

  private release(key: string): void {
    const held = this.memory.get(key);
    if (!held) return;
    this.memory.delete(key);
    this.memoryBytes -= held.length;
  }

  /** Stores an artefact atomically (temp file, then rename), then evicts down to the size bound. */
  async put(requestKey: string, artefact: EntryName, bytes: Uint8Array): Promise<void> {
    if (bytes.length > this.options.maxBytes) return;
    const key = entryKey(requestKey, artefact);
    const crc = crc32(bytes);
    const file = `${key}-${crc.toString(16).padStart(8, '0')}.${artefact.kind}`;
    const tmp = join(this.options.directory, TMP, `${key}.${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, join(this.options.directory, file));
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    const previous = this.index.get(key);
    if (previous) {
      this.index.delete(key);
      this.bytes -= previous.size;
      if (previous.file !== file) unlink(join(this.options.directory, previous.file)).catch(() => undefined);
    }
    this.index.set(key, { file, size: bytes.length, crc });
    this.bytes += bytes.length;
    this.hold(key, bytes);
    this.evictToBound();
  }

  /** Drops one entry (its bytes were refused by their format): the next request makes it again. */
  discard(requestKey: string, artefact: EntryName): void {
    const key = entryKey(requestKey, artefact);
    const entry = this.index.get(key);
    if (!entry) return;
    this.options.logger?.warn({ file: entry.file }, 'cache entry unusable: evicted');
    this.options.metrics?.cacheCorruption();
    this.drop(key, entry, true);
  }

  /** The reason a request was declined, if that happened within the decline TTL. */
  declined(requestKey: string): string | null {
    const hit = this.declines.get(requestKey);
    if (!hit) return null;
    if (hit.until <= this.now()) {
      this.declines.delete(requestKey);
      return null;
    }
    return hit.reason;
  }

  rememberDecline(requestKey: string, reason: string): void {
    if (this.options.declineTtlMs <= 0) return;
    this.declines.delete(requestKey);
    this.declines.set(requestKey, { reason, until: this.now() + this.options.declineTtlMs });
    while (this.declines.size > MAX_DECLINES) this.declines.delete(this.declines.keys().next().value as string);
  }

  size(): { entries: number; bytes: number; memoryBytes: number } {
    return { entries: this.index.size, bytes: this.bytes, memoryBytes: this.memoryBytes };
  }

  /** Rebuilds the index from the directory; stray temp files from an interrupted write are removed. */
  private load(): void {
    const dir = this.options.directory;
    rmSync(join(dir, TMP), { recursive: true, force: true });
    mkdirSync(join(dir, TMP), { recursive: true });
    const found: { key: string; entry: Entry; mtime: number }[] = [];
    for (const name of readdirSync(dir)) {
      const m = ENTRY_FILE.exec(name);
      if (!m) continue;
      try {
        const st = statSync(join(dir, name));
        found.push({ key: m[1], entry: { file: name, size: st.size, crc: parseInt(m[2], 16) }, mtime: st.mtimeMs });
      } catch {
        // Removed while listing: nothing to index.
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const { key, entry } of found) {
      const previous = this.index.get(key);
      if (previous) this.bytes -= previous.size;
      this.index.delete(key);
      this.index.set(key, entry);
      this.bytes += entry.size;
    }
    this.evictToBound();
  }

  private evictToBound(): void {
    let evicted = 0;
    while (this.bytes > this.options.maxBytes && this.index.size) {
      const [key, entry] = this.index.entries().next().value as [string, Entry];
      this.drop(key, entry, true);
      evicted++;
    }
    if (evicted) this.options.metrics?.cacheEviction(evicted);
  }

  private drop(key: string, entry: Entry, unlinkFile: boolean): void {
    if (this.index.get(key) !== entry) return;
    this.index.delete(key);
    this.release(key);
    this.bytes -= entry.size;
    if (unlinkFile) unlink(join(this.options.directory, entry.file)).catch(() => undefined);
  }
}

/**
 * Reads a file of known size with one read call (plus one to detect a longer file): readFile reads in 512 KiB
 * chunks, each a trip through the thread pool, which is most of a cache hit's latency on a busy machine.
 */
async function readWhole(path: string, size: number): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.allocUnsafe(size + 1);
    let filled = 0;
    while (filled <= size) {
      const { bytesRead } = await handle.read(buffer, filled, size + 1 - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return buffer.subarray(0, filled);
  } finally {
    await handle.close();
  }
}

/** An entry's key: the request's key and the entry's kind and variant, hashed. */
export function entryKey(requestKey: string, artefact: EntryName): string {
  const descriptor = artefact.variant === undefined ? artefact.kind : `${artefact.kind}:${artefact.variant}`;
  return sha256(`${requestKey}\n${descriptor}`);
}

/**
 * The key of a request: content, seed, delivery and settings fingerprint (the job's). Artefacts and declines hang
 * off it, in whichever cache.
 */
export function requestKey(task: CacheContent, seed: number, delivery: Delivery | undefined, settings: string): string {
  const content = task.kind === 'text' ? `text:${sha256(task.prompt.trim())}` : `image:${task.digest}`;
  // The newer contract gets another frame and best-effort answers: never serve one contract's bytes to the other.
  const how = delivery ? stableJson(delivery) : 'legacy';
  return sha256(`fast3d-request\n${content}\n${seed}\n${how}\n${settings}`);
}
