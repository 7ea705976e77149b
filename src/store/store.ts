/**
 * The artefact store: bytes by key, shared by every node of a service (a directory on a volume several pods
 * mount, or an S3-compatible bucket). What the store promises, whatever the backend:
 *
 * - `put` is atomic: a reader sees the old object, the new one, or none, never part of one; two writers of one
 *   key leave one whole object (the last).
 * - `get` returns only checked bytes: each object carries its length and CRC-32, and an object that does not
 *   match them (torn, truncated, corrupted) is deleted and reads as missing, so its maker makes it again.
 * - `get` allocates at most `maxObjectBytes` (checked before allocating); `put` refuses larger objects.
 * - A store that refuses a write says which store and why (`StoreWriteError`).
 *
 * Keys are paths of `/`-separated segments of letters, digits, `.`, `_`, `=` and `-` (no segment starts with a
 * dot or ends in `.blob`), at most `MAX_KEY_LENGTH` characters, the same on a disk and in a bucket.
 */

/** What `stat` and `list` say of an object (unchecked: only `get` reads and checks the bytes). */
export interface StoredObject {
  key: string;
  /** Bytes of the object itself. */
  size: number;
  modified: Date;
}

/** What happened on a read or a write, for metrics and logs. */
export type StoreEvent =
  | { op: 'get'; outcome: 'hit' | 'miss'; key: string }
  /** `corrupt`: deleted; `oversize`: larger than this node's maxObjectBytes, left for nodes that allow it. */
  | { op: 'get'; outcome: 'corrupt' | 'oversize'; key: string; detail: string }
  | { op: 'put'; outcome: 'stored'; key: string; bytes: number }
  | { op: 'put'; outcome: 'refused'; key: string; detail: string };

export type StoreObserver = (event: StoreEvent) => void;

export interface ArtefactStore {
  /** Which store this is, in words ("disk store at /data/fast3d", "s3 store s3://bucket/prefix at URL"). */
  readonly description: string;
  /** The largest object `get` reads and `put` writes. */
  readonly maxObjectBytes: number;
  /** The object's checked bytes, or null when it is missing, corrupt (then deleted) or over `maxObjectBytes`. */
  get(key: string, signal?: AbortSignal): Promise<Uint8Array | null>;
  /** Stores the bytes under the key, atomically, replacing any object there; throws `StoreWriteError`. */
  put(key: string, bytes: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** Removes the object if there is one. */
  delete(key: string): Promise<void>;
  /** Size and time of the object, or null; its bytes are not read (a corrupt one is found by `get`). */
  stat(key: string): Promise<StoredObject | null>;
  has(key: string): Promise<boolean>;
  /** Every object whose key starts with `prefix` (a plain string prefix, as in S3), in no promised order. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Writes, reads back and deletes a probe object: call at start-up, so a store that refuses writes is said then. */
  probe(): Promise<void>;
  close(): Promise<void>;
}

export const MAX_KEY_LENGTH = 512;
const SEGMENT = /^[A-Za-z0-9_=-][A-Za-z0-9._=-]{0,199}$/;
const PARTIAL_SEGMENT = /^([A-Za-z0-9_=-][A-Za-z0-9._=-]{0,199})?$/;
/** Object files on a disk end in it, so a key `a` (file `a.blob`) and a key `a/b` (folder `a`) can coexist. */
export const OBJECT_SUFFIX = '.blob';

/** A key or prefix that breaks the key rules: a programming error of the caller, never a user's input. */
export class StoreKeyError extends TypeError {
  override name = 'StoreKeyError';
}

export type StoreErrorReason =
  | 'read-only'
  | 'permission'
  | 'no-space'
  | 'too-large'
  | 'bucket-missing'
  | 'credentials'
  | 'unreachable'
  | 'timeout'
  | 'other';

/** A store that refused a write or could not be read: names the store, the key and why. */
export class StoreError extends Error {
  override name = 'StoreError';
  constructor(
    readonly store: string,
    readonly operation: 'read' | 'write' | 'delete' | 'list',
    readonly key: string,
    readonly reason: StoreErrorReason,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`${store} could not ${operation} ${key ? `"${key}"` : 'its objects'}: ${detail}`, options);
  }
}

/** A refused write: the job that made the bytes fails with this message. */
export class StoreWriteError extends StoreError {
  override name = 'StoreWriteError';
  constructor(store: string, key: string, reason: StoreErrorReason, detail: string, options?: { cause?: unknown }) {
    super(store, 'write', key, reason, detail, options);
  }
}

/** Throws StoreKeyError unless `key` follows the key rules. */
export function checkKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) throw new StoreKeyError(`store key ${JSON.stringify(key.slice(0, 80))}: ${problem}`);
}

export function keyProblem(key: string): string | null {
  if (typeof key !== 'string' || key.length === 0) return 'empty';
  if (key.length > MAX_KEY_LENGTH) return `longer than ${MAX_KEY_LENGTH} characters`;
  for (const segment of key.split('/')) {
    if (!SEGMENT.test(segment)) {
      return 'each "/"-separated part must be 1-200 letters, digits, ".", "_", "=" or "-", not starting with "."';
    }
    if (segment.endsWith(OBJECT_SUFFIX)) return `no part may end in "${OBJECT_SUFFIX}"`;
  }
  return null;
}

/** A list prefix: whole key parts, then the start of one (possibly empty): `jobs/`, `jobs/ab`, ``. */
export function checkPrefix(prefix: string): void {
  const parts = typeof prefix === 'string' && prefix.length <= MAX_KEY_LENGTH ? prefix.split('/') : null;
  const last = parts?.pop();
  if (!parts?.every((part) => SEGMENT.test(part)) || !PARTIAL_SEGMENT.test(last ?? '')) {
    throw new StoreKeyError(
      `store prefix ${JSON.stringify(String(prefix).slice(0, 80))}: whole key parts separated by single "/", then the start of a part`,
    );
  }
}

/** Refuses an object over the bound before anything is written. */
export function checkSize(store: ArtefactStore, key: string, bytes: Uint8Array): void {
  if (bytes.length > store.maxObjectBytes) {
    throw new StoreWriteError(
      store.description,
      key,
      'too-large',
      `${bytes.length} bytes is over the store's limit of ${store.maxObjectBytes} (store.max_object_mb)`,
    );
  }
}
