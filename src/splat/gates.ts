/**
 * The validator's structural gates (subnet contract, section 3). Failing any one scores 0, so we mirror
 * them and decline before submitting. The validator applies them to the SPZ-decoded asset, so thresholds
 * are stated for what survives SPZ's 8-bit opacity: everything under 0.5/255 decodes to 0.
 */
import type { GaussianCloud } from './cloud.js';
import { decodePly } from './ply.js';
import { servablePlyViolation } from './servable.js';
import { decodeSpz } from './spz.js';

export interface GateLimits {
  /** Fewest Gaussians the validator accepts. */
  minGaussians: number;
  /** Opacity (after sigmoid) under which a Gaussian counts as transparent. */
  transparentBelow: number;
  /** Largest accepted share of transparent Gaussians. */
  maxTransparentShare: number;
}

/**
 * The validator counts opacities below 1e-3; after SPZ rounds opacity to 1/255 steps, that is every opacity
 * under 0.5/255 (about 0.00196), so that is the limit that predicts its verdict.
 */
export const SPZ_TRANSPARENT_BELOW = 0.5 / 255;

export const VALIDATOR_GATES: GateLimits = { minGaussians: 7000, transparentBelow: SPZ_TRANSPARENT_BELOW, maxTransparentShare: 0.8 };

export interface GateResult {
  name: 'gaussian_count' | 'transparent_share' | 'rotations_not_identity' | 'first_points_not_ones';
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
  const onesAt = firstPointAtOnes(cloud);
  return [
    { name: 'gaussian_count', value: cloud.count, threshold: limits.minGaussians, passed: cloud.count >= limits.minGaussians },
    { name: 'transparent_share', value: share, threshold: limits.maxTransparentShare, passed: share <= limits.maxTransparentShare },
    // Stricter than the validator after SPZ (which never decodes an exact identity), but what its check does on
    // a raw PLY, e.g. through its validation service: an all-identity asset is declined either way.
    { name: 'rotations_not_identity', value: nonIdentity, threshold: 1, passed: nonIdentity > 0 },
    // A quirk of the validator: it rejects an asset when one of its first three Gaussians sits at (1, 1, 1).
    { name: 'first_points_not_ones', value: onesAt, threshold: -1, passed: onesAt === -1 },
  ];
}

/** A quaternion (w,x,y,z) that normalises to the identity rotation. */
function isIdentity(w: number, x: number, y: number, z: number): boolean {
  return w > 0 && x === 0 && y === 0 && z === 0;
}

/** Index (0..2) of the first of the first three Gaussians whose position rounds to (1,1,1) on SPZ's 1/4096 grid, else -1. */
function firstPointAtOnes(cloud: GaussianCloud): number {
  const { x, y, z } = cloud.columns;
  const onGrid = (v: number) => Math.round(v * 4096) === 4096;
  for (let i = 0; i < Math.min(3, cloud.count); i++) if (onGrid(x[i]) && onGrid(y[i]) && onGrid(z[i])) return i;
  return -1;
}

/** What `fast3d check` and MCP's check_asset say of a PLY: the packer's rules, then the validator's gates. */
export interface PlyCheck {
  ok: boolean;
  /** The packer rule broken, or null. */
  packer: string | null;
  /** Empty when a packer rule is broken (the body is not read). */
  gates: GateResult[];
  /** The failed gates, each as `name=value (limit threshold)`. */
  failed: string[];
}

export function checkPly(bytes: Uint8Array): PlyCheck {
  const packer = servablePlyViolation(bytes);
  const gates = packer ? [] : checkGates(decodePly(bytes));
  const failed = gates.filter((g) => !g.passed).map((g) => `${g.name}=${g.value} (limit ${g.threshold})`);
  return { ok: packer === null && failed.length === 0, packer, gates, failed };
}

/** What `fast3d check` says of an SPZ: the file's own structure (header, length, gzip), then the validator's gates. */
export interface SpzCheck {
  ok: boolean;
  /** Why the file is no complete SPZ, or null. */
  spz: string | null;
  /** Empty when the file is no complete SPZ. */
  gates: GateResult[];
  /** The failed gates, each as `name=value (limit threshold)`. */
  failed: string[];
}

/**
 * The gates as the validator applies them to an SPZ: transparent means an opacity byte of 0. decodeSpz keeps that
 * byte's opacity finite at 0.5/255, and byte 1 is 1/255: the limit between the two counts exactly the zeros.
 */
const SPZ_FILE_GATES: GateLimits = { ...VALIDATOR_GATES, transparentBelow: 0.75 / 255 };

export function checkSpz(bytes: Uint8Array): SpzCheck {
  let cloud: GaussianCloud;
  try {
    cloud = decodeSpz(bytes);
  } catch (err) {
    return { ok: false, spz: (err as Error).message, gates: [], failed: [] };
  }
  const gates = checkGates(cloud, SPZ_FILE_GATES);
  const failed = gates.filter((g) => !g.passed).map((g) => `${g.name}=${g.value} (limit ${g.threshold})`);
  return { ok: failed.length === 0, spz: null, gates, failed };
}
