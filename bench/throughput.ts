/**
 * Throughput bench: pipelining efficiency, cache-hit latency and orchestration overhead per job, through the
 * real service (compose + @hono/node-server on 127.0.0.1). GPU stages are fakes declared `gpu: true` that
 * wait a fixed time (so they take the GPU lock like real GPU backends); every CPU stage is real (keying matting,
 * normalise, gates, PLY encode, the servable check, HTTP). Prints medians over several runs.
 *
 *   npm run bench -- throughput        (or: npx tsx bench/throughput.ts)
 *   BENCH_RUNS=5 BENCH_PARTS=cache,overhead npx tsx bench/throughput.ts
 */
import { serve, type ServerType } from '@hono/node-server';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { compose, configSettings } from '../src/compose.js';
import { parseConfig } from '../src/config/load.js';
import type { RgbaImage } from '../src/image/rgba.js';
import { createStages } from '../src/pipelines/backends.js';
import { standaloneContext } from '../src/pipelines/context.js';
import type { Stages } from '../src/pipelines/stages.js';
import { PreviewTextToImage } from '../src/pipelines/text-to-image/preview.js';
import { allocateCloud, GAUSSIAN_PROPERTIES, type GaussianCloud } from '../src/splat/cloud.js';
import { decodePly } from '../src/splat/ply.js';
import { JobRegistry } from '../src/runtime/jobs.js';
import { createLogger, type Logger } from '../src/runtime/log.js';
import { Writable } from 'node:stream';
import { median } from './stats.js';

const FIXTURES = join(process.cwd(), '..', 'shared', 'fixtures');

function fixture(name: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(join(FIXTURES, name)));
  } catch {
    throw new Error(`bench needs ${join(FIXTURES, name)} (the shared fixtures, read as ../shared/fixtures from the repository root)`);
  }
}

function copyCloud(cloud: GaussianCloud): GaussianCloud {
  const out = allocateCloud(cloud.count);
  for (const name of GAUSSIAN_PROPERTIES) out.columns[name].set(cloud.columns[name]);
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Stages for the bench: text-to-image and image-to-3d hold the GPU lock for fixed times and return a picture
 * drawn once beforehand and a copy of a fixture cloud; matting and validation are the configured CPU backends.
 */
async function benchStages(options: { textToImageMs: number; imageTo3dMs: number; cloud: GaussianCloud }): Promise<Partial<Stages>> {
  const config = parseConfig({});
  const real = createStages(config);
  const picture = await new PreviewTextToImage({ lightJitter: 0 }).generate('a red box', 1, standaloneContext(configSettings(config)));
  const ready = () => ({ ready: true });
  return {
    textToImage: {
      name: 'fixed-delay-gpu',
      preview: false,
      gpu: true,
      readiness: ready,
      async generate(): Promise<RgbaImage> {
        if (options.textToImageMs) await sleep(options.textToImageMs);
        return picture;
      },
    },
    matting: real.matting,
    imageTo3d: {
      name: 'fixed-delay-gpu',
      preview: false,
      gpu: true,
      readiness: ready,
      async generate() {
        if (options.imageTo3dMs) await sleep(options.imageTo3dMs);
        return copyCloud(options.cloud);
      },
    },
    validators: real.validators,
  };
}

async function start(sections: Record<string, unknown>, stages: Partial<Stages>, logger?: Logger) {
  const composed = compose(parseConfig({ log: { level: 'silent' }, ...sections }), { stages, logger });
  /** Milliseconds from the request reaching the app to its Response being ready (before the socket write). */
  const handlerMs: number[] = [];
  const fetch = async (request: Request, env: unknown) => {
    const t0 = performance.now();
    const response = await composed.app.fetch(request, env);
    handlerMs.push(performance.now() - t0);
    return response;
  };
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s));
  });
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    ...composed,
    url,
    handlerMs,
    close: () =>
      new Promise<void>((resolve) => {
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}

async function post(url: string, prompt: string): Promise<{ status: number; bytes: number; ms: number; cache: string | null }> {
  const t0 = performance.now();
  const response = await fetch(`${url}/generate/`, { method: 'POST', body: new URLSearchParams({ prompt }) });
  const body = await response.arrayBuffer();
  return { status: response.status, bytes: body.byteLength, ms: performance.now() - t0, cache: response.headers.get('x-fast3d-cache') };
}

/** Jobs per second with `clients` concurrent clients, against the ideal 1 / (GPU time per job). */
async function pipelining(cloud: GaussianCloud, concurrency: number, runs: number): Promise<number[]> {
  const textToImageMs = 150;
  const imageTo3dMs = 250;
  const gpuPerJob = (textToImageMs + imageTo3dMs) / 1000;
  const clients = 4;
  const jobsPerClient = 5;
  const ratios: number[] = [];
  for (let run = 0; run < runs; run++) {
    const s = await start(
      { cache: { enabled: false }, runtime: { pipeline_concurrency: concurrency, queue_length: 8 } },
      await benchStages({ textToImageMs, imageTo3dMs, cloud }),
    );
    await post(s.url, 'warm-up');
    const t0 = performance.now();
    let n = 0;
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        for (let j = 0; j < jobsPerClient; j++) {
          const r = await post(s.url, `client ${c} job ${j} run ${run}`);
          if (r.status !== 200) throw new Error(`job answered ${r.status}`);
          n++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    ratios.push(n / seconds / (1 / gpuPerJob));
    await s.close();
  }
  return ratios;
}

/** Sequential POSTs of one prompt from a worker thread; returns the latencies after `warmup` requests. */
function clientInWorker(url: string, prompt: string, count: number, warmup: number): Promise<number[]> {
  // node:http rather than fetch: fetch's web-stream body handling costs more than the server's whole answer.
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const http = require('node:http');
    const agent = new http.Agent({ keepAlive: true });
    const body = new URLSearchParams({ prompt: workerData.prompt }).toString();
    const once = () => new Promise((resolve, reject) => {
      const req = http.request(workerData.url + '/generate/', {
        method: 'POST', agent,
        headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
      }, (res) => {
        let bytes = 0;
        res.on('data', (chunk) => { bytes += chunk.length; });
        res.on('end', () => resolve({ status: res.statusCode, cache: res.headers['x-fast3d-cache'], bytes }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    (async () => {
      const times = [];
      for (let i = 0; i < workerData.count; i++) {
        const t0 = performance.now();
        const r = await once();
        if (r.cache !== 'hit') throw new Error('expected a cache hit, got ' + r.cache);
        if (i >= workerData.warmup) times.push(performance.now() - t0);
      }
      agent.destroy();
      parentPort.postMessage(times);
    })();
  `;
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true, workerData: { url, prompt, count, warmup } });
    worker.once('message', resolve);
    worker.once('error', reject);
  });
}

async function cacheHits(
  runs: number,
): Promise<{ http: number[]; handler: number[]; inProcess: number[]; minMs: number; cpuMs: number[]; bytes: number }> {
  const ply = fixture('hamburger.ply');
  const cloud = decodePly(ply);
  const http: number[] = [];
  const handler: number[] = [];
  const inProcess: number[] = [];
  const cpuMs: number[] = [];
  let minMs = Infinity;
  let bytes = 0;
  for (let run = 0; run < runs; run++) {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-bench-cache-'));
    const s = await start({ cache: { enabled: true, directory: dir } }, await benchStages({ textToImageMs: 0, imageTo3dMs: 0, cloud }));
    const first = await post(s.url, 'a hamburger');
    if (first.cache !== 'miss' || first.status !== 200) throw new Error('first request should generate');
    bytes = first.bytes;
    const local: number[] = [];
    let cpu = process.cpuUsage();
    for (let i = 0; i < 60; i++) {
      if (i === 10) cpu = process.cpuUsage();
      const t0 = performance.now();
      const response = await s.app.request('/generate/', { method: 'POST', body: new URLSearchParams({ prompt: 'a hamburger' }) });
      await response.arrayBuffer();
      if (i >= 10) local.push(performance.now() - t0);
    }
    const used = process.cpuUsage(cpu);
    cpuMs.push((used.user + used.system) / 1000 / local.length);
    minMs = Math.min(minMs, ...local);
    inProcess.push(median(local));
    // The client runs in a worker thread, so its own work (undici, reading 2.9 MB) is not on the server's loop.
    s.handlerMs.length = 0;
    const times = await clientInWorker(s.url, 'a hamburger', 60, 10);
    http.push(median(times));
    handler.push(median(s.handlerMs.slice(10)));
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { http, handler, inProcess, minMs, cpuMs, bytes };
}

/**
 * Wall time per job with instant GPU fakes: everything that is not the GPU models (CPU stages, checks, HTTP).
 * Matting is reported apart: in production it is a model too (ISNet), here the preview keying backend.
 */
async function overhead(
  runs: number,
): Promise<{ perRun: number[]; nonModelPerRun: number[]; cpuPerRun: number[]; stages: Record<string, number>; gaussians: number }> {
  const cloud = decodePly(fixture('robocop.ply'));
  const perRun: number[] = [];
  const nonModelPerRun: number[] = [];
  const cpuPerRun: number[] = [];
  const stageTimes: Record<string, number[]> = {};
  for (let run = 0; run < runs; run++) {
    const timings: Record<string, number>[] = [];
    const logger = createLogger(
      'info',
      new Writable({
        write(chunk, _encoding, done) {
          const line = JSON.parse(String(chunk)) as { timings?: Record<string, number> };
          if (line.timings) timings.push(line.timings);
          done();
        },
      }),
    );
    const s = await start({ cache: { enabled: false } }, await benchStages({ textToImageMs: 0, imageTo3dMs: 0, cloud }), logger);
    await post(s.url, 'warm-up');
    timings.length = 0;
    const times: number[] = [];
    const nonModel: number[] = [];
    const cpu = process.cpuUsage();
    for (let i = 0; i < 8; i++) {
      const r = await post(s.url, `robocop job ${i} run ${run}`);
      if (r.status !== 200) throw new Error(`job answered ${r.status}`);
      times.push(r.ms);
      const t = timings[timings.length - 1] ?? {};
      nonModel.push(r.ms - (t.matting ?? 0) - (t.text_to_image ?? 0) - (t.image_to_3d ?? 0));
      for (const [stage, ms] of Object.entries(t)) (stageTimes[stage] ??= []).push(ms);
    }
    const used = process.cpuUsage(cpu);
    cpuPerRun.push((used.user + used.system) / 1000 / times.length);
    perRun.push(median(times));
    nonModelPerRun.push(median(nonModel));
    await s.close();
  }
  const stages = Object.fromEntries(Object.entries(stageTimes).map(([stage, values]) => [stage, median(values)]));
  return { perRun, nonModelPerRun, cpuPerRun, stages, gaussians: cloud.count };
}

/**
 * What a job's progress costs: one stage event into the registry with a live reader attached (ns each), and the
 * copy of the raw cloud the registry keeps as an intermediate (ms, robocop-size).
 */
async function eventCost(runs: number): Promise<{ nsPerEvent: number[]; cloudCopyMs: number[]; eventsPerJob: number }> {
  const cloud = decodePly(fixture('robocop.ply'));
  const nsPerEvent: number[] = [];
  const cloudCopyMs: number[] = [];
  let eventsPerJob = 0;
  for (let run = 0; run < runs; run++) {
    const jobs = new JobRegistry({ keep: 4, retentionMs: 60_000 });
    const handle = jobs.create({ priority: 'interactive', title: 'bench', task: 'text', seed: 1 });
    const reader = (async () => {
      for await (const _ of jobs.events(handle.id)) {
        /* a live reader, as SSE is */
      }
    })();
    const count = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < count; i += 2) {
      handle.progress.stageStarted('matting', 0);
      handle.progress.stageEnded('matting', 0, 1);
    }
    nsPerEvent.push(((performance.now() - t0) * 1e6) / count);
    const t1 = performance.now();
    handle.progress.intermediate({ name: 'cloud', cloud }, 0);
    cloudCopyMs.push(performance.now() - t1);
    handle.end('done');
    await reader;
    // A text job's events: queued, running, 5 stages x 2, 3 intermediates, an artefact, the end.
    eventsPerJob = 2 + 10 + 3 + 1 + 1;
  }
  return { nsPerEvent, cloudCopyMs, eventsPerJob };
}

async function main(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const fmt = (values: number[], digits = 1) => values.map((v) => v.toFixed(digits)).join(', ');
  console.log(
    `machine: ${cpus().length} cores, load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} (shared with other work: figures are noisy)`,
  );

  const parts = (process.env.BENCH_PARTS ?? 'pipelining,cache,overhead,events').split(',');
  const cloud0Count = decodePly(fixture('robocop.ply')).count;

  if (parts.includes('pipelining')) {
    const hamburger = decodePly(fixture('hamburger.ply'));
    const serial = await pipelining(hamburger, 1, runs);
    const pipelined = await pipelining(hamburger, 2, runs);
    console.log('pipelining (4 clients, fake GPU 150 + 250 ms per job, real CPU stages, hamburger-size asset 52,709 Gaussians):');
    console.log(
      `  throughput / (1 / GPU time per job), pipeline_concurrency 1: median ${median(serial).toFixed(3)} (runs: ${fmt(serial, 3)})`,
    );
    console.log(
      `  throughput / (1 / GPU time per job), pipeline_concurrency 2: median ${median(pipelined).toFixed(3)} (runs: ${fmt(pipelined, 3)})  target >= 0.90 ${median(pipelined) >= 0.9 ? 'MET' : 'MISSED'}`,
    );
  }

  if (parts.includes('cache')) {
    const hits = await cacheHits(runs);
    console.log(`cache hit, hamburger asset (${hits.bytes} bytes), median of 50 requests per run:`);
    console.log(
      `  service time (request in the app -> Response ready, incl. the PLY re-check): median ${median(hits.handler).toFixed(2)} ms (runs: ${fmt(hits.handler, 2)})  target <= 5 ms ${median(hits.handler) <= 5 ? 'MET' : 'MISSED'}`,
    );
    console.log(
      `  end to end over HTTP on 127.0.0.1 (node:http client in a worker thread, same 2 cores): median ${median(hits.http).toFixed(2)} ms (runs: ${fmt(hits.http, 2)})`,
    );
    console.log(
      `  in process (app.request; adds the fetch Response's body copies): median ${median(hits.inProcess).toFixed(2)} ms (runs: ${fmt(hits.inProcess, 2)}), fastest ${hits.minMs.toFixed(2)} ms, CPU per hit ${median(hits.cpuMs).toFixed(2)} ms`,
    );
  }

  if (parts.includes('events')) {
    const cost = await eventCost(runs);
    console.log('job events (the registry, with a live reader attached):');
    console.log(
      `  one stage event: median ${median(cost.nsPerEvent).toFixed(0)} ns (runs: ${fmt(cost.nsPerEvent, 0)}); ${cost.eventsPerJob} events per text job`,
    );
    console.log(
      `  the raw-cloud intermediate (a copy of ${cloud0Count} Gaussians): median ${median(cost.cloudCopyMs).toFixed(2)} ms (runs: ${fmt(cost.cloudCopyMs, 2)})`,
    );
  }
  if (parts.includes('overhead')) {
    const cost = await overhead(runs);
    console.log(
      `orchestration overhead per job, instant fake GPU stages, robocop-size asset (${cost.gaussians} Gaussians), one client, median of 8 jobs per run:`,
    );
    console.log(`  whole job incl. preview keying matting: median ${median(cost.perRun).toFixed(1)} ms (runs: ${fmt(cost.perRun)})`);
    console.log(
      `  non-model time (whole job minus matting and the GPU stages): median ${median(cost.nonModelPerRun).toFixed(1)} ms (runs: ${fmt(cost.nonModelPerRun)})  target <= 300 ms ${median(cost.nonModelPerRun) <= 300 ? 'MET' : 'MISSED'}`,
    );
    console.log(
      `  stage medians (ms): ${Object.entries(cost.stages)
        .map(([k, v]) => `${k} ${v.toFixed(1)}`)
        .join(', ')}`,
    );
    console.log(
      `  CPU time per job (server and client share the process): median ${median(cost.cpuPerRun).toFixed(1)} ms (runs: ${fmt(cost.cpuPerRun)})`,
    );
  }
}

await main();
