/**
 * `fast3d weights [--config FILE] [--dir DIR] [--only isnet,clip,aesthetic] [--mirror URL] [--check] [--json]`:
 * downloads the model files the Node process loads (resumable, verified, atomic), or with --check says
 * exactly which are missing or corrupt: the files the config's backends need (--config, else FAST3D_CONFIG, else
 * the defaults, whose preview backends need none), or the models --only names.
 * --mirror fetches every file from URL/<target path> instead of its source (a copy on your own storage).
 * Files converted from another one (the aesthetic predictor's safetensors) are made once their source is
 * there, with the GPU worker's Python (--no-convert leaves them to be made by hand).
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import {
  checkFiles,
  manifestFiles,
  recordInLock,
  sha256File,
  type ExpectedFile,
  type FileStatus,
  type VerifyMode,
} from '../weights/check.js';
import { downloadFile } from '../weights/download.js';
import { manifestFor, type ModelName, type WeightFile } from '../weights/manifest.js';
import { produceFile } from '../weights/produce.js';
import { parseFlags } from './args.js';

export const summary = 'download the model files (ISNet, CLIP, aesthetic) or --check them';

export const usage = `usage: fast3d weights [--config FILE] [--dir DIR] [--only isnet,clip,aesthetic] [--mirror URL] [--check] [--json]

Downloads the model files the service loads (resumable, verified, atomic), or with --check says which are
missing or corrupt. It handles the files the config's backends need (--config FILE, else FAST3D_CONFIG, else
the defaults: preview backends, which need none), or the models --only names; --mirror fetches every file from
URL/<target path> instead of its source.
`;

const MODELS: readonly ModelName[] = ['isnet', 'clip', 'aesthetic'];

/** The models a config's backends load. */
export function modelsFor(config: Config): ModelName[] {
  const models: ModelName[] = [];
  if (config.matting.backend === 'isnet') models.push('isnet');
  if (config.validate.checks.includes('clip')) {
    models.push('clip');
    if (config.validate.clip.min_aesthetic > 0) models.push('aesthetic');
  }
  return models;
}

export interface WeightsDeps {
  /** The files to handle (default: the manifest at the config's CLIP revision). */
  manifest?: readonly WeightFile[];
  /** Interpreter for converters (default: the worker's Python). */
  python?: string[];
}

export async function run(argv: string[], deps: WeightsDeps = {}): Promise<number> {
  const { values } = parseFlags(
    'weights',
    argv,
    {
      config: { type: 'string', short: 'c' },
      dir: { type: 'string' },
      only: { type: 'string' },
      mirror: { type: 'string' },
      check: { type: 'boolean' },
      'no-convert': { type: 'boolean' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' },
    },
    false,
  );
  const config = loadConfig({ path: values.config });
  const dir = resolve(values.dir ?? config.weights.dir);
  let models: readonly string[] = modelsFor(config);
  if (values.only) {
    const only = values.only
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = only.filter((m) => !MODELS.includes(m as ModelName));
    if (unknown.length) {
      process.stderr.write(`fast3d weights: unknown model ${unknown.join(', ')} (known: ${MODELS.join(', ')})\n`);
      return 2;
    }
    models = only;
  }
  if (!models.length) {
    const source = values.config ?? (process.env.FAST3D_CONFIG || 'the default config');
    process.stdout.write(
      `nothing to ${values.check ? 'check' : 'fetch'}: ${source} runs matting "${config.matting.backend}" and validate.checks ${JSON.stringify(config.validate.checks)}, ` +
        "which load no model files (preview backends need none). For the GPU service's: --config configs/service.yaml, or --only isnet,clip,aesthetic\n",
    );
    return 0;
  }
  const manifest = deps.manifest ?? manifestFor({ clipRevision: config.weights.clip_revision });
  const files = manifestFiles(dir, models, manifest);

  if (values.check) {
    const statuses = await checkFiles(files, { dir, verify: config.weights.verify });
    print(statuses, Boolean(values.json));
    return statuses.every((s) => s.state === 'ok') ? 0 : 1;
  }

  // Only what is missing or fails its check is fetched again.
  const before = await checkFiles(files, { dir, verify: config.weights.verify });
  const pending = files.filter((_f, i) => before[i].state !== 'ok');
  const bars =
    !values.quiet && process.stderr.isTTY
      ? new cliProgress.MultiBar(
          {
            format: ' {bar} {percentage}% | {value}/{total} MB | {name}',
            hideCursor: true,
            clearOnComplete: false,
            stream: process.stderr,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  let failed = 0;
  for (const file of pending) {
    const entry = file.entry!;
    if (!entry.url) continue; // made by another tool: reported below
    const name = entry.target;
    const url = values.mirror
      ? `${values.mirror.replace(/\/+$/, '')}/${entry.target.split('/').map(encodeURIComponent).join('/')}`
      : entry.url;
    const bar = bars?.create(mb(entry.size ?? 0), 0, { name });
    if (!bars) process.stderr.write(`downloading ${name} from ${url}\n`);
    try {
      const digest = await downloadFile({ url, size: entry.size, sha256: entry.sha256 }, file.path, {
        retries: config.weights.retries,
        onProgress: (received, total) => {
          if (!bar) return;
          if (total !== null) bar.setTotal(mb(total));
          bar.update(mb(received));
        },
      });
      if (!entry.sha256) await recordInLock(dir, file.path, digest);
    } catch (err) {
      failed++;
      bars?.log(`${(err as Error).message}\n`);
      if (!bars) process.stderr.write(`${(err as Error).message}\n`);
    }
  }
  bars?.stop();
  if (!values['no-convert']) failed += await produceMissing(files, pending, dir, config.weights.verify, deps.python);
  const after = await checkFiles(files, { dir, verify: config.weights.verify });
  print(after, Boolean(values.json));
  return failed || after.some((s) => s.state !== 'ok') ? 1 : 0;
}

/** Makes each pending converted file whose source is in place and intact; returns how many could not be made. */
async function produceMissing(
  files: ExpectedFile[],
  pending: ExpectedFile[],
  dir: string,
  verify: VerifyMode,
  python?: string[],
): Promise<number> {
  let failed = 0;
  for (const file of pending) {
    const produce = file.entry?.produce;
    if (!produce) continue;
    const source = files.find((f) => f.entry?.target === produce.input);
    const [state] = source ? await checkFiles([source], { dir, verify }) : [];
    if (state?.state !== 'ok') {
      process.stderr.write(`cannot make ${file.path}: its source ${resolve(dir, produce.input)} is not there intact\n`);
      failed++;
      continue;
    }
    process.stderr.write(`making ${file.entry!.target} from ${produce.input}\n`);
    const problem = await produceFile(file, { dir, python });
    if (problem) {
      process.stderr.write(`${problem}\n`);
      failed++;
      continue;
    }
    // Recorded like a download without a published digest: later checks catch a changed file.
    await recordInLock(dir, file.path, { sha256: await sha256File(file.path), size: (await stat(file.path)).size });
  }
  return failed;
}

function print(statuses: FileStatus[], json: boolean): void {
  for (const s of statuses) {
    if (json) process.stdout.write(`${JSON.stringify(s)}\n`);
    else process.stdout.write(`${s.state === 'ok' ? 'ok     ' : s.state.toUpperCase().padEnd(7)} ${s.detail}\n`);
  }
}

function mb(bytes: number): number {
  return Math.round(bytes / 1e5) / 10;
}
