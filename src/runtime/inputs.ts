/**
 * The input store: the images requests carry, by key, from the moment a request is built until every job that
 * names it has ended. An image is checked and decoded once, when its request is built (within the memory budget
 * of decoded images); its pixels stay here for the job that runs in this process, and its bytes can be read back
 * by key and decoded again where they are not held.
 */
import { createHash } from 'node:crypto';
import type { RgbaImage } from '../image/rgba.js';

export interface InputStore {
  /**
   * Holds an image's bytes and its decoded pixels under a key named by their digest; `release` gives back what
   * the pixels took of the memory budget once nothing holds them. Each put is one hold: drop it once.
   */
  put(bytes: Uint8Array, image: RgbaImage, release: () => void): Promise<string>;
  /** The decoded image of a key: the pixels held here, or its bytes read back and decoded. */
  image(key: string): Promise<RgbaImage>;
  /** One hold of the key is over; the image goes when the last one is. */
  drop(key: string): void;
}

export class UnknownInputError extends Error {
  override name = 'UnknownInputError';
}

/** The key of an image's bytes: the same image sent twice is held once. */
export function inputKey(bytes: Uint8Array): string {
  return `inputs/${createHash('sha256').update(bytes).digest('hex')}`;
}

interface Held {
  bytes: Uint8Array;
  image: RgbaImage;
  holds: number;
  release: () => void;
}

/** The input store of one process: images held in memory while a request or a job holds them. */
export class MemoryInputs implements InputStore {
  private readonly held = new Map<string, Held>();

  /** Images held now. */
  get size(): number {
    return this.held.size;
  }

  async put(bytes: Uint8Array, image: RgbaImage, release: () => void): Promise<string> {
    return this.hold(bytes, image, release);
  }

  /** Holds the image here and returns its key (synchronously: what put does, for stores built on this one). */
  hold(bytes: Uint8Array, image: RgbaImage, release: () => void): string {
    const key = inputKey(bytes);
    const entry = this.held.get(key);
    if (entry) {
      entry.holds++;
      // The same image twice: its pixels are held once, and the second reservation given back at once.
      release();
    } else {
      this.held.set(key, { bytes, image, holds: 1, release });
    }
    return key;
  }

  async image(key: string): Promise<RgbaImage> {
    const entry = this.held.get(key);
    if (!entry) throw new UnknownInputError(`no input image ${key} is held here`);
    return entry.image;
  }

  /** The bytes of a held key (what a shared store would read back), or null. */
  bytes(key: string): Uint8Array | null {
    return this.held.get(key)?.bytes ?? null;
  }

  drop(key: string): void {
    const entry = this.held.get(key);
    if (!entry || --entry.holds > 0) return;
    this.held.delete(key);
    entry.release();
  }
}

/**
 * The input store of a cluster: an image is held here like MemoryInputs does, and its bytes are also written to
 * the shared store under its key, so the worker that runs its job, on any node, reads and decodes them there.
 */
export class StoredInputs implements InputStore {
  private readonly local = new MemoryInputs();

  constructor(
    private readonly store: { get(key: string): Promise<Uint8Array | null>; put(key: string, bytes: Uint8Array): Promise<void> },
    private readonly decode: (bytes: Uint8Array) => Promise<RgbaImage>,
  ) {}

  async put(bytes: Uint8Array, image: RgbaImage, release: () => void): Promise<string> {
    const key = this.local.hold(bytes, image, release);
    try {
      await this.store.put(key, bytes);
    } catch (err) {
      this.local.drop(key);
      throw err;
    }
    return key;
  }

  async image(key: string): Promise<RgbaImage> {
    if (this.local.bytes(key)) return this.local.image(key);
    const bytes = await this.store.get(key);
    if (!bytes) throw new UnknownInputError(`the input image ${key} is not in the shared store`);
    return this.decode(bytes);
  }

  drop(key: string): void {
    this.local.drop(key);
  }
}
