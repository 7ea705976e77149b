/** The one place seeds are derived: from the task's content, and for each retry. */
import { createHash } from 'node:crypto';

/** Largest seed accepted and produced (uint32). */
export const MAX_SEED = 0xffff_ffff;

/** A deterministic seed from the task's content (trimmed prompt text or image bytes). */
export function seedFromContent(content: string | Uint8Array): number {
  return createHash('sha256').update(content).digest().readUInt32LE(0);
}

/** Seed of attempt `attempt` (0 = the job's own seed). Mixing keeps retries far from the first seed. */
export function attemptSeed(seed: number, attempt: number): number {
  if (attempt === 0) return seed;
  const h = createHash('sha256').update(`fast3d-retry:${seed}:${attempt}`).digest();
  return h.readUInt32LE(0);
}
