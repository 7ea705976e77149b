/**
 * Frames a matted object the way TRELLIS expects its input: crop to the alpha box, pad to a square with a
 * margin, centre, resize. Shared by every matting backend so they differ only in how they find alpha.
 */
import { resizeImage } from './codec.js';
import { createImage, type RgbaImage } from './rgba.js';

export interface FrameOptions {
  size: number;
  /** Empty border as a share of the output side. */
  margin: number;
  /** Alpha (0..1) above which a pixel belongs to the object's box. */
  alphaThreshold: number;
}

export interface AlphaBox {
  x0: number;
  y0: number;
  /** Exclusive. */
  x1: number;
  y1: number;
  /** Pixels above the threshold. */
  pixels: number;
}

/** The box of the pixels whose alpha is above `threshold`; `inside`, when given, gets a 1 at each of them. */
export function alphaBox(image: RgbaImage, threshold: number, inside?: Uint8Array): AlphaBox | null {
  const limit = Math.round(threshold * 255);
  const { width, height, data } = image;
  let x0 = width,
    y0 = height,
    x1 = -1,
    y1 = -1,
    pixels = 0;
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i++) {
      if (data[i * 4 + 3] > limit) {
        if (inside) inside[i] = 1;
        pixels++;
        if (x < x0) x0 = x;
        if (x > x1) x1 = x;
        if (y < y0) y0 = y;
        if (y > y1) y1 = y;
      }
    }
  }
  return pixels ? { x0, y0, x1: x1 + 1, y1: y1 + 1, pixels } : null;
}

/** Crops to the box, pads to a transparent square with the margin, and resizes to size x size. */
export async function frameObject(image: RgbaImage, box: AlphaBox, options: FrameOptions): Promise<RgbaImage> {
  const boxW = box.x1 - box.x0,
    boxH = box.y1 - box.y0;
  const side = Math.ceil(Math.max(boxW, boxH) / (1 - 2 * options.margin));
  const square = createImage(side, side);
  const offX = Math.floor((side - boxW) / 2),
    offY = Math.floor((side - boxH) / 2);
  for (let y = 0; y < boxH; y++) {
    const src = ((box.y0 + y) * image.width + box.x0) * 4;
    square.data.set(image.data.subarray(src, src + boxW * 4), ((offY + y) * side + offX) * 4);
  }
  return side === options.size ? square : resizeImage(square, options.size, options.size);
}
