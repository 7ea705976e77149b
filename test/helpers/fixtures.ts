import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodePly } from '../../src/splat/ply.js';
import type { GaussianCloud } from '../../src/splat/cloud.js';

/** Fixtures live beside the repository, in ../shared/fixtures. */
export function fixturePath(name: string): string {
  const path = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../shared/fixtures', name);
  if (!existsSync(path)) throw new Error(`fixture ${name} not found at ${path}: the tests expect ../shared/fixtures beside the repository`);
  return path;
}

export function loadFixtureCloud(name: string): GaussianCloud {
  return decodePly(new Uint8Array(readFileSync(fixturePath(name))));
}
