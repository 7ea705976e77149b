/**
 * Every model file the Node process loads, where it comes from and how to recognise a good copy.
 * FLUX.1-schnell and TRELLIS are fetched in the GPU worker's Python environment (docs/models.md).
 *
 * Checksum policy: `sha256` is recorded where the digest is published or corroborated by several
 * independent sources; where it is not known (`null`), `npm run weights` verifies the size when known and
 * records the digest of the first complete download in the models folder's lock file, which later
 * checks compare against (trust on first download).
 */

export type ModelName = 'isnet' | 'clip' | 'aesthetic';

export interface WeightFile {
  model: ModelName;
  /** Path under the models folder (weights.dir). */
  target: string;
  /** Where `npm run weights` downloads it from; null when another tool produces it (see `producedBy`). */
  url: string | null;
  /** Bytes, when known. */
  size: number | null;
  /** Hex SHA-256, when known. */
  sha256: string | null;
  licence: string;
  /** For files made from another one: the command that makes it (MODELS/ stands for the models folder). */
  producedBy?: string;
  /** For files made from another one: the converter `npm run weights` runs with the worker's Python. */
  produce?: { script: string; input: string };
}

/** The hub repository of the CLIP export; its revision is `weights.clip_revision`. */
export const CLIP_REPOSITORY = 'https://huggingface.co/Xenova/clip-vit-large-patch14';
const CLIP_LICENCE = 'MIT (OpenAI CLIP); ONNX export by Xenova';
/** The transformers.js files of CLIP ViT-L/14 the validator needs (fp32 towers). */
const CLIP_FILES = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'preprocessor_config.json',
  'onnx/text_model.onnx',
  'onnx/vision_model.onnx',
];

export const AESTHETIC_PTH = 'aesthetic/sac+logos+ava1-l14-linearMSE.pth';
export const AESTHETIC_SAFETENSORS = 'aesthetic/laion-aesthetic-l14.safetensors';

export const AESTHETIC_CONVERTER = 'workers/gpu/tools/convert_aesthetic.py';

export interface ManifestOptions {
  /** Hub revision (commit hash or branch) the CLIP files are downloaded at. */
  clipRevision: string;
}

export function manifestFor({ clipRevision }: ManifestOptions): readonly WeightFile[] {
  const clipBase = `${CLIP_REPOSITORY}/resolve/${encodeURIComponent(clipRevision)}`;
  return [
    {
      model: 'isnet',
      target: 'isnet-general-use.onnx',
      url: 'https://github.com/danielgatis/rembg/releases/download/v0.0.0/isnet-general-use.onnx',
      size: 178_648_008,
      // md5 fc16ebd8b0c10d971d3513d564d01e29 (rembg's own pin).
      sha256: '60920e99c45464f2ba57bee2ad08c919a52bbf852739e96947fbb4358c0d964a',
      licence: 'Apache-2.0 (DIS/ISNet code; the weights carry no separate licence statement); rembg MIT',
    },
    ...CLIP_FILES.map(
      (file): WeightFile => ({
        model: 'clip',
        target: `clip-vit-large-patch14/${file}`,
        url: `${clipBase}/${file}`,
        size: null,
        sha256: null,
        licence: CLIP_LICENCE,
      }),
    ),
    {
      model: 'aesthetic',
      target: AESTHETIC_PTH,
      url: 'https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac%2Blogos%2Bava1-l14-linearMSE.pth',
      size: 3_714_759,
      sha256: '21dd590f3ccdc646f0d53120778b296013b096a035a2718c9cb0d511bff0f1e0',
      licence: 'Apache-2.0 (LAION improved aesthetic predictor)',
    },
    {
      model: 'aesthetic',
      target: AESTHETIC_SAFETENSORS,
      url: null,
      size: null,
      sha256: null,
      licence: 'Apache-2.0 (LAION improved aesthetic predictor)',
      producedBy: `python ${AESTHETIC_CONVERTER} MODELS/${AESTHETIC_PTH} MODELS/${AESTHETIC_SAFETENSORS}`,
      produce: { script: AESTHETIC_CONVERTER, input: AESTHETIC_PTH },
    },
  ];
}

/** The manifest at the default CLIP revision (checks that do not download). */
export const MANIFEST: readonly WeightFile[] = manifestFor({ clipRevision: 'main' });
