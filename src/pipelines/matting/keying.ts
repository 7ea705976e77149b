/**
 * Preview matting: keys out a plain background. The background colour is the median of the image's border;
 * alpha ramps with the colour distance from it; small specks are dropped and edge colours are unmixed from
 * the background. Works on the preview pictures and on product-style photos on plain backgrounds.
 */
import { alphaBox, frameObject, type FrameOptions } from '../../image/frame-object.js';
import { hasTransparency, type RgbaImage } from '../../image/rgba.js';
import type { JobContext } from '../context.js';
import type { Matting, MattingInput, Readiness } from '../stages.js';

export interface KeyingOptions extends FrameOptions {
  /** Colour distance (0..1) below which a pixel is background. */
  tolerance: number;
  /** Width of the soft ramp above the tolerance. */
  softness: number;
  /** Smallest share of object pixels for a usable matte. */
  minCoverage: number;
  /** Keep a user image's own alpha channel when it has one. */
  keepInputAlpha: boolean;
}

export class KeyingMatting implements Matting {
  readonly name = 'keying';
  readonly preview = true;

  constructor(private readonly options: KeyingOptions) {}

  readiness(): Readiness {
    return { ready: true };
  }

  /** Nothing of it is a preset's: the job's context goes unread. */
  async matte({ image, fromUser }: MattingInput, _ctx: JobContext): Promise<RgbaImage | null> {
    const keepAlpha = fromUser && this.options.keepInputAlpha && hasTransparency(image);
    const matted = keepAlpha ? image : keyBackground(image, this.options);
    const box = alphaBox(matted, this.options.alphaThreshold);
    if (!box || box.pixels < this.options.minCoverage * image.width * image.height) return null;
    return frameObject(matted, box, this.options);
  }
}

/** A copy of the image whose alpha keys out the border's colour. */
export function keyBackground(image: RgbaImage, options: Pick<KeyingOptions, 'tolerance' | 'softness' | 'alphaThreshold'>): RgbaImage {
  const { width, height, data } = image;
  const bg = borderMedian(image);
  const out = new Uint8ClampedArray(data.length);
  const norm = 1 / (255 * Math.sqrt(3));
  const soft = Math.max(options.softness, 1e-6);
  for (let i = 0, o = 0; i < width * height; i++, o += 4) {
    const dr = data[o] - bg[0],
      dg = data[o + 1] - bg[1],
      db = data[o + 2] - bg[2];
    const distance = Math.sqrt(dr * dr + dg * dg + db * db) * norm;
    const a = Math.min(1, Math.max(0, (distance - options.tolerance) / soft)) * (data[o + 3] / 255);
    out[o + 3] = Math.round(a * 255);
    if (a > 0 && a < 1) {
      // Unmix: observed = a * colour + (1 - a) * background.
      out[o] = (data[o] - (1 - a) * bg[0]) / a;
      out[o + 1] = (data[o + 1] - (1 - a) * bg[1]) / a;
      out[o + 2] = (data[o + 2] - (1 - a) * bg[2]) / a;
    } else {
      out[o] = data[o];
      out[o + 1] = data[o + 1];
      out[o + 2] = data[o + 2];
    }
  }
  dropSpecks(out, width, height, Math.round(options.alphaThreshold * 255));
  return { width, height, data: out };
}

/** Per-channel median of the one-pixel border. */
export function borderMedian(image: RgbaImage): [number, number, number] {
  const { width, height, data } = image;
  const channels: number[][] = [[], [], []];
  const push = (x: number, y: number) => {
    const o = (y * width + x) * 4;
    for (let c = 0; c < 3; c++) channels[c].push(data[o + c]);
  };
  for (let x = 0; x < width; x++) {
    push(x, 0);
    push(x, height - 1);
  }
  for (let y = 1; y < height - 1; y++) {
    push(0, y);
    push(width - 1, y);
  }
  return channels.map((values) => {
    values.sort((a, b) => a - b);
    return values[values.length >> 1];
  }) as [number, number, number];
}

/**
 * Clears connected regions (4-neighbourhood, alpha above `limit`) smaller than 5% of the largest: noise and
 * dust keyed in by accident, which would otherwise widen the crop box and float around the asset.
 */
function dropSpecks(rgba: Uint8ClampedArray, width: number, height: number, limit: number): void {
  const n = width * height;
  const label = new Int32Array(n).fill(-1);
  const sizes: number[] = [];
  const stack = new Int32Array(n);
  for (let start = 0; start < n; start++) {
    if (label[start] >= 0 || rgba[start * 4 + 3] <= limit) continue;
    const id = sizes.length;
    let top = 0,
      size = 0;
    stack[top++] = start;
    label[start] = id;
    while (top) {
      const p = stack[--top];
      size++;
      const x = p % width;
      const visit = (q: number) => {
        if (label[q] < 0 && rgba[q * 4 + 3] > limit) {
          label[q] = id;
          stack[top++] = q;
        }
      };
      if (x > 0) visit(p - 1);
      if (x < width - 1) visit(p + 1);
      if (p >= width) visit(p - width);
      if (p < n - width) visit(p + width);
    }
    sizes.push(size);
  }
  if (sizes.length < 2) return;
  const keep = Math.max(...sizes) * 0.05;
  for (let p = 0; p < n; p++) {
    const id = label[p];
    if (id >= 0 && sizes[id] < keep) rgba[p * 4 + 3] = 0;
  }
}
