/** The one decision rule: chain, self-validate, retry once with a new seed, then decline. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { createImage } from '../src/image/rgba.js';
import { createStages } from '../src/pipelines/backends.js';
import { Pipeline } from '../src/pipelines/generate.js';
import type { Check, Job } from '../src/pipelines/job.js';
import { attemptSeed } from '../src/pipelines/seed.js';
import type { ImageTo3d, Matting, Stages, Validator } from '../src/pipelines/stages.js';
import { meshBounds } from '../src/mesh/mesh.js';
import { jobContext } from './helpers/fake-stages.js';

function stagesWith(overrides: Partial<Stages>): Stages {
  return { ...createStages(parseConfig({})), ...overrides };
}

function validator(verdicts: boolean[], name = 'scripted'): Validator & { seen: number } {
  return {
    name,
    preview: false,
    seen: 0,
    readiness: () => ({ ready: true }),
    async validate(): Promise<Check[]> {
      const passed = verdicts[this.seen++] ?? true;
      return [{ name: `${name}_check`, value: passed ? 1 : 0, threshold: 1, passed, by: name }];
    },
  };
}

const textJob = (seed = 11): Job => ({ id: 't', task: { kind: 'text', prompt: 'a red box' }, seed });

describe('Pipeline', () => {
  it('accepts on the first attempt and reports stage timings', async () => {
    const outcome = await new Pipeline(stagesWith({ validators: [validator([true])] })).run(
      textJob(),
      jobContext({ retries: 1, extent: 1.5 }),
    );
    expect(outcome.kind).toBe('asset');
    if (outcome.kind !== 'asset') return;
    expect(outcome.seed).toBe(11);
    expect(outcome.report.attempts).toHaveLength(1);
    // Encoding is not a pipeline stage: the answer path encodes each format on the way out.
    expect(Object.keys(outcome.report.timings)).toEqual(['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate']);
    expect(outcome.report.preview).toBe(true);
  });

  it('runs validators in order and stops at the first failing check', async () => {
    const first = validator([false], 'first');
    const second = validator([true], 'second');
    const outcome = await new Pipeline(stagesWith({ validators: [first, second] })).run(textJob(), jobContext({ retries: 0, extent: 1.5 }));
    expect(outcome).toMatchObject({ kind: 'declined', reason: 'first_check 0 failed threshold 1 (first)' });
    expect(second.seen).toBe(0);
  });

  it('retries with a derived seed, then declines after `retries` extra attempts', async () => {
    const v = validator([false, false, false]);
    const outcome = await new Pipeline(stagesWith({ validators: [v] })).run(textJob(11), jobContext({ retries: 2, extent: 1.5 }));
    expect(outcome.kind).toBe('declined');
    expect(outcome.report.attempts.map((a) => a.seed)).toEqual([11, attemptSeed(11, 1), attemptSeed(11, 2)]);
    expect(new Set(outcome.report.attempts.map((a) => a.seed)).size).toBe(3);
    expect(v.seen).toBe(3);
  });

  it('does not retry an image task whose matte is empty: another seed cannot change it', async () => {
    let mattes = 0;
    const empty: Matting = {
      name: 'empty',
      preview: true,
      readiness: () => ({ ready: true }),
      matte: async () => {
        mattes++;
        return null;
      },
    };
    const job: Job = { id: 'i', task: { kind: 'image', image: createImage(32, 32), digest: 'x' }, seed: 1 };
    const outcome = await new Pipeline(stagesWith({ matting: empty })).run(job, jobContext({ retries: 3, extent: 1.5 }));
    expect(outcome).toMatchObject({ kind: 'declined', reason: 'no object found in the image' });
    expect(mattes).toBe(1);
  });

  it('mattes an image task once for all attempts', async () => {
    const stages = stagesWith({ validators: [validator([false, true])] });
    let mattes = 0;
    const inner = stages.matting;
    const counting: Matting = {
      ...inner,
      name: inner.name,
      preview: true,
      readiness: () => ({ ready: true }),
      matte: (input, ctx) => {
        mattes++;
        return inner.matte(input, ctx);
      },
    };
    const image = createImage(64, 64);
    image.data.fill(255);
    for (let y = 16; y < 48; y++) for (let x = 16; x < 48; x++) image.data.set([10, 10, 200, 255], (y * 64 + x) * 4);
    const outcome = await new Pipeline({ ...stages, matting: counting }).run(
      { id: 'i', task: { kind: 'image', image, digest: 'd' }, seed: 3 },
      jobContext({ retries: 1, extent: 1.5 }),
    );
    expect(outcome.kind).toBe('asset');
    expect(mattes).toBe(1);
  });

  it('stops between stages when the job is aborted', async () => {
    const controller = new AbortController();
    controller.abort(new Error('client went away'));
    await expect(
      new Pipeline(stagesWith({})).run(textJob(), jobContext({ retries: 1, extent: 1.5, signal: controller.signal })),
    ).rejects.toThrow(/client went away/);
  });

  it("runs GPU backends through the runtime's GPU hook", async () => {
    const stages = stagesWith({});
    const gpuStage = Object.assign(Object.create(stages.imageTo3d), { gpu: true });
    const entered: string[] = [];
    const pipeline = new Pipeline({ ...stages, imageTo3d: gpuStage });
    const ctx = jobContext({
      retries: 0,
      extent: 1.5,
      gpu: async (work) => {
        entered.push('gpu');
        return work();
      },
    });
    expect((await pipeline.run(textJob(), ctx)).kind).toBe('asset');
    expect(entered).toEqual(['gpu']);
  });
});

describe('Pipeline, mesh jobs', () => {
  it('makes the mesh with the cloud, drops the vertices no triangle uses, and fits it to the mesh cube, centred', async () => {
    const stages = stagesWith({});
    const inner = stages.imageTo3d;
    const withStray: ImageTo3d = {
      ...inner,
      name: inner.name,
      generate: (i, s, c) => inner.generate(i, s, c),
      async generateWithMesh(i, s, c) {
        const made = await inner.generateWithMesh!(i, s, c);
        const positions = new Float32Array(made.mesh.positions.length + 3);
        positions.set(made.mesh.positions);
        positions.set([0, 40, 0], made.mesh.positions.length);
        return { cloud: made.cloud, mesh: { ...made.mesh, positions, colours: new Float32Array(positions.length) } };
      },
    };
    const outcome = await new Pipeline({ ...stages, imageTo3d: withStray }).run(
      { ...textJob(), mesh: true },
      jobContext({ retries: 0, extent: 1.5 }),
    );
    expect(outcome.kind).toBe('asset');
    const mesh = outcome.kind === 'asset' ? outcome.mesh! : null;
    const { min, max } = meshBounds(mesh!);
    expect(Math.max(...[0, 1, 2].map((a) => max[a] - min[a]))).toBeCloseTo(1, 5);
    for (let a = 0; a < 3; a++) expect(Math.abs(min[a] + max[a])).toBeLessThan(1e-5);
    // The stray vertex is gone: every vertex is used, and the GLB's declared bounds will be the surface's.
    const used = new Set(mesh!.indices);
    expect(used.size).toBe(mesh!.positions.length / 3);
  });

  it('fails an attempt whose mesh has no triangles, and declines when no seed makes one', async () => {
    const stages = stagesWith({});
    const inner = stages.imageTo3d;
    const empty: ImageTo3d = {
      ...inner,
      generate: (i, s, c) => inner.generate(i, s, c),
      async generateWithMesh(i, s, c) {
        const made = await inner.generateWithMesh!(i, s, c);
        return { cloud: made.cloud, mesh: { positions: new Float32Array(0), indices: new Uint32Array(0) } };
      },
    };
    const outcome = await new Pipeline({ ...stages, imageTo3d: empty }).run(
      { ...textJob(), mesh: true },
      jobContext({ retries: 1, extent: 1.5 }),
    );
    expect(outcome.kind).toBe('declined');
    expect(outcome.report.attempts.map((a) => a.reason)).toEqual([
      'image-to-3d made a mesh with no triangles',
      'image-to-3d made a mesh with no triangles',
    ]);
  });

  it('refuses a mesh job when the backend makes no meshes, before any stage runs', async () => {
    const stages = stagesWith({});
    const inner = stages.imageTo3d;
    const splatsOnly: ImageTo3d = {
      name: 'splats-only',
      preview: true,
      readiness: () => ({ ready: true }),
      generate: (i, s, c) => inner.generate(i, s, c),
    };
    await expect(
      new Pipeline({ ...stages, imageTo3d: splatsOnly }).run({ ...textJob(), mesh: true }, jobContext({ retries: 0, extent: 1.5 })),
    ).rejects.toThrow(/"splats-only" makes no meshes/);
  });
});
