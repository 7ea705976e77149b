/** The preview backends are real CPU algorithms: check what each computes, not just that it returns. */
import { describe, expect, it } from 'vitest';
import { createImage } from '../src/image/rgba.js';
import { inflateSilhouette } from '../src/pipelines/image-to-3d/inflate.js';
import { edt, signedDistance } from '../src/pipelines/image-to-3d/surface.js';
import { borderMedian, keyBackground, KeyingMatting } from '../src/pipelines/matting/keying.js';
import { lookOfPrompt, PreviewTextToImage } from '../src/pipelines/text-to-image/preview.js';
import { sigmoid } from '../src/splat/cloud.js';
import { checkGates } from '../src/splat/gates.js';
import { jobContext, testConfig } from './helpers/fake-stages.js';

const frame = { size: 518, margin: 0.1, alphaThreshold: 0.5 };
const keying = { ...frame, tolerance: 0.12, softness: 0.08, minCoverage: 0.005, keepInputAlpha: true };

function disc(size: number, radius: number, colour: [number, number, number], background: [number, number, number]) {
  const image = createImage(size, size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 4;
      const inside = (x + 0.5 - size / 2) ** 2 + (y + 0.5 - size / 2) ** 2 < radius * radius;
      const c = inside ? colour : background;
      image.data[o] = c[0];
      image.data[o + 1] = c[1];
      image.data[o + 2] = c[2];
      image.data[o + 3] = 255;
    }
  }
  return image;
}

describe('preview text-to-image', () => {
  it("chooses shape and colour from the prompt's words", () => {
    expect(lookOfPrompt('a pink bicycle')).toEqual({ shape: 'torus', colour: [0.95, 0.45, 0.65] });
    expect(lookOfPrompt('Two RED apples').shape).toBe('sphere');
    expect(lookOfPrompt('a tall green tree')).toMatchObject({ shape: 'cone', colour: [0.15, 0.65, 0.2] });
    // Unknown words still give a stable look.
    expect(lookOfPrompt('quux zorp')).toEqual(lookOfPrompt('quux zorp'));
  });

  it("draws the object centred on white, in the prompt's colour, varying with the seed, at the job's side", async () => {
    const t2i = new PreviewTextToImage({ lightJitter: 0.25 });
    const ctx = jobContext({ config: testConfig({ pipeline: { image_size: 128 } }) });
    const image = await t2i.generate('a blue cube', 3, ctx);
    expect([image.width, image.height]).toEqual([128, 128]);
    expect(Array.from(image.data.subarray(0, 4))).toEqual([255, 255, 255, 255]); // corner is background
    const centre = (64 * 128 + 64) * 4;
    expect(image.data[centre + 2]).toBeGreaterThan(image.data[centre]); // blue dominates
    const other = await t2i.generate('a blue cube', 4, ctx);
    expect(Buffer.from(other.data).equals(Buffer.from(image.data))).toBe(false);
    const again = await t2i.generate('a blue cube', 3, ctx);
    expect(Buffer.from(again.data).equals(Buffer.from(image.data))).toBe(true);
  });
});

describe('keying matting', () => {
  it('estimates the background from the border and keys it out', () => {
    const image = disc(64, 20, [200, 30, 30], [240, 240, 240]);
    expect(borderMedian(image)).toEqual([240, 240, 240]);
    const keyed = keyBackground(image, keying);
    expect(keyed.data[3]).toBe(0); // corner
    expect(keyed.data[(32 * 64 + 32) * 4 + 3]).toBe(255); // centre
  });

  it('unmixes soft edge colours from the background', () => {
    // White 9x9 picture, a red 3x3 block in the middle, and one 50/50 red-white blend pixel beside it.
    const image = createImage(9, 9);
    image.data.fill(255);
    for (let y = 3; y < 6; y++) for (let x = 3; x < 6; x++) image.data.set([200, 30, 30, 255], (y * 9 + x) * 4);
    const blend = (4 * 9 + 6) * 4;
    image.data.set([227, 142, 142, 255], blend);
    const keyed = keyBackground(image, { tolerance: 0.1, softness: 0.5, alphaThreshold: 0.5 });
    const a = keyed.data[blend + 3] / 255;
    expect(a).toBeGreaterThan(0);
    expect(a).toBeLessThan(1);
    // observed = a * colour + (1 - a) * 255  =>  colour = (observed - (1 - a) * 255) / a
    expect(Math.abs(keyed.data[blend] - (227 - (1 - a) * 255) / a)).toBeLessThanOrEqual(1);
  });

  it('drops specks and frames the object: square, centred, with the margin', async () => {
    const image = disc(400, 60, [20, 120, 200], [255, 255, 255]);
    image.data.set([0, 0, 0, 255], (10 * 400 + 10) * 4); // one dark speck far from the object
    const framed = await new KeyingMatting(keying).matte({ image, fromUser: true }, jobContext());
    expect(framed).not.toBeNull();
    expect([framed!.width, framed!.height]).toEqual([518, 518]);
    // The disc's 120 px diameter fills 80% of the side (margin 0.1 on each side): opaque rows span ~414 px.
    let top = -1,
      bottom = -1;
    for (let y = 0; y < 518; y++) {
      if (framed!.data[(y * 518 + 259) * 4 + 3] > 127) {
        if (top < 0) top = y;
        bottom = y;
      }
    }
    expect(bottom - top + 1).toBeGreaterThan(405);
    expect(bottom - top + 1).toBeLessThan(424);
    expect(Math.abs((top + bottom) / 2 - 259)).toBeLessThan(3);
  });

  it('returns null when there is no object', async () => {
    const blank = disc(64, 0, [0, 0, 0], [250, 250, 250]);
    expect(await new KeyingMatting(keying).matte({ image: blank, fromUser: false }, jobContext())).toBeNull();
  });
});

describe('silhouette inflation', () => {
  it('computes exact Euclidean distances to the silhouette edge', () => {
    const inside = new Uint8Array(7 * 7).fill(1);
    inside[0] = 0; // one outside pixel in the corner
    const d = edt(inside, 7, 7);
    expect(d[0]).toBe(0);
    expect(d[6 * 7 + 6]).toBe(72); // (6, 6): 6^2 + 6^2
    expect(d[3 * 7 + 4]).toBe(25); // (4, 3): 4^2 + 3^2
  });

  it('measures the signed distance to the outline between pixel centres', () => {
    const n = 101;
    const inside = new Uint8Array(n * n);
    for (let y = 0; y < n; y++)
      for (let x = 0; x < n; x++) inside[y * n + x] = (x + 0.5 - 50.5) ** 2 + (y + 0.5 - 50.5) ** 2 <= 40 * 40 ? 1 : 0;
    const field = signedDistance(inside, n, n);
    expect(field.deepest).toBeGreaterThan(39);
    expect(field.deepest).toBeLessThan(41);
    expect(field.sample(50.5, 50.5)).toBeCloseTo(field.deepest, 5);
    // Half-way to the rim, on the rim, and outside it.
    expect(field.sample(70.5, 50.5)).toBeGreaterThan(19);
    expect(field.sample(70.5, 50.5)).toBeLessThan(21);
    expect(Math.abs(field.sample(90.5, 50.5))).toBeLessThan(1);
    expect(field.sample(95.5, 50.5)).toBeLessThan(-4);
    // Beyond the image is outside.
    expect(field.sample(-3, 50)).toBeLessThan(0);
  });

  it('emits a closed, front-facing, coloured cloud that passes the validator gates', () => {
    const image = disc(518, 200, [220, 40, 40], [0, 0, 0]);
    for (let i = 3; i < image.data.length; i += 4) {
      const p = (i - 3) / 4,
        x = p % 518,
        y = Math.floor(p / 518);
      image.data[i] = (x + 0.5 - 259) ** 2 + (y + 0.5 - 259) ** 2 < 200 * 200 ? 255 : 0;
    }
    const cloud = inflateSilhouette(image, { maxGaussians: 200_000, depthRatio: 0.6, opacity: 0.95, alphaThreshold: 0.5 });
    expect(cloud.count).toBeGreaterThan(150_000);
    expect(cloud.count).toBeLessThanOrEqual(200_000);
    expect(checkGates(cloud).every((g) => g.passed)).toBe(true);
    const { z, f_dc_0, f_dc_1, opacity, rot_0 } = cloud.columns;
    let front = 0,
      back = 0;
    for (let i = 0; i < cloud.count; i++) z[i] > 0 ? front++ : back++;
    expect(front).toBe(back);
    expect(f_dc_0[0]).toBeGreaterThan(f_dc_1[0]);
    expect(sigmoid(opacity[0])).toBeCloseTo(0.95, 5);
    expect(new Set(Array.from(rot_0.subarray(0, 1000))).size).toBeGreaterThan(10); // rims tilt: not all identity
  });

  it('samples small silhouettes more densely so previews stay solid', () => {
    const image = createImage(518, 518);
    for (let y = 250; y < 270; y++) for (let x = 250; x < 270; x++) image.data.set([10, 200, 10, 255], (y * 518 + x) * 4);
    const cloud = inflateSilhouette(image, { maxGaussians: 240_000, depthRatio: 0.6, opacity: 0.95, alphaThreshold: 0.5 });
    expect(cloud.count).toBeGreaterThan(50_000);
  });
});
