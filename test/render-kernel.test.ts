import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { orbitCamera, prepareCloud, Rasterizer, validatorCameras, type RasterOptions } from '../src/render/index.js';
import { ballCloud, blobCloud } from './helpers/clouds.js';
import { loadFixtureCloud } from './helpers/fixtures.js';

const WHITE_RGB: RasterOptions = { background: [1, 1, 1], channels: 3 };

/** PSNR and the largest difference of two images of the same size. */
function compare(a: Uint8Array, b: Uint8Array): { psnr: number; maxDiff: number } {
  expect(a.length).toBe(b.length);
  let se = 0,
    maxDiff = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    se += d * d;
    if (d > maxDiff) maxDiff = d;
  }
  return { psnr: se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / a.length)), maxDiff };
}

describe('WebAssembly kernel', () => {
  it('matches the scalar reference loops on both fixtures (float32 against doubles)', () => {
    for (const name of ['hamburger.ply', 'robocop.ply']) {
      const cloud = prepareCloud(loadFixtureCloud(name), { extent: 1.5 });
      const fast = new Rasterizer(32, 'wasm'),
        reference = new Rasterizer(32, 'js');
      expect([fast.kernel, reference.kernel]).toEqual(['wasm', 'js']);
      for (const camera of validatorCameras(5, 200).slice(0, 4)) {
        const { psnr, maxDiff } = compare(fast.render(cloud, camera, WHITE_RGB), reference.render(cloud, camera, WHITE_RGB));
        // Rounding differences move a handful of pixels by a level or two; a wrong kernel moves thousands.
        expect(psnr, name).toBeGreaterThan(80);
        expect(maxDiff, name).toBeLessThanOrEqual(3);
      }
    }
  });

  it('orders each tile as the reference does: ties keep cloud order, unevenly spread depths still sort', () => {
    const camera = orbitCamera({ azimuth: 0, elevation: 0, radius: 2.5 }, { width: 96, height: 96, fov: 49.1 });
    const fast = new Rasterizer(32, 'wasm'),
      reference = new Rasterizer(32, 'js');
    // Pairs at the same place (equal depth keys) in different colours: which one is in front shows.
    const ties = Array.from({ length: 400 }, (_, i) => ({
      at: [Math.sin(i) * 0.5, Math.cos(i * 1.7) * 0.5, Math.sin(i * 0.3) * 0.5] as [number, number, number],
      sigma: 0.03,
      colour: (i % 2 ? [1, 0, 0] : [0, 0, 1]) as [number, number, number],
      opacity: 0.7,
    })).map((blob, i, all) => (i % 2 ? { ...blob, at: all[i - 1].at } : blob));
    // Most splats at one depth and a few far behind: buckets too uneven, so the other sort takes over.
    const uneven = Array.from({ length: 300 }, (_, i) => ({
      at: [((i % 17) - 8) * 0.05, (Math.floor(i / 17) - 8) * 0.05, i % 50 === 0 ? -1 - i * 1e-3 : 0] as [number, number, number],
      sigma: 0.04,
      colour: [i / 300, 0.5, 1 - i / 300] as [number, number, number],
      opacity: 0.6,
    }));
    for (const blobs of [ties, uneven]) {
      const cloud = prepareCloud(blobCloud(blobs), { extent: null });
      const { psnr, maxDiff } = compare(fast.render(cloud, camera, WHITE_RGB), reference.render(cloud, camera, WHITE_RGB));
      expect(psnr).toBeGreaterThan(80);
      expect(maxDiff).toBeLessThanOrEqual(3);
    }
  });

  it('keeps rendering correctly as its memory grows and scenes change', () => {
    const small = prepareCloud(ballCloud(500, 0.5, 3), { extent: 1.5 });
    const large = prepareCloud(ballCloud(60_000, 0.5, 4), { extent: 1.5 });
    const camera = orbitCamera({ azimuth: 20, elevation: -15, radius: 2.5 }, { width: 160, height: 120, fov: 49.1 });
    const big = orbitCamera({ azimuth: 20, elevation: -15, radius: 2.5 }, { width: 700, height: 500, fov: 49.1 });
    const fresh = (cloud: typeof small, cam = camera) => Buffer.from(new Rasterizer().render(cloud, cam, WHITE_RGB));
    const reused = new Rasterizer();
    const frames = [
      [small, camera],
      [large, big],
      [small, camera],
      [large, camera],
      [small, big],
    ] as const;
    for (const [cloud, cam] of frames) {
      // Each render must equal a fresh rasteriser's: nothing left over from a smaller or larger earlier scene.
      expect(Buffer.compare(Buffer.from(reused.render(cloud, cam, WHITE_RGB)), fresh(cloud, cam))).toBe(0);
    }
  });

  it('fails a render whose tile-Gaussian pairs pass 2^31 with the limit error, and renders the next one', () => {
    // 513 splats each covering all 2048^2 one-pixel tiles: 2.15 billion pairs, past what 32 bits can count.
    const blobs = Array.from({ length: 513 }, (_, i) => ({
      at: [0.001 * i, 0, 0] as [number, number, number],
      sigma: 1,
      colour: [1, 0, 0] as [number, number, number],
      opacity: 0.9,
    }));
    const huge = prepareCloud(blobCloud(blobs), { extent: null });
    const camera = orbitCamera({ azimuth: 0, elevation: 0, radius: 2 }, { width: 2048, height: 2048, fov: 49.1 });
    const rasterizer = new Rasterizer(1);
    expect(() => rasterizer.render(huge, camera, WHITE_RGB)).toThrow(/over 2 billion tile-Gaussian pairs .* too large on screen/);
    const small = prepareCloud(ballCloud(300), { extent: 1.5 });
    const view = orbitCamera({ azimuth: 10, elevation: -15, radius: 2.5 }, { width: 40, height: 30, fov: 49.1 });
    expect(
      Buffer.compare(Buffer.from(rasterizer.render(small, view, WHITE_RGB)), Buffer.from(new Rasterizer(1).render(small, view, WHITE_RGB))),
    ).toBe(0);
  });

  it('keeps working after its memory could not grow, whichever region it was growing', () => {
    const small = prepareCloud(ballCloud(500, 0.5, 3), { extent: 1.5 });
    const large = prepareCloud(ballCloud(200_000, 0.5, 4), { extent: 1.5 });
    const camera = orbitCamera({ azimuth: 20, elevation: -15, radius: 2.5 }, { width: 160, height: 120, fov: 49.1 });
    const expected = [small, large].map((cloud) => Buffer.from(new Rasterizer().render(cloud, camera, WHITE_RGB)));
    // As V8 does at its 4 GiB limit (or the system when out of memory): growing past a cap throws.
    const grow = WebAssembly.Memory.prototype.grow;
    let cap = Infinity;
    let steps: number[] = [];
    WebAssembly.Memory.prototype.grow = function (this: WebAssembly.Memory, delta: number) {
      const target = this.buffer.byteLength / 65536 + delta;
      if (target > cap) throw new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded');
      steps.push(target);
      return grow.call(this, delta);
    };
    try {
      const probe = new Rasterizer();
      probe.render(small, camera, WHITE_RGB);
      steps = [];
      probe.render(large, camera, WHITE_RGB);
      // Each growth the large scene needs (one per group of regions), made to fail in turn.
      const growths = steps.slice();
      expect(growths.length).toBeGreaterThan(2);
      for (const target of growths) {
        const rasterizer = new Rasterizer();
        cap = Infinity;
        rasterizer.render(small, camera, WHITE_RGB);
        cap = target - 1;
        expect(() => rasterizer.render(large, camera, WHITE_RGB)).toThrow(/Maximum memory size exceeded/);
        expect(Buffer.compare(Buffer.from(rasterizer.render(small, camera, WHITE_RGB)), expected[0])).toBe(0);
        cap = Infinity;
        expect(Buffer.compare(Buffer.from(rasterizer.render(large, camera, WHITE_RGB)), expected[1])).toBe(0);
      }
    } finally {
      WebAssembly.Memory.prototype.grow = grow;
    }
  });

  it('refuses a camera whose near plane is not in front of it', () => {
    const cloud = prepareCloud(ballCloud(50), { extent: 1.5 });
    const camera = { ...orbitCamera({ azimuth: 0, elevation: 0, radius: 2.5 }, { width: 32, height: 32, fov: 49.1 }), near: 0 };
    expect(() => new Rasterizer().render(cloud, camera, WHITE_RGB)).toThrow(/0 < near < far/);
  });

  it('is assembled from the committed kernel.wat (npm run build:wasm)', async () => {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['scripts/build-wasm.mjs', '--check']);
    expect(stdout + stderr).toBe('');
  });
});
