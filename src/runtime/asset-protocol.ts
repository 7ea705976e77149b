/** Messages between the asset pool (asset-pool.ts) and its worker threads (asset-worker.ts). */
import type { GlbRules } from '../mesh/rules.js';

/** The GLB check's findings for these bytes (a copy of their own, transferred). */
export interface AssetInspectGlbCall {
  id: number;
  type: 'inspect-glb';
  bytes: Uint8Array;
  rules: GlbRules;
}

/** A user's GLB or PLY, checked, read and prepared for rendering with `extent` (its arrays shared). */
export interface AssetOpenCall {
  id: number;
  type: 'open';
  kind: 'glb' | 'ply';
  bytes: Uint8Array;
  rules: GlbRules;
  extent: number | null;
}

export type AssetCall = AssetInspectGlbCall | AssetOpenCall;

export type AssetReply =
  /** The worker has loaded its modules and takes calls. */
  | { type: 'ready' }
  | { type: 'result'; id: number; ok: true; value: unknown }
  /** What is wrong with the file, in one sentence. */
  | { type: 'result'; id: number; ok: false; error: string };
