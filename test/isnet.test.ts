import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { defaultStageDeps } from '../src/compose.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { alphaBox } from '../src/image/frame-object.js';
import { createImage, type RgbaImage } from '../src/image/rgba.js';
import { createStages } from '../src/pipelines/backends.js';
import { IsnetMatting, isnetInput, maskFromPrediction, withMask } from '../src/pipelines/matting/isnet.js';
import { workerModels } from '../src/runtime/model-host.js';
import { weightsStore } from '../src/weights/store.js';
import { watchEventLoop } from './helpers/event-loop.js';
import { heavyIsnetOnnx, tinyIsnetOnnx } from './helpers/models.js';
import { jobContext } from './helpers/fake-stages.js';

/** A w x h image filled with `bg`, with an opaque rectangle [x0,x1) x [y0,y1) of colour `fg`. */
function rectImage(w: number, h: number, rect: [number, number, number, number], fg: number[], bg: number[]): RgbaImage {
  const image = createImage(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const inside = x >= rect[0] && x < rect[2] && y >= rect[1] && y < rect[3];
      const c = inside ? fg : bg;
      image.data.set([c[0], c[1], c[2], 255], (y * w + x) * 4);
    }
  }
  return image;
}

const frame = { size: 518, margin: 0.1, alphaThreshold: 0.5 };

describe('ISNet pre- and post-processing (rembg recipe)', () => {
  it("divides by the image's own maximum, subtracts 0.5 and lays out NCHW", async () => {
    // A 2x2 image at the model size: no resampling, so every value is hand-computable.
    const sameSize = await isnetInput(
      { width: 2, height: 2, data: Uint8ClampedArray.from([200, 100, 50, 255, 0, 20, 40, 255, 200, 100, 50, 255, 0, 20, 40, 255]) },
      2,
    );
    // The maximum is 200, not 255: R plane, then G plane, then B plane.
    const expected = [
      200 / 200 - 0.5,
      0 / 200 - 0.5,
      200 / 200 - 0.5,
      0 / 200 - 0.5,
      100 / 200 - 0.5,
      20 / 200 - 0.5,
      100 / 200 - 0.5,
      20 / 200 - 0.5,
      50 / 200 - 0.5,
      40 / 200 - 0.5,
      50 / 200 - 0.5,
      40 / 200 - 0.5,
    ];
    expect(Array.from(sameSize)).toEqual(expected.map((v) => expect.closeTo(v, 6)));
  });

  it('min-max normalises channel 0 and truncates to 8 bits like rembg', () => {
    expect(Array.from(maskFromPrediction(Float32Array.of(0.25, 0.5, 0.75, 1), 2)!)).toEqual([0, 85, 170, 255]);
    // Only the first size*size values (channel 0 of the first output) count.
    expect(Array.from(maskFromPrediction(Float32Array.of(0.1, 0.3, 0.2, 0.1, 99, -99), 2)!)).toEqual([0, 255, 127, 0]);
    expect(maskFromPrediction(new Float32Array(4).fill(0.7), 2)).toBeNull();
  });

  it('uses the mask, resized back to the image, as alpha and keeps the colours', async () => {
    const image = rectImage(4, 4, [0, 0, 2, 4], [10, 20, 30], [40, 50, 60]);
    const out = await withMask(image, Uint8Array.of(255, 0, 255, 0), 2);
    expect(out.width).toBe(4);
    const alphas = Array.from({ length: 16 }, (_, p) => out.data[p * 4 + 3]);
    // Left half opaque, right half transparent (Lanczos may ring a little at the seam).
    for (let y = 0; y < 4; y++) {
      expect(alphas[y * 4]).toBeGreaterThan(200);
      expect(alphas[y * 4 + 3]).toBeLessThan(55);
    }
    expect(Array.from(out.data.subarray(0, 3))).toEqual([10, 20, 30]);
  });
});

describe('isnet matting backend on a tiny ISNet-shaped ONNX model', () => {
  let dir: string;
  let modelFile: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fast3d-isnet-'));
    // Custom file name: not a manifest target, so only its presence is checked.
    modelFile = join(dir, 'tiny-isnet.onnx');
    await writeFile(modelFile, tinyIsnetOnnx(8));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const backend = (keepInputAlpha = true, path = modelFile) =>
    new IsnetMatting({
      ...frame,
      model: weightsStore(dir, 'checksum').files([path]),
      executionProvider: 'cpu',
      inputSize: 1024,
      threads: 1,
      minCoverage: 0.005,
      keepInputAlpha,
      runner: workerModels(),
    });

  /** Crop box 80x80 -> square side ceil(80 / 0.8) = 100, object offset 10: scaled to 518, [51.8, 466.2). */
  const expectFramedRect = (framed: RgbaImage | null) => {
    expect(framed).not.toBeNull();
    expect([framed!.width, framed!.height]).toEqual([518, 518]);
    const box = alphaBox(framed!, 0.5)!;
    for (const v of [box.x0, box.y0]) expect(Math.abs(v - 51.8)).toBeLessThanOrEqual(2);
    for (const v of [box.x1, box.y1]) expect(Math.abs(v - 466.2)).toBeLessThanOrEqual(2);
  };

  it('loads in init(), then cuts out the bright object and frames it at 518 with the margin', async () => {
    const matting = backend();
    expect(matting.readiness()).toEqual({ ready: false, detail: `loading ${modelFile}` });
    await matting.init();
    expect(matting.readiness().ready).toBe(true);

    // Bright object on black: the tiny model's output follows brightness, min-max maps it to 255 and 0.
    const image = rectImage(300, 200, [100, 50, 180, 130], [250, 240, 230], [0, 0, 0]);
    const framed = await matting.matte({ image, fromUser: false }, jobContext());
    expectFramedRect(framed);
    // Colours come from the input image; the corners are transparent.
    // (Lanczos overshoot at the edges makes the interior a little less than the mask's maximum.)
    const centre = (259 * 518 + 259) * 4;
    const expected = [250, 240, 230, 255];
    Array.from(framed!.data.subarray(centre, centre + 4)).forEach((v, i) => expect(Math.abs(v - expected[i])).toBeLessThanOrEqual(4));
    expect(framed!.data[3]).toBe(0);
    await matting.close();
  });

  it('keeps the event loop turning while a second-long inference runs', async () => {
    // The tiny model's mask behind 40 products of 1024 x 1024 matrices: about a second of onnxruntime.
    const path = join(dir, 'heavy-isnet.onnx');
    await writeFile(path, heavyIsnetOnnx(8, 40));
    const matting = backend(true, path);
    await matting.init();
    const image = rectImage(300, 200, [100, 50, 180, 130], [250, 240, 230], [0, 0, 0]);

    const loop = watchEventLoop();
    const start = performance.now();
    let longest: number;
    let took: number;
    try {
      expectFramedRect(await matting.matte({ image, fromUser: false }, jobContext()));
    } finally {
      longest = loop.stop();
      took = performance.now() - start;
      await matting.close();
    }
    // Long enough to tell; in this thread the inference alone would hold the loop for nearly all of it.
    expect(took).toBeGreaterThan(400);
    expect(longest).toBeLessThan(took / 3);
  });

  it('answers null for an image without an object (flat prediction)', async () => {
    const matting = backend();
    await matting.init();
    expect(
      await matting.matte({ image: rectImage(64, 64, [0, 0, 0, 0], [0, 0, 0], [90, 90, 90]), fromUser: false }, jobContext()),
    ).toBeNull();
    await matting.close();
  });

  it("keeps a user image's own alpha unless configured to matte again", async () => {
    // The user's alpha says the object is the left block; the model would pick the bright right block.
    const image = rectImage(200, 100, [120, 20, 180, 80], [255, 255, 255], [0, 0, 0]);
    for (let y = 0; y < 100; y++) for (let x = 0; x < 200; x++) image.data[(y * 200 + x) * 4 + 3] = x < 60 && y >= 10 && y < 90 ? 255 : 0;

    const keeping = backend(true);
    await keeping.init();
    const kept = (await keeping.matte({ image, fromUser: true }, jobContext()))!;
    // 60x80 box -> side 100; black object pixels, transparent around.
    const keptBox = alphaBox(kept, 0.5)!;
    expect((keptBox.x1 - keptBox.x0) / (keptBox.y1 - keptBox.y0)).toBeCloseTo(60 / 80, 1);
    expect(Array.from(kept.data.subarray((259 * 518 + 259) * 4, (259 * 518 + 259) * 4 + 3))).toEqual([0, 0, 0]);

    const rematting = backend(false);
    await rematting.init();
    const rematted = (await rematting.matte({ image, fromUser: true }, jobContext()))!;
    const box = alphaBox(rematted, 0.5)!;
    // The bright 60x60 block: square box, white centre.
    expect((box.x1 - box.x0) / (box.y1 - box.y0)).toBeCloseTo(1, 1);
    expect(Array.from(rematted.data.subarray((259 * 518 + 259) * 4, (259 * 518 + 259) * 4 + 3))).toEqual([255, 255, 255]);
    // Images from text-to-image are always matted, alpha or not.
    const fromText = (await keeping.matte({ image, fromUser: false }, jobContext()))!;
    expect(alphaBox(fromText, 0.5)).toEqual(box);
    await keeping.close();
    await rematting.close();
  });

  it('reports the missing model file with its path, and init() fails with it', async () => {
    const missing = join(dir, 'nowhere', 'isnet.onnx');
    const matting = backend(true, missing);
    expect(matting.readiness()).toEqual({ ready: false, detail: `model file ${missing} not found (run: npm run weights)` });
    await expect(matting.init()).rejects.toThrow(missing);
    expect(matting.readiness().ready).toBe(false);
    await expect(
      matting.matte({ image: rectImage(8, 8, [2, 2, 6, 6], [255, 255, 255], [0, 0, 0]), fromUser: false }, jobContext()),
    ).rejects.toThrow(missing);
  });

  it("fails init() with onnxruntime's reason when the file is not a model", async () => {
    const path = join(dir, 'not-a-model.onnx');
    await writeFile(path, 'not an onnx file');
    const matting = backend(true, path);
    await expect(matting.init()).rejects.toThrow(`ISNet model ${path} could not be loaded: `);
    expect(matting.readiness().ready).toBe(false);
  });

  it('refuses a manifest file of the wrong size before loading it', async () => {
    const path = join(dir, 'isnet-general-use.onnx');
    await writeFile(path, tinyIsnetOnnx(8));
    const matting = backend(true, path);
    await expect(matting.init()).rejects.toThrow(/expected 178648008/);
    expect(matting.readiness().detail).toMatch(/isnet-general-use\.onnx has \d+ bytes, expected 178648008/);
  });

  it('is chosen by matting.backend: isnet, with the model path under weights.dir', () => {
    const empty = join(dir, 'empty-models');
    const config = parseConfig({ matting: { backend: 'isnet' }, weights: { dir: empty } });
    const stages = createStages(config, defaultStageDeps(config));
    expect(stages.matting.name).toBe('isnet');
    expect(stages.matting.readiness().detail).toBe(`model file ${join(empty, 'isnet-general-use.onnx')} not found (run: npm run weights)`);
  });
});
