/**
 * Text-to-image on the GPU worker: FLUX.1-schnell behind an OpenAI-images-style route. The user's prompt gets
 * the configured suffix that asks for one whole, centred object on a plain background.
 */
import { decodeImage } from '../../image/codec.js';
import type { RgbaImage } from '../../image/rgba.js';
import type { JobContext } from '../context.js';
import { GpuWorkerError, type GpuWorker } from '../gpu-worker.js';
import type { Readiness, TextToImage } from '../stages.js';

export interface GpuWorkerTextToImageOptions {
  /** The worker's client (compose.ts builds it from the config). */
  client: GpuWorker;
  promptSuffix: string;
}

export class GpuWorkerTextToImage implements TextToImage {
  readonly name = 'gpu-worker';
  readonly preview = false;
  readonly gpu = true;
  readonly client: GpuWorker;

  constructor(private readonly options: GpuWorkerTextToImageOptions) {
    this.client = options.client;
  }

  readiness(): Readiness {
    return this.client.readiness('text-to-image');
  }

  async init(): Promise<void> {
    await this.client.waitUntilReady();
  }

  async close(): Promise<void> {
    this.client.close();
  }

  /** The prompt as sent to FLUX. */
  prompt(prompt: string): string {
    return prompt.trim() + this.options.promptSuffix;
  }

  /** Steps and the square image's side (a multiple of 16) are the job's (a preset may change them). */
  async generate(prompt: string, seed: number, ctx: JobContext): Promise<RgbaImage> {
    const { size, steps } = ctx.settings.text_to_image.gpu_worker;
    const png = await this.client.generateImage({ prompt: this.prompt(prompt), size: `${size}x${size}`, steps, seed }, ctx.signal);
    let image: RgbaImage;
    try {
      image = await decodeImage(png, { maxPixels: size * size * 4, minSide: 16 });
    } catch (err) {
      throw new GpuWorkerError(`GPU worker returned an image that cannot be decoded: ${(err as Error).message}`);
    }
    if (image.width !== size || image.height !== size) {
      throw new GpuWorkerError(`GPU worker returned a ${image.width}x${image.height} image, ${size}x${size} was asked for`);
    }
    return image;
  }
}
