/**
 * The LAION improved aesthetic predictor at inference: its five linear layers have no activations between
 * them (dropout is off), so the whole MLP is one affine map from the L2-normalised CLIP ViT-L/14 image
 * embedding (768) to a 1-10 rating. workers/gpu/tools/convert_aesthetic.py folds the PyTorch state dict into
 * that map and stores it as safetensors: `weight` (1 x 768, float32) and `bias` (1).
 */
import { readFile } from 'node:fs/promises';

export interface AestheticPredictor {
  /** Embedding width the map expects. */
  readonly dim: number;
  /** Rating of one embedding; it is L2-normalised here, as the predictor was trained on normalised ones. */
  score(embedding: Float32Array): number;
}

export function affinePredictor(weight: Float32Array, bias: number): AestheticPredictor {
  return {
    dim: weight.length,
    score(embedding) {
      if (embedding.length !== weight.length) {
        throw new Error(`aesthetic predictor takes ${weight.length}-d embeddings, got ${embedding.length}`);
      }
      let norm = 0,
        dot = 0;
      for (let i = 0; i < embedding.length; i++) {
        norm += embedding[i] * embedding[i];
        dot += embedding[i] * weight[i];
      }
      return dot / Math.max(Math.sqrt(norm), 1e-12) + bias;
    },
  };
}

export async function loadAestheticPredictor(path: string): Promise<AestheticPredictor> {
  const tensors = readSafetensors(new Uint8Array(await readFile(path)), path);
  const weight = tensors.get('weight');
  const bias = tensors.get('bias');
  if (!weight || !bias)
    throw new Error(`${path} must hold tensors "weight" and "bias" (convert with workers/gpu/tools/convert_aesthetic.py)`);
  if (weight.shape.length > 2 || (weight.shape.length === 2 && weight.shape[0] !== 1) || bias.data.length !== 1) {
    throw new Error(`${path}: expected weight 1 x N and bias 1, got weight ${weight.shape.join('x')} and bias ${bias.shape.join('x')}`);
  }
  return affinePredictor(weight.data, bias.data[0]);
}

export interface SafeTensor {
  shape: number[];
  data: Float32Array;
}

/** Reads float32 tensors from safetensors bytes: 8-byte little-endian header length, JSON header, raw data. */
export function readSafetensors(bytes: Uint8Array, source = 'safetensors'): Map<string, SafeTensor> {
  if (bytes.length < 8) throw new Error(`${source} is too short to be safetensors`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.length) throw new Error(`${source}: header length ${headerLength} exceeds the file`);
  let header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  } catch (err) {
    throw new Error(`${source}: bad safetensors header: ${(err as Error).message}`);
  }
  const body = 8 + headerLength;
  const out = new Map<string, SafeTensor>();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (info.dtype !== 'F32') throw new Error(`${source}: tensor ${name} is ${info.dtype}, only F32 is read`);
    const [start, end] = info.data_offsets;
    const count = info.shape.reduce((a, b) => a * b, 1);
    if (end - start !== count * 4 || body + end > bytes.length) throw new Error(`${source}: tensor ${name} has inconsistent offsets`);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(body + start + i * 4, true);
    out.set(name, { shape: info.shape, data });
  }
  return out;
}
