/**
 * Jobs kept in Redis, so every node of a cluster reads every job: its view, its events (replayed from any node by
 * index, then live), its artefacts (in the shared store) and its pictures. A job's record is made by the node
 * that took its request; the worker that runs it keeps a record of its own in a local registry (jobs.ts) and
 * mirrors each event and the view to Redis as they happen. Everything lapses `retentionMs` after the job's end.
 *
 *   <prefix>job:<id>          the view (JSON)
 *   <prefix>job:<id>:events   the events (a list of JSON)
 *   <prefix>job:<id>:refs     artefact name -> { contentType, extension, bytes, key } (key in the store)
 *   <prefix>jobs              id -> created at (a sorted set, for lists)
 *   channel <prefix>events:<id>   "another event is there"
 *   channel <prefix>cancel        a job id to cancel, wherever it runs
 */
import type { Redis } from 'ioredis';
import { decodeImage, encodePng } from '../../image/codec.js';
import type { RgbaImage } from '../../image/rgba.js';
import type { ArtefactStore } from '../../store/store.js';
import type { ArtefactEntry, ArtefactRef, JobEvent, JobRegistry, JobView } from '../jobs.js';

export interface RedisJobsOptions {
  prefix: string;
  /** How long a finished job stays readable. */
  retentionMs: number;
  /** Finished jobs kept listed, newest first. */
  keep: number;
  now?: () => number;
}

interface StoredRef {
  contentType: string;
  extension: string;
  bytes: number;
  key: string;
}

/** How long an unfinished job's record lives (a job outlives no deadline by this much). */
const ACTIVE_TTL_MS = 24 * 3600 * 1000;
const PICTURE_LIMITS = { maxPixels: 4096 * 4096, minSide: 1 };
/** A reader waits this long for news before it reads the list again (a missed message costs no more). */
const POLL_MS = 2000;

export class RedisJobs {
  private readonly now: () => number;
  private readonly listeners = new Map<string, Set<() => void>>();
  private cancelListener: ((id: string) => void) | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly subscriber: Redis,
    private readonly store: ArtefactStore,
    private readonly options: RedisJobsOptions,
  ) {
    this.now = options.now ?? Date.now;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.key('cancel')) this.cancelListener?.(message);
      else for (const listener of this.listeners.get(channel) ?? []) listener();
    });
  }

  private key(...parts: string[]): string {
    return `${this.options.prefix}${parts.join(':')}`;
  }

  /** Records a job taken on this node: its view and its first event. */
  async create(view: JobView): Promise<void> {
    const event: JobEvent = { type: 'queued', at: 0 };
    await this.redis
      .multi()
      .set(this.key('job', view.id), JSON.stringify(view), 'PX', ACTIVE_TTL_MS)
      .rpush(this.key('job', view.id, 'events'), JSON.stringify(event))
      .pexpire(this.key('job', view.id, 'events'), ACTIVE_TTL_MS)
      .zadd(this.key('jobs'), view.createdAt, view.id)
      .exec();
    await this.redis.publish(this.key('events', view.id), '1');
  }

  /** Adds an event to a job's record (one the taking node knows of: its place in line). */
  async append(id: string, event: JobEvent): Promise<void> {
    await this.redis.rpush(this.key('job', id, 'events'), JSON.stringify(event));
    await this.redis.publish(this.key('events', id), '1');
  }

  async get(id: string): Promise<JobView | null> {
    const text = await this.redis.get(this.key('job', id));
    return text ? (JSON.parse(text) as JobView) : null;
  }

  /** The most recent jobs, newest first (those that have lapsed are dropped from the list as it is read). */
  async list(limit = 50): Promise<JobView[]> {
    const ids = await this.redis.zrevrange(this.key('jobs'), 0, Math.max(0, limit * 2 - 1));
    if (!ids.length) return [];
    const texts = await this.redis.mget(ids.map((id) => this.key('job', id)));
    const gone = ids.filter((_, i) => texts[i] === null);
    if (gone.length) await this.redis.zrem(this.key('jobs'), ...gone);
    return texts
      .filter((t): t is string => t !== null)
      .map((t) => JSON.parse(t) as JobView)
      .slice(0, limit);
  }

  /** The job's events: those so far, then live ones, ending after `end` (or with `signal`). */
  async *events(id: string, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    if (!(await this.redis.exists(this.key('job', id)))) return;
    const channel = this.key('events', id);
    let wake: (() => void) | null = null;
    const listener = () => wake?.();
    await this.listen(channel, listener);
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort, { once: true });
    let next = 0;
    try {
      while (!signal?.aborted) {
        const texts = await this.redis.lrange(this.key('job', id, 'events'), next, -1);
        for (const text of texts) {
          next++;
          const event = JSON.parse(text) as JobEvent;
          yield event;
          if (event.type === 'end') return;
        }
        if (!(await this.redis.exists(this.key('job', id)))) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, POLL_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      await this.unlisten(channel, listener);
    }
  }

  /** An artefact of a job, its bytes read from the shared store. */
  async artefact(id: string, name: string): Promise<ArtefactRef | null> {
    const text = await this.redis.hget(this.key('job', id, 'refs'), name);
    if (!text) return null;
    const ref = JSON.parse(text) as StoredRef;
    return {
      name,
      contentType: ref.contentType,
      extension: ref.extension,
      bytes: ref.bytes,
      held: false,
      storeKey: ref.key,
      read: () => this.store.get(ref.key),
    };
  }

  /** A job's picture or matte, from the shared store. */
  async intermediate(id: string, name: 'image' | 'matte'): Promise<RgbaImage | null> {
    const bytes = await this.store.get(pictureKey(id, name));
    if (!bytes) return null;
    try {
      return await decodeImage(bytes, PICTURE_LIMITS);
    } catch {
      return null;
    }
  }

  /**
   * Lists a draft's artefact on a job still running, marked draft (its event too); false when the job has ended or
   * has an artefact of its own (a draft never follows the final). The mirror of the running worker keeps it listed.
   */
  async attachDraft(id: string, ref: ArtefactRef): Promise<boolean> {
    const view = await this.get(id);
    if (!view || !['queued', 'running'].includes(view.state) || view.artefacts.some((a) => !a.draft) || !ref.storeKey) return false;
    const entry = {
      name: ref.name,
      contentType: ref.contentType,
      extension: ref.extension,
      bytes: ref.bytes,
      ...(ref.triangles !== undefined && { triangles: ref.triangles }),
      draft: true as const,
    };
    const stored: StoredRef = { contentType: ref.contentType, extension: ref.extension, bytes: ref.bytes, key: ref.storeKey };
    const event: JobEvent = {
      type: 'artefact',
      name: ref.name,
      contentType: ref.contentType,
      bytes: ref.bytes,
      draft: true,
      at: this.now() - view.createdAt,
    };
    await this.redis
      .multi()
      .set(this.key('job', id), JSON.stringify({ ...view, artefacts: [...view.artefacts, entry] }), 'KEEPTTL')
      .hset(this.key('job', id, 'refs'), ref.name, JSON.stringify(stored))
      .rpush(this.key('job', id, 'events'), JSON.stringify(event))
      .exec();
    await this.redis.publish(this.key('events', id), '1');
    return true;
  }

  /** Asks every node to cancel a job: the one running it aborts it. False when the job has ended (or is unknown). */
  async requestCancel(id: string): Promise<boolean> {
    const view = await this.get(id);
    if (!view || !['queued', 'running'].includes(view.state)) return false;
    await this.redis.publish(this.key('cancel'), id);
    return true;
  }

  /** Calls `listener` with the id of each job some node asks to cancel. */
  async onCancel(listener: (id: string) => void): Promise<void> {
    this.cancelListener = listener;
    await this.subscriber.subscribe(this.key('cancel'));
  }

  /**
   * Mirrors a job that this node runs, from its local registry (where the answer path records it) to Redis: the
   * view after each event, the events after the first (`queued`, which the taking node wrote), the pictures and
   * the artefacts' store keys. Resolves once the `end` event is written. `node` is this node's name.
   */
  async mirror(id: string, local: JobRegistry, node: string): Promise<void> {
    let first = true;
    for await (const event of local.events(id)) {
      if (first) {
        first = false;
        if (event.type === 'queued') continue;
      }
      if (event.type === 'intermediate' && (event.name === 'image' || event.name === 'matte')) {
        const image = local.intermediate(id, event.name);
        if (image && 'data' in image) await this.store.put(pictureKey(id, event.name), await encodePng(image)).catch(() => undefined);
      }
      const multi = this.redis.multi();
      if (event.type === 'artefact') {
        const ref = local.artefact(id, event.name);
        if (ref?.storeKey) {
          const stored: StoredRef = { contentType: ref.contentType, extension: ref.extension, bytes: ref.bytes, key: ref.storeKey };
          multi.hset(this.key('job', id, 'refs'), event.name, JSON.stringify(stored));
        }
      }
      const view = local.get(id);
      const ended = event.type === 'end';
      const ttl = ended ? this.options.retentionMs : ACTIVE_TTL_MS;
      // Drafts another node listed on the job (progressive jobs) stay listed, and expire with the job's own files
      // (the local view may have ended before its end event is mirrored).
      const listed = (await this.get(id))?.artefacts.filter((a) => a.draft) ?? [];
      const over = view !== undefined && !['queued', 'running'].includes(view.state);
      const drafts = over ? this.expiring(listed, view.artefacts.find((a) => a.expiresAt)?.expiresAt) : listed;
      if (view) multi.set(this.key('job', id), JSON.stringify({ ...view, artefacts: [...drafts, ...view.artefacts], node }), 'PX', ttl);
      multi.rpush(this.key('job', id, 'events'), JSON.stringify(event)).pexpire(this.key('job', id, 'events'), ttl);
      if (ended) multi.pexpire(this.key('job', id, 'refs'), ttl);
      await multi.exec();
      await this.redis.publish(this.key('events', id), '1');
      if (ended) break;
    }
    await this.trim();
  }

  /** Artefacts of an ended job, each saying when its link goes: `at`, or with the job's record, retentionMs from now. */
  private expiring(artefacts: ArtefactEntry[], at?: string): ArtefactEntry[] {
    const expiresAt = at ?? new Date(this.now() + this.options.retentionMs).toISOString();
    return artefacts.map((a) => ({ ...a, expiresAt }));
  }

  /** Ends a job that no worker will run (refused after its record was made, or cancelled while it waited). */
  async endUnrun(id: string, state: 'failed' | 'cancelled', error: string): Promise<void> {
    const view = await this.get(id);
    if (!view || !['queued', 'running'].includes(view.state)) return;
    const event: JobEvent = { type: 'end', state, error, at: this.now() - view.createdAt };
    await this.redis
      .multi()
      .set(
        this.key('job', id),
        JSON.stringify({ ...view, state, stage: null, error, artefacts: this.expiring(view.artefacts) }),
        'PX',
        this.options.retentionMs,
      )
      .rpush(this.key('job', id, 'events'), JSON.stringify(event))
      .pexpire(this.key('job', id, 'events'), this.options.retentionMs)
      .exec();
    await this.redis.publish(this.key('events', id), '1');
  }

  /** Keeps the list to `keep` jobs. */
  private async trim(): Promise<void> {
    const count = await this.redis.zcard(this.key('jobs'));
    if (count > this.options.keep * 4) await this.redis.zremrangebyrank(this.key('jobs'), 0, count - this.options.keep * 4 - 1);
  }

  private async listen(channel: string, listener: () => void): Promise<void> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      await this.subscriber.subscribe(channel);
    }
    set.add(listener);
  }

  private async unlisten(channel: string, listener: () => void): Promise<void> {
    const set = this.listeners.get(channel);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) {
      this.listeners.delete(channel);
      await this.subscriber.unsubscribe(channel).catch(() => undefined);
    }
  }
}

function pictureKey(id: string, name: 'image' | 'matte'): string {
  return `jobs/${encodeURIComponent(id).replace(/%/g, '=')}/${name}.png`;
}
