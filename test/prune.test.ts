/**
 * Gaussian budgets: the cut keeps exactly the budget, the most important Gaussians, the bounding box and the
 * mean; a preview asset cut to the realtime preset's budget stays closed (what the full cloud covers, from the
 * validator's views and from the front, back and sides, the cut one covers too); and real assets (robocop,
 * hamburger) cut to a realtime budget keep the validator's views close to the original's.
 */
import { describe, expect, it } from 'vitest';
import type { RgbaImage } from '../src/image/rgba.js';
import { psnrOfViews } from '../src/image/psnr.js';
import { createStages } from '../src/pipelines/backends.js';
import { standaloneContext, type JobSettings } from '../src/pipelines/context.js';
import { Pipeline } from '../src/pipelines/generate.js';
import { presetsOf } from '../src/pipelines/presets.js';
import {
  orbitCamera,
  RenderPool,
  renderValidatorViews,
  renderViews,
  validatorCameras,
  VALIDATOR_FOV,
  VALIDATOR_RADIUS,
  type Camera,
} from '../src/render/index.js';
import { bounds, logit, type GaussianCloud } from '../src/splat/cloud.js';
import { pruneToBudget } from '../src/splat/prune.js';
import { ballCloud, testConfig } from './helpers/fake-stages.js';
import { loadFixtureCloud } from './helpers/fixtures.js';

/** The validator's 16 views, and straight front, back and side views (elevation 0), `size` pixels square. */
function coverageCameras(size: number): Camera[] {
  const lens = { width: size, height: size, fov: VALIDATOR_FOV };
  const level = [0, 90, 180, 270].map((azimuth) => orbitCamera({ azimuth, elevation: 0, radius: VALIDATOR_RADIUS }, lens));
  return [...validatorCameras(16, size), ...level];
}

/** Per view, whether each pixel is covered (alpha over one half): from renders over white and over black. */
async function coveredPixels(cloud: GaussianCloud, cameras: Camera[], pool: RenderPool): Promise<Uint8Array[]> {
  const white = await renderViews(cloud, cameras, { pool, background: [1, 1, 1] });
  const black = await renderViews(cloud, cameras, { pool, background: [0, 0, 0] });
  return white.map((w: RgbaImage, v) => {
    const b = black[v].data;
    const covered = new Uint8Array(w.width * w.height);
    for (let p = 0; p < covered.length; p++) {
      // Over white a pixel is c + (1 - alpha), over black c: their difference is 1 - alpha.
      const transmitted = (w.data[p * 4] - b[p * 4] + w.data[p * 4 + 1] - b[p * 4 + 1] + w.data[p * 4 + 2] - b[p * 4 + 2]) / (3 * 255);
      covered[p] = transmitted < 0.5 ? 1 : 0;
    }
    return covered;
  });
}

/** Per view, the share of the full cloud's covered pixels that the cut cloud covers too. */
async function coverage(full: GaussianCloud, cut: GaussianCloud, pool: RenderPool, size = 128): Promise<number[]> {
  const cameras = coverageCameras(size);
  const before = await coveredPixels(full, cameras, pool);
  const after = await coveredPixels(cut, cameras, pool);
  return before.map((mask, v) => {
    let total = 0,
      kept = 0;
    for (let p = 0; p < mask.length; p++)
      if (mask[p]) {
        total++;
        kept += after[v][p];
      }
    return kept / total;
  });
}

describe('pruneToBudget', () => {
  it('keeps exactly the budget, the most important first, the bounding box and the order', () => {
    const cloud = ballCloud(20_000, 3);
    const { opacity, scale_0 } = cloud.columns;
    // Every other Gaussian is faint and small: those must be the ones to go.
    for (let i = 1; i < cloud.count; i += 2) {
      opacity[i] = logit(0.05);
      scale_0[i] = Math.log(0.002);
    }
    const { cloud: kept, dropped } = pruneToBudget(cloud, 12_000);
    expect(kept.count).toBe(12_000);
    expect(dropped).toBe(8_000);
    const faint = Array.from(kept.columns.opacity).filter((o) => o < 0).length;
    expect(faint).toBeLessThanOrEqual(2_000 + 6); // the 10,000 strong ones all stay (bar an exchange for the centroid)
    expect(bounds(kept)).toEqual(bounds(cloud));
    // The scalar mean of all coordinates, which the validator centres on, stays where it was.
    const mean = (c: GaussianCloud) =>
      [c.columns.x, c.columns.y, c.columns.z].reduce((sum, axis) => sum + axis.reduce((a, v) => a + v, 0), 0) / (3 * c.count);
    expect(Math.abs(mean(kept) - mean(cloud))).toBeLessThan(1e-4);
    // Order kept: x of the kept ones is a subsequence of the original's.
    const xs = cloud.columns.x;
    let j = 0;
    for (let i = 0; i < kept.count; i++) {
      while (xs[j] !== kept.columns.x[i]) j++;
      j++;
    }
    expect(j).toBeLessThanOrEqual(cloud.count);
  });

  it('leaves a cloud within its budget as it is', () => {
    const cloud = ballCloud(9_000, 1);
    expect(pruneToBudget(cloud, 9_000)).toEqual({ cloud, dropped: 0 });
  });

  it('keeps a realtime preview asset closed: what the full cloud covers from every side, the cut one covers too', async () => {
    const config = testConfig();
    const realtime = presetsOf(config).resolve('realtime').settings;
    const uncut: JobSettings = { ...realtime, pipeline: { ...realtime.pipeline, max_gaussians: 0 } };
    const pipeline = new Pipeline(createStages(config));
    const pool = new RenderPool(2);
    try {
      // A box, a cylinder and a torus: flat faces, a curved body and a hole.
      for (const prompt of ['a wooden crate', 'a coffee mug', 'a donut']) {
        const run = async (settings: JobSettings) => {
          const outcome = await pipeline.run({ id: prompt, task: { kind: 'text', prompt }, seed: 1 }, standaloneContext(settings));
          if (outcome.kind !== 'asset') throw new Error(`${prompt}: declined`);
          return outcome.cloud;
        };
        const full = await run(uncut);
        const cut = await run(realtime);
        expect(full.count).toBeGreaterThan(1.5 * realtime.pipeline.max_gaussians);
        expect(cut.count).toBe(realtime.pipeline.max_gaussians);
        const shares = await coverage(full, cut, pool);
        expect(Math.min(...shares), `${prompt}: ${shares.map((s) => s.toFixed(3)).join(' ')}`).toBeGreaterThanOrEqual(0.95);
      }
    } finally {
      await pool.close();
    }
  }, 120_000);

  it("cuts real assets to a realtime budget with the validator's views still close to the original's", async () => {
    const robocop = loadFixtureCloud('robocop.ply');
    const hamburger = loadFixtureCloud('hamburger.ply');
    const realtime = presetsOf(testConfig()).resolve('realtime').settings.pipeline.max_gaussians;
    const pool = new RenderPool(2);
    try {
      // Smaller views than the validator's 518 keep the test quick; bench/presets.ts measures at 518. (A cut by
      // importance alone gives 34.5, 26.4 and 26.8 dB here.)
      const views = { count: 16, size: 192 };
      // robocop halved, and cut to the realtime budget; hamburger (under that budget) cut by the realtime preset's
      // own ratio (its preview surface's 120,000 to 60,000: a half).
      const cases: [string, GaussianCloud, number, number][] = [
        ['robocop, halved', robocop, Math.round(robocop.count / 2), 35],
        ['robocop, realtime budget', robocop, realtime, 29],
        ['hamburger, halved', hamburger, Math.round(hamburger.count / 2), 29],
      ];
      for (const [name, cloud, budget, psnr] of cases) {
        const cut = pruneToBudget(cloud, budget).cloud;
        expect(cut.count).toBe(budget);
        const before = await renderValidatorViews(cloud, views, pool);
        const after = await renderValidatorViews(cut, views, pool);
        const shares = await coverage(cloud, cut, pool, views.size);
        expect(psnrOfViews(before, after), name).toBeGreaterThan(psnr);
        expect(Math.min(...shares), name).toBeGreaterThanOrEqual(0.95);
      }
    } finally {
      await pool.close();
    }
  }, 120_000);
});
