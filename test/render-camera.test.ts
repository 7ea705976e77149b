import { describe, expect, it } from 'vitest';
import { orbitCamera, prepareCloud, Rasterizer, validatorCameras, type Camera } from '../src/render/index.js';
import { blobCloud } from './helpers/clouds.js';

/** Camera centre in world space: -R^T t. */
function centre(c: Camera): [number, number, number] {
  const v = c.view;
  return [0, 1, 2].map((j) => -(v[j] * v[9] + v[3 + j] * v[10] + v[6 + j] * v[11])) as [number, number, number];
}

/** Centroid (x, y) of the pixels whose colour is close to `rgb`, or null when none. */
function find(pixels: Uint8Array, width: number, rgb: [number, number, number]): { x: number; y: number } | null {
  let sx = 0,
    sy = 0,
    n = 0;
  for (let i = 0, p = 0; i < pixels.length; i += 3, p++) {
    if (Math.abs(pixels[i] - rgb[0]) + Math.abs(pixels[i + 1] - rgb[1]) + Math.abs(pixels[i + 2] - rgb[2]) < 60) {
      sx += p % width;
      sy += Math.floor(p / width);
      n++;
    }
  }
  return n ? { x: sx / n, y: sy / n } : null;
}

describe('validator cameras', () => {
  it('places 16 views on linspace(0, 360, 16) at elevation -15 (above), radius 2.5, looking at the origin', () => {
    const cams = validatorCameras(16, 518);
    expect(cams).toHaveLength(16);
    const el = (-15 * Math.PI) / 180;
    cams.forEach((cam, i) => {
      const az = ((360 * i) / 15) * (Math.PI / 180);
      const [x, y, z] = centre(cam);
      expect(x).toBeCloseTo(2.5 * Math.cos(el) * Math.sin(az), 6);
      expect(y).toBeCloseTo(-2.5 * Math.sin(el), 6);
      expect(y).toBeGreaterThan(0);
      expect(z).toBeCloseTo(2.5 * Math.cos(el) * Math.cos(az), 6);
      // The optical axis (third row of R) points from the camera to the origin.
      const axis = cam.view.slice(6, 9);
      const len = Math.hypot(x, y, z);
      expect(axis[0]).toBeCloseTo(-x / len, 6);
      expect(axis[1]).toBeCloseTo(-y / len, 6);
      expect(axis[2]).toBeCloseTo(-z / len, 6);
      expect([cam.cx, cam.cy]).toEqual([259, 259]);
      expect(cam.fx).toBeCloseTo(518 / (2 * Math.tan((49.1 * Math.PI) / 360)), 9);
    });
  });

  it('renders +Y up and the +Z side facing azimuth 0; +X appears on the right from the front', () => {
    const red: [number, number, number] = [1, 0, 0],
      green: [number, number, number] = [0, 1, 0],
      blue: [number, number, number] = [0, 0, 1];
    // An asymmetric object: a grey core, a red blob on top (+Y), a green one at +X, a blue one at +Z (the front).
    const cloud = prepareCloud(
      blobCloud([
        { at: [0, 0, 0], sigma: 0.12, colour: [0.5, 0.5, 0.5], opacity: 0.99 },
        { at: [0, 0.45, 0], sigma: 0.06, colour: red, opacity: 0.99 },
        { at: [0.45, 0, 0], sigma: 0.06, colour: green, opacity: 0.99 },
        { at: [0, 0, 0.45], sigma: 0.06, colour: blue, opacity: 0.99 },
      ]),
      { extent: null },
    );
    const size = 200;
    const lens = { width: size, height: size, fov: 49.1 };
    const r = new Rasterizer();
    const opts = { background: [1, 1, 1] as const, channels: 3 as const };

    const front = r.render(cloud, orbitCamera({ azimuth: 0, elevation: 0, radius: 2.5 }, lens), opts).slice();
    const top = find(front, size, [255, 0, 0])!,
      right = find(front, size, [0, 255, 0])!,
      facing = find(front, size, [0, 0, 255])!;
    expect(top.y).toBeLessThan(size / 2 - 20); // +Y is up
    expect(Math.abs(top.x - size / 2)).toBeLessThan(3);
    expect(right.x).toBeGreaterThan(size / 2 + 20); // +X to the right when looking from +Z
    expect(Math.abs(facing.x - size / 2)).toBeLessThan(3); // the +Z blob sits in front of the core
    expect(Math.abs(facing.y - size / 2)).toBeLessThan(3);

    const side = r.render(cloud, orbitCamera({ azimuth: 90, elevation: 0, radius: 2.5 }, lens), opts).slice();
    const sideGreen = find(side, size, [0, 255, 0])!,
      sideBlue = find(side, size, [0, 0, 255])!;
    expect(Math.abs(sideGreen.x - size / 2)).toBeLessThan(3); // azimuth 90 looks from +X
    expect(sideBlue.x).toBeLessThan(size / 2 - 20); // +Z is then on the left

    const back = r.render(cloud, orbitCamera({ azimuth: 180, elevation: 0, radius: 2.5 }, lens), opts).slice();
    expect(find(back, size, [0, 0, 255])).toBeNull(); // the front blob is hidden behind the core
    expect(find(back, size, [0, 255, 0])!.x).toBeLessThan(size / 2 - 20);

    const above = r.render(cloud, orbitCamera({ azimuth: 0, elevation: -60, radius: 2.5 }, lens), opts).slice();
    // From above, the blob on top lands nearer the image centre than the front one, which moves down.
    expect(find(above, size, [0, 0, 255])!.y).toBeGreaterThan(size / 2 + 10);
  });
});
