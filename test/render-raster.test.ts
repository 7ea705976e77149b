import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { allocateCloud } from '../src/splat/cloud.js';
import {
  orbitCamera,
  parseBackground,
  prepareCloud,
  Rasterizer,
  RenderAbortedError,
  RenderPool,
  renderValidatorViews,
} from '../src/render/index.js';
import { bucketSortRun, expNeg, radixSortRun } from '../src/render/rasterize.js';
import { ballCloud, blobCloud } from './helpers/clouds.js';

describe('rasteriser', () => {
  it('draws a single isotropic Gaussian with its analytic profile', () => {
    const sigma = 0.05,
      opacity = 0.8,
      radius = 2,
      size = 96,
      fov = 40;
    const cloud = prepareCloud(blobCloud([{ at: [0, 0, 0], sigma, colour: [0, 0, 0], opacity }]), { extent: null });
    const camera = orbitCamera({ azimuth: 30, elevation: -20, radius }, { width: size, height: size, fov });
    const pixels = new Rasterizer().render(cloud, camera, { background: [1, 1, 1], channels: 3 });
    // At the image centre the Jacobian is diag(f/z): the splat has variance (f sigma / z)^2 plus the 0.3 px dilation.
    const f = size / (2 * Math.tan((fov * Math.PI) / 360));
    const variance = ((f * sigma) / radius) ** 2 + 0.3;
    let worst = 0,
      covered = 0;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const d2 = (x + 0.5 - camera.cx) ** 2 + (y + 0.5 - camera.cy) ** 2;
        let alpha = Math.min(0.999, opacity * Math.exp((-0.5 * d2) / variance));
        if (alpha < 1 / 255) alpha = 0;
        else covered++;
        const expected = Math.floor(255 * (1 - alpha));
        for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(pixels[(y * size + x) * 3 + c] - expected));
      }
    }
    expect(covered).toBeGreaterThan(100);
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('composites front to back and stops where the pixel is opaque', () => {
    // A red Gaussian (alpha capped at 0.999) in front of a green one (0.99): behind the red one T = 0.001, and
    // the green one would take it to 1e-5 < 1e-4, so the pixel stops before it (gsplat's exclusive stop).
    const camera = orbitCamera({ azimuth: 0, elevation: 0, radius: 2 }, { width: 64, height: 64, fov: 40 });
    // Both centres project onto the centre of pixel (32, 32), i.e. half a pixel off the principal point.
    const half = (depth: number) => (0.5 * depth) / camera.fx;
    const cloud = prepareCloud(
      blobCloud([
        { at: [half(2.3), -half(2.3), -0.3], sigma: 0.1, colour: [0, 1, 0], opacity: 0.99 },
        { at: [half(1.7), -half(1.7), 0.3], sigma: 0.1, colour: [1, 0, 0], opacity: 0.99999 },
      ]),
      { extent: null },
    );
    const px = new Rasterizer().render(cloud, camera, { background: [0, 0, 0], channels: 3 });
    const i = (32 * 64 + 32) * 3;
    expect(Array.from(px.subarray(i, i + 3))).toEqual([254, 0, 0]);
    // Off-centre, where the red one is fainter, the green one shows through.
    const j = (32 * 64 + 40) * 3;
    expect(px[j + 1]).toBeGreaterThan(10);
  });

  it('gives a plain background when nothing is visible', () => {
    const bg = parseBackground('#336699');
    const expected = [0x33, 0x66, 0x99];
    const camera = orbitCamera({ azimuth: 0, elevation: 0, radius: 2.5 }, { width: 40, height: 30, fov: 49.1 });
    const empty = prepareCloud(allocateCloud(0));
    const transparent = prepareCloud(blobCloud([{ at: [0, 0, 0], sigma: 0.2, colour: [1, 0, 0], opacity: 0.003 }]), { extent: null });
    const behind = prepareCloud(blobCloud([{ at: [0, 0, 5], sigma: 0.2, colour: [1, 0, 0], opacity: 0.9 }]), { extent: null });
    for (const cloud of [empty, transparent, behind]) {
      const px = new Rasterizer().render(cloud, camera, { background: bg, channels: 4 });
      for (let i = 0; i < px.length; i += 4) expect([px[i], px[i + 1], px[i + 2], px[i + 3]]).toEqual([...expected, 255]);
    }
  });

  it('applies the validator normalisation: scalar-mean centring, extent, opacity divided by the factor', () => {
    const cloud = blobCloud([
      { at: [10, 12, 14], sigma: 0.5, colour: [1, 0, 0], opacity: 0.2 },
      { at: [14, 12, 10], sigma: 0.5, colour: [1, 0, 0], opacity: 0.2 },
    ]);
    const prepared = prepareCloud(cloud, { extent: 1.5 });
    // mean of all coordinates = 12; largest extent 4 -> factor 0.375
    const field = (k: number, i = 0) => prepared.data[k * prepared.pitch + i]; // columns x y z, covariance, rgb, opacity
    expect([field(0), field(1), field(2)]).toEqual([-0.75, 0, 0.75].map(Math.fround));
    expect([field(0, 1), field(1, 1), field(2, 1)]).toEqual([0.75, 0, -0.75].map(Math.fround));
    expect(field(3)).toBeCloseTo((0.5 * 0.375) ** 2, 6); // covariance xx = (sigma * factor)^2
    expect(field(12)).toBeCloseTo(Math.min(1, 0.2 / 0.375), 6);
  });

  it('renders the validator views as opaque RGBA on white', async () => {
    const blob = { sigma: 0.08, colour: [0.2, 0.4, 0.6] as [number, number, number], opacity: 0.9 };
    const cloud = blobCloud([
      { ...blob, at: [-0.75, 0, 0] },
      { ...blob, at: [0.75, 0, 0] },
      { ...blob, at: [0, 0, 0] },
    ]);
    const pool = new RenderPool(2);
    const views = await renderValidatorViews(cloud, { count: 4, size: 64 }, pool).finally(() => pool.close());
    expect(views).toHaveLength(4);
    for (const v of views) {
      expect([v.width, v.height, v.data.length]).toEqual([64, 64, 64 * 64 * 4]);
      expect(Array.from(v.data.subarray(0, 4))).toEqual([255, 255, 255, 255]);
      const c = (32 * 64 + 32) * 4; // the middle blob at the origin is in view
      expect(v.data[c]).toBeLessThan(120);
    }
    // linspace(0, 360, 4) ends where it starts: the first and last views are the same picture (in its own buffer).
    expect(Buffer.compare(Buffer.from(views[0].data), Buffer.from(views[3].data))).toBe(0);
    expect(views[3].data.buffer).not.toBe(views[0].data.buffer);
    expect(Buffer.compare(Buffer.from(views[0].data), Buffer.from(views[1].data))).not.toBe(0);
  });

  it('refuses images wider or taller than it can address, with a clear error', () => {
    const cloud = prepareCloud(blobCloud([{ at: [0, 0, 0], sigma: 0.1, colour: [1, 0, 0], opacity: 0.5 }]), { extent: null });
    const wide = orbitCamera({ azimuth: 0, elevation: 0, radius: 2.5 }, { width: 16385, height: 8, fov: 49.1 });
    expect(() => new Rasterizer().render(cloud, wide, { background: [1, 1, 1], channels: 3 })).toThrow(/limited to 16384 pixels per side/);
  });

  it('refuses, without crashing, a cloud whose splats would cover the screen millions of times', async () => {
    const blobs = Array.from({ length: 30_000 }, (_, i) => ({
      at: [i * 1e-6, 0, 0] as [number, number, number],
      sigma: 5,
      colour: [1, 0, 0] as [number, number, number],
      opacity: 0.5,
    }));
    const cloud = prepareCloud(blobCloud(blobs), { extent: null });
    const camera = orbitCamera({ azimuth: 0, elevation: 0, radius: 2.5 }, { width: 2048, height: 2048, fov: 49.1 });
    expect(() => new Rasterizer(16).render(cloud, camera, { background: [1, 1, 1], channels: 3 })).toThrow(/too large on screen/);
    // Through the pool the job fails and the pool keeps working.
    const pool = new RenderPool(1);
    try {
      await expect(pool.render(cloud, camera, { background: [1, 1, 1], channels: 3 })).rejects.toThrow(/too large on screen/);
      const small = orbitCamera({ azimuth: 0, elevation: 0, radius: 2.5 }, { width: 16, height: 16, fov: 49.1 });
      expect((await pool.render(prepareCloud(allocateCloud(0)), small, { background: [1, 1, 1], channels: 3 })).length).toBe(16 * 16 * 3);
    } finally {
      await pool.close();
    }
  });

  it('computes exp(-s) to float32 precision', () => {
    for (let s = 0; s < 6; s += 0.0137) expect(Math.abs(expNeg(s) / Math.exp(-s) - 1)).toBeLessThan(1e-8);
  });

  it('sorts a tile run by depth stably with either sort, in the same order', () => {
    // Depth keys are float bits; ties must keep record order, as one global stable sort would.
    const bits = (depths: number[]) => new Int32Array(new Float32Array(depths).buffer);
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const cases = {
      spread: Array.from({ length: 3000 }, () => 1.5 + 2 * random()),
      ties: Array.from({ length: 2000 }, () => 2 + Math.floor(random() * 1000) / 1024),
      // Nearly all keys in one bucket: the bucket sort must decline and leave it to the radix sort.
      clustered: Array.from({ length: 1000 }, (_, i) => (i % 100 === 0 ? 90 : 2 + random() * 1e-6)),
      one: [2.5],
    };
    for (const [name, depths] of Object.entries(cases)) {
      const begin = 5;
      const keys = new Int32Array(begin + depths.length);
      keys.set(bits(depths), begin);
      const n = depths.length;
      const scratch = () => new Int32Array(n + 1);
      const expected = Array.from({ length: n }, (_, i) => begin + i).sort((a, b) => keys[a] - keys[b] || a - b);
      const radix = radixSortRun(keys, begin, n, scratch(), scratch(), scratch(), scratch(), new Int32Array(1024));
      expect(Array.from(radix.subarray(0, n)), name).toEqual(expected);
      const k0 = scratch(),
        i0 = scratch();
      const done = bucketSortRun(keys, begin, n, k0, i0, new Int32Array(2 * n + 1));
      expect(done, name).toBe(name !== 'clustered');
      if (done) expect(Array.from(i0.subarray(0, n)), name).toEqual(expected);
    }
  });

  it('renders a band of tile rows with the bytes of the whole render', () => {
    const cloud = prepareCloud(ballCloud(4000), { extent: 1.5 });
    const camera = orbitCamera({ azimuth: 30, elevation: -15, radius: 2.5 }, { width: 100, height: 90, fov: 49.1 });
    const options = { background: [1, 1, 1] as const, channels: 3 as const };
    const whole = new Rasterizer(16).render(cloud, camera, options);
    const rasterizer = new Rasterizer(16);
    // Tile rows 2..4 are image rows 32..79; the last band ends at the image's last (partial) tile row.
    expect(Buffer.compare(rasterizer.renderTileRows(cloud, camera, options, 2, 5), whole.subarray(32 * 300, 80 * 300))).toBe(0);
    expect(Buffer.compare(rasterizer.renderTileRows(cloud, camera, options, 5, 6), whole.subarray(80 * 300))).toBe(0);
    expect(() => rasterizer.renderTileRows(cloud, camera, options, 3, 7)).toThrow(/tile rows/);
  });

  it('shares the odd view between workers without changing any byte', async () => {
    const cloud = prepareCloud(ballCloud(4000), { extent: 1.5 });
    // 3 distinct views on 2 workers: the third is rendered as two bands.
    const cameras = [0, 120, 240].map((azimuth) =>
      orbitCamera({ azimuth, elevation: -15, radius: 2.5 }, { width: 96, height: 80, fov: 49.1 }),
    );
    const options = { background: [0, 0, 0] as const, channels: 4 as const };
    const pool = new RenderPool(2);
    try {
      const frames = await pool.renderAll(cloud, cameras, options);
      const rasterizer = new Rasterizer();
      frames.forEach((frame, i) => expect(Buffer.compare(frame, rasterizer.render(cloud, cameras[i], options))).toBe(0));
    } finally {
      await pool.close();
    }
  });

  it('holds one abort listener for a batch of 16 views; an abort rejects the batch and the pool renders on', async () => {
    const cloud = prepareCloud(ballCloud(20_000), { extent: 1.5 });
    const cameras = Array.from({ length: 16 }, (_, i) =>
      orbitCamera({ azimuth: i * 22.5, elevation: -15, radius: 2.5 }, { width: 128, height: 128, fov: 49.1 }),
    );
    const options = { background: [1, 1, 1] as const, channels: 4 as const };
    const pool = new RenderPool(2);
    try {
      const controller = new AbortController();
      // Node warns past 10 listeners on one signal; a job's views all share its signal.
      const all = pool.renderAll(cloud, cameras, options, controller.signal);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(1);
      controller.abort();
      await expect(all).rejects.toBeInstanceOf(RenderAbortedError);
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
      // The views no worker had taken left the queue: nothing more is drawn for the aborted batch.
      expect(pool.queued).toBe(0);

      const frames = pool.frames(cloud, cameras, options, controller.signal);
      await expect(frames.next()).rejects.toBeInstanceOf(RenderAbortedError);

      // A video's reader that stops early leaves nothing queued behind it.
      const video = pool.frames(cloud, cameras, options, undefined, 8);
      await video.next();
      expect(pool.queued).toBeGreaterThan(0);
      await video.return(undefined);
      expect(pool.queued).toBe(0);

      const kept = new AbortController();
      const again = await pool.renderAll(cloud, cameras.slice(0, 3), options, kept.signal);
      expect(again.map((f) => f.length)).toEqual([0, 1, 2].map(() => 128 * 128 * 4));
      expect(getEventListeners(kept.signal, 'abort')).toHaveLength(0);
    } finally {
      await pool.close();
    }
  });

  it('warm() starts every worker before the first render, which then renders as usual', async () => {
    const pool = new RenderPool(2);
    try {
      expect(pool.started).toBe(0);
      await pool.warm();
      expect(pool.started).toBe(2);
      const cloud = prepareCloud(ballCloud(500), { extent: 1.5 });
      const camera = orbitCamera({ azimuth: 30, elevation: -15, radius: 2.5 }, { width: 64, height: 48, fov: 49.1 });
      const options = { background: [1, 1, 1] as const, channels: 3 as const };
      expect(Buffer.compare(await pool.render(cloud, camera, options), new Rasterizer().render(cloud, camera, options))).toBe(0);
      expect(pool.started).toBe(2);
    } finally {
      await pool.close();
    }
  });
});
