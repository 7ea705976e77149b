/**
 * Downloads one model file: into `<target>.part`, resuming with an HTTP Range request after a dropped
 * connection, then size and checksum verification, then an atomic rename. A file that fails verification
 * is deleted, never left where the service would load it.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, stat, truncate, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sha256File } from './check.js';

export interface DownloadSource {
  url: string;
  size: number | null;
  sha256: string | null;
}

export interface DownloadOptions {
  /** Resumes after a dropped connection before giving up. */
  retries: number;
  /** Called as bytes arrive: bytes on disk so far, total when known. */
  onProgress?: (received: number, total: number | null) => void;
  /** Pause before a resume, in milliseconds (doubles each time). */
  backoffMs?: number;
  signal?: AbortSignal;
}

export class DownloadError extends Error {
  override name = 'DownloadError';
}

/** Downloads `source` to `target`; returns the verified size and SHA-256. */
export async function downloadFile(
  source: DownloadSource,
  target: string,
  options: DownloadOptions,
): Promise<{ size: number; sha256: string }> {
  await mkdir(dirname(target), { recursive: true });
  const part = `${target}.part`;
  let failures = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    let offset = await sizeOf(part);
    if (source.size !== null && offset > source.size) {
      await truncate(part, 0);
      offset = 0;
    }
    if (source.size !== null && offset === source.size) break;
    try {
      const done = await fetchInto(source, part, offset, options);
      if (done) break;
    } catch (err) {
      if (err instanceof DownloadError || options.signal?.aborted) throw err;
      if (++failures > options.retries) {
        throw new DownloadError(`download of ${source.url} failed after ${failures} tries: ${(err as Error).message}; run again to resume`);
      }
      await new Promise((r) => setTimeout(r, (options.backoffMs ?? 500) * 2 ** (failures - 1)));
    }
  }
  return verifyAndPlace(source, part, target);
}

/** One request from `offset`; true when the body ended normally. */
async function fetchInto(source: DownloadSource, part: string, offset: number, options: DownloadOptions): Promise<boolean> {
  const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
  const response = await fetch(source.url, { headers, redirect: 'follow', signal: options.signal });
  if (response.status === 416 && offset > 0) {
    // Nothing left to send: the part file already holds the whole resource.
    await response.body?.cancel();
    return true;
  }
  if (response.status !== 200 && response.status !== 206) {
    await response.body?.cancel();
    const message = `${source.url} answered HTTP ${response.status}`;
    // Server trouble and rate limits pass; anything else (404, 403...) will not.
    if (response.status >= 500 || response.status === 429) throw new Error(message);
    throw new DownloadError(message);
  }
  if (!response.body) throw new Error('empty response body');
  // A server that ignores Range sends the whole file again: start over.
  const append = response.status === 206 && offset > 0;
  let received = append ? offset : 0;
  const length = Number(response.headers.get('content-length'));
  const total = source.size ?? (Number.isFinite(length) && length > 0 ? received + length : null);
  options.onProgress?.(received, total);
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      received += chunk.length;
      options.onProgress?.(received, total);
      done(null, chunk);
    },
  });
  await pipeline(
    Readable.fromWeb(response.body as import('node:stream/web').ReadableStream),
    count,
    createWriteStream(part, { flags: append ? 'a' : 'w' }),
  );
  if (Number.isFinite(length) && length > 0 && received !== (append ? offset : 0) + length) {
    throw new Error(`connection closed after ${received} bytes`);
  }
  return true;
}

async function verifyAndPlace(source: DownloadSource, part: string, target: string): Promise<{ size: number; sha256: string }> {
  const size = await sizeOf(part);
  if (source.size !== null && size !== source.size) {
    await unlink(part).catch(() => undefined);
    throw new DownloadError(`${source.url}: got ${size} bytes, expected ${source.size}; the partial file was removed`);
  }
  const sha256 = await sha256File(part);
  if (source.sha256 !== null && sha256 !== source.sha256) {
    await unlink(part).catch(() => undefined);
    throw new DownloadError(`checksum mismatch for ${target}: sha256 ${sha256}, expected ${source.sha256}; the download was removed`);
  }
  await rename(part, target);
  return { size, sha256 };
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}
