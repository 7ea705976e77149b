/**
 * Renderer benchmarks (the targets of docs/rendering.md): the validator's 16 views at 518^2 of both fixtures,
 * one core's time per view with the WebAssembly kernel and with the scalar reference loops, a 96-frame 512^2
 * turntable of robocop.ply including encoding, and the peak memory of a 1088^2 turntable.
 * Prints medians over several runs; the pool is warmed first (worker start-up is reported separately).
 * BENCH_RUNS overrides the number of runs; BENCH_THREADS the worker count (default: one per core).
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { prepareCloud, Rasterizer, RenderPool, renderTurntable, VALIDATOR_EXTENT, validatorCameras, WHITE } from '../src/render/index.js';
import { configSchema } from '../src/config/schema.js';
import { decodePly } from '../src/splat/ply.js';
import { median } from './stats.js';

export const summary = 'validator views and turntables of the fixtures (medians; CPU renderer)';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const runs = Number(process.env.BENCH_RUNS ?? 5);
const threads = Number(process.env.BENCH_THREADS ?? 0);

function fixture(name: string): string {
  const path = resolve(root, '..', 'shared', 'fixtures', name);
  if (!existsSync(path)) throw new Error(`fixture ${name} not found at ${path} (expected ../shared/fixtures beside the repository)`);
  return path;
}

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const list = (values: number[]) => values.map((v) => Math.round(v)).join(', ');

export async function run(): Promise<void> {
  const pool = new RenderPool(threads);
  console.log(
    `machine: ${availableParallelism()} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ${pool.threads} render workers; ${runs} runs`,
  );
  try {
    const t0 = performance.now();
    await pool.renderAll(prepareCloud(decodePly(readFileSync(fixture('hamburger.ply')))), validatorCameras(pool.threads, 64), {
      background: WHITE,
      channels: 4,
    });
    console.log(`worker start-up and first tiny render: ${fmt(performance.now() - t0)}`);

    for (const name of ['hamburger.ply', 'robocop.ply']) {
      const cloud = decodePly(readFileSync(fixture(name)));
      const cameras = validatorCameras(16, 518);
      const totals: number[] = [];
      for (let i = 0; i <= runs; i++) {
        const start = performance.now();
        const prepared = prepareCloud(cloud, { extent: VALIDATOR_EXTENT }); // part of every call of renderValidatorViews
        await pool.renderAll(prepared, cameras, { background: WHITE, channels: 4 });
        if (i > 0) totals.push(performance.now() - start); // run 0 warms the JIT
      }
      const m = median(totals);
      console.log(
        `validator views 16 x 518^2, ${name} (${cloud.count.toLocaleString('en')} Gaussians): median ${fmt(m)} total = ${fmt(m / 16)} per view  [runs ms: ${list(totals)}]`,
      );
    }

    const robocop = decodePly(readFileSync(fixture('robocop.ply')));
    oneCore(robocop);
    const settings = { ...configSchema.parse({}).render, frames: 96 };
    const dir = await mkdtemp(join(tmpdir(), 'fast3d-bench-'));
    try {
      const times: number[] = [];
      for (let i = 0; i < Math.max(3, Math.ceil(runs / 2)); i++) {
        const start = performance.now();
        await renderTurntable(robocop, join(dir, `t${i}.mp4`), { ...settings, size: 512, pool });
        times.push(performance.now() - start);
      }
      console.log(
        `turntable 96 x 512^2 of robocop.ply, rendered + encoded (${settings.preset}, crf ${settings.crf}): median ${fmt(median(times))} = ${fmt(median(times) / 96)} per frame  [runs ms: ${list(times)}]`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await pool.close();
  }
  await peakMemory();
}

/** One core, in this thread: the WebAssembly kernel against the scalar reference loops, per validator view. */
function oneCore(cloud: ReturnType<typeof decodePly>): void {
  const prepared = prepareCloud(cloud, { extent: VALIDATOR_EXTENT });
  const cameras = validatorCameras(16, 518).slice(0, 15); // the 16th repeats the first
  const perView: Record<string, number> = {};
  for (const kernel of ['wasm', 'js'] as const) {
    const rasterizer = new Rasterizer(undefined, kernel);
    const times: number[] = [];
    for (let i = 0; i <= Math.max(3, Math.ceil(runs / 2)); i++) {
      const start = performance.now();
      for (const camera of cameras) rasterizer.render(prepared, camera, { background: WHITE, channels: 4 });
      if (i > 0) times.push((performance.now() - start) / cameras.length);
    }
    perView[kernel] = median(times);
  }
  console.log(
    `one core, robocop.ply validator views 518^2: kernel ${fmt(perView.wasm)} per view, scalar reference loops ${fmt(perView.js)} (${(perView.js / perView.wasm).toFixed(2)}x)`,
  );
}

/** Runs `fast3d turntable` at 1088^2 in a child process and samples the RSS of it and its ffmpeg every 10 ms. */
async function peakMemory(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fast3d-bench-rss-'));
  try {
    const args = [
      ...process.execArgv,
      join(root, 'src', 'cli.ts'),
      'turntable',
      fixture('robocop.ply'),
      '--out',
      join(dir, 'big.mp4'),
      '--size',
      '1088',
      '--frames',
      '96',
      '--json',
    ];
    if (threads) args.push('--threads', String(threads));
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    let peak = 0;
    const timer = setInterval(() => {
      peak = Math.max(peak, treeRss(child.pid!));
    }, 10);
    const code = await new Promise<number | null>((r) => child.on('close', r));
    clearInterval(timer);
    if (code !== 0) throw new Error(`turntable child exited with ${code}`);
    const line = JSON.parse(stdout.trim()) as { render_ms: number };
    console.log(
      `turntable 96 x 1088^2 of robocop.ply: peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB (node + workers + ffmpeg, sampled every 10 ms); render + encode ${fmt(line.render_ms)}`,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Resident bytes of a process and all its descendants, from /proc. */
function treeRss(pid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      /* process ended */
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop()!;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      /* process ended */
    }
    stack.push(...(children.get(p) ?? []));
  }
  return total;
}

// `npm run bench` runs each bench module as its own process.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
