/**
 * The studio's figures: the median time from `POST /api/v1/jobs` to the first server-sent event of that job
 * (a preview service in this process, over real HTTP on 127.0.0.1, cache off), the size of the page's own
 * JavaScript and CSS (not three.js or Spark), and the SPZ-to-PLY size ratio of the viewer's download.
 *
 *   npm run bench -- studio        (BENCH_RUNS=7 by default)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { serve } from '@hono/node-server';
import { compose, defaultStageDeps } from '../src/compose.js';
import { createStages } from '../src/pipelines/backends.js';
import type { Stages } from '../src/pipelines/stages.js';
import { parseConfig } from '../src/config/load.js';
import { PAGE_DIR } from '../src/studio/routes.js';
import { median, report } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);

const config = parseConfig({
  server: { host: '127.0.0.1', port: 0 },
  cache: { enabled: false },
  log: { level: 'silent' },
  text_to_image: { backend: 'preview' },
  matting: { backend: 'keying' },
  image_to_3d: { backend: 'inflate', inflate: { max_gaussians: 240_000 } },
  validate: { checks: ['gates'] },
});

async function startService(stages?: Partial<Stages>) {
  const composed = compose(config, { stages });
  await composed.service.start();
  const server = serve({ fetch: composed.app.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  const address = server.address();
  const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    url,
    close: async () => {
      server.close();
      await composed.renderPool.close();
    },
  };
}

/**
 * The preview's text-to-image stand-in draws on the event loop (about 300 ms, synchronously), which holds up
 * every answer while it runs; a GPU backend awaits its worker instead. This one waits as a GPU call would,
 * then draws, so the second figure shows the API's own latency with a free event loop.
 */
function gpuLikeStages(): Partial<Stages> {
  const preview = createStages(config, defaultStageDeps(config)).textToImage;
  return {
    textToImage: {
      name: 'gpu-like-preview',
      preview: true,
      readiness: () => preview.readiness(),
      generate: async (prompt, seed, ctx) => {
        await new Promise((r) => setTimeout(r, 300));
        return preview.generate(prompt, seed, ctx);
      },
    },
  };
}

let url = '';

/** One job: ms from sending the POST to the first event block of its stream, and its artefacts' sizes. */
async function oneJob(run: number): Promise<{ firstEventMs: number; spz: number; ply: number }> {
  const start = performance.now();
  const created = await fetch(`${url}/api/v1/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: `a red wooden chair number ${run}`, outputs: ['spz', 'ply'] }),
  });
  if (created.status !== 202) throw new Error(`POST answered ${created.status}: ${await created.text()}`);
  const { id, links } = (await created.json()) as { id: string; links: { events: string } };
  const stream = await fetch(`${url}${links.events}`);
  const reader = stream.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let firstEventMs = NaN;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (Number.isNaN(firstEventMs) && /\nid: 0\n/.test(`\n${text}`)) firstEventMs = performance.now() - start;
  }
  const job = (await (await fetch(`${url}/api/v1/jobs/${id}`)).json()) as { artefacts: { name: string; bytes: number }[] };
  const size = (name: string) => job.artefacts.find((a) => a.name === name)!.bytes;
  return { firstEventMs, spz: size('spz'), ply: size('ply') };
}

async function measure(stages?: Partial<Stages>) {
  const service = await startService(stages);
  url = service.url;
  await oneJob(-1); // warm-up: module loading, the render workers, the first JIT
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await oneJob(i));
  await service.close();
  return runs;
}

const runs = await measure();
const gpuLike = await measure(gpuLikeStages());

const own = readdirSync(PAGE_DIR).filter((f) => /\.(js|css)$/.test(f));
const bytes = own.map((f) => readFileSync(`${PAGE_DIR}${f}`));
const total = bytes.reduce((n, b) => n + b.length, 0);
const gzipped = bytes.reduce((n, b) => n + gzipSync(b).length, 0);

process.stdout.write(`studio (preview service in process, ${RUNS} jobs of 240k Gaussians, median)\n`);
report('POST /api/v1/jobs -> first SSE event (preview stages)', median(runs.map((r) => r.firstEventMs)), 'ms', '<= 100 ms');
report('  the same, text-to-image awaiting like a GPU call', median(gpuLike.map((r) => r.firstEventMs)), 'ms', '<= 100 ms');
report(`page's own JS + CSS (${own.join(', ')})`, total / 1024, 'KiB');
report("page's own JS + CSS, gzipped", gzipped / 1024, 'KiB');
report('SPZ / PLY size of the viewer download', median(runs.map((r) => r.spz / r.ply)), 'ratio', '<= 1/6 = 0.167');

process.exit(0);
