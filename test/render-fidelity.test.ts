import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { orbitCamera, prepareCloud, Rasterizer, renderViews, RenderPool } from '../src/render/index.js';
import { fixturePath, loadFixtureCloud } from './helpers/fixtures.js';

function psnr(a: Uint8Array, b: Uint8Array): number {
  expect(a.length).toBe(b.length);
  let se = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    se += d * d;
  }
  return se === 0 ? Infinity : 10 * Math.log10((255 * 255) / (se / a.length));
}

describe("fidelity against the validator's own render", () => {
  // fixtures/README.md: render_gs(views=1, 1080x1080, theta=[45], phi=[0], cam_rad=3.0, ref_bbox_size=1.0)
  const camera = orbitCamera({ azimuth: 45, elevation: 0, radius: 3 }, { width: 1080, height: 1080, fov: 49.1 });

  it('reproduces hamburger-validator-render.png at PSNR >= 40 dB', async () => {
    const reference = await sharp(fixturePath('hamburger-validator-render.png')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([reference.info.width, reference.info.height]).toEqual([1080, 1080]);
    const cloud = prepareCloud(loadFixtureCloud('hamburger.ply'), { extent: 1.0 });
    const ours = new Rasterizer().render(cloud, camera, { background: [1, 1, 1], channels: 3 });
    const value = psnr(ours, new Uint8Array(reference.data));
    expect(value).toBeGreaterThanOrEqual(40);
  });

  it('gives the same image whatever the tile size (gsplat uses 16, we default to 32)', () => {
    const cloud = prepareCloud(loadFixtureCloud('hamburger.ply'), { extent: 1.5 });
    const view = orbitCamera({ azimuth: 100, elevation: -15, radius: 2.5 }, { width: 250, height: 250, fov: 49.1 });
    const images = [16, 32, 7].map((tile) => Buffer.from(new Rasterizer(tile).render(cloud, view, { background: [1, 1, 1], channels: 3 })));
    expect(Buffer.compare(images[0], images[1])).toBe(0);
    expect(Buffer.compare(images[0], images[2])).toBe(0);
  });

  it('renders the same pixels through the worker pool as in-thread', async () => {
    const cloud = prepareCloud(loadFixtureCloud('hamburger.ply'), { extent: 1.0 });
    const small = orbitCamera({ azimuth: 45, elevation: 0, radius: 3 }, { width: 270, height: 270, fov: 49.1 });
    const direct = new Rasterizer().render(cloud, small, { background: [1, 1, 1], channels: 4 });
    const pool = new RenderPool(2);
    try {
      const [image] = await renderViews(cloud, [small], { pool });
      expect(Buffer.compare(Buffer.from(image.data), Buffer.from(direct))).toBe(0);
    } finally {
      await pool.close();
    }
  });
});
