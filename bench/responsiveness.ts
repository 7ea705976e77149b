/**
 * Responsiveness under load: does the event loop keep answering while the service works? A real preview service
 * runs in a child process (configs/preview.yaml, cache off); this process keeps 8 preview generations in flight
 * and sends one 32 MiB urlencoded body, while it asks /ping every 20 ms. It prints /ping's latency (median, p99,
 * max) and the service's longest event-loop stall during the load (from /metrics), against the 100 ms targets,
 * and its own longest stall, which the /ping times include (it should be a few milliseconds).
 *
 *   npm run bench -- responsiveness        (BENCH_RUNS=3 by default; BENCH_FORMAT=glb makes them mesh jobs, and
 *                                          BENCH_FIELDS adds form fields to each, e.g. compression=draco&faces=20000)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startService } from './service.js';
import { median } from './stats.js';

const CONCURRENT_JOBS = Number(process.env.BENCH_JOBS ?? 8);
const BIG_BODY_MIB = Number(process.env.BENCH_BIG_MIB ?? 32);
/**
 * The hostile body, made once before any measurement: turning a 32 MiB string into bytes at send time held this
 * process's own event loop for about 250 ms, and every /ping in flight then counted it as the service's.
 */
const BIG_BODY = BIG_BODY_MIB > 0 ? Buffer.from(`prompt=${'a'.repeat(BIG_BODY_MIB * 1024 * 1024)}`) : null;
/** ply (default) or glb: mesh jobs also write and check a GLB per answer. */
const FORMAT = process.env.BENCH_FORMAT ?? 'ply';
/** More form fields for each generation (urlencoded): a mesh job's game options. */
const FIELDS = new URLSearchParams(process.env.BENCH_FIELDS ?? '');

const SERVICE_CONFIG = [
  'server: { host: 127.0.0.1, port: 0, body_limit_mb: 40 }',
  'cache: { enabled: false }',
  'runtime: { queue_length: 16 }',
  'text_to_image: { backend: preview }',
  'matting: { backend: keying }',
  'image_to_3d: { backend: inflate, inflate: { max_gaussians: 240000 } }',
  'validate: { checks: [gates] }',
];

/** Milliseconds /ping takes, node:http (one socket per request, so a slow answer never queues behind another). */
function ping(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const req = request(`${url}/ping`, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - start));
    });
    req.on('error', reject);
    req.end();
  });
}

function post(url: string, body: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/generate/`,
      {
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function metric(url: string, name: string): Promise<number | null> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name.replace(/[{}"]/g, (ch) => `\\${ch}`)} ([\\d.e+-]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** This process's own longest event-loop stall while it runs `work`: /ping times include it. */
async function ownStall<T>(work: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let longest = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last - 5);
    last = now;
  }, 5);
  try {
    const result = await work();
    return { result, stallMs: Math.max(longest, performance.now() - last - 5) };
  } finally {
    clearInterval(ticker);
  }
}

interface RunResult {
  p50: number;
  p99: number;
  max: number;
  stallMs: number | null;
  /** This process's own longest stall: a /ping answered meanwhile is read that much later. */
  ownStallMs: number;
  statuses: number[];
}

async function oneRun(url: string, run: number): Promise<RunResult> {
  await metric(url, 'fast3d_event_loop_stall_max_seconds'); // starts a fresh window
  const pings: number[] = [];
  const { result: statuses, stallMs: ownStallMs } = await ownStall(async () => {
    let loading = true;
    const pinger = (async () => {
      while (loading) {
        pings.push(await ping(url));
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const prompts = Array.from({ length: CONCURRENT_JOBS }, (_, i) =>
      post(
        url,
        new URLSearchParams({ prompt: `a red wooden chair ${run}-${i}`, format: FORMAT, ...Object.fromEntries(FIELDS) }).toString(),
      ),
    );
    // A text prompt far over the limit, as a hostile client sends it: it must be refused without stalling anyone.
    const big = BIG_BODY ? post(url, BIG_BODY) : Promise.resolve(400);
    const answered = await Promise.all([...prompts, big]);
    loading = false;
    await pinger;
    return answered;
  });
  const stall = await metric(url, 'fast3d_event_loop_stall_max_seconds');
  return {
    p50: median(pings),
    p99: percentile(pings, 99),
    max: Math.max(...pings),
    stallMs: stall === null ? null : stall * 1000,
    ownStallMs,
    statuses,
  };
}

async function main(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  console.log(
    `machine: ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (shared with other work: figures are noisy)`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-bench-responsiveness-'));
  const { url, child } = await startService(dir, SERVICE_CONFIG);
  try {
    await post(url, 'prompt=warm-up');
    const results = [];
    for (let run = 0; run < runs; run++) results.push(await oneRun(url, run));
    const statuses = results.flatMap((r) => r.statuses);
    console.log(
      `responsiveness: ${CONCURRENT_JOBS} concurrent preview generations (${FORMAT}${FIELDS.size ? `, ${FIELDS}` : ''}) plus one ${BIG_BODY_MIB} MiB urlencoded prompt, /ping every 20 ms, ${runs} runs:`,
    );
    console.log(
      `  answers: ${statuses.filter((s) => s === 200).length} x 200, ${statuses.filter((s) => s === 400).length} x 400, others: ${statuses.filter((s) => s !== 200 && s !== 400).join(', ') || 'none'}`,
    );
    const p99 = results.map((r) => r.p99);
    const stalls = results.map((r) => r.stallMs ?? NaN);
    console.log(
      `  /ping median ${median(results.map((r) => r.p50)).toFixed(1)} ms; p99 median ${median(p99).toFixed(1)} ms (runs: ${p99.map((v) => v.toFixed(1)).join(', ')}); worst ${Math.max(...results.map((r) => r.max)).toFixed(1)} ms  target p99 <= 100 ms ${median(p99) <= 100 ? 'MET' : 'MISSED'}`,
    );
    console.log(
      `  longest event-loop stall: median ${median(stalls).toFixed(1)} ms (runs: ${stalls.map((v) => v.toFixed(1)).join(', ')})  target <= 100 ms ${median(stalls) <= 100 ? 'MET' : 'MISSED'}`,
    );
    console.log(
      `  this process's own longest stall (inside the /ping times): median ${median(results.map((r) => r.ownStallMs)).toFixed(1)} ms`,
    );
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
