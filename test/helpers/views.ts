/**
 * A stand-in ViewRenderer for validator tests: view i is a flat picture in the cloud's mean colour, darkened
 * by 4% per view, so every view is deterministic and a test can compute its CLIP embedding by hand.
 */
import type { RgbaImage } from '../../src/image/rgba.js';
import type { ViewRenderer } from '../../src/pipelines/stages.js';
import { dcToColour, type GaussianCloud } from '../../src/splat/cloud.js';

export function meanColour(cloud: GaussianCloud): [number, number, number] {
  const sums = [0, 0, 0];
  const { f_dc_0, f_dc_1, f_dc_2 } = cloud.columns;
  for (let i = 0; i < cloud.count; i++) {
    sums[0] += dcToColour(f_dc_0[i]);
    sums[1] += dcToColour(f_dc_1[i]);
    sums[2] += dcToColour(f_dc_2[i]);
  }
  return sums.map((s) => Math.round((255 * s) / Math.max(cloud.count, 1))) as [number, number, number];
}

export function viewColour(cloud: GaussianCloud, view: number): [number, number, number] {
  return meanColour(cloud).map((c) => Math.round(c * (1 - 0.04 * view))) as [number, number, number];
}

export interface RecordingRenderer extends ViewRenderer {
  calls: { count: number; size: number }[];
}

export function flatViewRenderer(): RecordingRenderer {
  const calls: { count: number; size: number }[] = [];
  const render = (async (subject, views) => {
    if (!('cloud' in subject)) throw new Error('flatViewRenderer renders clouds only');
    calls.push(views);
    return Array.from({ length: views.count }, (_, i): RgbaImage => {
      const [r, g, b] = viewColour(subject.cloud, i);
      const data = new Uint8ClampedArray(views.size * views.size * 4);
      for (let o = 0; o < data.length; o += 4) {
        data[o] = r;
        data[o + 1] = g;
        data[o + 2] = b;
        data[o + 3] = 255;
      }
      return { width: views.size, height: views.size, data };
    });
  }) as RecordingRenderer;
  render.calls = calls;
  return render;
}
