/**
 * The heavy work of the mesh artefacts and the splat GLB: pure functions of their arguments, so they run the same
 * in this thread or in a CPU pool worker, which calls them by name. On a preview mesh of 100k triangles each holds
 * its thread for 0.1 to 3 s (glTF-Transform, the Khronos validator, Draco and meshopt, the texture bake, the OBJ
 * zip), which on the event loop would hold every other request as long.
 */
import { prepareGameMesh } from '../mesh/game.js';
import { decodeGlb, encodeGlb } from '../mesh/glb.js';
import { encodeSplatGlb, splatGlbViolation } from '../mesh/glb-splat.js';
import { encodeGlbVariant } from '../mesh/glb-variants.js';
import { inspectGlb } from '../mesh/rules.js';
import { encodeObjZip, objZipViolation } from './obj-zip.js';

export const ARTEFACT_WORK = {
  encodeGlb,
  inspectGlb,
  decodeGlb,
  prepareGameMesh,
  encodeGlbVariant,
  encodeObjZip,
  objZipViolation,
  encodeSplatGlb,
  splatGlbViolation,
} as const;

type Work = typeof ARTEFACT_WORK;
export type ArtefactFunction = keyof Work;

/** Where the work runs: each function with its own arguments, answering a promise. */
export type ArtefactWorker = {
  readonly [K in ArtefactFunction]: (...args: Parameters<Work[K]>) => Promise<Awaited<ReturnType<Work[K]>>>;
};

/** Runs each function through `call`, by name (a CPU pool's worker threads). */
export function artefactWorkerOf(call: (name: ArtefactFunction, args: unknown[]) => Promise<unknown>): ArtefactWorker {
  const worker: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
  for (const name of Object.keys(ARTEFACT_WORK) as ArtefactFunction[]) worker[name] = (...args) => call(name, args);
  return worker as unknown as ArtefactWorker;
}

/** Runs a function of the table by name, in this thread: what a pool worker does with a call. */
export function runArtefactWork(name: ArtefactFunction, args: unknown[]): Promise<unknown> {
  const work = ARTEFACT_WORK[name] as (...args: unknown[]) => unknown;
  if (typeof work !== 'function') return Promise.reject(new Error(`no artefact function named ${String(name)}`));
  return Promise.resolve().then(() => work(...args));
}

/** The work in this thread (tools, tests, and a service with no CPU workers). */
export const IN_THREAD: ArtefactWorker = artefactWorkerOf(runArtefactWork);
