/**
 * Idempotency keys of job requests (`Idempotency-Key` on POST /api/v1/jobs): the first request with a key makes the
 * job; a later one with the same key and the same body gets that job again; one with the same key and another body
 * is a conflict (409). A key lasts as long as the jobs it names are kept. One node keeps its keys in memory; a
 * cluster keeps them in Redis, so a retry that lands on another node finds the job too.
 */
import type { Redis } from 'ioredis';

export class IdempotencyConflictError extends Error {
  override name = 'IdempotencyConflictError';
}

export interface IdempotencyKeys {
  /**
   * Claims `key` for a request whose body has `fingerprint`, for a job to be made under `id`: the job the key
   * names (`fresh` when it is this claim's). Throws IdempotencyConflictError for another body.
   */
  claim(key: string, fingerprint: string, id: string): Promise<{ id: string; fresh: boolean }>;
  /** Lets a fresh claim go (its request was refused before any job): a retry may make the job after all. */
  release(key: string, id: string): Promise<void>;
}

interface Claim {
  fingerprint: string;
  id: string;
}

function check(key: string, claim: Claim, fingerprint: string): { id: string; fresh: boolean } {
  if (claim.fingerprint !== fingerprint) {
    throw new IdempotencyConflictError(
      `Idempotency-Key ${JSON.stringify(key.slice(0, 80))} was used for another request (job ${claim.id}); use a new key for a new request`,
    );
  }
  return { id: claim.id, fresh: false };
}

/** One node's keys, each kept for `ttlMs`. */
export class MemoryIdempotencyKeys implements IdempotencyKeys {
  private readonly claims = new Map<string, Claim & { until: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async claim(key: string, fingerprint: string, id: string): Promise<{ id: string; fresh: boolean }> {
    const now = this.now();
    for (const [k, c] of this.claims) if (c.until <= now) this.claims.delete(k);
    const held = this.claims.get(key);
    if (held) return check(key, held, fingerprint);
    this.claims.set(key, { fingerprint, id, until: now + this.ttlMs });
    return { id, fresh: true };
  }

  async release(key: string, id: string): Promise<void> {
    if (this.claims.get(key)?.id === id) this.claims.delete(key);
  }
}

/** A cluster's keys, in Redis (set only if absent, so two nodes never make two jobs of one key). */
export class RedisIdempotencyKeys implements IdempotencyKeys {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlMs: number,
  ) {}

  async claim(key: string, fingerprint: string, id: string): Promise<{ id: string; fresh: boolean }> {
    const name = `${this.prefix}idempotency:${key}`;
    const set = await this.redis.set(name, JSON.stringify({ fingerprint, id }), 'PX', this.ttlMs, 'NX');
    if (set === 'OK') return { id, fresh: true };
    const text = await this.redis.get(name);
    if (!text) return this.claim(key, fingerprint, id); // lapsed between the two calls
    return check(key, JSON.parse(text) as Claim, fingerprint);
  }

  async release(key: string, id: string): Promise<void> {
    const name = `${this.prefix}idempotency:${key}`;
    const text = await this.redis.get(name);
    if (text && (JSON.parse(text) as Claim).id === id) await this.redis.del(name);
  }
}
