/**
 * Model-stage CPU overheads, models excluded: ISNet pre- plus post-processing of a 1024^2 image (target
 * <= 100 ms) and CLIP preprocessing of 16 views (target <= 100 ms). Prints medians over several runs.
 */
import { createImage, type RgbaImage } from '../src/image/rgba.js';
import { frameMatted, isnetInput, maskFromPrediction, withMask } from '../src/pipelines/matting/isnet.js';
import { clipImageSettings, clipPixelValues } from '../src/pipelines/validate/clip.js';
import { report, timeMedian } from './stats.js';

const RUNS = 9;

/** Median of RUNS after a warm-up, printed beside its target. */
async function median(label: string, target: number, work: () => Promise<unknown>): Promise<void> {
  report(label, await timeMedian(RUNS, work), 'ms', `<= ${target} ms`);
}

/** A photo-like test picture: a shaded disc on a light background. */
function picture(side: number): RgbaImage {
  const image = createImage(side, side);
  const c = side / 2,
    r = side * 0.3;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const d = Math.hypot(x - c, y - c) / r;
      const o = (y * side + x) * 4;
      const inside = d < 1;
      image.data[o] = inside ? 200 - 100 * d : 235;
      image.data[o + 1] = inside ? 80 + 60 * d : 235;
      image.data[o + 2] = inside ? 40 : 230;
      image.data[o + 3] = 255;
    }
  }
  return image;
}

// ISNet: what the model would output, a soft disc, stands in for the inference itself.
const size = 1024;
const image = picture(size);
const prediction = new Float32Array(size * size);
for (let y = 0; y < size; y++)
  for (let x = 0; x < size; x++) prediction[y * size + x] = 1 / (1 + Math.exp((Math.hypot(x - 512, y - 512) - 307) / 4));

await median('isnet pre-processing, 1024^2 -> 1x3x1024x1024', 100, () => isnetInput(image, size));
await median('isnet post-processing (min-max, alpha, frame to 518)', 100, async () => {
  const mask = maskFromPrediction(prediction, size)!;
  return frameMatted(await withMask(image, mask, size), { size: 518, margin: 0.1, alphaThreshold: 0.5, minCoverage: 0.005 });
});
await median('isnet pre- plus post-processing, 1024^2', 100, async () => {
  await isnetInput(image, size);
  const mask = maskFromPrediction(prediction, size)!;
  return frameMatted(await withMask(image, mask, size), { size: 518, margin: 0.1, alphaThreshold: 0.5, minCoverage: 0.005 });
});

// CLIP ViT-L/14's preprocessor_config.json values.
const settings = clipImageSettings({
  crop_size: 224,
  do_center_crop: true,
  do_normalize: true,
  do_resize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  resample: 3,
  size: 224,
});
for (const side of [256, 518]) {
  const views = Array.from({ length: 16 }, () => picture(side));
  await median(`clip preprocessing, 16 views of ${side}^2 -> 16x3x224x224`, 100, () => clipPixelValues(settings, views));
}
