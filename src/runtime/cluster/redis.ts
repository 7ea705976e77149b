/**
 * Connections to the Redis that a cluster of fast3d nodes shares (the queue, the jobs' records and events). BullMQ
 * wants its connections to retry forever (`maxRetriesPerRequest: null`); the first one is checked at start-up, so
 * a wrong URL is said then, naming it, rather than as a hang on the first job.
 */
import { Redis } from 'ioredis';

/** Redis refused or could not be reached: says where. */
export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

/** The URL with any password replaced, for messages and logs. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@');
  }
}

/** A new connection to `url` (lazy: it connects on first use). */
export function redisConnection(url: string, name: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, lazyConnect: true, connectionName: name, enableOfflineQueue: true });
}

/**
 * A connection of its own to the same Redis, for one BullMQ object, which leaves a connection it was given open:
 * its owner closes it. Errors while Redis is away are the health poller's to report; unheard, ioredis prints each.
 */
export function ownConnection(connection: Redis): Redis {
  const copy = connection.duplicate();
  copy.on('error', () => undefined);
  return copy;
}

/** Connects and pings within `timeoutMs`, or throws RedisUnavailableError naming the URL and the reason. */
export async function checkRedis(url: string, timeoutMs = 5000): Promise<void> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const version = ((await probe.info('server')).match(/redis_version:(\S+)/) ?? [])[1];
    const [major, minor] = (version ?? '0').split('.').map(Number);
    if (major < 6 || (major === 6 && minor < 2)) {
      throw new RedisUnavailableError(`Redis at ${redactedUrl(url)} is version ${version}; fast3d's queue needs 6.2 or newer`);
    }
  } catch (err) {
    if (err instanceof RedisUnavailableError) throw err;
    throw new RedisUnavailableError(`cannot reach Redis at ${redactedUrl(url)} (queue.redis_url): ${(err as Error).message}`);
  } finally {
    probe.disconnect();
  }
}
