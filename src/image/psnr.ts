/** Peak signal-to-noise ratio of pictures: how far one rendering is from another, in dB (higher is closer). */
import type { RgbaImage } from './rgba.js';

/** PSNR over the RGB channels of equally sized images (alpha ignored); Infinity when they are equal. */
export function psnr(a: RgbaImage, b: RgbaImage): number {
  return psnrOf(meanSquaredError([a], [b]));
}

/** PSNR over a set of views taken together (one mean squared error over all their pixels). */
export function psnrOfViews(a: readonly RgbaImage[], b: readonly RgbaImage[]): number {
  return psnrOf(meanSquaredError(a, b));
}

function meanSquaredError(a: readonly RgbaImage[], b: readonly RgbaImage[]): number {
  if (a.length !== b.length) throw new RangeError(`${a.length} views against ${b.length}`);
  let sum = 0;
  let samples = 0;
  for (let v = 0; v < a.length; v++) {
    const x = a[v],
      y = b[v];
    if (x.width !== y.width || x.height !== y.height)
      throw new RangeError(`a ${x.width}x${x.height} view against a ${y.width}x${y.height} one`);
    const p = x.data,
      q = y.data;
    for (let i = 0; i < p.length; i += 4) {
      const r = p[i] - q[i],
        g = p[i + 1] - q[i + 1],
        bl = p[i + 2] - q[i + 2];
      sum += r * r + g * g + bl * bl;
    }
    samples += (p.length / 4) * 3;
  }
  return samples ? sum / samples : 0;
}

function psnrOf(mse: number): number {
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}
