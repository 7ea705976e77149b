/**
 * The cluster's costs and scaling, on a Redis of the bench's own (Debian's redis-server on a free loopback port):
 *
 * - queue overhead: from putting a job on the BullMQ queue to a worker starting it (medians; target p50 <= 10 ms);
 * - events across nodes: from a worker's event to the api node's reader of the job's events (target <= 50 ms);
 * - throughput with 1, 2 and 4 worker processes (`fast3d serve --role worker`, each with a fake GPU worker of its
 *   own that makes the picture and whose image-to-3d takes a fixed 2 s) behind one api node: jobs per second, and
 *   the ratio to N times one worker's rate (target >= 0.9), after one job per worker to warm it up. The GPU part is the fake's; the rest of each job
 *   (matting, validation, encoding, the api node's check) runs on this machine's cores, which all the nodes
 *   share, as separate GPU pods would not.
 *
 *   npm run bench -- cluster        (BENCH_JOBS_PER_WORKER=8, BENCH_WORKERS=1,2,4, BENCH_RUNS=3: the median run)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { stringify } from 'yaml';
import { RedisJobs } from '../src/runtime/cluster/jobs.js';
import { JobQueue } from '../src/runtime/cluster/queue.js';
import { JobRegistry } from '../src/runtime/jobs.js';
import type { ArtefactStore } from '../src/store/store.js';
import { freePort } from '../test/helpers/ports.js';
import { startRedis } from '../test/helpers/redis.js';
import { median } from './stats.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const JOBS_PER_WORKER = Number(process.env.BENCH_JOBS_PER_WORKER ?? 8);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const WORKERS = (process.env.BENCH_WORKERS ?? '1,2,4').split(',').map(Number);
const GPU_SECONDS = 2;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** From add to the processor's start, one job at a time (an idle worker waiting, as in a quiet cluster). */
async function queueOverhead(url: string, jobs: number): Promise<number[]> {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new JobQueue(redis, {
    name: 'bench-overhead',
    limits: { contract: 1000, interactive: 1000, background: 1000 },
    attempts: 1,
    lockMs: 30_000,
    retryAfterS: 1,
  });
  const started = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  queue.work(async (_job, id) => {
    started.set(id, performance.now());
    waiters.get(id)?.();
    return { kind: 'declined', preset: 'x', cache: 'miss', report: null, artefacts: [] };
  }, 1);
  const delays: number[] = [];
  for (let i = 0; i < jobs + 5; i++) {
    const id = `overhead-${i}`;
    const began = new Promise<void>((resolve) => waiters.set(id, resolve));
    const at = performance.now();
    await queue.add({
      request: { id, task: { kind: 'text', prompt: 'x' }, seed: 1, priority: 'interactive', wants: [{ format: 'ply' }], title: 'x' },
      from: 'bench',
    });
    await began;
    // The first few warm BullMQ's scripts and connections.
    if (i >= 5) delays.push(started.get(id)! - at);
  }
  await queue.close(true);
  redis.disconnect();
  return delays;
}

/** From a worker's event (its local registry) to the api node's reader, through Redis, one stage event at a time. */
async function eventLatency(url: string, events: number): Promise<number[]> {
  const nothing = {} as ArtefactStore;
  const connect = () => new Redis(url, { maxRetriesPerRequest: null });
  const [a, aSub, w, wSub] = [connect(), connect(), connect(), connect()];
  const options = { prefix: 'bench-events:', retentionMs: 60_000, keep: 100 };
  const apiSide = new RedisJobs(a, aSub, nothing, options);
  const workerSide = new RedisJobs(w, wSub, nothing, options);
  const local = new JobRegistry({ keep: 10, retentionMs: 60_000 });
  const id = `events-${Date.now()}`;
  const handle = local.create({ id, priority: 'interactive', title: 'x', task: 'text', seed: 1 });
  await apiSide.create(local.get(id)!);
  const mirrored = workerSide.mirror(id, local, 'bench');
  const delays: number[] = [];
  const seen: number[] = [];
  let emitted = 0;
  const reader = (async () => {
    for await (const event of apiSide.events(id)) {
      if (event.type === 'stage') seen.push(performance.now());
      if (event.type === 'end') return;
    }
  })();
  handle.started();
  for (let i = 0; i < events + 3; i++) {
    const at = performance.now();
    handle.progress.stageStarted('text_to_image', i);
    emitted++;
    while (seen.length < emitted) await new Promise((r) => setTimeout(r, 1));
    if (i >= 3) delays.push(seen[emitted - 1] - at);
  }
  handle.end('done');
  await mirrored;
  await reader;
  for (const c of [a, aSub, w, wSub]) c.disconnect();
  return delays;
}

interface Proc {
  child: ChildProcess;
  url: string;
}

/** CPU seconds a process has used (user and system, from /proc; Linux's 100 ticks a second). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

function spawnNode(args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<Proc & { out: () => string }> {
  const child = spawn(args[0], args.slice(1), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')} did not start:\n${out.slice(-1000)}`)), 90_000);
    const check = setInterval(() => {
      const m = ready.exec(out);
      if (!m) return;
      clearInterval(check);
      clearTimeout(timer);
      resolve({ child, url: `http://127.0.0.1:${m[1]}`, out: () => out });
    }, 50);
    child.once('exit', (code) => {
      clearInterval(check);
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}:\n${out.slice(-1000)}`));
    });
  });
}

async function untilOk(url: string): Promise<void> {
  for (let i = 0; i < 900; i++) {
    if (
      (await fetch(`${url}/health`).then(
        (r) => r.status,
        () => 0,
      )) === 200
    )
      return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never became ready`);
}

/** One timed run: its jobs per second, and the CPU seconds each job took of this machine (all processes). */
interface Run {
  rate: number;
  seconds: number;
  jobs: number;
  cpuPerJob: number;
}

/** Runs through an api node and `n` worker nodes, each with a fake GPU worker of its own, after a warm-up. */
async function throughput(redisUrl: string, n: number): Promise<Run[]> {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-bench-cluster-'));
  const procs: Proc[] = [];
  try {
    const name = `bench${n}-${Date.now()}`;
    const base = (port: number, gpu?: string) => ({
      server: { host: '127.0.0.1', port },
      log: { level: 'info', format: 'json' },
      cache: { enabled: false },
      queue: { backend: 'bullmq', redis_url: redisUrl, name },
      store: { backend: 'disk', directory: join(dir, 'store') },
      pipeline: { image_size: 128, retries: 0 },
      runtime: { pipeline_concurrency: 1, queue_length: 64, interactive_queue_length: 64 },
      render: { threads: 1 },
      ...(gpu && {
        text_to_image: { backend: 'gpu-worker', gpu_worker: { url: gpu, poll_interval_s: 0.2, size: 256 } },
        image_to_3d: { backend: 'gpu-worker', gpu_worker: { url: gpu, poll_interval_s: 0.2 } },
      }),
    });
    const write = (file: string, config: unknown) => {
      const path = join(dir, file);
      writeFileSync(path, stringify(config));
      return path;
    };
    const starts = [];
    for (let i = 0; i < n; i++) {
      const gpuPort = await freePort();
      starts.push(
        (async () => {
          const gpu = await spawnNode(
            [
              'sh',
              'scripts/python.sh',
              'workers/gpu/worker.py',
              '--fake',
              '--fake-stage-seconds',
              String(GPU_SECONDS / 4),
              '--port',
              String(gpuPort),
            ],
            new RegExp(`(${gpuPort})`),
          );
          procs.push(gpu);
          const worker = await spawnNode(
            [
              process.execPath,
              '--import',
              'tsx',
              'src/cli.ts',
              'serve',
              '--role',
              'worker',
              '--config',
              write(`worker-${i}.yaml`, base(0, `http://127.0.0.1:${gpuPort}`)),
            ],
            /"port":(\d+)[^\n]*"msg":"listening"/,
          );
          procs.push(worker);
          await untilOk(worker.url);
        })(),
      );
    }
    const api = await spawnNode(
      [process.execPath, '--import', 'tsx', 'src/cli.ts', 'serve', '--role', 'api', '--config', write('api.yaml', base(0))],
      /"port":(\d+)[^\n]*"msg":"listening"/,
    );
    procs.push(api);
    await Promise.all(starts);
    await untilOk(api.url);
    const generate = (count: number, tag: string) =>
      Promise.all(
        Array.from({ length: count }, (_, i) =>
          fetch(`${api.url}/generate/`, {
            method: 'POST',
            body: new URLSearchParams({ prompt: `a bench crate ${tag} ${n}-${i}`, seed: String(i) }),
          }).then((r) => r.status),
        ),
      );
    // One job per worker first: a node's first job loads its stages (about a second of CPU), which is start-up,
    // not throughput.
    await generate(n, 'warm-up');
    const jobs = JOBS_PER_WORKER * n;
    const cpu = () => procs.reduce((sum, p) => sum + cpuSeconds(p.child.pid), 0);
    const runs: Run[] = [];
    for (let run = 0; run < RUNS; run++) {
      const cpuBefore = cpu();
      const began = performance.now();
      const answers = await generate(jobs, `timed ${run}`);
      const seconds = (performance.now() - began) / 1000;
      const failed = answers.filter((s) => s !== 200);
      if (failed.length) throw new Error(`${failed.length} of ${jobs} jobs did not answer 200: ${failed.join(', ')}`);
      runs.push({ rate: jobs / seconds, seconds, jobs, cpuPerJob: (cpu() - cpuBefore) / jobs });
    }
    return runs;
  } finally {
    for (const p of procs.reverse()) p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(
    `machine: ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const redis = await startRedis();
  try {
    const overhead = await queueOverhead(redis.url, 50);
    console.log(
      `cluster: queue overhead, add to a waiting worker's start (50 jobs): p50 ${median(overhead).toFixed(1)} ms, p90 ${percentile(overhead, 90).toFixed(1)} ms  target p50 <= 10 ms ${median(overhead) <= 10 ? 'MET' : 'MISSED'}`,
    );
    const events = await eventLatency(redis.url, 50);
    console.log(
      `cluster: a worker's event to the api node's reader (50 events): p50 ${median(events).toFixed(1)} ms, p90 ${percentile(events, 90).toFixed(1)} ms  target <= 50 ms ${median(events) <= 50 ? 'MET' : 'MISSED'}`,
    );
    let one: number | null = null;
    for (const n of WORKERS) {
      const runs = await throughput(redis.url, n);
      const { rate, seconds, jobs, cpuPerJob } = [...runs].sort((a, b) => a.rate - b.rate)[Math.floor(runs.length / 2)];
      one ??= n === 1 ? rate : null;
      const ratio = one === null ? null : rate / (n * one);
      console.log(
        `cluster: ${n} worker(s), ${jobs} jobs of ${GPU_SECONDS} s of fake GPU each, median of ${runs.length} runs: ${seconds.toFixed(1)} s, ${rate.toFixed(3)} jobs/s (runs: ${runs.map((r) => r.rate.toFixed(3)).join(', ')}), ${cpuPerJob.toFixed(2)} s of this machine's CPU a job (all processes)${ratio === null ? '' : `, ${ratio.toFixed(2)} x ${n} x one worker's rate  target >= 0.9 ${ratio >= 0.9 ? 'MET' : 'MISSED'}`}`,
      );
    }
  } finally {
    await redis.stop();
  }
}

await main();
