/** Test pictures: an object on a plain background, encoded by sharp. */
import sharp from 'sharp';

export interface DiscOptions {
  size: number;
  radius: number;
  /** Fill the disc with incompressible noise (to make large files). */
  noise?: boolean;
  background?: [number, number, number];
  format?: 'png' | 'jpeg' | 'webp';
  /** Give the PNG a real alpha channel: transparent outside the disc. */
  transparent?: boolean;
}

export async function discImage(options: DiscOptions): Promise<Buffer> {
  const { size, radius } = options;
  const bg = options.background ?? [255, 255, 255];
  const data = Buffer.alloc(size * size * 4);
  let state = 12345;
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state >>> 24;
  };
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 4;
      const inside = (x - size / 2) ** 2 + (y - size / 2) ** 2 < radius * radius;
      if (inside) {
        data[o] = options.noise ? 120 + (random() % 136) : 200;
        data[o + 1] = options.noise ? random() % 90 : 40;
        data[o + 2] = options.noise ? random() % 90 : 60;
        data[o + 3] = 255;
      } else {
        data[o] = bg[0];
        data[o + 1] = bg[1];
        data[o + 2] = bg[2];
        data[o + 3] = options.transparent ? 0 : 255;
      }
    }
  }
  const image = sharp(data, { raw: { width: size, height: size, channels: 4 } });
  switch (options.format ?? 'png') {
    case 'jpeg':
      return image.jpeg({ quality: 92 }).toBuffer();
    case 'webp':
      return image.webp({ lossless: true }).toBuffer();
    default:
      return image.png({ compressionLevel: 6 }).toBuffer();
  }
}

/** A disc, red in its upper half and blue in its lower half, on white. */
export async function twoToneDisc(): Promise<Buffer> {
  const size = 200;
  const data = Buffer.alloc(size * size * 3, 255);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if ((x - 100) ** 2 + (y - 100) ** 2 > 70 ** 2) continue;
      data.set(y < 100 ? [220, 20, 20] : [20, 20, 220], (y * size + x) * 3);
    }
  }
  return sharp(data, { raw: { width: size, height: size, channels: 3 } })
    .png()
    .toBuffer();
}
