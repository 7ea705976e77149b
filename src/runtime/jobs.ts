/**
 * The job registry: every job the answer path runs gets an id when it is admitted, and can be read (state,
 * stage, timings, report, artefacts), followed (an event stream: everything so far, then live events until
 * the end) and cancelled by id, while it runs and for a bounded time after. It lives in memory; artefact
 * bytes are read through the result cache when there is one, otherwise held here within a byte bound.
 */
import type { Intermediate, ProgressSink, StageName } from '../pipelines/context.js';
import { CancelledError } from '../pipelines/errors.js';
import type { PresetReport, Report } from '../pipelines/job.js';
import type { RgbaImage } from '../image/rgba.js';
import { cloneCloud, type GaussianCloud } from '../splat/cloud.js';
import type { ArtefactSpec } from '../formats/registry.js';
import type { Priority } from './admission.js';

export type JobState = 'queued' | 'running' | 'done' | 'declined' | 'failed' | 'cancelled';
export type EndState = Extract<JobState, 'done' | 'declined' | 'failed' | 'cancelled'>;

/** Milliseconds since the job was created. */
type At = { at: number };

export type JobEvent =
  | ({ type: 'queued' } & At)
  /** The job waits in line: its place (from 1) and when it likely starts (ISO time, null while unknown). */
  | ({ type: 'position'; position: number; estimatedStartAt: string | null } & At)
  | ({ type: 'running' } & At)
  | ({ type: 'stage'; phase: 'start' | 'end'; stage: StageName; attempt: number; ms?: number } & At)
  | ({ type: 'intermediate'; name: Intermediate['name']; attempt: number } & At)
  | ({
      type: 'artefact';
      name: string;
      contentType: string;
      bytes: number;
      /** A GLB's triangles. */
      triangles?: number;
      /** A progressive job's draft (its name is draft_<kind>): the final's artefacts come later. */
      draft?: true;
    } & At)
  | ({ type: 'end'; state: EndState; reason?: string; error?: string } & At);

/** An artefact of a finished job: what it is, and how to read its bytes. */
export interface ArtefactRef {
  name: string;
  contentType: string;
  extension: string;
  bytes: number;
  /** What was asked of it: its check before a 200 reads the bounds the request asked for. */
  spec?: ArtefactSpec;
  /** A GLB's triangles. */
  triangles?: number;
  /** The registry holds the bytes itself (no cache): they count against `maxHeldBytes`. */
  held: boolean;
  /** Where the bytes are in the shared store, when they are there (any node reads them by it). */
  storeKey?: string;
  read(): Promise<Uint8Array | null>;
}

export interface JobSummary {
  /** What was asked, for lists: the prompt's first words, or the image's file name or size. */
  title: string;
  task: 'text' | 'image';
  seed: number;
  /** The preset the job runs with: its name and the values of its knobs. */
  preset?: PresetReport;
  /** The client's tag for jobs that belong together (the studio's A/B pairs). */
  group?: string;
  /** The draft of this job (progressive): readable by id, left out of lists; its artefacts show on that job. */
  draftOf?: string;
}

/** An artefact as a job view lists it. */
export interface ArtefactEntry {
  name: string;
  contentType: string;
  extension: string;
  bytes: number;
  triangles?: number;
  draft?: true;
  /** When the job, and with it this link, is forgotten (ISO; jobs.retention_s after its end). */
  expiresAt?: string;
}

/** A job as readers see it. */
export interface JobView extends JobSummary {
  id: string;
  priority: Priority;
  state: JobState;
  /** The stage running now, while the job runs. */
  stage: StageName | null;
  createdAt: number;
  /** Milliseconds waited for a place, and from start to end. */
  timings: { queuedMs: number | null; runMs: number | null; stages: Record<string, number> };
  report: Report | null;
  reason: string | null;
  error: string | null;
  artefacts: ArtefactEntry[];
  intermediates: Intermediate['name'][];
  /** The answer came from the result cache (a remembered asset or decline): no stage ran. */
  cached: boolean;
  /** The node that ran the job (in a cluster; absent on a single node). */
  node?: string;
  /** While the job waits: its place in line, counting from 1 (jobs of higher classes go first). */
  queuePosition?: number | null;
  /** While the job waits: when it likely starts (ISO time), from recent jobs' times; null while unknown. */
  estimatedStartAt?: string | null;
}

export interface RegistryOptions {
  /** Finished jobs kept, newest first (older ones are forgotten). */
  keep: number;
  /** How long a finished job stays readable, in ms. */
  retentionMs: number;
  /** Bytes of artefacts held for finished jobs (without a cache); the oldest jobs' are let go first. */
  maxHeldBytes?: number;
  now?: () => number;
}

interface Entry {
  view: JobView;
  events: JobEvent[];
  listeners: Set<() => void>;
  controller: AbortController;
  intermediates: Map<Intermediate['name'], RgbaImage | GaussianCloud>;
  artefacts: Map<string, ArtefactRef>;
  endedAt: number | null;
  startedAt: number | null;
  /** Lists a draft's artefact on this job (set once the job is created). */
  addDraft?: (ref: ArtefactRef) => void;
}

/** What the answer path holds for one running job. */
export interface JobHandle {
  readonly id: string;
  /** Aborted when the job is cancelled by id. */
  readonly signal: AbortSignal;
  readonly progress: ProgressSink;
  started(): void;
  /** The job waits in line at `position`, likely starting in `startInMs` (null while unknown). */
  waiting(position: number, startInMs: number | null): void;
  artefact(ref: ArtefactRef): void;
  end(state: EndState, details?: { report?: Report; reason?: string; error?: string; cached?: boolean }): void;
}

/** The view of a job just admitted: queued, nothing run yet. */
export function queuedView(init: { id: string; priority: Priority } & JobSummary, createdAt: number): JobView {
  return {
    id: init.id,
    priority: init.priority,
    title: init.title,
    task: init.task,
    seed: init.seed,
    preset: init.preset,
    ...(init.group !== undefined && { group: init.group }),
    ...(init.draftOf !== undefined && { draftOf: init.draftOf }),
    state: 'queued',
    stage: null,
    createdAt,
    timings: { queuedMs: null, runMs: null, stages: {} },
    report: null,
    reason: null,
    error: null,
    artefacts: [],
    intermediates: [],
    cached: false,
  };
}

export class JobRegistry {
  private readonly jobs = new Map<string, Entry>();
  private readonly now: () => number;
  private nextId = 1;

  constructor(private readonly options: RegistryOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Registers an admitted job. */
  create(init: { id?: string; priority: Priority } & JobSummary): JobHandle {
    this.sweep();
    const id = init.id && !this.jobs.has(init.id) ? init.id : this.newId();
    const createdAt = this.now();
    const entry: Entry = {
      view: queuedView({ ...init, id }, createdAt),
      events: [],
      listeners: new Set(),
      controller: new AbortController(),
      intermediates: new Map(),
      artefacts: new Map(),
      endedAt: null,
      startedAt: null,
    };
    this.jobs.set(id, entry);
    const emit = (event: JobEvent) => {
      if (entry.endedAt !== null) return;
      entry.events.push(event);
      for (const listener of entry.listeners) listener();
    };
    const at = () => this.now() - createdAt;
    const addArtefact = (ref: ArtefactRef, draft: boolean) => {
      entry.artefacts.set(ref.name, ref);
      const facts = { ...(ref.triangles !== undefined && { triangles: ref.triangles }), ...(draft && { draft: true as const }) };
      view.artefacts.push({ name: ref.name, contentType: ref.contentType, extension: ref.extension, bytes: ref.bytes, ...facts });
      emit({ type: 'artefact', name: ref.name, contentType: ref.contentType, bytes: ref.bytes, ...facts, at: at() });
    };
    entry.addDraft = (ref) => addArtefact(ref, true);
    emit({ type: 'queued', at: 0 });
    const { view } = entry;
    const ended = () => entry.endedAt !== null;
    // A cancelled job whose backend ignores the abort may go on: what it does after its end is not its story.
    const progress: ProgressSink = {
      stageStarted(stage, attempt) {
        if (ended()) return;
        view.stage = stage;
        emit({ type: 'stage', phase: 'start', stage, attempt, at: at() });
      },
      stageEnded(stage, attempt, ms) {
        if (ended()) return;
        view.timings.stages[stage] = Math.round(((view.timings.stages[stage] ?? 0) + ms) * 10) / 10;
        emit({ type: 'stage', phase: 'end', stage, attempt, ms: Math.round(ms * 10) / 10, at: at() });
      },
      intermediate(item, attempt) {
        if (ended()) return;
        // The pipeline goes on normalising the raw cloud in place: a copy of what image-to-3d made is kept, but
        // only for a job someone is watching (13 MB and ~5 ms for 240k Gaussians, on every job otherwise).
        if (item.name === 'cloud' && entry.listeners.size === 0) return;
        entry.intermediates.set(item.name, item.name === 'cloud' ? cloneCloud(item.cloud) : item.image);
        if (!view.intermediates.includes(item.name)) view.intermediates.push(item.name);
        emit({ type: 'intermediate', name: item.name, attempt, at: at() });
      },
    };
    return {
      id,
      signal: entry.controller.signal,
      progress,
      waiting: (position, startInMs) => {
        if (ended()) return;
        const estimatedStartAt = startInMs === null ? null : new Date(this.now() + startInMs).toISOString();
        emit({ type: 'position', position, estimatedStartAt, at: at() });
      },
      started: () => {
        entry.startedAt = this.now();
        view.state = 'running';
        view.timings.queuedMs = entry.startedAt - createdAt;
        emit({ type: 'running', at: at() });
      },
      artefact: (ref) => addArtefact(ref, false),
      end: (state, details = {}) => {
        if (entry.endedAt !== null) return;
        view.state = state;
        view.stage = null;
        view.report = details.report ?? null;
        view.reason = details.reason ?? null;
        view.error = details.error ?? null;
        view.cached = details.cached ?? false;
        if (entry.startedAt !== null) view.timings.runMs = this.now() - entry.startedAt;
        const expiresAt = new Date(this.now() + this.options.retentionMs).toISOString();
        for (const artefact of view.artefacts) artefact.expiresAt = expiresAt;
        emit({
          type: 'end',
          state,
          ...(details.reason ? { reason: details.reason } : {}),
          ...(details.error ? { error: details.error } : {}),
          at: at(),
        });
        entry.endedAt = this.now();
        // The raw cloud (13 MB for 240k Gaussians) is for watching a job; the finished asset is in its artefacts.
        entry.intermediates.delete('cloud');
        view.intermediates = view.intermediates.filter((name) => name !== 'cloud');
        for (const listener of entry.listeners) listener();
      },
    };
  }

  get(id: string): JobView | undefined {
    this.sweep();
    return this.jobs.get(id)?.view;
  }

  /** The most recent jobs, newest first (drafts are seen through the jobs they draft for). */
  list(limit = 50): JobView[] {
    this.sweep();
    return [...this.jobs.values()]
      .filter((e) => e.view.draftOf === undefined)
      .reverse()
      .slice(0, limit)
      .map((e) => e.view);
  }

  intermediate(id: string, name: Intermediate['name']): RgbaImage | GaussianCloud | undefined {
    return this.jobs.get(id)?.intermediates.get(name);
  }

  artefact(id: string, name: string): ArtefactRef | undefined {
    return this.jobs.get(id)?.artefacts.get(name);
  }

  /**
   * Lists a draft's artefact on a running job, marked draft (its event too), under the ref's name (draft_<kind>);
   * false when the job is unknown, has ended, or already has an artefact of its own: a draft never follows the
   * final.
   */
  attachDraft(id: string, ref: ArtefactRef): boolean {
    const entry = this.jobs.get(id);
    if (!entry || entry.endedAt !== null || !entry.addDraft || entry.view.artefacts.some((a) => !a.draft)) return false;
    entry.addDraft(ref);
    return true;
  }

  /** Cancels a queued or running job; false when there is no such job or it has already ended. */
  cancel(id: string): boolean {
    const entry = this.jobs.get(id);
    if (!entry || entry.endedAt !== null) return false;
    entry.controller.abort(new CancelledError(`job ${id} was cancelled`));
    return true;
  }

  /** The job's events: those so far first, then live ones, ending after the `end` event. */
  async *events(id: string, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const entry = this.jobs.get(id);
    if (!entry) return;
    let next = 0;
    let wake: (() => void) | null = null;
    const listener = () => {
      wake?.();
    };
    const onAbort = () => {
      wake?.();
    };
    entry.listeners.add(listener);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal?.aborted) {
        while (next < entry.events.length) {
          const event = entry.events[next++];
          yield event;
          if (event.type === 'end') return;
        }
        if (entry.endedAt !== null) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = null;
      }
    } finally {
      entry.listeners.delete(listener);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Forgets finished jobs past the retention time, and the oldest finished beyond `keep`. */
  private sweep(): void {
    const now = this.now();
    let finished = 0;
    for (const entry of this.jobs.values()) if (entry.endedAt !== null) finished++;
    for (const [id, entry] of this.jobs) {
      if (entry.endedAt === null) continue;
      if (finished > this.options.keep || now - entry.endedAt > this.options.retentionMs) {
        this.jobs.delete(id);
        finished--;
      }
    }
    // Held bytes, newest job first: beyond the bound, older jobs keep their record but not their bytes.
    let held = 0;
    const limit = this.options.maxHeldBytes ?? Infinity;
    for (const entry of [...this.jobs.values()].reverse()) {
      if (entry.endedAt === null) continue;
      for (const [name, ref] of entry.artefacts) {
        if (!ref.held) continue;
        held += ref.bytes;
        if (held > limit) entry.artefacts.set(name, { ...ref, held: false, read: async () => null });
      }
    }
  }

  private newId(): string {
    let id: string;
    do id = `job-${(this.nextId++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    while (this.jobs.has(id));
    return id;
  }
}
