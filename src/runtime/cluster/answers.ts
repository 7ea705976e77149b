/**
 * The answer path of a cluster: nodes that share a Redis (the queue, the jobs' records and events) and an
 * artefact store (inputs, the result cache, artefacts). A node that takes requests (role `api` or `all`) checks
 * them as a single node would, records the job, puts it on the queue and, when the client waits (the generate
 * routes, MCP), waits for its end and answers with the bytes from the store, checked again. A node that runs jobs
 * (role `worker` or `all`) takes them from the queue and runs each on its own answer path, mirroring the job's
 * events to Redis as they happen; `startWorking` is that side.
 */
import { randomUUID } from 'node:crypto';
import type { RgbaImage } from '../../image/rgba.js';
import type { FormatRegistry } from '../../formats/registry.js';
import { AssetRefusedError, CancelledError, DeadlineError, NotReadyError, ShuttingDownError } from '../../pipelines/errors.js';
import type { Report } from '../../pipelines/job.js';
import type { Presets } from '../../pipelines/presets.js';
import type { ArtefactStore } from '../../store/store.js';
import type { Answer, AnswerPath, Answers, Delivered, Submitted } from '../answer.js';
import type { InputStore } from '../inputs.js';
import { type ArtefactRef, type JobEvent, type JobRegistry, type JobView, queuedView } from '../jobs.js';
import type { Logger } from '../log.js';
import type { AnswerOptions, AnswerRequest } from '../request.js';
import type { Health, Mode, NodeRole } from '../service.js';
import type { RedisJobs } from './jobs.js';
import type { JobQueue, JobSummary } from './queue.js';

export interface ClusterAnswersOptions {
  /** This node's name (in job views: the node that ran a job). */
  node: string;
  role: NodeRole;
  /** This node's own answer path: formats, presets, the video line, the cache's answers; it runs jobs on workers. */
  local: AnswerPath;
  /** Where the builder put requests' images (the shared store, through this node). */
  inputs: InputStore;
  jobs: RedisJobs;
  queue: JobQueue;
  store: ArtefactStore;
  /** Milliseconds a contract job may take from arrival. */
  deadlineMs: number;
  /** Whether Redis answered its last ping. */
  redisUp: () => boolean;
  /** Jobs waiting per class across the cluster, as last counted (for /health). */
  waiting: () => Health['queue']['waiting_by_class'] | null;
  logger?: Logger;
}

export class ClusterAnswers implements Answers {
  constructor(private readonly options: ClusterAnswersOptions) {}

  get formats(): FormatRegistry {
    return this.options.local.formats;
  }

  get presets(): Presets {
    return this.options.local.presets;
  }

  get mode(): Mode {
    return this.options.local.mode;
  }

  /**
   * A worker's health is its stages'; an api node runs none, so it is ready while Redis answers. Either is
   * degraded while Redis does not.
   */
  health(): Health {
    const local = this.options.local.health();
    const redis = this.options.redisUp() ? 'up' : 'down';
    const status =
      redis === 'down' ? 'degraded' : this.options.role === 'api' ? (local.status === 'stopping' ? 'stopping' : 'ok') : local.status;
    return {
      ...local,
      status,
      role: this.options.role,
      ...(this.options.role === 'api' && { stages: {} }),
      cluster: { redis, waiting_by_class: this.options.waiting() },
    };
  }

  async submit(request: AnswerRequest, options: AnswerOptions = {}): Promise<Submitted> {
    const { local, jobs, queue } = this.options;
    const id = request.id ?? randomUUID();
    const queued = { ...request, id };
    try {
      if (!local.accepting) throw new ShuttingDownError('service is shutting down; no new jobs are admitted');
      if (!this.options.redisUp()) throw new NotReadyError("the cluster's Redis does not answer; retry when /health says ok");
      // A cached answer is taken whatever the queue holds; other work only while its class has room.
      if (!(await local.holds(queued))) await queue.admissible(queued.priority);
      await jobs.create(viewOf(queued));
      const deadlineAt =
        queued.priority === 'contract' && Number.isFinite(this.options.deadlineMs) ? Date.now() + this.options.deadlineMs : undefined;
      const job = await queue.add({ request: queued, from: this.options.node, ...(deadlineAt !== undefined && { deadlineAt }) });
      const position = await queue.position(id);
      if (position !== null) await jobs.append(id, { type: 'position', position, estimatedStartAt: null, at: Date.now() - job.timestamp });
      // Held open: a shutdown waits for the answer of every request this node took.
      const done = local.hold(() => this.wait(queued, job, deadlineAt, options.signal));
      done.catch(() => undefined);
      return { id, done };
    } finally {
      // The image is in the shared store now (or the request was refused): this node's hold on it ends.
      if (request.task.kind === 'image') this.dropInput(request.task.input);
    }
  }

  async answer(request: AnswerRequest, options: AnswerOptions = {}): Promise<Answer> {
    return (await this.submit(request, options)).done;
  }

  async get(id: string): Promise<JobView | null> {
    const view = await this.options.jobs.get(id);
    if (view?.state === 'queued') return { ...view, queuePosition: await this.options.queue.position(id) };
    return view;
  }

  list(limit = 50): Promise<JobView[]> {
    return this.options.jobs.list(limit);
  }

  events(id: string, signal?: AbortSignal): AsyncIterable<JobEvent> {
    return this.options.jobs.events(id, signal);
  }

  /** Cancels from any node: a job still waiting leaves the queue; a running one is aborted where it runs. */
  async cancel(id: string): Promise<boolean> {
    if (await this.options.queue.removeWaiting(id)) {
      await this.options.jobs.endUnrun(id, 'cancelled', `job ${id} was cancelled`);
      return true;
    }
    return this.options.jobs.requestCancel(id);
  }

  artefact(id: string, name: string): Promise<ArtefactRef | null> {
    return this.options.jobs.artefact(id, name);
  }

  intermediate(id: string, name: 'image' | 'matte'): Promise<RgbaImage | null> {
    return this.options.jobs.intermediate(id, name);
  }

  attachDraft(id: string, ref: ArtefactRef): Promise<boolean> {
    return this.options.jobs.attachDraft(id, ref);
  }

  renderLine<T>(work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return this.options.local.renderLine(work, signal);
  }

  /** The end of a queued job, as an answer with its bytes from the store; cancelled with its client. */
  private async wait(
    request: AnswerRequest & { id: string },
    job: Parameters<JobQueue['finished']>[0],
    deadlineAt: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Answer> {
    const stop = new AbortController();
    const gone = () => {
      stop.abort(new CancelledError(`job ${request.id} was cancelled: its client went away`));
      void this.cancel(request.id);
    };
    if (signal?.aborted) gone();
    signal?.addEventListener('abort', gone, { once: true });
    const timer =
      deadlineAt === undefined
        ? undefined
        : setTimeout(() => {
            stop.abort(new DeadlineError(`job ran past its ${this.options.deadlineMs / 1000} s deadline and was abandoned`));
            void this.cancel(request.id);
          }, deadlineAt - Date.now());
    try {
      const aborted = new Promise<never>((_, reject) =>
        stop.signal.addEventListener('abort', () => reject(stop.signal.reason), { once: true }),
      );
      aborted.catch(() => undefined);
      const summary = await Promise.race([this.options.queue.finished(job), aborted]);
      return await this.answerOf(request, summary);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', gone);
    }
  }

  /** A job's summary as the answer the surfaces expect: the artefacts read from the store and checked once more. */
  private async answerOf(request: AnswerRequest & { id: string }, summary: JobSummary): Promise<Answer> {
    const report = summary.report as Report | null;
    if (summary.kind === 'declined') {
      return {
        kind: 'declined',
        jobId: request.id,
        preset: summary.preset,
        reason: summary.reason ?? 'declined',
        report,
        cache: summary.cache,
      };
    }
    const artefacts: Delivered[] = [];
    for (const { index, storeKey } of summary.artefacts) {
      const spec = request.wants[index];
      const format = this.formats[spec.format];
      const bytes = await this.options.store.get(storeKey);
      if (!bytes)
        throw new AssetRefusedError(
          `the ${spec.format} artefact of job ${request.id} is missing from the store (${this.options.store.description})`,
        );
      const violation = await format.violation(bytes, spec);
      if (violation) throw new AssetRefusedError(`refusing to serve a ${format.name} artefact that breaks its rules: ${violation}`);
      artefacts.push({ spec, format, bytes });
    }
    return {
      kind: 'asset',
      jobId: request.id,
      preset: summary.preset,
      artefacts,
      seed: summary.seed ?? request.seed,
      gaussians: summary.gaussians ?? 0,
      report: report as Report,
      cache: summary.cache,
    };
  }

  /** The image is in the shared store: this node's hold on it (the builder's) ends here. */
  private dropInput(key: string): void {
    this.options.inputs.drop(key);
  }
}

/** The view of a job just taken, before any worker has it. */
function viewOf(request: AnswerRequest & { id: string }): JobView {
  const { id, priority, title, seed, group } = request;
  return queuedView({ id, priority, title, task: request.task.kind, seed, ...(group !== undefined && { group }) }, Date.now());
}

export interface WorkerOptions {
  node: string;
  local: AnswerPath;
  /** Where the local answer path records its jobs. */
  localJobs: JobRegistry;
  jobs: RedisJobs;
  queue: JobQueue;
  concurrency: number;
  logger?: Logger;
  /** Called for each job taken up again after the worker that held it died. */
  onRecovered?: () => void;
}

/**
 * Runs jobs from the queue on this node's answer path, `concurrency` at a time, each under its own id, its events
 * mirrored to Redis as they happen; a job cancelled on any node is aborted here. Resolves once listening.
 */
export async function startWorking(options: WorkerOptions): Promise<void> {
  const { local, localJobs, jobs, queue, node } = options;
  const worker = queue.work(async (queued, id, signal, recovered) => {
    const request = { ...queued.request, id };
    if (recovered) {
      options.onRecovered?.();
      options.logger?.warn({ job: id, node }, 'taking up a job whose worker died');
    }
    const signals = [signal];
    if (queued.deadlineAt !== undefined) {
      const left = queued.deadlineAt - Date.now();
      if (left <= 0) throw new DeadlineError('job ran past its deadline before a worker took it');
      signals.push(AbortSignal.timeout(left));
    }
    const { id: ran, done } = await local.submit(request, { signal: AbortSignal.any(signals) });
    const mirrored = jobs.mirror(ran, localJobs, node);
    try {
      const answer = await done;
      return summaryOf(answer, ran, localJobs);
    } finally {
      await mirrored.catch((err: Error) => options.logger?.warn({ job: ran, err: err.message }, 'job events could not be mirrored'));
    }
  }, options.concurrency);
  // A cancel asked on any node reaches every worker; BullMQ's cancellation aborts the job's signal where it runs.
  await jobs.onCancel((id) => {
    worker.cancelJob(id, `job ${id} was cancelled`);
  });
}

/** What a worker hands back: the answer without its bytes, each artefact by its key in the shared store. */
function summaryOf(answer: Answer, id: string, localJobs: JobRegistry): JobSummary {
  if (answer.kind === 'forwarded') throw new Error('a cluster forwards nothing to burst peers: the queue is its spill');
  if (answer.kind === 'declined') {
    return { kind: 'declined', preset: answer.preset, reason: answer.reason, cache: answer.cache, report: answer.report, artefacts: [] };
  }
  const artefacts = answer.artefacts.map((a, index) => {
    const storeKey = localJobs.artefact(id, a.spec.format)?.storeKey;
    if (!storeKey) throw new AssetRefusedError(`the ${a.spec.format} artefact of job ${id} was not kept in the shared store`);
    return { index, storeKey };
  });
  return {
    kind: 'asset',
    preset: answer.preset,
    seed: answer.seed,
    gaussians: answer.gaussians,
    cache: answer.cache,
    report: answer.report,
    artefacts,
  };
}
