import { allocateCloud, colourToDc, logit, type GaussianCloud } from '../../src/splat/cloud.js';

export interface Blob {
  at: [number, number, number];
  /** Standard deviation (isotropic). */
  sigma: number;
  colour: [number, number, number];
  opacity: number;
}

/** A cloud of isotropic Gaussians, written in raw PLY space like any asset. */
export function blobCloud(blobs: Blob[]): GaussianCloud {
  const cloud = allocateCloud(blobs.length);
  const c = cloud.columns;
  blobs.forEach((b, i) => {
    [c.x[i], c.y[i], c.z[i]] = b.at;
    c.scale_0[i] = c.scale_1[i] = c.scale_2[i] = Math.log(b.sigma);
    c.rot_0[i] = 1;
    c.rot_1[i] = 0;
    c.rot_2[i] = 0;
    c.rot_3[i] = 0;
    c.opacity[i] = logit(b.opacity);
    [c.f_dc_0[i], c.f_dc_1[i], c.f_dc_2[i]] = b.colour.map(colourToDc) as [number, number, number];
  });
  return cloud;
}

/** Many small Gaussians filling a ball: enough work to exercise tiles, sorting and the pool. */
export function ballCloud(count: number, radius = 0.5, seed = 1): GaussianCloud {
  const cloud = allocateCloud(count);
  const c = cloud.columns;
  let s = seed >>> 0;
  const rand = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < count; i++) {
    let x, y, z;
    do {
      x = rand() * 2 - 1;
      y = rand() * 2 - 1;
      z = rand() * 2 - 1;
    } while (x * x + y * y + z * z > 1);
    c.x[i] = x * radius;
    c.y[i] = y * radius;
    c.z[i] = z * radius;
    c.scale_0[i] = Math.log(0.01 + 0.02 * rand());
    c.scale_1[i] = Math.log(0.01 + 0.02 * rand());
    c.scale_2[i] = Math.log(0.01 + 0.02 * rand());
    c.rot_0[i] = rand() - 0.5;
    c.rot_1[i] = rand() - 0.5;
    c.rot_2[i] = rand() - 0.5;
    c.rot_3[i] = rand() - 0.5;
    c.opacity[i] = logit(0.2 + 0.75 * rand());
    c.f_dc_0[i] = colourToDc(0.5 + 0.5 * x);
    c.f_dc_1[i] = colourToDc(0.5 + 0.5 * y);
    c.f_dc_2[i] = colourToDc(0.5 + 0.5 * z);
  }
  return cloud;
}
