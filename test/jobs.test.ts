/**
 * Jobs as values, with no HTTP: the answer path runs a job through the registry, which reports its stages in
 * order with timings, shows the picture, the matte and the raw cloud as they appear, and cancels by id.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { compose, configSettings, type Composed } from '../src/compose.js';
import type { Stages } from '../src/pipelines/stages.js';
import { JobRegistry, type ArtefactRef, type JobEvent } from '../src/runtime/jobs.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { fakeStages, sleep, testConfig, until } from './helpers/fake-stages.js';

const composed: Composed[] = [];
afterEach(async () => {
  for (const c of composed.splice(0)) {
    await c.service.close();
    await c.renderPool.close();
  }
});

function build(sections: Record<string, Record<string, unknown>> = {}, stages?: Partial<Stages>): Composed {
  const c = compose(testConfig({ pipeline: { retries: 0 }, ...sections }), { stages });
  composed.push(c);
  return c;
}

const text = (prompt: string) => ({ kind: 'text' as const, prompt });

async function collect(events: AsyncIterable<JobEvent>): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe('the job registry', () => {
  it('reports ordered stage events with timings, and the picture, matte and cloud as they appear', async () => {
    const c = build();
    await c.service.start();
    // Submitted: registered by the time its id comes back, so its events can be followed from there.
    const { done: answering } = await c.answers.submit({
      id: 'job-a',
      task: text('a red wooden chair'),
      seed: 5,
      priority: 'interactive',
      wants: [{ format: 'ply' }],
      title: 'a red wooden chair',
    });
    // A live reader can take the raw cloud when it is shown.
    const rawCloud = (async () => {
      for await (const e of c.answers.events('job-a'))
        if (e.type === 'intermediate' && e.name === 'cloud') return (await c.local.intermediate('job-a', 'cloud')) as { count: number };
      return undefined;
    })();
    const answer = await answering;
    expect(answer.kind).toBe('asset');
    if (answer.kind !== 'asset') return;
    expect(answer.jobId).toBe('job-a');
    expect(servablePlyViolation(answer.artefacts[0].bytes)).toBeNull();

    // A reader that comes after the end gets every event from the start.
    const events = await collect(c.answers.events('job-a'));
    const shape = events.map((e) => (e.type === 'stage' ? `${e.phase}:${e.stage}` : e.type === 'intermediate' ? `show:${e.name}` : e.type));
    expect(shape).toEqual([
      'queued',
      'running',
      'start:text_to_image',
      'end:text_to_image',
      'show:image',
      'start:matting',
      'end:matting',
      'show:matte',
      'start:image_to_3d',
      'end:image_to_3d',
      'show:cloud',
      'start:normalise',
      'end:normalise',
      'start:validate',
      'end:validate',
      'artefact',
      'end',
    ]);
    const ats = events.map((e) => e.at);
    expect([...ats].sort((a, b) => a - b)).toEqual(ats); // in time order
    for (const e of events) if (e.type === 'stage' && e.phase === 'end') expect(e.ms).toBeGreaterThanOrEqual(0);
    expect(events.at(-1)).toMatchObject({ type: 'end', state: 'done' });

    const view = (await c.answers.get('job-a'))!;
    expect(view.state).toBe('done');
    expect(view.priority).toBe('interactive');
    expect(Object.keys(view.timings.stages)).toEqual(['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate']);
    expect(view.timings.runMs).toBeGreaterThan(0);
    expect(view.report?.attempts[0].accepted).toBe(true);
    // The raw cloud was shown while the job ran; after its end only the pictures are kept (the asset is the artefact).
    expect(view.intermediates).toEqual(['image', 'matte']);
    expect(await c.local.intermediate('job-a', 'cloud')).toBeNull();
    expect((await rawCloud)?.count).toBe(answer.gaussians);
    expect(view.artefacts).toEqual([
      {
        name: 'ply',
        contentType: 'application/octet-stream',
        extension: '.ply',
        bytes: answer.artefacts[0].bytes.length,
        expiresAt: expect.any(String),
      },
    ]);
    // The link lasts as long as the job is kept after its end (jobs.retention_s, 900 s by default).
    const lasts = Date.parse(view.artefacts[0].expiresAt!) - Date.now();
    expect(lasts).toBeGreaterThan(890_000);
    expect(lasts).toBeLessThanOrEqual(900_000);

    // The intermediates are real values: the picture, the framed matte (transparent border).
    const picture = (await c.answers.intermediate('job-a', 'image')) as { width: number; data: Uint8ClampedArray };
    const matte = (await c.answers.intermediate('job-a', 'matte')) as { width: number; data: Uint8ClampedArray };
    expect(picture.width).toBe(512);
    expect(matte.width).toBe(518);
    expect(matte.data[3]).toBe(0);
    // The artefact reads back through the registry.
    const read = await (await c.answers.artefact('job-a', 'ply'))!.read();
    expect(Buffer.compare(read!, answer.artefacts[0].bytes)).toBe(0);
  });

  it('streams live events to a reader that joins while the job runs, and cancels a second job by id', async () => {
    const fake = fakeStages({ imageTo3dMs: 400 });
    const c = build({ runtime: { pipeline_concurrency: 1 } }, fake.stages);
    const first = c.answers.answer({
      id: 'first',
      task: text('a lamp'),
      seed: 1,
      priority: 'interactive',
      wants: [{ format: 'ply' }],
      title: 't',
    });
    const second = c.answers.answer({
      id: 'second',
      task: text('a vase'),
      seed: 2,
      priority: 'interactive',
      wants: [{ format: 'ply' }],
      title: 't',
    });
    second.catch(() => undefined);
    await until(async () => (await c.answers.get('first'))?.stage === 'image_to_3d');
    const live = collect(c.answers.events('first'));
    expect((await c.answers.get('second'))?.state).toBe('queued');

    expect(await c.answers.cancel('second')).toBe(true);
    await expect(second).rejects.toThrow(/job second was cancelled/);
    expect((await c.answers.get('second'))?.state).toBe('cancelled');
    expect(await c.answers.cancel('second')).toBe(false); // already ended
    expect(await c.answers.cancel('no-such-job')).toBe(false);

    expect((await first).kind).toBe('asset');
    const events = await live;
    expect(events.at(-1)).toMatchObject({ type: 'end', state: 'done' });
    expect(events.filter((e) => e.type === 'stage' && e.phase === 'end' && e.stage === 'image_to_3d')).toHaveLength(1);
    expect(fake.calls.imageTo3d).toBe(1); // the cancelled job never reached the GPU
  });

  it('cancels a running job: its stages see the abort and the job ends cancelled', async () => {
    const fake = fakeStages({ imageTo3dMs: 5000 });
    const c = build({}, fake.stages);
    const running = c.answers.answer({
      id: 'long',
      task: text('a tower'),
      seed: 3,
      priority: 'interactive',
      wants: [{ format: 'ply' }],
      title: 't',
    });
    running.catch(() => undefined);
    await until(async () => (await c.answers.get('long'))?.stage === 'image_to_3d');
    const started = performance.now();
    await c.answers.cancel('long');
    await expect(running).rejects.toThrow(/cancelled/);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await c.answers.get('long')).toMatchObject({ state: 'cancelled', error: 'job long was cancelled' });
    await sleep(0);
    expect(c.service.health().queue.running).toBe(0);
  });

  it('an answer held before a shutdown is admitted after it began; a new one is refused', async () => {
    const fake = fakeStages({ imageTo3dMs: 100 });
    const c = build({}, fake.stages);
    const settings = configSettings(testConfig({ pipeline: { retries: 0 } }));
    let drained: Promise<boolean> | undefined;
    const held = c.service.hold(async () => {
      drained = c.service.drain(5000); // the shutdown begins while this answer is, say, reading the cache
      return c.service.generate({ job: { id: 'held', task: text('a held chair'), seed: 1 }, settings, held: true });
    });
    expect((await held).kind).toBe('asset');
    expect(await drained).toBe(true);
    await expect(c.service.generate({ job: { id: 'late', task: text('a late chair'), seed: 2 }, settings })).rejects.toThrow(
      /shutting down/,
    );
    await expect(c.service.hold(async () => 1)).rejects.toThrow(/shutting down/);
  });
});

describe("a progressive job's drafts in the registry", () => {
  const ref = (name: string): ArtefactRef => ({
    name,
    contentType: 'application/x-spz',
    extension: '.spz',
    bytes: 3,
    held: true,
    read: async () => new Uint8Array(3),
  });

  it('lists a draft on a running job, marked, but never after the job has a file of its own or has ended; lists leave draft jobs out', async () => {
    const registry = new JobRegistry({ keep: 10, retentionMs: 60_000 });
    const job = registry.create({ id: 'final', priority: 'interactive', title: 'a duck', task: 'text', seed: 1 });
    const draft = registry.create({ id: 'final.draft', priority: 'interactive', title: 'a duck', task: 'text', seed: 1, draftOf: 'final' });
    expect(registry.attachDraft('final', ref('draft_spz'))).toBe(true);
    job.artefact(ref('spz'));
    // The final has its own file now: a draft arriving late is not listed.
    expect(registry.attachDraft('final', ref('draft_ply'))).toBe(false);
    job.end('done');
    expect(registry.attachDraft('final', ref('draft_glb'))).toBe(false);
    expect(registry.attachDraft('no-such-job', ref('draft_spz'))).toBe(false);
    draft.end('cancelled');

    expect(registry.get('final')!.artefacts.map((a) => [a.name, a.draft ?? false])).toEqual([
      ['draft_spz', true],
      ['spz', false],
    ]);
    const events = (await collect(registry.events('final'))).filter((e) => e.type === 'artefact');
    expect(events.map((e) => e.type === 'artefact' && [e.name, e.draft ?? false])).toEqual([
      ['draft_spz', true],
      ['spz', false],
    ]);
    expect(await registry.artefact('final', 'draft_spz')!.read()).toHaveLength(3);
    expect(registry.list().map((v) => v.id)).toEqual(['final']);
    expect(registry.get('final.draft')!.draftOf).toBe('final');
  });
});
