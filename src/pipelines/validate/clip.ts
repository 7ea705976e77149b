/**
 * Validation backend "clip": CLIP ViT-L/14 through transformers.js, from a local folder only. One vision pass
 * per rendered view serves both the text alignment and the aesthetic score. The models run where the model
 * runner puts them (the service's: a worker thread, clip-model.ts); views are pre-processed here.
 *
 * Text tasks: raw cosines between each view and the prompt on CLIP ViT-L/14, two thresholds: their geometric
 * mean (cosines clipped to [0,1] first, so one view that misses the prompt drags it down) and their plain mean
 * (seed design: >= 0.24). These are not the validator's score: its alignment divides the geometric mean by 0.35,
 * a scale tuned for open_clip ConvNeXt-Large-D cosines, which on ViT-L/14 would accept almost anything. The
 * "validator-service" check asks the validator's own code for its score.
 * Image tasks: mean cosine between the framed input image and the views. Aesthetic: the LAION predictor on the
 * normalised view embeddings, averaged over the views.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { RgbaImage } from '../../image/rgba.js';
import type { ModelFiles } from '../model-files.js';
import type { ModelRunner, RunningModel } from '../model-runner.js';
import type { JobContext, JobSettings } from '../context.js';
import type { Check } from '../job.js';
import type { GpuRunner, Readiness, ValidationInput, Validator, ViewRenderer } from '../stages.js';
import type { ImageEmbeddings } from './clip-model.js';

export interface ClipOptions {
  /** Folder in transformers.js layout (config.json, tokenizer*.json, preprocessor_config.json, onnx/). */
  modelDir: string;
  /** Every file the backend loads (CLIP folder and aesthetic weights), checked before loading. */
  files: ModelFiles;
  /** Converted aesthetic weights; null leaves the aesthetic check out. */
  aestheticPath: string | null;
  dtype: 'fp32' | 'fp16' | 'q8';
  device: 'cpu' | 'cuda';
  /** Model calls take the runtime's GPU lock (true when the models run on the GPU). */
  lockModelsOnGpu: boolean;
  views: number;
  viewSize: number;
  /** Prompts whose text embedding stays cached. */
  textCache: number;
  /** Where the models run (compose.ts: a worker thread, so an inference never holds the event loop). */
  runner: ModelRunner;
}

interface Loaded {
  imageSettings: ClipImageSettings;
  models: RunningModel<'clip'>;
}

/** The files a CLIP folder must hold for this dtype (transformers.js names). */
export function clipFolderFiles(dtype: ClipOptions['dtype']): string[] {
  const suffix = { fp32: '', fp16: '_fp16', q8: '_quantized' }[dtype];
  return [
    'config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'preprocessor_config.json',
    `onnx/text_model${suffix}.onnx`,
    `onnx/vision_model${suffix}.onnx`,
  ];
}

export class ClipValidator implements Validator {
  readonly name = 'clip';
  readonly preview = false;
  /**
   * False: the pipeline must not hold the GPU lock over the whole check, whose view rendering is CPU work.
   * Only the model calls take the lock (see validate).
   */
  readonly gpu = false;
  private loaded: Loaded | null = null;
  private loadError: string | null = null;
  private readonly textEmbeddings = new Map<string, Float32Array>();

  constructor(
    private readonly options: ClipOptions,
    private readonly renderViews: ViewRenderer,
  ) {}

  readiness(): Readiness {
    if (this.loaded) return { ready: true };
    if (this.loadError) return { ready: false, detail: this.loadError };
    const missing = this.options.files.missing();
    if (missing.length) return { ready: false, detail: `model files not found: ${missing.join(', ')} (run: npm run weights)` };
    return { ready: false, detail: `loading CLIP from ${this.options.modelDir}` };
  }

  async init(): Promise<void> {
    const { modelDir, files, dtype, device, aestheticPath, runner } = this.options;
    try {
      const problem = await files.problems();
      if (problem) throw new Error(problem);
      const imageSettings = clipImageSettings(JSON.parse(await readFile(join(modelDir, 'preprocessor_config.json'), 'utf8')));
      const models = await runner.load('clip', { modelDir, dtype, device, aestheticPath });
      this.loaded = { imageSettings, models };
    } catch (err) {
      this.loadError = `CLIP could not be loaded from ${modelDir}: ${(err as Error).message}`;
      throw new Error(this.loadError);
    }
  }

  async close(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    await loaded?.models.release();
  }

  async validate({ job, cloud, mesh, image }: ValidationInput, ctx: JobContext): Promise<Check[]> {
    const signal = ctx.signal;
    // Only the model calls take the job's GPU runner (and count as its GPU time).
    const onGpu: GpuRunner = this.options.lockModelsOnGpu ? ctx.gpu : (work) => work();
    const loaded = this.loaded;
    if (!loaded) throw new Error(this.readiness().detail ?? 'CLIP not loaded');
    // Thresholds are the job's (a preset may change them); the models and views are the constructor's.
    const thresholds = clipThresholds(ctx.settings.validate.clip);
    // A mesh job is judged on its mesh: its views are the mesh's.
    const views = await this.renderViews(mesh ? { mesh } : { cloud }, { count: this.options.views, size: this.options.viewSize }, signal);
    signal.throwIfAborted();
    const check = (name: string, value: number, threshold: number): Check => ({
      name,
      value,
      threshold,
      passed: value >= threshold,
      by: this.name,
    });
    const checks: Check[] = [];

    let viewAesthetic: number[] | null;
    if (job.task.kind === 'text') {
      const prompt = job.task.prompt;
      const [text, embedded] = await onGpu(
        () => Promise.all([this.embedText(loaded, prompt, signal), this.embedImages(loaded, views, signal)]),
        signal,
      );
      viewAesthetic = embedded.aesthetic;
      const cosines = embedded.embeddings.map((v) => cosine(v, text));
      checks.push(check('clip_geomean_cosine', geometricMeanCosine(cosines), thresholds.minGeomeanCosine));
      checks.push(check('clip_similarity', mean(cosines), thresholds.minSimilarity));
    } else {
      // The framed input against the views, both on the validator's white background.
      const embedded = await onGpu(() => this.embedImages(loaded, [image, ...views], signal), signal);
      const [reference, ...viewEmbeds] = embedded.embeddings;
      viewAesthetic = embedded.aesthetic?.slice(1) ?? null;
      checks.push(check('clip_image_similarity', mean(viewEmbeds.map((v) => cosine(v, reference))), thresholds.minImageSimilarity));
    }
    if (viewAesthetic && thresholds.minAesthetic > 0) checks.push(check('aesthetic', mean(viewAesthetic), thresholds.minAesthetic));
    return checks;
  }

  private async embedText(loaded: Loaded, prompt: string, signal: AbortSignal): Promise<Float32Array> {
    const cached = this.textEmbeddings.get(prompt);
    if (cached) {
      // Refresh its place in the insertion-ordered map (least recently used goes first).
      this.textEmbeddings.delete(prompt);
      this.textEmbeddings.set(prompt, cached);
      return cached;
    }
    const embedding = await loaded.models.call('embedText', [prompt], { signal });
    if (this.options.textCache > 0) {
      if (this.textEmbeddings.size >= this.options.textCache) this.textEmbeddings.delete(this.textEmbeddings.keys().next().value!);
      this.textEmbeddings.set(prompt, embedding);
    }
    return embedding;
  }

  /** Each image's embedding (and aesthetic rating); the pixel values are handed over, not copied. */
  private async embedImages(loaded: Loaded, images: RgbaImage[], signal: AbortSignal): Promise<ImageEmbeddings> {
    const pixels = await clipPixelValues(loaded.imageSettings, images);
    return loaded.models.call('embedImages', [pixels.data, pixels.dims], { transfer: [pixels.data.buffer as ArrayBuffer], signal });
  }
}

/** The thresholds of a job's clip section (a preset may change them). */
interface ClipThresholds {
  minSimilarity: number;
  /** Lowest geometric mean of the clipped raw cosines. */
  minGeomeanCosine: number;
  minImageSimilarity: number;
  minAesthetic: number;
}

function clipThresholds(section: JobSettings['validate']['clip']): ClipThresholds {
  return {
    minSimilarity: section.min_similarity,
    minGeomeanCosine: section.min_geomean_cosine,
    minImageSimilarity: section.min_image_similarity,
    minAesthetic: section.min_aesthetic,
  };
}

/** CLIP's image pre-processing, as the model folder's preprocessor_config.json states it. */
export interface ClipImageSettings {
  /** Shortest edge after resizing. */
  shortestEdge: number;
  crop: { width: number; height: number };
  mean: [number, number, number];
  std: [number, number, number];
  rescale: number;
}

/**
 * Reads the fields of a Hugging Face CLIP preprocessor_config.json that CLIP's pre-processing uses. A plain
 * number for `size` means the shortest edge, as in the reference CLIPImageProcessor.
 */
export function clipImageSettings(config: Record<string, unknown>): ClipImageSettings {
  const size = config.size as number | { shortest_edge?: number; height?: number; width?: number } | undefined;
  const shortestEdge = typeof size === 'number' ? size : (size?.shortest_edge ?? Math.min(size?.height ?? NaN, size?.width ?? NaN));
  const cropRaw = (config.do_center_crop === false ? shortestEdge : (config.crop_size ?? shortestEdge)) as
    | number
    | { height: number; width: number };
  const crop = typeof cropRaw === 'number' ? { width: cropRaw, height: cropRaw } : cropRaw;
  const triple = (v: unknown, fallback: number) =>
    (Array.isArray(v) && v.length === 3 ? v : [fallback, fallback, fallback]) as [number, number, number];
  const settings = {
    shortestEdge,
    crop,
    mean: config.do_normalize === false ? ([0, 0, 0] as [number, number, number]) : triple(config.image_mean, NaN),
    std: config.do_normalize === false ? ([1, 1, 1] as [number, number, number]) : triple(config.image_std, NaN),
    rescale: typeof config.rescale_factor === 'number' ? config.rescale_factor : 1 / 255,
  };
  if (
    !(settings.shortestEdge > 0) ||
    !(crop?.width > 0) ||
    !(crop?.height > 0) ||
    settings.mean.some(Number.isNaN) ||
    settings.std.some(Number.isNaN)
  ) {
    throw new Error(`preprocessor_config.json lacks size, crop_size, image_mean or image_std: ${JSON.stringify(config).slice(0, 200)}`);
  }
  return settings;
}

/**
 * CLIP's pixel values for a batch of views: each flattened onto white (the validator's background), resized
 * so its shortest edge matches (bicubic, via sharp, as transformers.js does in Node), centre-cropped,
 * rescaled and normalised, NCHW float32. Written directly because it runs on every attempt: the views are
 * resized in parallel by libvips.
 */
export async function clipPixelValues(settings: ClipImageSettings, images: RgbaImage[]): Promise<{ data: Float32Array; dims: number[] }> {
  const { width: cw, height: ch } = settings.crop;
  const plane = cw * ch;
  const out = new Float32Array(images.length * 3 * plane);
  const scale = [0, 1, 2].map((c) => settings.rescale / settings.std[c]);
  const offset = [0, 1, 2].map((c) => -settings.mean[c] / settings.std[c]);
  await Promise.all(
    images.map(async (image, n) => {
      const k = settings.shortestEdge / Math.min(image.width, image.height);
      const w = Math.max(cw, Math.round(image.width * k));
      const h = Math.max(ch, Math.round(image.height * k));
      const rgb = await sharp(Buffer.from(flattenOnWhite(image).buffer), { raw: { width: image.width, height: image.height, channels: 3 } })
        .resize(w, h, { kernel: 'cubic', fit: 'fill' })
        .extract({ left: (w - cw) >> 1, top: (h - ch) >> 1, width: cw, height: ch })
        .raw()
        .toBuffer();
      const base = n * 3 * plane;
      for (let p = 0, i = 0; p < plane; p++, i += 3) {
        out[base + p] = rgb[i] * scale[0] + offset[0];
        out[base + plane + p] = rgb[i + 1] * scale[1] + offset[1];
        out[base + 2 * plane + p] = rgb[i + 2] * scale[2] + offset[2];
      }
    }),
  );
  return { data: out, dims: [images.length, 3, ch, cw] };
}

/** RGB bytes of an RGBA image composited over white. */
export function flattenOnWhite(image: RgbaImage): Uint8ClampedArray {
  const { data } = image;
  const n = image.width * image.height;
  const out = new Uint8ClampedArray(n * 3);
  for (let p = 0, i = 0, o = 0; p < n; p++, i += 4, o += 3) {
    const a = data[i + 3];
    if (a === 255) {
      out[o] = data[i];
      out[o + 1] = data[i + 1];
      out[o + 2] = data[i + 2];
    } else {
      const w = 255 - a;
      out[o] = (data[i] * a + 255 * w + 127) / 255;
      out[o + 1] = (data[i + 1] * a + 255 * w + 127) / 255;
      out[o + 2] = (data[i + 2] * a + 255 * w + 127) / 255;
    }
  }
  return out;
}

/** Geometric mean of cosines clipped to [0,1] (0 when any view is at or below 0). */
export function geometricMeanCosine(cosines: readonly number[]): number {
  if (!cosines.length) return 0;
  let logSum = 0;
  for (const c of cosines) {
    const clipped = Math.min(1, Math.max(0, c));
    if (clipped === 0) return 0;
    logSum += Math.log(clipped);
  }
  return Math.exp(logSum / cosines.length);
}

export function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0,
    na = 0,
    nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.max(Math.sqrt(na * nb), 1e-12);
}

export function mean(values: readonly number[]): number {
  return values.length ? values.reduce((s, v) => s + v, 0) / values.length : 0;
}
