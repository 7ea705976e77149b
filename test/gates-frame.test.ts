import { describe, expect, it } from 'vitest';
import { allocateCloud, logit } from '../src/splat/cloud.js';
import { centreAndScale, dropNonFinite, matrixToQuaternion, NAMED_ROTATIONS, rotateCloud, type Matrix3 } from '../src/splat/frame.js';
import { checkGates, VALIDATOR_GATES } from '../src/splat/gates.js';

function cloudOf(count: number, opacity: number, rotation: [number, number, number, number] = [1, 0, 0, 0]) {
  const cloud = allocateCloud(count);
  cloud.columns.opacity.fill(logit(opacity));
  cloud.columns.rot_0.fill(rotation[0]);
  cloud.columns.rot_1.fill(rotation[1]);
  cloud.columns.rot_2.fill(rotation[2]);
  cloud.columns.rot_3.fill(rotation[3]);
  return cloud;
}

const verdicts = (cloud: ReturnType<typeof cloudOf>) => Object.fromEntries(checkGates(cloud).map((g) => [g.name, g.passed]));

describe('validator gates', () => {
  it('needs at least 7000 Gaussians', () => {
    expect(verdicts(cloudOf(6999, 0.9, [0.9, 0.1, 0, 0])).gaussian_count).toBe(false);
    expect(verdicts(cloudOf(7000, 0.9, [0.9, 0.1, 0, 0])).gaussian_count).toBe(true);
  });

  it('allows at most 80% of opacities that SPZ decodes below 1e-3 (sigmoid under 0.5/255)', () => {
    const cloud = cloudOf(10_000, 0.5, [0.9, 0.1, 0, 0]);
    cloud.columns.opacity.fill(logit(0.0015), 0, 8000); // exactly 80% transparent: passes
    expect(verdicts(cloud).transparent_share).toBe(true);
    cloud.columns.opacity[8000] = logit(0.0015); // 80.01%: 0.0015 * 255 rounds to byte 0, which decodes to 0
    expect(verdicts(cloud).transparent_share).toBe(false);
    cloud.columns.opacity.fill(logit(0.0021)); // rounds to byte 1 = 0.0039 after SPZ: visible to the validator
    expect(verdicts(cloud).transparent_share).toBe(true);
  });

  it('fails when one of the first three Gaussians sits at (1, 1, 1), as the validator does', () => {
    const cloud = cloudOf(8000, 0.9, [0.9, 0.1, 0, 0]);
    expect(verdicts(cloud).first_points_not_ones).toBe(true);
    cloud.columns.x[2] = 1.00001;
    cloud.columns.y[2] = 1;
    cloud.columns.z[2] = 0.99999;
    expect(verdicts(cloud).first_points_not_ones).toBe(false);
    cloud.columns.x[2] = 1.001; // off SPZ's 1/4096 grid point
    expect(verdicts(cloud).first_points_not_ones).toBe(true);
    cloud.columns.x[3] = 1;
    cloud.columns.y[3] = 1;
    cloud.columns.z[3] = 1; // the fourth does not count
    expect(verdicts(cloud).first_points_not_ones).toBe(true);
  });

  it('fails when every rotation is the identity, however scaled', () => {
    expect(verdicts(cloudOf(8000, 0.9, [1, 0, 0, 0])).rotations_not_identity).toBe(false);
    expect(verdicts(cloudOf(8000, 0.9, [2.5, 0, 0, 0])).rotations_not_identity).toBe(false);
    const cloud = cloudOf(8000, 0.9);
    cloud.columns.rot_2[7999] = 0.01;
    expect(verdicts(cloud).rotations_not_identity).toBe(true);
    expect(VALIDATOR_GATES).toEqual({ minGaussians: 7000, transparentBelow: 0.5 / 255, maxTransparentShare: 0.8 });
  });
});

function quatToMatrix([w, x, y, z]: number[]): number[] {
  const n = Math.hypot(w, x, y, z);
  [w, x, y, z] = [w / n, x / n, y / n, z / n];
  return [
    1 - 2 * (y * y + z * z),
    2 * (x * y - w * z),
    2 * (x * z + w * y),
    2 * (x * y + w * z),
    1 - 2 * (x * x + z * z),
    2 * (y * z - w * x),
    2 * (x * z - w * y),
    2 * (y * z + w * x),
    1 - 2 * (x * x + y * y),
  ];
}

function mul(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out.push(a[r * 3] * b[c] + a[r * 3 + 1] * b[3 + c] + a[r * 3 + 2] * b[6 + c]);
  return out;
}

describe('frames', () => {
  it('rotates positions and orientations together (R_new = R * R_old)', () => {
    const cloud = allocateCloud(1);
    cloud.columns.x[0] = 1;
    cloud.columns.y[0] = 2;
    cloud.columns.z[0] = 3;
    const q = [0.8, 0.2, -0.3, 0.4];
    [cloud.columns.rot_0[0], cloud.columns.rot_1[0], cloud.columns.rot_2[0], cloud.columns.rot_3[0]] = q;
    for (const name of ['z-up', 'y-down'] as const) {
      const c = structuredClone(cloud);
      const r = NAMED_ROTATIONS[name];
      rotateCloud(c, r);
      const expected = mul(r, quatToMatrix(q));
      const actual = quatToMatrix([c.columns.rot_0[0], c.columns.rot_1[0], c.columns.rot_2[0], c.columns.rot_3[0]]);
      actual.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 5));
      expect([c.columns.x[0], c.columns.y[0], c.columns.z[0]].map((v) => v + 0)).toEqual(
        [0, 1, 2].map((row) => r[row * 3] * 1 + r[row * 3 + 1] * 2 + r[row * 3 + 2] * 3 + 0),
      );
    }
  });

  it('turns Z-up into Y-up', () => {
    const cloud = allocateCloud(1);
    cloud.columns.z[0] = 1;
    rotateCloud(cloud, NAMED_ROTATIONS['z-up']);
    expect([cloud.columns.x[0], cloud.columns.y[0], cloud.columns.z[0]].map((v) => v + 0)).toEqual([0, 1, 0]);
  });

  it('converts matrices to quaternions for every branch', () => {
    const rotations: Matrix3[] = [
      [1, 0, 0, 0, -1, 0, 0, 0, -1], // 180 about X
      [-1, 0, 0, 0, 1, 0, 0, 0, -1], // 180 about Y
      [-1, 0, 0, 0, -1, 0, 0, 0, 1], // 180 about Z
      [0, -1, 0, 1, 0, 0, 0, 0, 1], // 90 about Z
    ];
    for (const r of rotations) {
      const back = quatToMatrix(matrixToQuaternion(r));
      back.forEach((v, i) => expect(v).toBeCloseTo(r[i], 6));
    }
  });

  it('centres the centroid and scales the largest extent, shifting log-scales by ln k', () => {
    const cloud = allocateCloud(3);
    cloud.columns.x.set([0, 2, 4]);
    cloud.columns.y.set([10, 10, 11]);
    cloud.columns.scale_0.fill(Math.log(0.1));
    const k = centreAndScale(cloud, { extent: 1.5 });
    expect(k).toBeCloseTo(1.5 / 4, 6);
    expect(Array.from(cloud.columns.x)).toEqual([-0.75, 0, 0.75].map(Math.fround));
    const meanY = cloud.columns.y.reduce((a, b) => a + b, 0) / 3;
    expect(Math.abs(meanY)).toBeLessThan(1e-6);
    expect(Math.exp(cloud.columns.scale_0[0])).toBeCloseTo(0.1 * k, 6);
  });

  it('drops Gaussians holding a non-finite value', () => {
    const cloud = allocateCloud(4);
    cloud.columns.x.set([0, 1, 2, 3]);
    cloud.columns.scale_2[1] = NaN;
    cloud.columns.opacity[3] = -Infinity;
    expect(Array.from(dropNonFinite(cloud).columns.x)).toEqual([0, 2]);
  });
});
