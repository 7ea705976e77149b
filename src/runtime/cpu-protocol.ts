/** Messages between the CPU pool (cpu-pool.ts) and its worker threads (cpu-worker.ts). */
import type { GlbLimits } from '../mesh/glb-limits.js';
import type { GlbRules } from '../mesh/rules.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import type { JobSettings } from '../pipelines/context.js';

/** The stage calls whose CPU preview backends run in the pool (`imageTo3dWithMesh`: ImageTo3d.generateWithMesh). */
export type OffloadedStage = 'textToImage' | 'matting' | 'imageTo3d' | 'imageTo3dWithMesh';

export interface CpuInit {
  type: 'init';
  /** The settings the backends are built with (a call's own settings come with it). */
  settings: JobSettings;
}

export interface CpuCall {
  type: 'call';
  id: number;
  stage: OffloadedStage;
  /** The stage method's arguments before the job context (images as plain { width, height, data }). */
  args: unknown[];
  settings: JobSettings;
}

/** Parses an urlencoded form body (transferred) into fields: one value a string, a repeated one an array. */
export interface CpuFormCall {
  type: 'form';
  id: number;
  body: ArrayBuffer;
}

/** Writes a GLB (the mesh is copied over; the bytes come back transferred). */
export interface CpuGlbEncodeCall {
  type: 'glb-encode';
  id: number;
  mesh: TriangleMesh;
}

/**
 * Inspects a GLB's bytes (a copy of their own, transferred): the Khronos validator's report, the geometry and
 * every rule broken.
 */
export interface CpuGlbInspectCall {
  type: 'glb-inspect';
  id: number;
  bytes: Uint8Array;
  rules: GlbRules;
}

/** Reads a GLB's bytes (a copy of their own, transferred) into a mesh (its columns come back transferred). */
export interface CpuGlbDecodeCall {
  type: 'glb-decode';
  id: number;
  bytes: Uint8Array;
  limits: GlbLimits;
}

export type CpuMessage = CpuCall | CpuFormCall | CpuGlbEncodeCall | CpuGlbInspectCall | CpuGlbDecodeCall;

export type CpuReply =
  | { id: number; ok: true; value: unknown }
  /** `name`: the error's class name; GlbReadError is rebuilt as itself, so a caller can tell a bad file. */
  | { id: number; ok: false; error: string; name?: string };
