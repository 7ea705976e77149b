/**
 * The answer request: what every entry point (the legacy and newer generate routes, the job API, MCP) asks of
 * the answer path, once its transport is parsed. A plain JSON value: an image travels as the key of its bytes in
 * the input store, never as pixels, so a request can cross a process boundary (a queue, another node) as it is.
 */
import type { ArtefactSpec } from '../formats/registry.js';
import type { Delivery } from '../pipelines/job.js';
import type { Priority } from './admission.js';
import type { ForwardedRequest } from './burst.js';

/** What to make: a text prompt, or an image held in the input store under `input`. */
export type TaskRef =
  | { kind: 'text'; prompt: string }
  | {
      kind: 'image';
      /** The image's key in the input store. */
      input: string;
      /** sha256 of the image's bytes as received: cache keys and logs. */
      digest: string;
      width: number;
      height: number;
    };

export interface AnswerRequest {
  /** Id for the job (the request id); the registry makes one when absent or taken. */
  id?: string;
  task: TaskRef;
  seed: number;
  /** Absent: the legacy contract's delivery (validator frame, decline on rejection). */
  delivery?: Delivery;
  priority: Priority;
  /** The artefacts to deliver, at least one, each with every size it needs decided. */
  wants: ArtefactSpec[];
  /**
   * A mesh job: image-to-3d makes a mesh too, and validation and renders use it. Implied when a GLB is wanted;
   * set it for a video or views of the mesh alone.
   */
  mesh?: boolean;
  /** The preset whose settings the job runs with, by name (the builder resolved it; absent: the default). */
  preset?: string;
  /** What lists call the job. */
  title: string;
  /** The client's tag for jobs that belong together (the studio's A/B pairs). */
  group?: string;
  /** A checked URL called at the job's end with its state and artefacts (signed; webhooks.ts). */
  webhook?: string;
  /** Progressive: a draft to deliver first, as artefacts of this job marked draft (runtime/progressive.ts). */
  draft?: DraftRequest;
  /** This request makes the draft of the job with this id: lists leave its own job out. */
  draftOf?: string;
}

/** What a draft differs in from its request: a quicker preset, and the few artefacts a viewer shows. */
export interface DraftRequest {
  preset: string;
  wants: ArtefactSpec[];
}

/** What travels with a request in the process that received it, and never further. */
export interface AnswerOptions {
  /** Aborted when the client goes away. */
  signal?: AbortSignal;
  /** The request as received, for a burst peer when the local queue is full. */
  forward?: ForwardedRequest;
}
