/** Image bytes <-> RgbaImage, through sharp (libvips). */
import sharp, { type OutputInfo } from 'sharp';
import type { RgbaImage } from './rgba.js';

export type ImageFormat = 'png' | 'jpeg' | 'webp';

/** Recognises PNG, JPEG and WebP by their magic bytes. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | null {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (
    bytes.length >= 12 &&
    bytes[0] === 0x52 &&
    bytes[1] === 0x49 &&
    bytes[2] === 0x46 &&
    bytes[3] === 0x46 &&
    bytes[8] === 0x57 &&
    bytes[9] === 0x45 &&
    bytes[10] === 0x42 &&
    bytes[11] === 0x50
  )
    return 'webp';
  return null;
}

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

export interface DecodeLimits {
  maxPixels: number;
  minSide: number;
  /** Longest side of the result: a larger image is scaled down (Lanczos) as it is decoded. */
  maxSide?: number;
}

/** Width and height from the image's header alone (no pixels decoded), or null when it has none sharp reads. */
export async function imageSize(bytes: Uint8Array): Promise<{ width: number; height: number } | null> {
  try {
    const { width, height } = await sharp(bytes).metadata();
    return width && height ? { width, height } : null;
  } catch {
    return null;
  }
}

/** Decodes to RGBA8, applying EXIF orientation. Throws ImageDecodeError with the reason. */
export async function decodeImage(bytes: Uint8Array, limits: DecodeLimits): Promise<RgbaImage> {
  let result: { data: Buffer; info: OutputInfo };
  try {
    let pipeline = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: 'error' }).rotate();
    if (limits.maxSide)
      pipeline = pipeline.resize({ width: limits.maxSide, height: limits.maxSide, fit: 'inside', withoutEnlargement: true });
    result = await pipeline.ensureAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    const message = (err as Error).message;
    if (/pixel limit/i.test(message)) throw new ImageDecodeError(`image is larger than ${limits.maxPixels} pixels`);
    throw new ImageDecodeError(`image could not be decoded: ${message}`);
  }
  const { width, height, channels } = result.info;
  if (channels !== 4) throw new ImageDecodeError(`decoded image has ${channels} channels, expected 4`);
  if (width < limits.minSide || height < limits.minSide) {
    throw new ImageDecodeError(`image is ${width}x${height}, smaller than ${limits.minSide} pixels on a side`);
  }
  const data = new Uint8ClampedArray(result.data.buffer, result.data.byteOffset, result.data.length);
  return { width, height, data };
}

export async function encodePng(image: RgbaImage): Promise<Uint8Array> {
  const buffer = await sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.length), {
    raw: { width: image.width, height: image.height, channels: 4 },
  })
    .png({ compressionLevel: 3 })
    .toBuffer();
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

/**
 * WebP, for textures games load (EXT_texture_webp): near-lossless keeps a baked atlas's cells from bleeding
 * into each other the way lossy blocks would, at about half a PNG's bytes; alpha is kept exactly.
 */
export async function encodeWebp(image: RgbaImage): Promise<Uint8Array> {
  const buffer = await sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.length), {
    raw: { width: image.width, height: image.height, channels: 4 },
  })
    .webp({ nearLossless: true, quality: 80, alphaQuality: 100, effort: 4 })
    .toBuffer();
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.length);
}

/** Resizes with Lanczos (the resampling rembg and TRELLIS use). */
export async function resizeImage(image: RgbaImage, width: number, height: number): Promise<RgbaImage> {
  const { data, info } = await sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.length), {
    raw: { width: image.width, height: image.height, channels: 4 },
  })
    .resize(width, height, { kernel: 'lanczos3', fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, data: new Uint8ClampedArray(data.buffer, data.byteOffset, data.length) };
}
