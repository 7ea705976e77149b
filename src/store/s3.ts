/**
 * The S3 store: objects in a bucket of any S3-compatible service (AWS S3, Cloudflare R2, MinIO), under an
 * optional key prefix. A PutObject is atomic on every such service (an object appears whole or not at all), and
 * its bytes are checked on the way in (Content-MD5). Each object also carries its length and CRC-32 in its
 * metadata (`x-amz-meta-fast3d-length`, `x-amz-meta-fast3d-crc32`), checked on every read: an object without
 * them, of another length or with another CRC is deleted (unless replaced meanwhile: its ETag is compared) and
 * reads as missing. The SDK's own flexible checksums are off (only when required), because several
 * S3-compatible services and test servers do not speak them; ours work everywhere.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Readable } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type GetObjectCommandOutput,
} from '@aws-sdk/client-s3';
import {
  type ArtefactStore,
  checkKey,
  checkPrefix,
  checkSize,
  keyProblem,
  StoreError,
  type StoreErrorReason,
  type StoredObject,
  type StoreObserver,
  StoreWriteError,
} from './store.js';

export interface S3StoreOptions {
  /** Base URL of the service; empty: AWS S3's endpoint for the region. */
  endpoint: string;
  bucket: string;
  region: string;
  /** Prepended to every key (e.g. "fast3d/"), so one bucket can hold several services' objects. */
  prefix: string;
  /** `https://endpoint/bucket/key` rather than `https://bucket.endpoint/key` (MinIO and most self-hosted). */
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  maxObjectBytes: number;
  /** Longest wait for one request (a body being read included). */
  timeoutMs: number;
  observe?: StoreObserver;
}

const LENGTH_META = 'fast3d-length';
const CRC_META = 'fast3d-crc32';

export class S3Store implements ArtefactStore {
  readonly description: string;
  readonly maxObjectBytes: number;
  private readonly client: S3Client;

  constructor(private readonly options: S3StoreOptions) {
    checkPrefix(options.prefix);
    this.maxObjectBytes = options.maxObjectBytes;
    this.description = `s3 store s3://${options.bucket}/${options.prefix} at ${options.endpoint || `AWS region ${options.region}`}`;
    this.client = new S3Client({
      endpoint: options.endpoint || undefined,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: Math.min(options.timeoutMs, 10_000),
        requestTimeout: options.timeoutMs,
        throwOnRequestTimeout: true,
      },
    });
  }

  async get(key: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    checkKey(key);
    const abortSignal = this.signal(signal);
    let response: GetObjectCommandOutput;
    try {
      response = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }), { abortSignal });
    } catch (err) {
      if (signal?.aborted) throw err;
      if (nameOf(err) === 'NoSuchKey' || (statusOf(err) === 404 && nameOf(err) !== 'NoSuchBucket')) {
        this.options.observe?.({ op: 'get', outcome: 'miss', key });
        return null;
      }
      throw this.failure('read', key, timedOut(abortSignal, err));
    }
    const body = response.Body as unknown as Readable | undefined;
    let verdict: { bytes: Uint8Array } | { corrupt: string } | { oversize: string };
    try {
      verdict = await this.readChecked(response, body, abortSignal);
    } catch (err) {
      if (signal?.aborted) throw err;
      throw this.failure('read', key, timedOut(abortSignal, err));
    } finally {
      body?.destroy();
    }
    if ('bytes' in verdict) {
      this.options.observe?.({ op: 'get', outcome: 'hit', key });
      return verdict.bytes;
    }
    if ('oversize' in verdict) {
      this.options.observe?.({ op: 'get', outcome: 'oversize', key, detail: verdict.oversize });
      return null;
    }
    await this.evict(key, response.ETag);
    this.options.observe?.({ op: 'get', outcome: 'corrupt', key, detail: verdict.corrupt });
    return null;
  }

  /** Bounds the body by its metadata and the limit before allocating, reads at most that, then checks the CRC. */
  private async readChecked(
    response: GetObjectCommandOutput,
    body: Readable | undefined,
    signal: AbortSignal,
  ): Promise<{ bytes: Uint8Array } | { corrupt: string } | { oversize: string }> {
    const declared = parseLength(response.Metadata?.[LENGTH_META]);
    const crc = parseCrc(response.Metadata?.[CRC_META]);
    if (declared === null || crc === null) return { corrupt: 'no length or CRC-32 in its metadata' };
    if (declared > this.maxObjectBytes) return { oversize: `${declared} bytes is over the limit of ${this.maxObjectBytes}` };
    if (response.ContentLength !== undefined && response.ContentLength !== declared) {
      return { corrupt: `object holds ${response.ContentLength} bytes, its metadata says ${declared}` };
    }
    if (!body) return declared === 0 && crc === crc32(new Uint8Array(0)) ? { bytes: new Uint8Array(0) } : { corrupt: 'no body' };
    const bytes = new Uint8Array(declared);
    let filled = 0;
    // A body that stops coming is cut at the request's timeout (the stream then ends the loop with the error).
    const stop = () => body.destroy(signal.reason as Error);
    signal.addEventListener('abort', stop, { once: true });
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        if (filled + chunk.length > declared) return { corrupt: `body longer than the ${declared} bytes its metadata says` };
        bytes.set(chunk, filled);
        filled += chunk.length;
      }
    } finally {
      signal.removeEventListener('abort', stop);
    }
    signal.throwIfAborted();
    if (filled !== declared) return { corrupt: `body cut short: ${filled} of ${declared} bytes` };
    if (crc32(bytes) !== crc) return { corrupt: 'CRC-32 mismatch' };
    return { bytes };
  }

  /** Deletes a corrupt object unless a writer replaced it since it was read (another ETag). */
  private async evict(key: string, etag: string | undefined): Promise<void> {
    try {
      const now = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }), {
        abortSignal: this.signal(),
      });
      if (etag !== undefined && now.ETag !== etag) return;
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }), {
        abortSignal: this.signal(),
      });
    } catch {
      // Gone already, or the store is unreachable: the next read checks it again.
    }
  }

  async put(key: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    checkKey(key);
    const abortSignal = this.signal(signal);
    try {
      checkSize(this, key, bytes);
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.options.bucket,
          Key: this.objectKey(key),
          Body: bytes,
          ContentLength: bytes.length,
          ContentType: 'application/octet-stream',
          ContentMD5: createHash('md5').update(bytes).digest('base64'),
          Metadata: { [LENGTH_META]: String(bytes.length), [CRC_META]: crc32(bytes).toString(16).padStart(8, '0') },
        }),
        { abortSignal },
      );
    } catch (err) {
      if (signal?.aborted) throw err;
      const cause = timedOut(abortSignal, err);
      const refusal =
        cause instanceof StoreWriteError
          ? cause
          : new StoreWriteError(this.description, key, reasonOf(cause), this.explain(cause), { cause });
      this.options.observe?.({ op: 'put', outcome: 'refused', key, detail: refusal.message });
      throw refusal;
    }
    this.options.observe?.({ op: 'put', outcome: 'stored', key, bytes: bytes.length });
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }), {
        abortSignal: this.signal(),
      });
    } catch (err) {
      if (nameOf(err) === 'NoSuchKey') return;
      throw this.failure('delete', key, err);
    }
  }

  async stat(key: string): Promise<StoredObject | null> {
    checkKey(key);
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }), {
        abortSignal: this.signal(),
      });
      return { key, size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (statusOf(err) === 404 && nameOf(err) !== 'NoSuchBucket') return null;
      throw this.failure('read', key, err);
    }
  }

  async has(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    checkPrefix(prefix);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix: this.options.prefix + prefix, ContinuationToken: token }),
          { abortSignal: this.signal() },
        );
      } catch (err) {
        throw this.failure('list', '', err);
      }
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.options.prefix.length);
        // Objects that are not ours (keys we never make) are not listed.
        if (key === undefined || keyProblem(key)) continue;
        yield { key, size: object.Size ?? 0, modified: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async probe(): Promise<void> {
    const key = `_probe/${hostname()
      .replace(/[^A-Za-z0-9_-]/g, '_')
      .slice(0, 64)}-${process.pid}-${randomBytes(4).toString('hex')}`;
    const bytes = randomBytes(64);
    await this.put(key, bytes);
    try {
      const back = await this.get(key);
      if (!back || !Buffer.from(back).equals(bytes)) {
        throw new StoreError(this.description, 'read', key, 'other', 'the probe object read back differently from what was written');
      }
    } finally {
      await this.delete(key).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private objectKey(key: string): string {
    return this.options.prefix + key;
  }

  /** The caller's signal, bounded by the request timeout. */
  private signal(signal?: AbortSignal): AbortSignal {
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    return signal ? AbortSignal.any([signal, timeout]) : timeout;
  }

  private failure(operation: 'read' | 'delete' | 'list', key: string, err: unknown): StoreError {
    return new StoreError(this.description, operation, key, reasonOf(err), this.explain(err), { cause: err });
  }

  private explain(err: unknown): string {
    const reason = reasonOf(err);
    const message = (err as Error | undefined)?.message ?? String(err);
    const name = nameOf(err) ?? codeOf(err) ?? 'error';
    switch (reason) {
      case 'bucket-missing':
        return `the bucket "${this.options.bucket}" does not exist (${name})`;
      case 'credentials':
        return `the service refused the credentials from store.s3.access_key_env / secret_key_env (${name}: ${message})`;
      case 'permission':
        return `access denied (${name}: ${message})`;
      case 'unreachable':
        return `the endpoint cannot be reached (${name}: ${message})`;
      case 'timeout':
        return `no answer within ${this.options.timeoutMs / 1000} s (store.s3.timeout_s)`;
      default:
        return `${name}: ${message}`;
    }
  }
}

/** The request's own timeout, when it is what ended the request (whatever error the SDK or the socket gave). */
function timedOut(signal: AbortSignal, err: unknown): unknown {
  return signal.aborted ? signal.reason : err;
}

function nameOf(err: unknown): string | undefined {
  return (err as { name?: string } | undefined)?.name;
}

function codeOf(err: unknown): string | undefined {
  return (err as { code?: string } | undefined)?.code;
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function reasonOf(err: unknown): StoreErrorReason {
  const name = nameOf(err);
  if (name === 'NoSuchBucket') return 'bucket-missing';
  if (name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch' || name === 'InvalidToken' || name === 'ExpiredToken')
    return 'credentials';
  if (name === 'AccessDenied' || statusOf(err) === 403) return 'permission';
  if (name === 'EntityTooLarge') return 'too-large';
  if (name === 'TimeoutError' || name === 'AbortError' || name === 'RequestTimeout') return 'timeout';
  const code = codeOf(err);
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ECONNRESET' || code === 'EHOSTUNREACH')
    return 'unreachable';
  return 'other';
}

function parseLength(value: string | undefined): number | null {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return null;
  return Number(value);
}

function parseCrc(value: string | undefined): number | null {
  if (value === undefined || !/^[0-9a-f]{8}$/.test(value)) return null;
  return parseInt(value, 16);
}
