/**
 * The validator's structural gates (subnet contract, section 3). Failing any one scores 0, so we mirror
 * them exactly and decline before submitting.
 */
import type { GaussianCloud } from './cloud.js';

export interface GateLimits {
  /** Fewest Gaussians the validator accepts. */
  minGaussians: number;
  /** Opacity (after sigmoid) under which a Gaussian counts as transparent. */
  transparentBelow: number;
  /** Largest accepted share of transparent Gaussians. */
  maxTransparentShare: number;
}

export const VALIDATOR_GATES: GateLimits = { minGaussians: 7000, transparentBelow: 1e-3, maxTransparentShare: 0.8 };

export interface GateResult {
  name: 'gaussian_count' | 'transparent_share' | 'rotations_not_identity';
  value: number;
  threshold: number;
  passed: boolean;
}

export function checkGates(cloud: GaussianCloud, limits: GateLimits = VALIDATOR_GATES): GateResult[] {
  const { opacity, rot_0, rot_1, rot_2, rot_3 } = cloud.columns;
  // sigmoid(v) < t  <=>  v < logit(t): compare in logit space, no exp per Gaussian.
  const logitLimit = Math.log(limits.transparentBelow / (1 - limits.transparentBelow));
  let transparent = 0;
  let nonIdentity = 0;
  for (let i = 0; i < cloud.count; i++) {
    if (opacity[i] < logitLimit) transparent++;
    if (nonIdentity === 0 && !isIdentity(rot_0[i], rot_1[i], rot_2[i], rot_3[i])) nonIdentity++;
  }
  const share = cloud.count ? transparent / cloud.count : 1;
  return [
    { name: 'gaussian_count', value: cloud.count, threshold: limits.minGaussians, passed: cloud.count >= limits.minGaussians },
    { name: 'transparent_share', value: share, threshold: limits.maxTransparentShare, passed: share <= limits.maxTransparentShare },
    { name: 'rotations_not_identity', value: nonIdentity, threshold: 1, passed: nonIdentity > 0 },
  ];
}

/** A quaternion (w,x,y,z) that normalises to the identity rotation. */
function isIdentity(w: number, x: number, y: number, z: number): boolean {
  return w > 0 && x === 0 && y === 0 && z === 0;
}
