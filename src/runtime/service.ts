/**
 * The generation service: readiness of every stage, admission in priority classes with deadlines, and the
 * pipeline. It builds each admitted job's context (signal, GPU runner, settings, progress) and runs the
 * pipeline under it; the pipeline never sees the service.
 */
import { countingGpu, silentProgress, type JobContext, type JobSettings, type ProgressSink } from '../pipelines/context.js';
import { BusyError, DeadlineError, NotReadyError, ShuttingDownError } from '../pipelines/errors.js';
import type { Job, Outcome } from '../pipelines/job.js';
import type { Pipeline } from '../pipelines/generate.js';
import { allBackends, type GpuRunner, type Readiness } from '../pipelines/stages.js';
import { VERSION } from '../version.js';
import { Admission, type Priority, type QueueLimits } from './admission.js';
import { MemoryBudget } from './memory-budget.js';
import type { GpuLock } from './gpu-lock.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export { NotReadyError };

export type Mode = 'preview' | 'gpu';
export type NodeRole = 'all' | 'api' | 'worker';
export type HealthStatus = 'ok' | 'starting' | 'degraded' | 'stopping';

export interface StageHealth extends Readiness {
  backend: string;
  preview: boolean;
}

export interface Health {
  status: HealthStatus;
  mode: Mode;
  version: string;
  /** What this node does: all (one node, or api and worker in one), api (takes requests), worker (runs jobs). */
  role: NodeRole;
  /** In a cluster: Redis, and the jobs waiting across it. */
  cluster?: { redis: 'up' | 'down'; waiting_by_class: Record<Priority, number> | null };
  stages: Record<string, StageHealth>;
  queue: {
    running: number;
    waiting: number;
    waiting_by_class: Record<Priority, number>;
    gpu_s_per_job: number | null;
    job_s: number | null;
  };
}

export interface ServiceOptions {
  /** Jobs that may wait for a place in the pipeline, per priority class (one number: every class). */
  queueLength: number | QueueLimits;
  /** Jobs inside the pipeline at once (default 1). */
  concurrency?: number;
  /** Milliseconds a contract job may take from arrival (default: no deadline). */
  deadlineMs?: number;
  /** Least Retry-After suggested, in seconds (default 10). */
  retryAfterS?: number;
  /** Recent jobs averaged for the GPU-time estimate (default 20). */
  estimateJobs?: number;
  /** The GPU lock the pipeline's GPU stages take; each job's GPU time feeds the deadline estimate. */
  gpu?: GpuLock;
  /** Bytes of decoded input images that requests in flight may hold (default: no bound). */
  imageMemoryBytes?: number;
  /** Turntable videos rendered at once, and how many may wait (default 1 and 4). */
  videoConcurrency?: number;
  videoQueueLength?: number;
  metrics?: Metrics;
}

/** What the caller of `generate` decides about a job besides its content. */
export interface RunRequest {
  job: Job;
  /** Admission class (default 'contract'). */
  priority?: Priority;
  /** The job's resolved settings. */
  settings: JobSettings;
  /** Aborted when the client goes away or the job is cancelled. */
  signal?: AbortSignal;
  progress?: ProgressSink;
  /** Called when the job gets its place in the pipeline (after waiting in its class's queue). */
  onStart?: () => void;
  /** Called when the job has to wait: its place in line and when it likely starts (ms from now, or null). */
  onQueued?: (position: number, startInMs: number | null) => void;
  /** Part of an answer held open (hold()): admitted even when a shutdown began after it was held. */
  held?: boolean;
}

export class GenerationService {
  readonly mode: Mode;
  readonly admission: Admission;
  /** Videos are CPU-heavy (every render worker plus ffmpeg): bounded apart from the pipeline. */
  readonly videos: Admission;
  /** Decoded input images of requests in flight, bounded before they are decoded. */
  readonly images: MemoryBudget;
  private readonly initErrors = new Map<string, string>();
  private initialising = 0;
  /** GPU milliseconds of recently finished jobs, newest last. */
  private readonly recentGpuMs: number[] = [];
  private readonly deadlineMs: number;
  private readonly retryAfterS: number;
  private readonly runOnGpu: GpuRunner;
  private held = 0;
  private readonly heldIdle: (() => void)[] = [];

  constructor(
    readonly pipeline: Pipeline,
    private readonly options: ServiceOptions,
    private readonly logger?: Logger,
  ) {
    this.mode = pipeline.preview ? 'preview' : 'gpu';
    this.admission = new Admission(options.concurrency ?? 1, options.queueLength);
    this.videos = new Admission(options.videoConcurrency ?? 1, options.videoQueueLength ?? 4);
    this.images = new MemoryBudget(
      options.imageMemoryBytes ?? Infinity,
      () => this.retryAfter(this.admission.meanJobMs() ?? 0),
      () => options.metrics?.refusal('memory'),
    );
    this.deadlineMs = options.deadlineMs ?? Infinity;
    this.retryAfterS = options.retryAfterS ?? 10;
    const lock = options.gpu;
    this.runOnGpu = lock ? (work, signal) => lock.run(work, signal) : (work) => work();
    options.metrics?.watch({
      queueDepth: () => this.admission.depth,
      running: () => this.admission.active,
      gpuBusyRatio: () => options.gpu?.busyRatio() ?? 0,
      gpuBusySeconds: () => options.gpu?.busySeconds ?? 0,
    });
  }

  /** Starts every backend's initialisation in the background; /health reports progress. */
  start(): Promise<void> {
    const inits = allBackends(this.pipeline.stages).map(async ({ stage, backend }) => {
      if (!backend.init) return;
      this.initialising++;
      try {
        await backend.init();
      } catch (err) {
        const message = (err as Error).message;
        this.initErrors.set(stage, message);
        this.logger?.error({ stage, backend: backend.name, err: message }, 'backend failed to initialise');
      } finally {
        this.initialising--;
      }
    });
    return Promise.all(inits).then(() => undefined);
  }

  health(): Health {
    const stages: Record<string, StageHealth> = {};
    for (const { stage, backend } of allBackends(this.pipeline.stages)) {
      const failed = this.initErrors.get(stage);
      const readiness = failed ? { ready: false, detail: failed } : backend.readiness();
      stages[stage] = { backend: backend.name, preview: backend.preview, ...readiness };
    }
    const allReady = Object.values(stages).every((s) => s.ready);
    let status: HealthStatus = allReady ? 'ok' : this.initialising > 0 ? 'starting' : 'degraded';
    if (this.admission.isClosed) status = 'stopping';
    const estimate = this.gpuMsPerJob();
    const jobMs = this.admission.meanJobMs();
    return {
      status,
      mode: this.mode,
      version: VERSION,
      role: 'all',
      stages,
      queue: {
        running: this.admission.active,
        waiting: this.admission.depth,
        waiting_by_class: {
          contract: this.admission.depthOf('contract'),
          interactive: this.admission.depthOf('interactive'),
          background: this.admission.depthOf('background'),
        },
        gpu_s_per_job: estimate === null ? null : Math.round(estimate) / 1000,
        job_s: jobMs === null ? null : Math.round(jobMs) / 1000,
      },
    };
  }

  /** False once shutdown began: nothing new may start (admitted work carries on). */
  get accepting(): boolean {
    return !this.admission.isClosed;
  }

  /**
   * Runs a job under admission control (its class) and, for contract jobs, the deadline. Before any work it
   * throws ShuttingDownError, NotReadyError, or BusyError (its class's queue is full, or the estimated wait
   * would miss the deadline); a job still waiting or running at its deadline rejects with DeadlineError; a job
   * whose own signal aborts rejects with its reason.
   */
  async generate(request: RunRequest): Promise<Outcome> {
    const { job } = request;
    const priority = request.priority ?? 'contract';
    const metrics = this.options.metrics;
    if (this.admission.isClosed && !request.held) {
      metrics?.refusal('shutting_down');
      throw new ShuttingDownError('service is shutting down; no new jobs are admitted');
    }
    const health = this.health();
    const allReady = Object.values(health.stages).every((s) => s.ready);
    if (!allReady || (health.status !== 'ok' && !request.held)) {
      metrics?.refusal('not_ready');
      throw notReady(health);
    }
    // The miner drops an answer that comes too late; people and pregeneration would rather wait.
    const deadlineMs = priority === 'contract' ? this.deadlineMs : Infinity;
    if (priority === 'contract') this.refuseIfLate();

    const deadline = new AbortController();
    const timer = Number.isFinite(deadlineMs)
      ? setTimeout(
          () => deadline.abort(new DeadlineError(`job ran past its ${deadlineMs / 1000} s deadline and was abandoned`)),
          deadlineMs,
        )
      : undefined;
    const signal = request.signal ? AbortSignal.any([request.signal, deadline.signal]) : deadline.signal;
    const counted = countingGpu(this.runOnGpu);
    const ctx: JobContext = {
      id: job.id,
      signal,
      gpu: counted.gpu,
      gpuMs: counted.gpuMs,
      settings: request.settings,
      progress: request.progress ?? silentProgress,
    };
    const admitted = this.admission.run(
      async () => {
        request.onStart?.();
        const outcome = await this.pipeline.run(job, ctx);
        this.recordGpuMs(ctx.gpuMs());
        return outcome;
      },
      { signal, priority, evenIfClosed: request.held, id: job.id },
    );
    const position = this.admission.position(job.id);
    if (position !== null) request.onQueued?.(position, this.admission.startInMs(position));
    // Abandoned jobs keep their place until their stages return; their late result is dropped here.
    admitted.catch(() => undefined);
    try {
      const outcome = await untilAborted(admitted, signal);
      metrics?.job(outcome.kind);
      metrics?.stages(outcome.report.timings);
      if (outcome.kind === 'declined') metrics?.decline(declineLabel(outcome));
      return outcome;
    } catch (err) {
      if (err instanceof BusyError) {
        metrics?.refusal('queue_full');
        throw new BusyError(err.message, this.retryAfter(this.admission.estimatedWaitMs(priority) || (this.admission.meanJobMs() ?? 0)));
      }
      if (err instanceof ShuttingDownError) {
        metrics?.refusal('shutting_down');
        throw err;
      }
      if (deadline.signal.aborted) {
        metrics?.job('deadline');
        throw deadline.signal.reason;
      }
      metrics?.job(request.signal?.aborted ? 'cancelled' : 'error');
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * What a new job of `priority` would be refused with now, before any work, or null: not ready, its class's
   * queue full (unless the caller has somewhere else to send it), or, for a job that renders, the video line
   * full. The job itself is admitted (or refused after all) by generate().
   */
  refusal(priority: Priority, options: { rendered: boolean; mayOverflow?: boolean }): Error | null {
    if (this.admission.isClosed) return new ShuttingDownError('service is shutting down; no new jobs are admitted');
    const health = this.health();
    if (health.status !== 'ok') {
      this.options.metrics?.refusal('not_ready');
      return notReady(health);
    }
    if (!options.mayOverflow && this.admission.isFull(priority)) {
      this.options.metrics?.refusal('queue_full');
      return new BusyError(
        `busy: the ${priority} queue is full`,
        this.retryAfter(this.admission.estimatedWaitMs(priority) || (this.admission.meanJobMs() ?? 0)),
      );
    }
    if (options.rendered && this.videos.full) return new BusyError('busy: the video queue is full', this.retryAfterS);
    return null;
  }

  /**
   * Renders a video of an asset under the video admission: refused at once (BusyError, 503) when the line is
   * full. The video line is never closed: its work belongs to answers already held, which drain waits for.
   */
  renderVideo<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.videos.run(work, { signal });
  }

  /**
   * Holds the service open for one whole answer (cache look-up, job, video, encoding): refused once shutdown
   * began, and waited for by drain() whatever phase it is in, so an admitted request is always answered.
   */
  async hold<T>(work: () => Promise<T>): Promise<T> {
    if (this.admission.isClosed) {
      this.options.metrics?.refusal('shutting_down');
      throw new ShuttingDownError('service is shutting down; no new jobs are admitted');
    }
    this.held++;
    try {
      return await work();
    } finally {
      this.held--;
      if (this.held === 0) for (const resolve of this.heldIdle.splice(0)) resolve();
    }
  }

  /** Answers in flight (see hold). */
  get answering(): number {
    return this.held;
  }

  /**
   * Stops admitting and waits up to `graceMs` for every held answer, job and video to finish; true when all
   * finished in time.
   */
  async drain(graceMs: number): Promise<boolean> {
    this.admission.close();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    const answered = this.held === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.heldIdle.push(resolve));
    const idle = Promise.all([answered, this.admission.idle(), this.videos.idle()]).then(() => true);
    const drained = await Promise.race([idle, timedOut]);
    clearTimeout(timer);
    return drained;
  }

  async close(): Promise<void> {
    this.admission.close();
    this.videos.close();
    await Promise.all(allBackends(this.pipeline.stages).map(({ backend }) => backend.close?.()));
  }

  /** Mean GPU milliseconds of recent finished jobs, or null before the first one. */
  gpuMsPerJob(): number | null {
    if (!this.recentGpuMs.length) return null;
    return this.recentGpuMs.reduce((a, b) => a + b, 0) / this.recentGpuMs.length;
  }

  /**
   * The GPU is the bottleneck: a new contract job finishes after roughly (jobs ahead + 1) x GPU time per job.
   * When that misses the deadline, refuse now (no GPU time is spent on a job the miner would drop anyway).
   */
  private refuseIfLate(): void {
    const perJob = this.gpuMsPerJob();
    if (perJob === null || !Number.isFinite(this.deadlineMs) || this.admission.isFull('contract')) return;
    const ahead = this.admission.ahead('contract');
    const finishMs = (ahead + 1) * perJob;
    if (finishMs <= this.deadlineMs) return;
    this.options.metrics?.refusal('deadline');
    throw new BusyError(
      `cannot finish within the ${this.deadlineMs / 1000} s deadline: ${ahead} jobs ahead at about ${(perJob / 1000).toFixed(1)} s of GPU each`,
      this.retryAfter(finishMs - this.deadlineMs),
    );
  }

  private retryAfter(waitMs: number): number {
    return Math.max(this.retryAfterS, Math.ceil(waitMs / 1000));
  }

  private recordGpuMs(ms: number): void {
    this.recentGpuMs.push(ms);
    const keep = this.options.estimateJobs ?? 20;
    if (this.recentGpuMs.length > keep) this.recentGpuMs.splice(0, this.recentGpuMs.length - keep);
  }
}

/** A bounded label for a decline: the failing check's name, or what stopped the attempt. */
export function declineLabel(outcome: Extract<Outcome, { kind: 'declined' }>): string {
  const last = outcome.report.attempts[outcome.report.attempts.length - 1];
  const failed = last?.checks.find((c) => !c.passed);
  if (failed) return failed.name.replace(/[^\w.-]/g, '_').slice(0, 40);
  if (last?.reason?.startsWith('no object')) return 'no_object';
  return 'other';
}

function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Not ready, naming each stage that is not and why. */
function notReady(health: Health): NotReadyError {
  const missing = Object.entries(health.stages)
    .filter(([, s]) => !s.ready)
    .map(([name, s]) => `${name} (${s.backend}): ${s.detail ?? 'not ready'}`);
  return new NotReadyError(`service is ${health.status}${missing.length ? `: ${missing.join('; ')}` : ''}`);
}
