/**
 * The disk store: one file per object under a directory, correct when several processes or pods share it (a
 * network volume). No node keeps an index in memory (another node may have written or deleted any object), so a
 * key's file is found by its name alone, `<directory>/<key>.blob`, and the object's length and CRC-32 travel in
 * the file, in a 24-byte header read (and bounded) before the body is allocated.
 *
 * A write goes to a temp file of its own in the key's folder (`.<name>.<pid>-<random>.tmp`: hidden, so never a
 * key), is flushed, then renamed over the key's file. The rename is atomic, so a reader opens the old file or the
 * new one, whole; two writers of one key each rename a whole file and the last one stays. A writer killed
 * mid-write leaves only its temp file, which a sweep deletes once older than `tempMaxAgeMs` (a live write never
 * takes that long). A file whose header or CRC does not match (a copy cut short, a disk fault) reads as missing
 * and is deleted, unless it was replaced meanwhile.
 */
import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, opendir, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  type ArtefactStore,
  checkKey,
  checkPrefix,
  checkSize,
  OBJECT_SUFFIX,
  StoreError,
  type StoreErrorReason,
  type StoredObject,
  type StoreObserver,
  StoreWriteError,
} from './store.js';

export interface DiskStoreOptions {
  directory: string;
  maxObjectBytes: number;
  /** Temp files older than this are a dead writer's and are deleted by the sweep. */
  tempMaxAgeMs: number;
  observe?: StoreObserver;
  now?: () => number;
}

const MAGIC = 0x53443346; // "F3DS" read as a little-endian u32
const VERSION = 1;
export const HEADER_BYTES = 24;
const TEMP_FILE = /^\..+\.tmp$/;
/** How many times a write starts again when a concurrent delete removed its (empty) folder under it. */
const FOLDER_RACE_RETRIES = 3;

export class DiskStore implements ArtefactStore {
  readonly description: string;
  readonly maxObjectBytes: number;
  private readonly root: string;
  private sweeper?: NodeJS.Timeout;
  private readonly now: () => number;

  private constructor(private readonly options: DiskStoreOptions) {
    this.root = resolve(options.directory);
    this.description = `disk store at ${this.root}`;
    this.maxObjectBytes = options.maxObjectBytes;
    this.now = options.now ?? Date.now;
  }

  /** Creates the directory if needed, then sweeps dead writers' temp files now and every `tempMaxAgeMs`. */
  static async open(options: DiskStoreOptions): Promise<DiskStore> {
    const store = new DiskStore(options);
    try {
      await mkdir(store.root, { recursive: true });
      if (!(await stat(store.root)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    } catch (err) {
      throw new StoreError(store.description, 'write', '', reasonOf(err), `cannot use ${store.root} as its directory: ${describe(err)}`, {
        cause: err,
      });
    }
    const sweep = () => void store.sweep().catch(() => undefined);
    sweep();
    store.sweeper = setInterval(sweep, Math.max(1000, options.tempMaxAgeMs));
    store.sweeper.unref();
    return store;
  }

  async get(key: string, signal?: AbortSignal): Promise<Uint8Array | null> {
    checkKey(key);
    const path = this.pathOf(key);
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      try {
        return await this.read(key, path);
      } catch (err) {
        // NFS: the file this client had resolved was replaced on the server; the name now holds the new one.
        if (codeOf(err) === 'ESTALE' && attempt === 0) continue;
        if (err instanceof StoreError) throw err;
        throw new StoreError(this.description, 'read', key, reasonOf(err), describe(err), { cause: err });
      }
    }
  }

  private async read(key: string, path: string): Promise<Uint8Array | null> {
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (err) {
      if (codeOf(err) !== 'ENOENT' && codeOf(err) !== 'ENOTDIR') throw err;
      this.options.observe?.({ op: 'get', outcome: 'miss', key });
      return null;
    }
    let opened: Stats;
    let verdict: { bytes: Uint8Array } | { corrupt: string } | { oversize: string };
    try {
      opened = await handle.stat();
      verdict = await this.readChecked(handle, opened.size);
    } finally {
      await handle.close();
    }
    if ('bytes' in verdict) {
      this.options.observe?.({ op: 'get', outcome: 'hit', key });
      return verdict.bytes;
    }
    if ('oversize' in verdict) {
      this.options.observe?.({ op: 'get', outcome: 'oversize', key, detail: verdict.oversize });
      return null;
    }
    await this.evict(path, opened);
    this.options.observe?.({ op: 'get', outcome: 'corrupt', key, detail: verdict.corrupt });
    return null;
  }

  /** Reads the header, bounds the body by it and by the limit before allocating, then checks length and CRC. */
  private async readChecked(
    handle: FileHandle,
    fileSize: number,
  ): Promise<{ bytes: Uint8Array } | { corrupt: string } | { oversize: string }> {
    if (fileSize < HEADER_BYTES) return { corrupt: `${fileSize} bytes is shorter than the header` };
    const header = Buffer.alloc(HEADER_BYTES);
    if ((await readFully(handle, header, 0)) < HEADER_BYTES) return { corrupt: 'header cut short' };
    const parsed = parseHeader(header);
    if (typeof parsed === 'string') return { corrupt: parsed };
    if (parsed.length > this.maxObjectBytes) return { oversize: `${parsed.length} bytes is over the limit of ${this.maxObjectBytes}` };
    if (fileSize !== HEADER_BYTES + parsed.length)
      return { corrupt: `file holds ${fileSize - HEADER_BYTES} bytes, header says ${parsed.length}` };
    const body = Buffer.allocUnsafe(parsed.length);
    const read = await readFully(handle, body, HEADER_BYTES);
    if (read !== parsed.length) return { corrupt: `read ${read} of ${parsed.length} bytes` };
    if (crc32(body) !== parsed.crc) return { corrupt: 'CRC-32 mismatch' };
    return { bytes: new Uint8Array(body.buffer, body.byteOffset, body.length) };
  }

  /** Deletes a corrupt file, unless another writer has renamed a new file over the name since it was opened. */
  private async evict(path: string, opened: Stats): Promise<void> {
    try {
      const now = await stat(path);
      if (now.ino === opened.ino && now.dev === opened.dev) await unlink(path);
    } catch {
      // Already gone or replaced: nothing to evict.
    }
  }

  async put(key: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    checkKey(key);
    try {
      checkSize(this, key, bytes);
    } catch (err) {
      this.options.observe?.({ op: 'put', outcome: 'refused', key, detail: (err as Error).message });
      throw err;
    }
    const path = this.pathOf(key);
    const folder = dirname(path);
    const temp = join(folder, `.${basename(path)}.${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    const header = makeHeader(bytes);
    for (let attempt = 0; ; attempt++) {
      try {
        signal?.throwIfAborted();
        await mkdir(folder, { recursive: true });
        const handle = await open(temp, 'wx', 0o644);
        try {
          await writeFully(handle, header, 0);
          await writeFully(handle, bytes, HEADER_BYTES);
          // On a shared volume the rename makes the file visible to other nodes: its bytes must be there first.
          await handle.datasync();
        } finally {
          await handle.close();
        }
        signal?.throwIfAborted();
        await rename(temp, path);
        this.options.observe?.({ op: 'put', outcome: 'stored', key, bytes: bytes.length });
        return;
      } catch (err) {
        await rm(temp, { force: true }).catch(() => undefined);
        if (signal?.aborted) throw err;
        if (codeOf(err) === 'ENOENT' && attempt < FOLDER_RACE_RETRIES) continue;
        const refusal = new StoreWriteError(this.description, key, reasonOf(err), describe(err), { cause: err });
        this.options.observe?.({ op: 'put', outcome: 'refused', key, detail: refusal.message });
        throw refusal;
      }
    }
  }

  async delete(key: string): Promise<void> {
    checkKey(key);
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return;
      throw new StoreError(this.description, 'delete', key, reasonOf(err), describe(err), { cause: err });
    }
    // Folders left empty go too (a write racing this recreates its folder); stops at the first that is not empty.
    for (let folder = dirname(path); folder !== this.root && folder.startsWith(this.root + sep); folder = dirname(folder)) {
      try {
        await rmdir(folder);
      } catch {
        break;
      }
    }
  }

  async stat(key: string): Promise<StoredObject | null> {
    checkKey(key);
    try {
      const st = await stat(this.pathOf(key));
      return { key, size: Math.max(0, st.size - HEADER_BYTES), modified: st.mtime };
    } catch (err) {
      if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return null;
      throw new StoreError(this.description, 'read', key, reasonOf(err), describe(err), { cause: err });
    }
  }

  async has(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    checkPrefix(prefix);
    // The folder that the prefix names whole; entries below it are filtered by the full prefix.
    const cut = prefix.lastIndexOf('/');
    const start = cut < 0 ? this.root : join(this.root, prefix.slice(0, cut));
    for await (const path of this.walk(start, 'objects')) {
      const key = relative(this.root, path).split(sep).join('/').slice(0, -OBJECT_SUFFIX.length);
      if (!key.startsWith(prefix)) continue;
      try {
        const st = await stat(path);
        yield { key, size: Math.max(0, st.size - HEADER_BYTES), modified: st.mtime };
      } catch {
        // Deleted while listing.
      }
    }
  }

  /** Deletes temp files older than `tempMaxAgeMs` (their writers are dead); returns how many. */
  async sweep(): Promise<number> {
    const before = this.now() - this.options.tempMaxAgeMs;
    let removed = 0;
    for await (const path of this.walk(this.root, 'temps')) {
      try {
        if ((await stat(path)).mtimeMs < before) {
          await unlink(path);
          removed++;
        }
      } catch {
        // Renamed into place or removed by another sweeper meanwhile.
      }
    }
    return removed;
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
    clearInterval(this.sweeper);
  }

  private pathOf(key: string): string {
    return join(this.root, ...key.split('/')) + OBJECT_SUFFIX;
  }

  /** Object files or temp files under a folder, depth first; hidden folders (not keys) are skipped. */
  private async *walk(folder: string, what: 'objects' | 'temps'): AsyncIterable<string> {
    let dir;
    try {
      dir = await opendir(folder);
    } catch (err) {
      if (codeOf(err) === 'ENOENT' || codeOf(err) === 'ENOTDIR') return;
      throw new StoreError(this.description, 'list', '', reasonOf(err), describe(err), { cause: err });
    }
    for await (const entry of dir) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.')) yield* this.walk(path, what);
      } else if (entry.isFile()) {
        if (what === 'temps' ? TEMP_FILE.test(entry.name) : !entry.name.startsWith('.') && entry.name.endsWith(OBJECT_SUFFIX)) yield path;
      }
    }
  }
}

function makeHeader(bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt8(VERSION, 4);
  header.writeBigUInt64LE(BigInt(bytes.length), 8);
  header.writeUInt32LE(crc32(bytes), 16);
  header.writeUInt32LE(crc32(header.subarray(0, 20)), 20);
  return header;
}

function parseHeader(header: Buffer): { length: number; crc: number } | string {
  if (header.readUInt32LE(0) !== MAGIC) return 'not an object file (no header)';
  if (header.readUInt32LE(20) !== crc32(header.subarray(0, 20))) return 'header CRC-32 mismatch';
  if (header.readUInt8(4) !== VERSION) return `object format ${header.readUInt8(4)} is not ${VERSION}`;
  const length = header.readBigUInt64LE(8);
  if (length > BigInt(Number.MAX_SAFE_INTEGER)) return 'length out of range';
  return { length: Number(length), crc: header.readUInt32LE(16) };
}

async function readFully(handle: FileHandle, into: Uint8Array, position: number): Promise<number> {
  let filled = 0;
  while (filled < into.length) {
    const { bytesRead } = await handle.read(into, filled, into.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled;
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, written, bytes.length - written, position + written);
    written += bytesWritten;
  }
}

function codeOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function reasonOf(err: unknown): StoreErrorReason {
  switch (codeOf(err)) {
    case 'EROFS':
      return 'read-only';
    case 'EACCES':
    case 'EPERM':
      return 'permission';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'no-space';
    default:
      return 'other';
  }
}

function describe(err: unknown): string {
  const code = codeOf(err);
  const words: Record<string, string> = {
    EROFS: 'the file system is read-only',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    ENOTDIR: 'a path part is not a directory',
  };
  const message = (err as Error | undefined)?.message ?? String(err);
  return code && words[code] ? `${words[code]} (${message})` : message;
}
