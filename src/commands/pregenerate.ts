/**
 * `fast3d pregenerate PROMPTS.txt [--video] [--concurrency N] [--url URL]`: warms the result cache of a running
 * service from a prompt list.
 *
 * It drives the service over HTTP rather than building a pipeline in-process: the GPU belongs to the running
 * service (a second process would fight it for GPU memory and bypass its GPU lock and admission), the cache
 * index lives in that process (two writers would break the size bound), and going through the real route means
 * the cached entry is exactly the one a miner's request will hit (same parsing, seed derivation, key and
 * checks). It needs the service running; it says so when it is not.
 *
 * Progress is saved after every prompt to a state file (PROMPTS.txt.pregenerate.json by default), so a rerun
 * after an interruption skips what is done and retries what failed.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { integerFlag, parseCommandArgs } from './args.js';
import cliProgress from 'cli-progress';
import { ConfigError, loadConfig } from '../config/load.js';

export const summary = 'warm the result cache of a running service from a prompt list (--video, --concurrency N, --url URL)';

export type PromptStatus = 'ok' | 'cached' | 'declined' | 'failed';

export interface PromptResult {
  status: PromptStatus;
  /** Milliseconds the request took (last try). */
  ms: number;
  error?: string;
}

export interface PregenerateOptions {
  promptsFile: string;
  url: string;
  video: boolean;
  concurrency: number;
  statePath: string;
  /** Bearer token for services with auth enabled. */
  token?: string;
  /** Tries of one prompt while the service answers 503 (busy) before it counts as failed. */
  busyTries?: number;
  /** Longest wait between busy tries, in ms (the service's Retry-After is followed up to this). */
  maxBackoffMs?: number;
  /** Stops launching new prompts when aborted (Ctrl-C); prompts in flight finish and are saved. */
  signal?: AbortSignal;
  /** Where the progress bar goes (stderr by default). */
  progress?: NodeJS.WritableStream;
}

export interface PregenerateSummary {
  total: number;
  skipped: number;
  counts: Record<PromptStatus, number>;
  /** Median and slowest milliseconds of the prompts generated this run. */
  medianMs: number | null;
  maxMs: number | null;
  elapsedMs: number;
  interrupted: boolean;
  failures: { prompt: string; error: string }[];
}

interface State {
  version: 1;
  route: string;
  results: Record<string, PromptResult>;
}

const USAGE = 'usage: fast3d pregenerate PROMPTS.txt [--video] [--concurrency N] [--url URL] [--config FILE] [--state FILE]\n';

export async function run(argv: string[]): Promise<number> {
  const args = parseCommandArgs('pregenerate', USAGE, argv, {
    video: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '2' },
    url: { type: 'string' },
    config: { type: 'string', short: 'c' },
    state: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (typeof args === 'number') return args;
  const { values, target } = args;
  let concurrency: number;
  try {
    concurrency = integerFlag(values.concurrency, 'concurrency', 1, 64);
  } catch (err) {
    process.stderr.write(`fast3d pregenerate: ${(err as Error).message}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig({ path: values.config });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fast3d: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const host = ['0.0.0.0', '::'].includes(config.server.host) ? '127.0.0.1' : config.server.host;
  const url = values.url ?? `http://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`;
  const token = (config.auth.token_env && process.env[config.auth.token_env]) || config.auth.token || undefined;

  const controller = new AbortController();
  const onInterrupt = () => {
    process.stderr.write('\nfast3d pregenerate: interrupted; finishing prompts in flight and saving progress\n');
    controller.abort();
  };
  process.once('SIGINT', onInterrupt);
  try {
    const result = await pregenerate({
      promptsFile: target,
      url,
      video: values.video ?? false,
      concurrency,
      statePath: values.state ?? `${target}.pregenerate.json`,
      token,
      signal: controller.signal,
    });
    process.stdout.write(formatSummary(result));
    return result.interrupted ? 130 : result.counts.failed > 0 ? 1 : 0;
  } catch (err) {
    if (err instanceof PregenerateError) {
      process.stderr.write(`fast3d pregenerate: ${err.message}\n`);
      return 1;
    }
    throw err;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

export class PregenerateError extends Error {
  override name = 'PregenerateError';
}

/** Reads the prompt list: one prompt per line; blank lines and lines starting with # are skipped, duplicates once. */
export function readPrompts(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PregenerateError(`cannot read prompt list ${path}: ${(err as Error).message}`);
  }
  const seen = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    const prompt = line.trim();
    if (prompt && !prompt.startsWith('#')) seen.add(prompt);
  }
  return [...seen];
}

export async function pregenerate(options: PregenerateOptions): Promise<PregenerateSummary> {
  const started = performance.now();
  const prompts = readPrompts(options.promptsFile);
  const route = options.video ? '/generate_video/' : '/generate/';
  const base = options.url.replace(/\/+$/, '');
  await checkService(base, route, options.token);

  const state = loadState(options.statePath, route);
  const pending = prompts.filter((p) => {
    const done = state.results[promptId(p)];
    return !done || done.status === 'failed';
  });
  const skipped = prompts.length - pending.length;
  const counts: Record<PromptStatus, number> = { ok: 0, cached: 0, declined: 0, failed: 0 };
  const generatedMs: number[] = [];
  const failures: { prompt: string; error: string }[] = [];

  const bar = new cliProgress.SingleBar(
    {
      format:
        ' {bar} {value}/{total} | ok {ok} cached {cached} declined {declined} failed {failed} | {duration_formatted} eta {eta_formatted}',
      stream: options.progress ?? process.stderr,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(pending.length, 0, counts);

  let saving = Promise.resolve();
  const save = () => {
    saving = saving.then(() => saveState(options.statePath, state)).catch(() => undefined);
    return saving;
  };

  let next = 0;
  const worker = async () => {
    while (next < pending.length && !options.signal?.aborted) {
      const prompt = pending[next++];
      const result = await generateOne(base, route, prompt, options);
      state.results[promptId(prompt)] = result;
      counts[result.status]++;
      if (result.status === 'ok' || result.status === 'declined') generatedMs.push(result.ms);
      if (result.status === 'failed') failures.push({ prompt, error: result.error ?? 'failed' });
      void save();
      bar.increment(1, counts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, Math.max(1, pending.length)) }, worker));
  bar.stop();
  await save();

  generatedMs.sort((a, b) => a - b);
  return {
    total: prompts.length,
    skipped,
    counts,
    medianMs: generatedMs.length ? generatedMs[Math.floor(generatedMs.length / 2)] : null,
    maxMs: generatedMs.length ? generatedMs[generatedMs.length - 1] : null,
    elapsedMs: performance.now() - started,
    interrupted: options.signal?.aborted ?? false,
    failures,
  };
}

export function formatSummary(s: PregenerateSummary): string {
  const seconds = (ms: number | null) => (ms === null ? '-' : `${(ms / 1000).toFixed(2)} s`);
  const lines = [
    `${s.interrupted ? 'interrupted' : 'done'}: ${s.total} prompts, ${s.skipped} already done before this run`,
    `  ok (generated) ${s.counts.ok}   cached (already there) ${s.counts.cached}   declined ${s.counts.declined}   failed ${s.counts.failed}`,
    `  time: ${seconds(s.elapsedMs)} in all; per generated prompt median ${seconds(s.medianMs)}, slowest ${seconds(s.maxMs)}`,
    ...s.failures.slice(0, 10).map((f) => `  failed: ${JSON.stringify(f.prompt.slice(0, 80))}: ${f.error}`),
    ...(s.failures.length > 10 ? [`  ... and ${s.failures.length - 10} more failures`] : []),
    ...(s.counts.failed || s.interrupted
      ? ['  run the same command again to resume: finished prompts are skipped, failed ones retried']
      : []),
  ];
  return `${lines.join('\n')}\n`;
}

async function checkService(base: string, route: string, token?: string): Promise<void> {
  let health: Response;
  try {
    health = await fetch(`${base}/health`, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new PregenerateError(
      `no service answers at ${base} (${(err as Error).message}); start it with \`npm run fast3d -- serve\` or pass --url`,
    );
  }
  if (health.status !== 200) {
    const body = await health.text();
    throw new PregenerateError(`the service at ${base} is not ready (/health answered ${health.status}: ${body.slice(0, 200)})`);
  }
  // An empty form costs nothing: 400 means the route exists; 404 means this service has no such route.
  const probe = await fetch(`${base}${route}`, {
    method: 'POST',
    body: new URLSearchParams(),
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  if (probe.status === 404)
    throw new PregenerateError(`the service at ${base} has no ${route} route (video is not supported by that version)`);
  if (probe.status === 401)
    throw new PregenerateError(`the service at ${base} requires a bearer token: export the variable named in auth.token_env`);
}

async function generateOne(base: string, route: string, prompt: string, options: PregenerateOptions): Promise<PromptResult> {
  const tries = options.busyTries ?? 30;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  let last: PromptResult = { status: 'failed', ms: 0, error: 'not tried' };
  for (let attempt = 0; attempt < tries; attempt++) {
    const start = performance.now();
    try {
      const response = await fetch(`${base}${route}`, {
        method: 'POST',
        body: new URLSearchParams({ prompt }),
        // Background class: warming the cache never delays the miner's requests to the same service.
        headers: { 'X-Fast3d-Priority': 'background', ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}) },
      });
      const body = await response.arrayBuffer();
      const ms = Math.round(performance.now() - start);
      if (response.status === 200) return { status: response.headers.get('x-fast3d-cache') === 'hit' ? 'cached' : 'ok', ms };
      if (response.status === 204) return { status: 'declined', ms };
      const error = errorText(response.status, body);
      if (response.status !== 503) return { status: 'failed', ms, error };
      last = { status: 'failed', ms, error };
      const retryAfter = Number(response.headers.get('retry-after')) * 1000 || 1000;
      await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfter, maxBackoffMs)));
    } catch (err) {
      return { status: 'failed', ms: Math.round(performance.now() - start), error: (err as Error).message };
    }
  }
  return last;
}

function errorText(status: number, body: ArrayBuffer): string {
  const text = new TextDecoder().decode(body).slice(0, 300);
  try {
    return `${status}: ${(JSON.parse(text) as { error?: string }).error ?? text}`;
  } catch {
    return `${status}: ${text}`;
  }
}

function promptId(prompt: string): string {
  return createHash('sha256').update(prompt).digest('hex').slice(0, 32);
}

function loadState(path: string, route: string): State {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch {
    return { version: 1, route, results: {} };
  }
  try {
    const state = JSON.parse(raw) as State;
    if (state.version === 1 && state.route === route && state.results && typeof state.results === 'object') return state;
  } catch {
    // Unreadable state: start over rather than guess.
  }
  return { version: 1, route, results: {} };
}

/** Atomic: a reader (or the next run after a crash) sees the old state or the new one, never half of it. */
async function saveState(path: string, state: State): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state));
  await rename(tmp, path);
}
