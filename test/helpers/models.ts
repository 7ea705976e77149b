/**
 * Tiny stand-ins for the production models, built on the fly: same file layout, input and output names and
 * shapes as the real ones, a handful of operators instead of millions of weights. Tests load them through
 * the same code paths (onnxruntime-node, transformers.js) the service uses for the real files.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FLOAT, INT64, onnxModel } from './onnx.js';

/**
 * ISNet's interface: `input_image` 1x3x1024x1024 -> first output 1x1x1024x1024 in [0,1]. The tiny graph
 * computes sigmoid(gain * mean over channels of the input), so a pixel's output follows its brightness.
 */
export function tinyIsnetOnnx(gain: number): Uint8Array {
  const side = 1024;
  return onnxModel({
    inputs: [{ name: 'input_image', type: FLOAT, dims: [1, 3, side, side] }],
    outputs: [
      { name: 'mask', type: FLOAT, dims: [1, 1, side, side] },
      // ISNet exports several side outputs; the service must read the first.
      { name: 'side_output', type: FLOAT, dims: [1, 1, side, side] },
    ],
    initializers: [{ name: 'gain', dims: [], values: Float32Array.of(gain) }],
    nodes: [
      { op: 'ReduceMean', inputs: ['input_image'], outputs: ['grey'], attributes: { axes: [1], keepdims: 1 } },
      { op: 'Mul', inputs: ['grey', 'gain'], outputs: ['scaled'] },
      { op: 'Sigmoid', inputs: ['scaled'], outputs: ['mask'] },
      { op: 'Neg', inputs: ['mask'], outputs: ['side_output'] },
    ],
  });
}

/**
 * tinyIsnetOnnx's graph with `matmuls` products by a 1024 x 1024 identity matrix between the channel mean and
 * the gain (2 GFLOP each, which onnxruntime computes in full): the same mask, at the cost of a real inference.
 */
export function heavyIsnetOnnx(gain: number, matmuls: number): Uint8Array {
  const side = 1024;
  const identity = new Float32Array(side * side);
  for (let i = 0; i < side; i++) identity[i * side + i] = 1;
  const chain = Array.from({ length: matmuls }, (_, i) => ({
    op: 'MatMul',
    inputs: [i === 0 ? 'grey' : `product_${i - 1}`, 'identity'],
    outputs: [`product_${i}`],
  }));
  return onnxModel({
    inputs: [{ name: 'input_image', type: FLOAT, dims: [1, 3, side, side] }],
    outputs: [{ name: 'mask', type: FLOAT, dims: [1, 1, side, side] }],
    initializers: [
      { name: 'gain', dims: [], values: Float32Array.of(gain) },
      { name: 'identity', dims: [side, side], values: identity },
    ],
    nodes: [
      { op: 'ReduceMean', inputs: ['input_image'], outputs: ['grey'], attributes: { axes: [1], keepdims: 1 } },
      ...chain,
      { op: 'Mul', inputs: [matmuls ? `product_${matmuls - 1}` : 'grey', 'gain'], outputs: ['scaled'] },
      { op: 'Sigmoid', inputs: ['scaled'], outputs: ['mask'] },
    ],
  });
}

export interface TinyClip {
  dir: string;
  /** Embedding width of both towers. */
  dim: number;
  /** Token id of each lower-case letter: vocab[letter]. */
  vocab: Record<string, number>;
  /** Rows of the token embedding table (dim floats per token id). */
  tokenEmbeddings: Float32Array;
  /** image_embeds = mean RGB (after the processor's normalisation) x projection + bias. */
  projection: Float32Array;
  bias: Float32Array;
  imageSize: number;
  mean: number[];
  std: number[];
}

/**
 * A CLIP-like model folder as transformers.js expects it (config.json, tokenizer.json, tokenizer_config.json,
 * preprocessor_config.json, onnx/text_model.onnx, onnx/vision_model.onnx).
 * Text tower: the mean of per-token embedding rows (letters are tokens). Vision tower: an affine map of the
 * image's mean normalised colour. With `heavy`, the vision tower also spreads each view to 3 x 1024 x 1024 and
 * multiplies it `heavy` times by a 1024 x 1024 identity (6 GFLOP per view each), then adds that branch times
 * zero: the same embeddings, at the cost of a real inference.
 */
export async function writeTinyClip(dir: string, options: { dim?: number; imageSize?: number; heavy?: number } = {}): Promise<TinyClip> {
  const dim = options.dim ?? 4;
  const imageSize = options.imageSize ?? 16;
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const vocab: Record<string, number> = { '<|startoftext|>': 0, '<|endoftext|>': 1 };
  for (const [i, letter] of [...letters].entries()) vocab[letter] = i + 2;
  const vocabSize = letters.length + 2;

  // Deterministic, distinct rows: token t has a bump on axis t % dim.
  const tokenEmbeddings = new Float32Array(vocabSize * dim);
  for (let t = 0; t < vocabSize; t++) {
    for (let d = 0; d < dim; d++) tokenEmbeddings[t * dim + d] = (d === t % dim ? 1 : 0) + 0.1 * ((t + d) % 3);
  }
  // Vision: three colour channels onto dim axes; the bias keeps embeddings away from zero.
  const projection = new Float32Array(3 * dim);
  for (let c = 0; c < 3; c++) for (let d = 0; d < dim; d++) projection[c * dim + d] = c === d % 3 ? 1 : 0.25;
  const bias = new Float32Array(dim).fill(0.5);

  const text = onnxModel({
    inputs: [{ name: 'input_ids', type: INT64, dims: ['batch', 'sequence'] }],
    outputs: [{ name: 'text_embeds', type: FLOAT, dims: ['batch', dim] }],
    initializers: [{ name: 'token_embedding', dims: [vocabSize, dim], values: tokenEmbeddings }],
    nodes: [
      { op: 'Gather', inputs: ['token_embedding', 'input_ids'], outputs: ['tokens'], attributes: { axis: 0 } },
      { op: 'ReduceMean', inputs: ['tokens'], outputs: ['text_embeds'], attributes: { axes: [1], keepdims: 0 } },
    ],
  });
  const heavy = options.heavy ?? 0;
  const spread = 1024;
  const identity = new Float32Array(spread * spread);
  for (let i = 0; i < spread; i++) identity[i * spread + i] = 1;
  const vision = onnxModel({
    inputs: [{ name: 'pixel_values', type: FLOAT, dims: ['batch', 3, imageSize, imageSize] }],
    outputs: [{ name: 'image_embeds', type: FLOAT, dims: ['batch', dim] }],
    initializers: [
      { name: 'projection', dims: [3, dim], values: projection },
      { name: 'bias', dims: [dim], values: bias },
      ...(heavy
        ? [
            { name: 'ones_right', dims: [imageSize, spread], values: new Float32Array(imageSize * spread).fill(1) },
            { name: 'ones_left', dims: [spread, imageSize], values: new Float32Array(spread * imageSize).fill(1) },
            { name: 'identity', dims: [spread, spread], values: identity },
            { name: 'zeros', dims: [3, dim], values: new Float32Array(3 * dim) },
          ]
        : []),
    ],
    nodes: [
      { op: 'ReduceMean', inputs: ['pixel_values'], outputs: ['colour'], attributes: { axes: [2, 3], keepdims: 0 } },
      { op: 'MatMul', inputs: ['colour', 'projection'], outputs: ['projected'] },
      { op: 'Add', inputs: ['projected', 'bias'], outputs: [heavy ? 'embeds' : 'image_embeds'] },
      ...(heavy
        ? [
            { op: 'MatMul', inputs: ['pixel_values', 'ones_right'], outputs: ['wide'] },
            { op: 'MatMul', inputs: ['ones_left', 'wide'], outputs: ['product_0'] },
            ...Array.from({ length: heavy }, (_, i) => ({
              op: 'MatMul',
              inputs: [`product_${i}`, 'identity'],
              outputs: [`product_${i + 1}`],
            })),
            { op: 'ReduceMean', inputs: [`product_${heavy}`], outputs: ['spread_mean'], attributes: { axes: [2, 3], keepdims: 0 } },
            { op: 'MatMul', inputs: ['spread_mean', 'zeros'], outputs: ['nothing'] },
            { op: 'Add', inputs: ['embeds', 'nothing'], outputs: ['image_embeds'] },
          ]
        : []),
    ],
  });

  const mean = [0.48145466, 0.4578275, 0.40821073];
  const std = [0.26862954, 0.26130258, 0.27577711];
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special('<|startoftext|>', 0), special('<|endoftext|>', 1)],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '<|startoftext|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|endoftext|>', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '<|startoftext|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '<|endoftext|>', type_id: 0 } },
      ],
      special_tokens: {
        '<|startoftext|>': { id: '<|startoftext|>', ids: [0], tokens: ['<|startoftext|>'] },
        '<|endoftext|>': { id: '<|endoftext|>', ids: [1], tokens: ['<|endoftext|>'] },
      },
    },
    decoder: null,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<|endoftext|>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  const files: Record<string, string | Uint8Array> = {
    'config.json': JSON.stringify({
      model_type: 'clip',
      projection_dim: dim,
      text_config: { model_type: 'clip_text_model', hidden_size: dim, vocab_size: vocabSize, max_position_embeddings: 77 },
      vision_config: { model_type: 'clip_vision_model', hidden_size: dim, image_size: imageSize, patch_size: imageSize },
    }),
    'tokenizer.json': JSON.stringify(tokenizer),
    'tokenizer_config.json': JSON.stringify({
      tokenizer_class: 'CLIPTokenizer',
      model_max_length: 77,
      bos_token: '<|startoftext|>',
      eos_token: '<|endoftext|>',
      unk_token: '<|endoftext|>',
      pad_token: '<|endoftext|>',
      do_lower_case: true,
    }),
    'preprocessor_config.json': JSON.stringify({
      crop_size: { height: imageSize, width: imageSize },
      do_center_crop: true,
      do_normalize: true,
      do_resize: true,
      do_convert_rgb: true,
      feature_extractor_type: 'CLIPFeatureExtractor',
      image_mean: mean,
      image_std: std,
      resample: 3,
      size: { shortest_edge: imageSize },
    }),
    'onnx/text_model.onnx': text,
    'onnx/vision_model.onnx': vision,
  };
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return { dir, dim, vocab, tokenEmbeddings, projection, bias, imageSize, mean, std };
}

/** The aesthetic predictor's simple format (safetensors: `weight` [1, dim], `bias` [1]) as the converter writes it. */
export function aestheticSafetensors(weight: Float32Array, bias: number): Uint8Array {
  const header = JSON.stringify({
    __metadata__: { format: 'pt' },
    weight: { dtype: 'F32', shape: [1, weight.length], data_offsets: [0, weight.length * 4] },
    bias: { dtype: 'F32', shape: [1], data_offsets: [weight.length * 4, weight.length * 4 + 4] },
  });
  // The header is padded with spaces to a multiple of 8 bytes, as the reference writer does.
  const padded = header.padEnd(Math.ceil(header.length / 8) * 8, ' ');
  const headerBytes = new TextEncoder().encode(padded);
  const out = new Uint8Array(8 + headerBytes.length + weight.length * 4 + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  const body = 8 + headerBytes.length;
  weight.forEach((w, i) => view.setFloat32(body + i * 4, w, true));
  view.setFloat32(body + weight.length * 4, bias, true);
  return out;
}
