/**
 * CLIP ViT-L/14 through transformers.js, and the LAION aesthetic head on its image embeddings, in the thread
 * that owns them (see model-runner.ts). From a local folder only. The views' pre-processing and the scores
 * built from the embeddings stay in clip.ts.
 */
import { basename, dirname } from 'node:path';
import type { Tensor } from '@huggingface/transformers';
import { loadAestheticPredictor } from './aesthetic.js';

export interface ClipModelOptions {
  /** Folder in transformers.js layout (config.json, tokenizer*.json, preprocessor_config.json, onnx/). */
  modelDir: string;
  dtype: 'fp32' | 'fp16' | 'q8';
  device: 'cpu' | 'cuda';
  /** Converted aesthetic weights; null: no aesthetic scores. */
  aestheticPath: string | null;
}

export interface ImageEmbeddings {
  /** One embedding per image of the batch. */
  embeddings: Float32Array[];
  /** Each image's aesthetic rating, when the aesthetic head is loaded. */
  aesthetic: number[] | null;
}

export interface ClipModel {
  /** The text embedding of one prompt (CLIP reads at most 77 tokens: longer prompts are truncated). */
  embedText(prompt: string): Promise<Float32Array>;
  /** Embeddings of a batch of CLIP pixel values (NCHW float32 of `dims`). */
  embedImages(pixels: Float32Array, dims: number[]): Promise<ImageEmbeddings>;
  release(): Promise<void>;
}

export async function loadClipModel(options: ClipModelOptions): Promise<ClipModel> {
  const { modelDir, dtype, device, aestheticPath } = options;
  // About a second to import: only threads that run CLIP load it.
  const lib = await import('@huggingface/transformers');
  const { env, AutoTokenizer, CLIPTextModelWithProjection, CLIPVisionModelWithProjection } = lib;
  // Disk only: never reach for the hub. The model id is the folder's name under its parent.
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${dirname(modelDir)}/`;
  const id = basename(modelDir);
  const modelOptions = { device, dtype } as const;
  const [tokenizer, text, vision, aesthetic] = await Promise.all([
    AutoTokenizer.from_pretrained(id),
    CLIPTextModelWithProjection.from_pretrained(id, modelOptions),
    CLIPVisionModelWithProjection.from_pretrained(id, modelOptions),
    aestheticPath ? loadAestheticPredictor(aestheticPath) : Promise.resolve(null),
  ]);
  return {
    async embedText(prompt) {
      const inputs = tokenizer([prompt], { padding: true, truncation: true });
      const { text_embeds } = (await text(inputs)) as { text_embeds: Tensor };
      return rows(text_embeds)[0];
    },
    async embedImages(pixels, dims) {
      const pixel_values = new lib.Tensor('float32', pixels, dims);
      const { image_embeds } = (await vision({ pixel_values })) as { image_embeds: Tensor };
      const embeddings = rows(image_embeds);
      return { embeddings, aesthetic: aesthetic && embeddings.map((e) => aesthetic.score(e)) };
    },
    async release() {
      await Promise.all([text.dispose(), vision.dispose()]);
    },
  };
}

/** Rows of a [batch, dim] float tensor, each a copy of its own. */
function rows(tensor: Tensor): Float32Array[] {
  const [batch, dim] = tensor.dims;
  const data = tensor.data as Float32Array;
  return Array.from({ length: batch }, (_, i) => data.slice(i * dim, (i + 1) * dim));
}
