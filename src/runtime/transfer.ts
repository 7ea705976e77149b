/**
 * Handing typed arrays to and from worker threads without copying them twice. Posting a view copies its whole
 * buffer (a GLB cut from the GPU worker's parts would take the PLY beside it along), so what is handed over is
 * either a copy of its own or a buffer the sender no longer needs.
 */

/** Every typed array in a value: an image's pixels, a cloud's columns, a mesh's arrays, each level of a game mesh. */
function viewsOf(value: unknown, into: ArrayBufferView[], depth: number): ArrayBufferView[] {
  if (!value || typeof value !== 'object' || depth > 8) return into;
  if (ArrayBuffer.isView(value)) into.push(value);
  else for (const item of Array.isArray(value) ? value : Object.values(value)) viewsOf(item, into, depth + 1);
  return into;
}

/** The buffers of a value's typed arrays that can be handed over whole (a view into a larger buffer is copied). */
export function transferablesOf(value: unknown): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const v of viewsOf(value, [], 0)) {
    if (v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer) buffers.add(v.buffer);
  }
  return [...buffers];
}

const isPlain = (value: object): boolean => {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
};

/**
 * A copy of a value (plain objects, arrays, typed arrays) whose typed arrays each have a buffer of their own, with
 * those buffers to transfer: the caller keeps its own arrays, and nothing beside them travels.
 */
export function ownCopy<T>(value: T): { value: T; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = [];
  const copy = (v: unknown, depth: number): unknown => {
    if (!v || typeof v !== 'object' || depth > 8) return v;
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
      // A Buffer's slice() is a view of the same memory, not a copy: it becomes a Uint8Array of its own.
      const own = Buffer.isBuffer(v) ? new Uint8Array(v) : (v as unknown as { slice(): ArrayBufferView }).slice();
      transfer.push(own.buffer as ArrayBuffer);
      return own;
    }
    if (Array.isArray(v)) return v.map((item) => copy(item, depth + 1));
    if (!isPlain(v)) return v;
    return Object.fromEntries(Object.entries(v).map(([k, item]) => [k, copy(item, depth + 1)]));
  };
  return { value: copy(value, 0) as T, transfer };
}
