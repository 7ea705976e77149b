import { standaloneContext } from '../src/pipelines/context.js';
import { jobContext, testConfig } from './helpers/fake-stages.js';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoProcessor, env, RawImage, type Tensor } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import type { RgbaImage } from '../src/image/rgba.js';
import { compose, defaultStageDeps } from '../src/compose.js';
import { createStages } from '../src/pipelines/backends.js';
import { Pipeline } from '../src/pipelines/generate.js';
import type { Check, Job } from '../src/pipelines/job.js';
import { affinePredictor, loadAestheticPredictor, readSafetensors } from '../src/pipelines/validate/aesthetic.js';
import {
  ClipValidator,
  clipFolderFiles,
  clipImageSettings,
  clipPixelValues,
  cosine,
  flattenOnWhite,
  mean,
  geometricMeanCosine,
} from '../src/pipelines/validate/clip.js';
import { allocateCloud, colourToDc, logit, type GaussianCloud } from '../src/splat/cloud.js';
import { weightsStore } from '../src/weights/store.js';
import { aestheticSafetensors, writeTinyClip, type TinyClip } from './helpers/models.js';
import { flatViewRenderer, viewColour } from './helpers/views.js';
import { watchEventLoop } from './helpers/event-loop.js';
import type { GpuRunner, ViewRenderer } from '../src/pipelines/stages.js';
import type { ModelRunner } from '../src/pipelines/model-runner.js';
import { workerModels } from '../src/runtime/model-host.js';

describe('alignment and aesthetic formulas', () => {
  it('is the raw geometric mean of cosines clipped to [0,1], with no rescaling', () => {
    // sqrt(0.25 * 0.16) = 0.2
    expect(geometricMeanCosine([0.25, 0.16])).toBeCloseTo(0.2, 12);
    // A negative cosine clips to 0 and zeroes the geometric mean; values above 1 clip to 1.
    expect(geometricMeanCosine([0.3, -0.2, 0.4])).toBe(0);
    expect(geometricMeanCosine([1.5, 0.49])).toBeCloseTo(0.7, 12);
    expect(geometricMeanCosine([])).toBe(0);
    expect(mean([0.25, 0.16, -0.11])).toBeCloseTo(0.1, 12);
    expect(cosine(Float32Array.of(3, 4), Float32Array.of(4, 3))).toBeCloseTo(24 / 25, 6);
  });

  it('scores the L2-normalised embedding with one affine map', () => {
    const predictor = affinePredictor(Float32Array.of(2, -1, 0.5), 4);
    // (3, 0, 4) / 5 = (0.6, 0, 0.8): 2 * 0.6 + 0.5 * 0.8 + 4 = 5.6
    expect(predictor.score(Float32Array.of(3, 0, 4))).toBeCloseTo(5.6, 6);
    expect(() => predictor.score(Float32Array.of(1, 2))).toThrow(/3-d embeddings, got 2/);
  });

  it('reads the converted safetensors file (weight 1 x N, bias 1)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fast3d-aesthetic-'));
    try {
      const path = join(dir, 'aesthetic.safetensors');
      await writeFile(path, aestheticSafetensors(Float32Array.of(1, 2, 3, 4), 0.25));
      const tensors = readSafetensors(aestheticSafetensors(Float32Array.of(1, 2, 3, 4), 0.25));
      expect(tensors.get('weight')!.shape).toEqual([1, 4]);
      const predictor = await loadAestheticPredictor(path);
      // (0, 0, 0, 2) normalises to (0, 0, 0, 1): 4 + 0.25.
      expect(predictor.score(Float32Array.of(0, 0, 0, 2))).toBeCloseTo(4.25, 6);
      await writeFile(path, new Uint8Array([1, 2, 3]));
      await expect(loadAestheticPredictor(path)).rejects.toThrow(/too short/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("convert_aesthetic.py (the GPU worker's converter) and the service's reader agree", () => {
  it('folds linear layers with dropouts between them into one affine map', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fast3d-convert-'));
    try {
      // The predictor's layout (layers.0, .2, .4, .6 with dropouts at 1, 3, 5, then .7), at toy widths.
      const widths = [8, 6, 5, 4, 3, 1];
      const indices = [0, 2, 4, 6, 7];
      let seed = 7;
      const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5;
      const layers = indices.map((_, l) => ({
        weight: Array.from({ length: widths[l + 1] }, () => Array.from({ length: widths[l] }, random)),
        bias: Array.from({ length: widths[l + 1] }, random),
      }));
      const state: Record<string, number[] | number[][]> = {};
      indices.forEach((index, l) => {
        state[`layers.${index}.weight`] = layers[l].weight;
        state[`layers.${index}.bias`] = layers[l].bias;
      });
      await writeFile(join(dir, 'state.json'), JSON.stringify(state));
      const out = join(dir, 'aesthetic.safetensors');
      const script = fileURLToPath(new URL('../workers/gpu/tools/convert_aesthetic.py', import.meta.url));
      const result = spawnSync('python3', [script, join(dir, 'state.json'), out], { encoding: 'utf8' });
      expect(result.error, 'python3 must be on PATH to run the converter').toBeUndefined();
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(/weight 1x8/);

      const predictor = await loadAestheticPredictor(out);
      for (let trial = 0; trial < 5; trial++) {
        const x = Float32Array.from({ length: 8 }, random);
        const norm = Math.hypot(...x);
        // The MLP layer by layer on the normalised embedding (dropout is the identity at inference).
        let h = Array.from(x, (v) => v / norm);
        for (const { weight, bias } of layers) h = weight.map((row, i) => row.reduce((s, w, k) => s + w * h[k], bias[i]));
        expect(predictor.score(x)).toBeCloseTo(h[0], 5);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A cloud of `count` Gaussians of one colour (0..1), opaque, rotated, inside the unit cube. */
function flatCloud(count: number, colour: [number, number, number]): GaussianCloud {
  const cloud = allocateCloud(count);
  const c = cloud.columns;
  for (let i = 0; i < count; i++) {
    c.x[i] = ((i * 37) % 101) / 101 - 0.5;
    c.y[i] = ((i * 53) % 103) / 103 - 0.5;
    c.z[i] = ((i * 71) % 107) / 107 - 0.5;
    c.f_dc_0[i] = colourToDc(colour[0]);
    c.f_dc_1[i] = colourToDc(colour[1]);
    c.f_dc_2[i] = colourToDc(colour[2]);
    c.opacity[i] = logit(0.9);
    c.scale_0[i] = c.scale_1[i] = c.scale_2[i] = Math.log(0.01);
    c.rot_0[i] = 0.9;
    c.rot_1[i] = 0.1;
    c.rot_2[i] = 0.2;
    c.rot_3[i] = 0.3;
  }
  return cloud;
}

describe('clip validator on a tiny CLIP-like model loaded through transformers.js', () => {
  let root: string;
  let tiny: TinyClip;
  // Scores stay within 5 +- 0.55 whatever the embedding: the pipeline tests pick thresholds around that.
  const aestheticWeight = Float32Array.of(0.1, 0.2, 0.3, 0.4);
  const aestheticBias = 5;

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'fast3d-clip-'));
    tiny = await writeTinyClip(join(root, 'tiny-clip'), { dim: 4, imageSize: 16 });
    await writeFile(join(root, 'aesthetic.safetensors'), aestheticSafetensors(aestheticWeight, aestheticBias));
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  /** By hand from the tiny model's definition: mean of the token rows, <|startoftext|> letters <|endoftext|>. */
  const textEmbedding = (prompt: string) => {
    const ids = [0, ...[...prompt.toLowerCase()].filter((ch) => ch !== ' ').map((ch) => tiny.vocab[ch]), 1];
    const e = new Float32Array(tiny.dim);
    for (const id of ids) for (let d = 0; d < tiny.dim; d++) e[d] += tiny.tokenEmbeddings[id * tiny.dim + d] / ids.length;
    return e;
  };
  /** A flat view of colour rgb: the processor's normalised value per channel, then the affine vision tower. */
  const imageEmbedding = (rgb: number[]) => {
    const norm = rgb.map((v, c) => (v / 255 - tiny.mean[c]) / tiny.std[c]);
    const e = new Float32Array(tiny.dim);
    for (let d = 0; d < tiny.dim; d++) e[d] = norm.reduce((s, n, c) => s + n * tiny.projection[c * tiny.dim + d], 0) + tiny.bias[d];
    return e;
  };

  const options = (overrides: Partial<ConstructorParameters<typeof ClipValidator>[0]> = {}) => {
    const modelDir = join(root, 'tiny-clip');
    const aestheticPath = join(root, 'aesthetic.safetensors');
    return {
      modelDir,
      files: weightsStore(root, 'checksum').files([...clipFolderFiles('fp32').map((f) => join(modelDir, f)), aestheticPath]),
      aestheticPath,
      dtype: 'fp32' as const,
      device: 'cpu' as const,
      lockModelsOnGpu: false,
      views: 4,
      viewSize: 32,
      textCache: 8,
      runner: workerModels(),
      ...overrides,
    };
  };
  const expectTextChecks = (checks: Check[], prompt: string, cloud: GaussianCloud) => {
    const text = textEmbedding(prompt);
    const views = [0, 1, 2, 3].map((i) => imageEmbedding(viewColour(cloud, i)));
    const cosines = views.map((v) => cosine(v, text));
    const expectedAlignment = Math.exp(cosines.reduce((s, c) => s + Math.log(Math.min(1, Math.max(0, c))), 0) / 4);
    const norm = (v: Float32Array) => Math.hypot(...v);
    const expectedAesthetic =
      views.reduce((s, v) => s + v.reduce((t, x, d) => t + (x / norm(v)) * aestheticWeight[d], 0) + aestheticBias, 0) / 4;

    expect(checks.map((c) => c.name)).toEqual(['clip_geomean_cosine', 'clip_similarity', 'aesthetic']);
    expect(checks[0].value).toBeCloseTo(expectedAlignment, 4);
    expect(checks[1].value).toBeCloseTo(cosines.reduce((a, b) => a + b) / 4, 4);
    expect(checks[2].value).toBeCloseTo(expectedAesthetic, 4);
  };
  const textJob = (prompt: string): Job => ({ id: 't', task: { kind: 'text', prompt }, seed: 1 });

  it('scores text tasks: alignment, mean cosine and aesthetic against hand-computed values', async () => {
    const renderer = flatViewRenderer();
    const clip = new ClipValidator(options(), renderer);
    expect(clip.readiness()).toEqual({ ready: false, detail: `loading CLIP from ${join(root, 'tiny-clip')}` });
    await clip.init();
    expect(clip.readiness().ready).toBe(true);

    const cloud = flatCloud(8000, [0.8, 0.3, 0.2]);
    const prompt = 'a red Cat';
    // The thresholds are the job's: the config's defaults.
    const checks = await clip.validate(
      { job: textJob(prompt), cloud, image: { width: 1, height: 1, data: new Uint8ClampedArray(4) } },
      jobContext(),
    );
    expect(renderer.calls).toEqual([{ count: 4, size: 32 }]);

    expectTextChecks(checks, prompt, cloud);
    for (const [check, threshold] of [
      [checks[0], 0.2],
      [checks[1], 0.24],
      [checks[2], 4.5],
    ] as const) {
      expect(check.threshold).toBe(threshold);
      expect(check.passed).toBe(check.value >= threshold);
      expect(check.by).toBe('clip');
    }
    await clip.close();
  });

  it('keeps the event loop turning while a second-long CLIP inference runs', async () => {
    // The same tiny model, its vision tower behind about 50 GFLOP of matrix products that add nothing.
    const modelDir = join(root, 'heavy-clip');
    await writeTinyClip(modelDir, { dim: 4, imageSize: 16, heavy: 2 });
    const clip = new ClipValidator(
      options({
        modelDir,
        files: weightsStore(root, 'checksum').files([
          ...clipFolderFiles('fp32').map((f) => join(modelDir, f)),
          join(root, 'aesthetic.safetensors'),
        ]),
      }),
      flatViewRenderer(),
    );
    await clip.init();
    const cloud = flatCloud(8000, [0.8, 0.3, 0.2]);

    const loop = watchEventLoop();
    const start = performance.now();
    let longest: number;
    let took: number;
    try {
      const checks = await clip.validate(
        {
          job: textJob('a red Cat'),
          cloud,
          image: { width: 1, height: 1, data: new Uint8ClampedArray(4) },
        },
        jobContext(),
      );
      expectTextChecks(checks, 'a red Cat', cloud);
    } finally {
      longest = loop.stop();
      took = performance.now() - start;
      await clip.close();
    }
    // Long enough to tell; in this thread the inference alone would hold the loop for nearly all of it.
    expect(took).toBeGreaterThan(400);
    expect(longest).toBeLessThan(took / 3);
  });

  it('pre-processes views as CLIP does: crop, rescale and normalise match the transformers.js processor; downscaling is antialiased', async () => {
    env.allowRemoteModels = false;
    env.localModelPath = `${root}/`;
    const processor = await AutoProcessor.from_pretrained('tiny-clip');
    const settings = clipImageSettings(JSON.parse(await readFile(join(root, 'tiny-clip', 'preprocessor_config.json'), 'utf8')));
    // A wide gradient with a transparent corner, already 16 high: no resampling, so the centre crop,
    // flattening, rescale, normalisation and NCHW layout must match the processor value for value.
    const w = 26,
      h = 16;
    const view: RgbaImage = { width: w, height: h, data: new Uint8ClampedArray(w * h * 4) };
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) view.data.set([x * 9, y * 15, 255 - x * 7, x < 9 && y < 4 ? 60 : 255], (y * w + x) * 4);
    const ours = await clipPixelValues(settings, [view, view]);
    const reference = (await processor(new RawImage(flattenOnWhite(view), w, h, 3))).pixel_values as Tensor;
    expect(ours.dims).toEqual([2, 3, 16, 16]);
    const a = ours.data as Float32Array,
      b = reference.data as Float32Array;
    for (let i = 0; i < b.length; i++) {
      expect(a[i]).toBeCloseTo(b[i], 5);
      expect(a[b.length + i]).toBeCloseTo(b[i], 5);
    }
    // Downscaling is antialiased like Pillow's bicubic resize (the reference CLIP pipeline's): a fine
    // 1-pixel checkerboard averages to mid-grey instead of aliasing.
    const checker: RgbaImage = { width: 64, height: 64, data: new Uint8ClampedArray(64 * 64 * 4) };
    for (let p = 0; p < 64 * 64; p++) {
      const v = ((p % 64) + Math.floor(p / 64)) % 2 ? 255 : 0;
      checker.data.set([v, v, v, 255], p * 4);
    }
    const grey = (await clipPixelValues(settings, [checker])).data as Float32Array;
    const midGrey = (127.5 / 255 - tiny.mean[0]) / tiny.std[0];
    for (let p = 20; p < 236; p += 37) expect(Math.abs(grey[p] - midGrey)).toBeLessThan(0.1);
  });

  it('holds the GPU lock only around model calls, never while views render on the CPU', async () => {
    let locked = false;
    const locks: string[] = [];
    const runOnGpu: GpuRunner = async (work) => {
      locks.push('enter');
      locked = true;
      try {
        return await work();
      } finally {
        locked = false;
      }
    };
    const inner = flatViewRenderer();
    const renderedUnderLock: boolean[] = [];
    const renderer: ViewRenderer = (cloud, views, signal) => {
      renderedUnderLock.push(locked);
      return inner(cloud, views, signal);
    };
    const image = { width: 1, height: 1, data: new Uint8ClampedArray(4) };
    const cloud = flatCloud(8000, [0.5, 0.5, 0.2]);

    const ctx = standaloneContext(testConfig(), { gpu: runOnGpu });
    const onGpu = new ClipValidator(options({ lockModelsOnGpu: true }), renderer);
    await onGpu.init();
    expect(onGpu.gpu).toBe(false); // the pipeline must not wrap the whole check
    await onGpu.validate({ job: textJob('a lamp'), cloud, image }, ctx);
    expect(ctx.gpuMs()).toBeGreaterThan(0); // the model calls count as the job's GPU time
    expect(locks).toEqual(['enter']);
    expect(renderedUnderLock).toEqual([false]);
    await onGpu.close();

    const onCpu = new ClipValidator(options({ lockModelsOnGpu: false }), renderer);
    await onCpu.init();
    await onCpu.validate({ job: textJob('a lamp'), cloud, image }, ctx);
    expect(locks).toEqual(['enter']); // CPU inference leaves the GPU to other jobs
    await onCpu.close();
  });

  it('embeds each prompt once: retries and repeats reuse the text embedding', async () => {
    // The model runner, with each call's method noted on the way.
    const methods: string[] = [];
    const inner = workerModels();
    const counting: ModelRunner = {
      load: async (kind, loadOptions) => {
        const model = await inner.load(kind, loadOptions);
        return {
          call: (method, args, callOptions) => {
            methods.push(method);
            return model.call(method, args, callOptions);
          },
          release: () => model.release(),
        };
      },
    };
    const clip = new ClipValidator(options({ runner: counting }), flatViewRenderer());
    await clip.init();
    const cloud = flatCloud(8000, [0.2, 0.6, 0.3]);
    const image = { width: 1, height: 1, data: new Uint8ClampedArray(4) };
    const first = await clip.validate({ job: textJob('green tree'), cloud, image }, jobContext());
    const textPasses = () => methods.filter((m) => m === 'embedText').length;
    expect(textPasses()).toBe(1);
    const second = await clip.validate({ job: textJob('green tree'), cloud, image }, jobContext());
    expect(textPasses()).toBe(1);
    expect(second).toEqual(first);
    await clip.validate({ job: textJob('blue box'), cloud, image }, jobContext());
    expect(textPasses()).toBe(2);
    expect(methods.filter((m) => m === 'embedImages')).toHaveLength(3);
    await clip.close();
  });

  it('scores image tasks by image-to-image similarity with the framed input on white', async () => {
    const clip = new ClipValidator(options(), flatViewRenderer());
    await clip.init();
    const cloud = flatCloud(8000, [0.1, 0.4, 0.9]);
    // Framed input: half-transparent everywhere, so on white it is one flat colour the test can embed by hand.
    const framed: RgbaImage = { width: 32, height: 32, data: new Uint8ClampedArray(32 * 32 * 4) };
    for (let p = 0; p < 32 * 32; p++) framed.data.set([20, 100, 220, 102], p * 4);
    const onWhite = [20, 100, 220].map((v) => Math.floor((v * 102 + 255 * 153 + 127) / 255));
    const flat = flattenOnWhite(framed);
    expect(Array.from(flat.subarray(0, 3))).toEqual(onWhite);
    expect(onWhite).toEqual([161, 193, 241]);

    const job: Job = { id: 'i', task: { kind: 'image', image: framed, digest: 'x' }, seed: 1 };
    // No aesthetic check: the job's min_aesthetic is 0.
    const ctx = jobContext({ config: testConfig({ validate: { clip: { min_aesthetic: 0 } } }) });
    const checks = await clip.validate({ job, cloud, image: framed }, ctx);
    expect(checks.map((c) => c.name)).toEqual(['clip_image_similarity']);
    const reference = imageEmbedding(onWhite);
    const expected = [0, 1, 2, 3].reduce((s, i) => s + cosine(imageEmbedding(viewColour(cloud, i)), reference), 0) / 4;
    expect(checks[0].value).toBeCloseTo(expected, 4);
    expect(checks[0].threshold).toBe(0.75);
    await clip.close();
  });

  it('reports missing model files with their paths and does not load', async () => {
    const modelDir = join(root, 'absent-clip');
    const clip = new ClipValidator(
      options({
        modelDir,
        files: weightsStore(root, 'checksum').files(clipFolderFiles('fp32').map((f) => join(modelDir, f))),
      }),
      flatViewRenderer(),
    );
    const readiness = clip.readiness();
    expect(readiness.ready).toBe(false);
    expect(readiness.detail).toContain(join(modelDir, 'onnx/vision_model.onnx'));
    expect(readiness.detail).toContain(join(modelDir, 'tokenizer.json'));
    await expect(clip.init()).rejects.toThrow(join(modelDir, 'config.json'));
  });

  it('cannot be configured without a view renderer', () => {
    const config = parseConfig({ validate: { checks: ['gates', 'clip'] }, weights: { dir: root }, cache: { enabled: false } });
    expect(() => createStages(config, defaultStageDeps(config))).toThrow(/no view renderer was given to createStages/);
    expect(createStages(config, { ...defaultStageDeps(config), renderViews: flatViewRenderer() }).validators.map((v) => v.name)).toEqual([
      'gates',
      'clip',
    ]);
  });

  describe('through the pipeline', () => {
    /** Preview stages for everything but validation; checks in config order. */
    const pipeline = async ({ gates, ...clipSection }: Record<string, unknown>) => {
      const config = parseConfig({
        cache: { enabled: false },
        image_to_3d: { inflate: { max_gaussians: 9000 } },
        validate: {
          checks: ['gates', 'clip'],
          clip: {
            model: join(root, 'tiny-clip'),
            aesthetic_weights: join(root, 'aesthetic.safetensors'),
            views: 3,
            view_size: 32,
            ...clipSection,
          },
          gates: gates ?? {},
        },
        weights: { dir: root },
      });
      const renderer = flatViewRenderer();
      const stages = createStages(config, { ...defaultStageDeps(config), renderViews: renderer });
      for (const v of stages.validators) await v.init?.();
      return { renderer, pipeline: new Pipeline(stages), ctx: () => jobContext({ config }) };
    };
    const job = textJob('orange ball');

    it('runs gates first: a gate failure declines without rendering views', async () => {
      const { renderer, pipeline: p, ctx } = await pipeline({ gates: { min_gaussians: 1_000_000 } });
      const outcome = await p.run(job, ctx());
      expect(outcome.kind).toBe('declined');
      if (outcome.kind !== 'declined') return;
      expect(outcome.reason).toMatch(/^gaussian_count \d+ failed threshold 1000000 \(gates\)$/);
      expect(outcome.report.attempts).toHaveLength(2);
      expect(outcome.report.attempts.every((a) => a.checks.every((c) => c.by === 'gates'))).toBe(true);
      expect(renderer.calls).toHaveLength(0);
    });

    it('declines with the clip check that failed, after one retry', async () => {
      const { renderer, pipeline: p, ctx } = await pipeline({ min_geomean_cosine: 1 });
      const outcome = await p.run(job, ctx());
      expect(outcome.kind).toBe('declined');
      if (outcome.kind !== 'declined') return;
      expect(outcome.reason).toMatch(/^clip_geomean_cosine [\d.e-]+ failed threshold 1 \(clip\)$/);
      expect(outcome.report.attempts.map((a) => a.seed)).toHaveLength(2);
      expect(new Set(outcome.report.attempts.map((a) => a.seed)).size).toBe(2);
      for (const attempt of outcome.report.attempts) {
        expect(attempt.checks.map((c) => `${c.by}:${c.name}`)).toEqual([
          'gates:gaussian_count',
          'gates:transparent_share',
          'gates:rotations_not_identity',
          'gates:first_points_not_ones',
          'clip:clip_geomean_cosine',
          'clip:clip_similarity',
          'clip:aesthetic',
        ]);
      }
      expect(renderer.calls).toEqual([
        { count: 3, size: 32 },
        { count: 3, size: 32 },
      ]);
      expect(outcome.report.timings.validate).toBeGreaterThan(0);
    });

    it('names the aesthetic check when only it fails', async () => {
      const { pipeline: p, ctx } = await pipeline({ min_geomean_cosine: 0, min_similarity: -1, min_aesthetic: 10 });
      const outcome = await p.run(job, ctx());
      expect(outcome.kind === 'declined' && outcome.reason).toMatch(/^aesthetic [\d.]+ failed threshold 10 \(clip\)$/);
    });

    it('puts every check with value, threshold and verdict into X-Fast3d-Report of a 204', async () => {
      const config = parseConfig({
        cache: { enabled: false },
        image_to_3d: { inflate: { max_gaussians: 9000 } },
        validate: {
          checks: ['gates', 'clip'],
          clip: {
            model: join(root, 'tiny-clip'),
            aesthetic_weights: join(root, 'aesthetic.safetensors'),
            views: 2,
            view_size: 32,
            min_geomean_cosine: 1,
          },
        },
        weights: { dir: root },
      });
      const { service, app } = compose(config, { renderViews: flatViewRenderer() });
      await service.start();
      const res = await app.request('/generate/', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'prompt=orange+ball&seed=5',
      });
      expect(res.status).toBe(204);
      expect(res.headers.get('X-Fast3d-Decline-Reason')).toMatch(/^clip_geomean_cosine [\d.e-]+ failed threshold 1 \(clip\)$/);
      const attempts = res.headers.get('X-Fast3d-Report')!.split(';');
      expect(attempts).toHaveLength(2);
      for (const attempt of attempts) {
        expect(attempt).toMatch(
          /^\d:\d+:reject:gaussian_count=\d+\/7000\/pass:transparent_share=[^:]+:rotations_not_identity=[^:]+:first_points_not_ones=-1\/-1\/pass:clip_geomean_cosine=[\d.e-]+\/1\/fail:clip_similarity=[-\d.e]+\/0\.2400\/(pass|fail):aesthetic=[\d.]+\/4\.500\/(pass|fail)$/,
        );
      }
      await service.close();
    });

    it('returns the asset when every check passes', async () => {
      const { pipeline: p, ctx } = await pipeline({ min_geomean_cosine: 0, min_similarity: -1, min_aesthetic: 0.01 });
      const outcome = await p.run(job, ctx());
      expect(outcome.kind).toBe('asset');
      expect(outcome.report.attempts).toHaveLength(1);
      expect(outcome.report.attempts[0].checks.every((c) => c.passed)).toBe(true);
    });
  });
});
