/** Messages between the CPU pool (cpu-pool.ts) and its worker threads (cpu-worker.ts). */
import type { ArtefactFunction } from '../formats/artefact-work.js';
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

/**
 * One function of the artefact work (formats/artefact-work.ts: GLBs, game meshes, the OBJ zip, the splat GLB), by
 * name. Its arguments' typed arrays come as copies of their own, transferred; its result's come back transferred.
 */
export interface CpuArtefactCall {
  type: 'artefact';
  id: number;
  name: ArtefactFunction;
  args: unknown[];
}

export type CpuMessage = CpuCall | CpuFormCall | CpuArtefactCall;

export type CpuReply =
  | { id: number; ok: true; value: unknown }
  /** `name`: the error's class name; GlbReadError is rebuilt as itself, so a caller can tell a bad file. */
  | { id: number; ok: false; error: string; name?: string };
