/** The Job that flows through the pipeline, and the Outcome that comes back. No HTTP here. */
import type { PresetValues } from '../config/presets.js';
import type { RgbaImage } from '../image/rgba.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import type { GaussianCloud } from '../splat/cloud.js';
import type { Matrix3 } from '../splat/frame.js';

export type Task =
  | { kind: 'text'; prompt: string }
  | { kind: 'image'; image: RgbaImage /** Digest of the image bytes as received (cache keys, logs). */; digest: string };

/**
 * How the finished asset leaves, decided by the contract the client speaks. The legacy miner wants the
 * validator's frame and a decline (204) over a likely rejection; the newer contract's judges render another
 * frame and count an empty answer as a lost prompt.
 */
export interface Delivery {
  /** Rotation from the validator's frame (+Y up, front +Z) into the frame the client renders. */
  rotation: Matrix3;
  /** When every attempt fails self-validation: answer 204, or return the last attempt's asset anyway. */
  onReject: 'decline' | 'best-effort';
}

export interface Job {
  id: string;
  task: Task;
  /** Seed of the first attempt; retries derive theirs from it. */
  seed: number;
  /** Absent: the legacy contract's delivery (validator frame, decline). */
  delivery?: Delivery;
  /** The job delivers a mesh (GLB): image-to-3d makes one beside the cloud, and views are rendered from it. */
  mesh?: boolean;
}

/** One self-validation check: what was measured, against what, and the verdict. */
export interface Check {
  name: string;
  value: number;
  threshold: number;
  passed: boolean;
  /** Which validation backend ran it. */
  by: string;
}

export interface Attempt {
  seed: number;
  checks: Check[];
  gaussians: number;
  /** Gaussians the budget (pipeline.max_gaussians) dropped from what image-to-3d made, or non-finite ones. */
  dropped?: number;
  accepted: boolean;
  /** Why the attempt failed, when it did before or during validation. */
  reason?: string;
}

export interface Report {
  attempts: Attempt[];
  /** Milliseconds per stage, summed over attempts. */
  timings: Record<string, number>;
  /** True when any stage ran a preview backend: such assets are not for mining. */
  preview: boolean;
  /** The asset failed self-validation and is returned anyway (Delivery.onReject = best-effort). */
  bestEffort?: boolean;
  /** The preset whose settings made it (set by the answer path). */
  preset?: PresetReport;
}

/** A preset as reports and job views show it. */
export interface PresetReport {
  name: string;
  /** The start of the settings' fingerprint, which the cache keys on. */
  fingerprint: string;
  /** Every knob a preset may set, as this one resolved it. */
  values: PresetValues;
}

export type Outcome =
  /**
   * `cloud` is in the canonical frame, the validator's (+Y up, front toward +Z), normalised. The delivery's
   * rotation and the encoding into a format happen once, on the way out (runtime/answer.ts).
   */
  | {
      kind: 'asset';
      cloud: GaussianCloud /** A mesh job's mesh, canonical frame, fitted to mesh.extent. */;
      mesh?: TriangleMesh;
      seed: number;
      report: Report;
    }
  | { kind: 'declined'; reason: string; report: Report };
