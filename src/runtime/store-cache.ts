/**
 * The result cache in the shared artefact store: every node reads what any node made. An entry is the store's
 * object `cache/<entry key>.<kind>` (the store checks its bytes on every read and never shows a torn one), a
 * remembered decline `declines/<request key>.json` with the time it lapses. Nothing is indexed here: a node
 * asks the store, and holds only its most recently used entries in memory. Eviction is the store's (a bucket's
 * lifecycle rule, or `sweep` on a disk).
 */
import type { Delivery } from '../pipelines/job.js';
import type { ArtefactStore } from '../store/store.js';
import { type CacheBackend, type CacheContent, type EntryName, entryKey, requestKey } from './cache.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface StoreCacheOptions {
  /** How long a decline is remembered; 0 disables the memory. */
  declineTtlMs: number;
  /** Bytes of recently used entries also held in memory (0 = none). */
  memoryBytes: number;
  metrics?: Metrics;
  logger?: Logger;
  now?: () => number;
}

const PREFIX = 'cache/';
const DECLINES = 'declines/';

export class StoreCache implements CacheBackend {
  private readonly memory = new Map<string, Uint8Array>();
  private memoryBytes = 0;
  private readonly now: () => number;

  constructor(
    private readonly store: ArtefactStore,
    private readonly options: StoreCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  requestKey(task: CacheContent, seed: number, delivery: Delivery | undefined, settings: string): string {
    return requestKey(task, seed, delivery, settings);
  }

  /** The store key of an entry. */
  keyOf(request: string, artefact: EntryName): string {
    return `${PREFIX}${entryKey(request, artefact)}.${artefact.kind}`;
  }

  async has(request: string, artefact: EntryName): Promise<boolean> {
    const key = this.keyOf(request, artefact);
    return this.memory.has(key) || (await this.store.has(key));
  }

  async get(request: string, artefact: EntryName): Promise<Uint8Array | null> {
    const key = this.keyOf(request, artefact);
    const held = this.memory.get(key);
    if (held) {
      this.memory.delete(key);
      this.memory.set(key, held);
      this.options.metrics?.cacheLookup(artefact.kind, 'hit');
      return held;
    }
    const bytes = await this.store.get(key);
    this.options.metrics?.cacheLookup(artefact.kind, bytes ? 'hit' : 'miss');
    if (bytes) this.hold(key, bytes);
    return bytes;
  }

  async put(request: string, artefact: EntryName, bytes: Uint8Array): Promise<void> {
    const key = this.keyOf(request, artefact);
    await this.store.put(key, bytes);
    this.hold(key, bytes);
  }

  /** Drops one entry (its bytes were refused by their format): the next request makes it again. */
  discard(request: string, artefact: EntryName): void {
    const key = this.keyOf(request, artefact);
    this.release(key);
    this.options.logger?.warn({ key }, 'cache entry unusable: evicted');
    this.options.metrics?.cacheCorruption();
    this.store.delete(key).catch(() => undefined);
  }

  async declined(request: string): Promise<string | null> {
    if (this.options.declineTtlMs <= 0) return null;
    const bytes = await this.store.get(`${DECLINES}${request}.json`);
    if (!bytes) return null;
    try {
      const { reason, until } = JSON.parse(new TextDecoder().decode(bytes)) as { reason: string; until: number };
      if (typeof reason === 'string' && until > this.now()) return reason;
    } catch {
      // Unreadable: it lapses like an old one.
    }
    return null;
  }

  rememberDecline(request: string, reason: string): void {
    if (this.options.declineTtlMs <= 0) return;
    const body = new TextEncoder().encode(JSON.stringify({ reason, until: this.now() + this.options.declineTtlMs }));
    this.store
      .put(`${DECLINES}${request}.json`, body)
      .catch((err: Error) => this.options.logger?.warn({ err: err.message }, 'cache write failed'));
  }

  /**
   * Deletes entries and declines not modified for `maxAgeMs` (a disk store has no lifecycle rules of its own);
   * returns how many went.
   */
  async sweep(maxAgeMs: number): Promise<number> {
    let removed = 0;
    const before = this.now() - maxAgeMs;
    for (const prefix of [PREFIX, DECLINES]) {
      for await (const object of this.store.list(prefix)) {
        if (object.modified.getTime() >= before) continue;
        await this.store.delete(object.key);
        this.release(object.key);
        removed++;
      }
    }
    return removed;
  }

  private hold(key: string, bytes: Uint8Array): void {
    if (bytes.length > this.options.memoryBytes) return;
    this.release(key);
    this.memory.set(key, bytes);
    this.memoryBytes += bytes.length;
    for (const [oldest, held] of this.memory) {
      if (this.memoryBytes <= this.options.memoryBytes) break;
      this.memory.delete(oldest);
      this.memoryBytes -= held.length;
    }
  }

  private release(key: string): void {
    const held = this.memory.get(key);
    if (!held) return;
    this.memory.delete(key);
    this.memoryBytes -= held.length;
  }
}
