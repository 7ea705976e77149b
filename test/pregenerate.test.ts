import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { formatSummary, pregenerate, PregenerateError } from '../src/commands/pregenerate.js';
import { compose } from '../src/compose.js';
import { HOPELESS, fakeStages, postPrompt, serveApp, testConfig, type Served } from './helpers/fake-stages.js';

const servers: Served[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function setup(prompts: string, sections: Record<string, Record<string, unknown>> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-pregenerate-test-'));
  dirs.push(dir);
  const fake = fakeStages({ imageTo3dMs: 30 });
  const composed = compose(
    testConfig({
      cache: { enabled: true, directory: join(dir, 'cache') },
      runtime: { queue_length: 0, pipeline_concurrency: 1 },
      ...sections,
    }),
    { stages: fake.stages },
  );
  const served = await serveApp(composed.app);
  servers.push(served);
  const promptsFile = join(dir, 'prompts.txt');
  writeFileSync(promptsFile, prompts);
  const options = {
    promptsFile,
    url: served.url,
    video: false,
    concurrency: 3,
    statePath: `${promptsFile}.pregenerate.json`,
    progress: new PassThrough(),
    maxBackoffMs: 20,
  };
  return { ...fake, url: served.url, options };
}

describe('fast3d pregenerate', () => {
  it('warms the cache from a prompt list and summarises ok, declined and failed', async () => {
    const s = await setup(`# props\na red chair\n\na blue lamp\na red chair\na ${HOPELESS} thing\n${'long '.repeat(400)}\n`);
    // Concurrency 3 against a service that admits one job: busy answers are retried after Retry-After.
    const summary = await pregenerate(s.options);
    expect(summary.total).toBe(4);
    expect(summary.counts).toEqual({ ok: 2, cached: 0, declined: 1, failed: 1 });
    expect(summary.failures[0].error).toMatch(/^400: prompt is 1999 characters long/);
    expect(summary.medianMs).not.toBeNull();
    expect(formatSummary(summary)).toMatch(/ok \(generated\) 2 {3}cached \(already there\) 0 {3}declined 1 {3}failed 1/);
    // The service now answers those prompts from its cache, without GPU work.
    const gpuCalls = s.calls.imageTo3d;
    const hit = await postPrompt(s.url, 'a blue lamp');
    expect(hit.headers.get('x-fast3d-cache')).toBe('hit');
    expect(s.calls.imageTo3d).toBe(gpuCalls);
    const state = JSON.parse(readFileSync(s.options.statePath, 'utf8'));
    expect(Object.keys(state.results)).toHaveLength(4);
  });

  it('resumes after an interruption: finished prompts are skipped, failed ones retried', async () => {
    const tooLong = 'long '.repeat(400);
    const s = await setup(`one chair\n${tooLong}\ntwo chairs\nthree chairs\nfour chairs\n`);
    const controller = new AbortController();
    const watch = setInterval(() => {
      if (s.calls.imageTo3d >= 1) controller.abort();
    }, 5);
    const first = await pregenerate({ ...s.options, concurrency: 1, signal: controller.signal });
    clearInterval(watch);
    expect(first.interrupted).toBe(true);
    const doneFirst = first.counts.ok;
    expect(doneFirst).toBeGreaterThanOrEqual(1);
    expect(doneFirst).toBeLessThan(4);
    const second = await pregenerate(s.options);
    expect(second.skipped).toBe(doneFirst);
    expect(second.counts.ok + second.counts.cached).toBe(4 - doneFirst);
    expect(second.counts.failed).toBe(1);
    expect(s.calls.imageTo3d).toBe(4);
    // Only the failed prompt is tried again.
    const third = await pregenerate(s.options);
    expect(third.skipped).toBe(4);
    expect(third.counts).toEqual({ ok: 0, cached: 0, declined: 0, failed: 1 });
    expect(s.calls.imageTo3d).toBe(4);
  });

  it('warms videos with --video: the next /generate_video/ is a cache hit', async () => {
    const s = await setup('a chair\n', { render: { video_res: 96, frames: 6 } });
    const summary = await pregenerate({ ...s.options, video: true });
    expect(summary.counts).toEqual({ ok: 1, cached: 0, declined: 0, failed: 0 });
    const hit = await postPrompt(s.url, 'a chair', { path: '/generate_video/' });
    expect(hit.status).toBe(200);
    expect(hit.headers.get('content-type')).toBe('video/mp4');
    expect(hit.headers.get('x-fast3d-cache')).toBe('hit');
  });

  it('says clearly when no service is running', async () => {
    const s = await setup('a chair\n');
    await servers[0].close();
    servers.length = 0;
    await expect(pregenerate(s.options)).rejects.toThrow(PregenerateError);
    await expect(pregenerate(s.options)).rejects.toThrow(/no service answers at/);
  });
});
