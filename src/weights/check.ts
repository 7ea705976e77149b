/**
 * Is every model file there and intact? One answer for `npm run weights -- --check` and for the backends'
 * readiness, so /health and the command never disagree.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { readFile, stat, writeFile, rename } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { MANIFEST, type WeightFile } from './manifest.js';

/** A file some backend needs, with what is known about it. */
export interface ExpectedFile {
  /** Absolute path. */
  path: string;
  size: number | null;
  sha256: string | null;
  /** The manifest entry, when the file is one of ours (custom paths have none). */
  entry?: WeightFile;
}

export type FileState = 'ok' | 'missing' | 'wrong-size' | 'corrupt';

export interface FileStatus {
  path: string;
  state: FileState;
  /** One line for people: what is wrong and what to do. */
  detail: string;
  /** Digest computed during the check (checksum mode). */
  sha256?: string;
}

export type VerifyMode = 'checksum' | 'size';

/** Resolves a configured model path against the models folder (absolute paths stay as they are). */
export function modelPath(dir: string, path: string): string {
  return isAbsolute(path) ? path : resolve(dir, path);
}

/** The files at these absolute paths, with size and checksum from the manifest when the path is one of its targets. */
export function expectedFiles(dir: string, paths: string[], manifest: readonly WeightFile[] = MANIFEST): ExpectedFile[] {
  const root = resolve(dir);
  return paths.map((path) => {
    const entry = manifest.find((e) => resolve(root, e.target) === resolve(path));
    return { path: resolve(path), size: entry?.size ?? null, sha256: entry?.sha256 ?? null, entry };
  });
}

/** Every manifest file of the given models under `dir`. */
export function manifestFiles(dir: string, models?: readonly string[], manifest: readonly WeightFile[] = MANIFEST): ExpectedFile[] {
  const chosen = manifest.filter((e) => !models || models.includes(e.model));
  return expectedFiles(
    dir,
    chosen.map((e) => resolve(dir, e.target)),
    manifest,
  );
}

/** Cheap and synchronous (readiness runs it on every /health): the paths that do not exist. */
export function missingPaths(files: readonly ExpectedFile[]): string[] {
  return files.filter((f) => !existsSync(f.path)).map((f) => f.path);
}

/**
 * Digests of files whose published checksum is unknown, recorded at their first verified download
 * (trust on first download). Kept in the models folder next to the files.
 */
export const LOCK_FILE = 'weights.lock.json';

export type Lock = Record<string, { sha256: string; size: number }>;

export async function readLock(dir: string): Promise<Lock> {
  try {
    return JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as Lock;
  } catch {
    return {};
  }
}

export async function recordInLock(dir: string, path: string, digest: { sha256: string; size: number }): Promise<void> {
  const lock = await readLock(dir);
  lock[relative(resolve(dir), resolve(path))] = digest;
  const tmp = join(dir, `${LOCK_FILE}.tmp`);
  await writeFile(tmp, `${JSON.stringify(lock, null, 2)}\n`);
  await rename(tmp, join(dir, LOCK_FILE));
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Checks each file: present, right size, right checksum (published, else the one recorded at download). */
export async function checkFiles(files: readonly ExpectedFile[], options: { dir: string; verify: VerifyMode }): Promise<FileStatus[]> {
  const lock = await readLock(options.dir);
  const out: FileStatus[] = [];
  for (const file of files) {
    let size: number;
    try {
      const info = await stat(file.path);
      if (!info.isFile()) {
        out.push({ path: file.path, state: 'missing', detail: `${file.path} is not a file` });
        continue;
      }
      size = info.size;
    } catch {
      out.push({ path: file.path, state: 'missing', detail: `${file.path} not found (${howToGet(file, options.dir)})` });
      continue;
    }
    const recorded = lock[relative(resolve(options.dir), file.path)];
    const expectedSize = file.size ?? recorded?.size ?? null;
    if (expectedSize !== null && size !== expectedSize) {
      out.push({
        path: file.path,
        state: 'wrong-size',
        detail: `${file.path} has ${size} bytes, expected ${expectedSize} (${howToGet(file, options.dir)})`,
      });
      continue;
    }
    if (options.verify === 'size') {
      out.push({ path: file.path, state: 'ok', detail: `${file.path} ok (${size} bytes, checksum not verified)` });
      continue;
    }
    const expected = file.sha256 ?? recorded?.sha256 ?? null;
    const actual = await sha256File(file.path);
    if (expected && actual !== expected) {
      out.push({
        path: file.path,
        state: 'corrupt',
        sha256: actual,
        detail: `${file.path} is corrupt: sha256 ${actual}, expected ${expected} (${howToGet(file, options.dir)})`,
      });
      continue;
    }
    const how = file.sha256 ? 'published sha256' : recorded ? 'sha256 recorded at download' : 'no known sha256 to compare';
    out.push({ path: file.path, state: 'ok', sha256: actual, detail: `${file.path} ok (${size} bytes, ${how})` });
  }
  return out;
}

/** One sentence naming every file that is not ok, or null when all are. */
export function describeProblems(statuses: readonly FileStatus[]): string | null {
  const bad = statuses.filter((s) => s.state !== 'ok');
  return bad.length ? bad.map((s) => s.detail).join('; ') : null;
}

function howToGet(file: ExpectedFile, dir: string): string {
  if (file.entry?.producedBy)
    return `run: npm run weights, which makes it with: ${file.entry.producedBy.replaceAll('MODELS/', `${resolve(dir)}/`)}`;
  if (file.entry) return 'run: npm run weights';
  return 'this path is not in the weights manifest: put the file there yourself';
}
