/**
 * The CPU preview backends, built from the config. Kept apart from backends.ts (which also builds the model
 * backends and so loads onnxruntime) so a worker thread can build the same backends cheaply (runtime/cpu-worker.ts).
 */
import type { JobSettings } from './context.js';
import { InflateImageTo3d } from './image-to-3d/inflate.js';
import { KeyingMatting } from './matting/keying.js';
import type { ImageTo3d, Matting, TextToImage } from './stages.js';
import { PreviewTextToImage } from './text-to-image/preview.js';

export function previewTextToImage(config: JobSettings): TextToImage {
  return new PreviewTextToImage({ lightJitter: config.text_to_image.preview.light_jitter });
}

export function keyingMatting(config: JobSettings): Matting {
  const section = config.matting;
  return new KeyingMatting({
    size: section.output_size,
    margin: section.margin,
    alphaThreshold: section.alpha_threshold,
    tolerance: section.keying.tolerance,
    softness: section.keying.softness,
    minCoverage: section.min_coverage,
    keepInputAlpha: section.keep_input_alpha,
  });
}

export function inflateImageTo3d(config: JobSettings): ImageTo3d {
  const section = config.image_to_3d;
  return new InflateImageTo3d({
    depthRatio: section.inflate.depth_ratio,
    opacity: section.inflate.opacity,
    alphaThreshold: config.matting.alpha_threshold,
  });
}
