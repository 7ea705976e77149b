/**
 * Matting backend "isnet": ISNet (DIS, isnet-general-use) through onnxruntime-node, with rembg's pre- and
 * post-processing, then the same framing as every matting backend (alpha box, square, margin, 518). The
 * session runs where the model runner puts it (the service's: a worker thread, isnet-model.ts).
 *
 * rembg's recipe: RGB, Lanczos resize to 1024x1024, divide by the image's own maximum (not 255), subtract
 * 0.5 (std 1), NCHW float32; the first output's channel 0 (already a sigmoid) is min-max normalised, scaled
 * to 8 bits, resized back with Lanczos and used as alpha.
 */
import sharp from 'sharp';
import { alphaBox, frameObject, type FrameOptions } from '../../image/frame-object.js';
import { hasTransparency, type RgbaImage } from '../../image/rgba.js';
import type { ModelFiles } from '../model-files.js';
import type { ModelRunner, RunningModel } from '../model-runner.js';
import type { JobContext } from '../context.js';
import type { Matting, MattingInput, Readiness } from '../stages.js';

export interface IsnetOptions extends FrameOptions {
  /** The ONNX file. */
  model: ModelFiles;
  executionProvider: 'cpu' | 'cuda';
  /** Side of the model's square input. */
  inputSize: number;
  /** onnxruntime intra-op threads (0: its default). */
  threads: number;
  minCoverage: number;
  keepInputAlpha: boolean;
  /** Where the session runs (compose.ts: a worker thread, so an inference never holds the event loop). */
  runner: ModelRunner;
}

export class IsnetMatting implements Matting {
  readonly name = 'isnet';
  readonly preview = false;
  readonly gpu: boolean;
  private session: RunningModel<'isnet'> | null = null;
  private loadError: string | null = null;

  constructor(private readonly options: IsnetOptions) {
    this.gpu = options.executionProvider === 'cuda';
  }

  readiness(): Readiness {
    if (this.session) return { ready: true };
    if (this.loadError) return { ready: false, detail: this.loadError };
    const missing = this.options.model.missing();
    if (missing.length) return { ready: false, detail: `model file ${missing[0]} not found (run: npm run weights)` };
    return { ready: false, detail: `loading ${this.options.model.paths[0]}` };
  }

  async init(): Promise<void> {
    const { model, executionProvider, threads, inputSize, runner } = this.options;
    const path = model.paths[0];
    try {
      const problem = await model.problems();
      if (problem) throw new Error(problem);
      this.session = await runner.load('isnet', { path, executionProvider, threads, inputSize });
    } catch (err) {
      this.loadError = `ISNet model ${path} could not be loaded: ${(err as Error).message}`;
      throw new Error(this.loadError);
    }
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = null;
    await session?.release();
  }

  async matte({ image, fromUser }: MattingInput, ctx: JobContext): Promise<RgbaImage | null> {
    const keepAlpha = fromUser && this.options.keepInputAlpha && hasTransparency(image);
    let matted = image;
    if (!keepAlpha) {
      const session = this.session;
      if (!session) throw new Error(this.readiness().detail ?? 'ISNet model not loaded');
      const size = this.options.inputSize;
      const input = await isnetInput(image, size);
      ctx.signal.throwIfAborted();
      // The 12 MB input is handed over, not copied.
      const prediction = await session.call('predict', [input], { transfer: [input.buffer as ArrayBuffer], signal: ctx.signal });
      const mask = maskFromPrediction(prediction, size);
      if (!mask) return null;
      matted = await withMask(image, mask, size);
    }
    return frameMatted(matted, this.options);
  }
}

/** rembg's input: RGB, Lanczos to size x size, / the image's max, - 0.5, std 1, NCHW float32. */
export async function isnetInput(image: RgbaImage, size: number): Promise<Float32Array> {
  // Drop alpha by hand, as PIL's convert("RGB") does: sharp would premultiply it into the colours on resize.
  const n = image.width * image.height;
  const src = image.data;
  const dropped = Buffer.allocUnsafe(n * 3);
  for (let p = 0, i = 0, o = 0; p < n; p++, i += 4, o += 3) {
    dropped[o] = src[i];
    dropped[o + 1] = src[i + 1];
    dropped[o + 2] = src[i + 2];
  }
  const rgb = await sharp(dropped, { raw: { width: image.width, height: image.height, channels: 3 } })
    .resize(size, size, { kernel: 'lanczos3', fit: 'fill' })
    .raw()
    .toBuffer();
  let max = 0;
  for (let i = 0; i < rgb.length; i++) if (rgb[i] > max) max = rgb[i];
  const scale = 1 / Math.max(max, 1e-6);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  for (let p = 0, i = 0; p < plane; p++, i += 3) {
    out[p] = rgb[i] * scale - 0.5;
    out[plane + p] = rgb[i + 1] * scale - 0.5;
    out[2 * plane + p] = rgb[i + 2] * scale - 0.5;
  }
  return out;
}

/**
 * Channel 0 of the first output (its first size x size values), min-max normalised and truncated to 8 bits
 * as rembg does (`(pred * 255).astype(uint8)`). Null when the prediction is flat: no object to cut out.
 */
export function maskFromPrediction(prediction: Float32Array, size: number): Uint8Array | null {
  const n = size * size;
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = prediction[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(max > min)) return null;
  const scale = 255 / (max - min);
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = Math.trunc((prediction[i] - min) * scale);
  return mask;
}

/** The image with the mask, resized back to the image's size (Lanczos), as its alpha channel. */
export async function withMask(image: RgbaImage, mask: Uint8Array, maskSize: number): Promise<RgbaImage> {
  const alpha = await sharp(Buffer.from(mask.buffer, mask.byteOffset, mask.length), {
    raw: { width: maskSize, height: maskSize, channels: 1 },
  })
    .resize(image.width, image.height, { kernel: 'lanczos3', fit: 'fill' })
    .extractChannel(0)
    .raw()
    .toBuffer();
  const data = new Uint8ClampedArray(image.data);
  for (let p = 0, o = 3; p < alpha.length; p++, o += 4) data[o] = alpha[p];
  return { width: image.width, height: image.height, data };
}

/** Crop to the alpha box, pad, centre, resize: shared framing; null when the object is too small to use. */
export async function frameMatted(matted: RgbaImage, options: FrameOptions & { minCoverage: number }): Promise<RgbaImage | null> {
  const box = alphaBox(matted, options.alphaThreshold);
  if (!box || box.pixels < options.minCoverage * matted.width * matted.height) return null;
  return frameObject(matted, box, options);
}
