/**
 * Makes the model files that are converted from another one rather than downloaded (the aesthetic predictor's
 * safetensors from its PyTorch state dict), so that a first start produces every file the checks need.
 * The converter runs with the GPU worker's Python (FAST3D_PYTHON, else scripts/python.sh's choice), which has
 * PyTorch; the file it writes is recorded in the lock file like any download without a published digest.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { ExpectedFile } from './check.js';

/** The project's root (this file is src/weights/ or dist/weights/). */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ProduceOptions {
  /** Models folder (weights.dir). */
  dir: string;
  /** The interpreter command; default: FAST3D_PYTHON, else `sh scripts/python.sh`. */
  python?: string[];
  /** Longest a conversion may take. */
  timeoutMs?: number;
}

export function workerPython(env: NodeJS.ProcessEnv = process.env): string[] {
  return env.FAST3D_PYTHON ? [env.FAST3D_PYTHON] : ['sh', resolve(ROOT, 'scripts/python.sh')];
}

/** Runs the converter of `file`; resolves with null when it wrote the file, else with what went wrong. */
export async function produceFile(file: ExpectedFile, options: ProduceOptions): Promise<string | null> {
  const produce = file.entry?.produce;
  if (!produce) return `${file.path} has no converter`;
  const [command, ...prefix] = options.python ?? workerPython();
  const args = [...prefix, resolve(ROOT, produce.script), resolve(options.dir, produce.input), file.path];
  return new Promise((done) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: options.timeoutMs ?? 600_000 });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-2000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (err) => done(`${command} could not be started to make ${file.path}: ${err.message}`));
    child.on('close', async (code, signal) => {
      if (code === 0) return done(null);
      // A half-written output must not pass for the real file.
      await rm(file.path, { force: true });
      const last = output.trim().split('\n').slice(-3).join(' | ');
      done(`making ${file.path} failed (${[command, ...args].join(' ')} exited ${code ?? signal}): ${last}`);
    });
  });
}
