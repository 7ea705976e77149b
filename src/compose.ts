/**
 * Builds the object graph from a config: render pool and formats -> backends -> pipeline -> service (GPU lock,
 * admission) -> cache, burst, job registry -> answer path -> app. Tests pass their own stages.
 */
import { hostname } from 'node:os';
import type { Hono } from 'hono';
import { createApp, type AppEnv } from './app.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { IN_THREAD } from './formats/artefact-work.js';
import { createFormats, type FormatRegistry } from './formats/registry.js';
import { glbLimitsOf } from './mesh/glb-limits.js';
import { glbRulesOf } from './mesh/rules.js';
import { createStages, type GpuWorkerSection, type StageDeps } from './pipelines/backends.js';
import type { JobSettings } from './pipelines/context.js';
import { Pipeline } from './pipelines/generate.js';
import { presetsOf } from './pipelines/presets.js';
import type { Stages, ViewRenderer } from './pipelines/stages.js';
import { orientationMatrix } from './splat/frame.js';
import { AnswerPath, type Answers } from './runtime/answer.js';
import { type InputStore, MemoryInputs, StoredInputs } from './runtime/inputs.js';
import { type IdempotencyKeys, MemoryIdempotencyKeys, RedisIdempotencyKeys } from './runtime/idempotency.js';
import { LocalWebhooks, QueuedWebhooks, type WebhookDispatch } from './runtime/webhook-dispatch.js';
import { WebhookSender } from './runtime/webhooks.js';
import type { Priority } from './runtime/admission.js';
import { ClusterAnswers, startWorking } from './runtime/cluster/answers.js';
import { RedisJobs } from './runtime/cluster/jobs.js';
import { JobQueue } from './runtime/cluster/queue.js';
import { checkRedis, redactedUrl, redisConnection } from './runtime/cluster/redis.js';
import { StoreCache } from './runtime/store-cache.js';
import { type ArtefactStore, openStore } from './store/index.js';
import { decodeImage } from './image/codec.js';
import type { RequestLimits } from './contract/request.js';
import { AssetPool } from './runtime/asset-pool.js';
import { Burst } from './runtime/burst.js';
import { CpuPool, offloadImageTo3d, offloadMatting, offloadTextToImage } from './runtime/cpu-pool.js';
import { type CacheBackend, ResultCache } from './runtime/cache.js';
import { GpuWorkerClient } from './runtime/gpu-client.js';
import { GpuLock } from './runtime/gpu-lock.js';
import { JobRegistry } from './runtime/jobs.js';
import { workerModels } from './runtime/model-host.js';
import { renderValidatorViews, RenderPool } from './render/index.js';
import type { Logger } from './runtime/log.js';
import { Metrics } from './runtime/metrics.js';
import { mcpHandler } from './mcp/http.js';
import { GenerationService, type NodeRole } from './runtime/service.js';
import { weightsStore } from './weights/store.js';

export interface Composed {
  service: GenerationService;
  /** What the surfaces talk to: this node's answer path, or the cluster's. */
  answers: Answers;
  /** This node's own answer path (in a cluster: the one that runs this node's jobs). */
  local: AnswerPath;
  /** The registry this node's answer path records its jobs in. */
  jobs: JobRegistry;
  app: Hono<AppEnv>;
  gpu: GpuLock;
  /** The render workers every view and video of this service uses (closed by whoever stops the service). */
  renderPool: RenderPool;
  /** The worker threads of the CPU preview stages, when runtime.cpu_workers > 0 (closed likewise). */
  cpuPool?: CpuPool;
  /** The worker threads that read the assets users send (closed likewise). */
  assetPool: AssetPool;
  formats: FormatRegistry;
  cache?: CacheBackend;
  metrics?: Metrics;
  /** What this node does (serve --role). */
  role: NodeRole;
  /** Where jobs' webhooks go (closed by whoever stops the service: deliveries in flight end). */
  webhooks: WebhookDispatch;
  /** Stops the cluster's part (queue, Redis, store) when there is one; the caller closes the rest. */
  closeCluster?: () => Promise<void>;
}

/** What a composition may take instead of the single node's parts: a cluster's cache, inputs and answers. */
export interface ComposeParts {
  cache?: CacheBackend;
  inputs?: InputStore;
  idempotency?: IdempotencyKeys;
  webhooks?: WebhookDispatch;
  role?: NodeRole;
  /** The surfaces' answers, made from this node's answer path (default: that path itself). */
  answersOf?: (local: AnswerPath, parts: { jobs: JobRegistry; inputs: InputStore; service: GenerationService }) => Answers;
}

export interface ComposeOptions {
  logger?: Logger;
  /** The metrics to count in (default: new ones, when metrics.enabled). */
  metrics?: Metrics;
  stages?: Partial<Stages>;
  /** Renders the validator's views (the "clip" check needs it). */
  renderViews?: ViewRenderer;
  env?: NodeJS.ProcessEnv;
}

/** The validator's views of a cloud (splats) or of a mesh job's mesh (triangles), rendered on the pool. */
export function poolViewRenderer(pool: RenderPool): ViewRenderer {
  return (subject, views, signal) => renderValidatorViews('mesh' in subject ? subject.mesh : subject.cloud, views, pool, signal);
}

/** The CPU preview backends run in the CPU pool, off the event loop; model and GPU backends stay as they are. */
function offloadPreviewStages(stages: Stages, pool: CpuPool | undefined): Stages {
  if (!pool) return stages;
  const cpuOnly = (b: { preview: boolean; gpu?: boolean; name: string }, name: string) => b.preview && !b.gpu && b.name === name;
  return {
    ...stages,
    textToImage: cpuOnly(stages.textToImage, 'preview') ? offloadTextToImage(stages.textToImage, pool) : stages.textToImage,
    matting: cpuOnly(stages.matting, 'keying') ? offloadMatting(stages.matting, pool) : stages.matting,
    imageTo3d: cpuOnly(stages.imageTo3d, 'inflate') ? offloadImageTo3d(stages.imageTo3d, pool) : stages.imageTo3d,
  };
}

/** The settings a job runs with when its request brings none: the config's. */
export function configSettings(config: Config): JobSettings {
  const { pipeline, text_to_image, matting, image_to_3d, validate, render } = config;
  return { pipeline, text_to_image, matting, image_to_3d, validate, render };
}

/** A single node (queue.backend local): its own queue, cache directory and registry. */
export function compose(config: Config, options: ComposeOptions = {}, parts: ComposeParts = {}): Composed {
  if (config.queue.backend !== 'local' && !parts.answersOf) {
    throw new ConfigError(
      `queue.backend is "${config.queue.backend}": build the service with composeService(), which connects the cluster`,
    );
  }
  const env = options.env ?? process.env;
  const logger = options.logger;
  const gpu = new GpuLock();
  const renderPool = new RenderPool(config.render.threads);
  const cpuPool = config.runtime.cpu_workers > 0 ? new CpuPool(configSettings(config), config.runtime.cpu_workers) : undefined;
  const glbLimits = glbLimitsOf(config.assets);
  // Mesh artefacts and splat GLBs are made, checked and read in the CPU pool when there is one: off the event loop.
  const artefactWork = cpuPool?.artefacts ?? IN_THREAD;
  const glbRules = glbRulesOf(config.pipeline, glbLimits);
  // Users' assets are read apart from the pipeline's workers, each under a time budget and a heap limit.
  const assetPool = new AssetPool({
    workers: config.assets.workers,
    timeoutMs: config.assets.timeout_s * 1000,
    memoryMb: config.assets.memory_mb,
    queueLength: config.assets.queue_length,
    rules: glbRules,
  });
  const formats = createFormats({ pool: renderPool, mesh: glbRules, work: artefactWork });
  const renderViews: ViewRenderer = options.renderViews ?? poolViewRenderer(renderPool);
  const deps: StageDeps = { ...defaultStageDeps(config), renderViews, decodeGlb: (bytes) => artefactWork.decodeGlb(bytes, glbLimits) };
  const stages: Stages = { ...offloadPreviewStages(createStages(config, deps), cpuPool), ...options.stages };
  const pipeline = new Pipeline(stages);
  const metrics = options.metrics ?? (config.metrics.enabled ? new Metrics() : undefined);
  const runtime = config.runtime;
  const service = new GenerationService(
    pipeline,
    {
      queueLength: {
        contract: runtime.queue_length,
        interactive: runtime.interactive_queue_length,
        background: runtime.background_queue_length,
      },
      concurrency: runtime.pipeline_concurrency,
      deadlineMs: runtime.deadline_s * 1000,
      retryAfterS: runtime.retry_after_s,
      estimateJobs: runtime.estimate_jobs,
      imageMemoryBytes: runtime.image_memory_mb * 1024 * 1024,
      videoConcurrency: runtime.video_concurrency,
      videoQueueLength: runtime.video_queue_length,
      gpu,
      metrics,
    },
    logger,
  );
  const presets = presetsOf(config);
  const cache: CacheBackend | undefined =
    parts.cache ??
    (config.cache.enabled
      ? new ResultCache({
          directory: config.cache.directory,
          maxBytes: config.cache.max_size_mb * 1024 * 1024,
          memoryBytes: config.cache.memory_mb * 1024 * 1024,
          declineTtlMs: config.cache.decline_ttl_s * 1000,
          fingerprint: presets.resolve().fingerprint,
          metrics,
          logger,
        })
      : undefined);
  if (cache instanceof ResultCache) metrics?.watch({ cacheSize: () => cache.size() });
  const peers = config.burst.peers.map((peer) => {
    const token = peer.token_env ? env[peer.token_env] : undefined;
    if (peer.token_env && !token)
      logger?.warn({ peer: peer.url, token_env: peer.token_env }, 'burst peer token variable is not set; sending no token');
    return { url: peer.url, token };
  });
  const burst = peers.length ? new Burst(peers, config.burst.timeout_s * 1000, metrics, logger) : undefined;
  const jobs = new JobRegistry({
    keep: config.jobs.keep,
    retentionMs: config.jobs.retention_s * 1000,
    maxHeldBytes: config.jobs.memory_mb * 1024 * 1024,
  });
  const inputs = parts.inputs ?? new MemoryInputs();
  const webhooks = parts.webhooks ?? localWebhooks(config, env, metrics, logger);
  const local = new AnswerPath({ service, formats, jobs, presets, inputs, webhooks, cache, burst, metrics, logger });
  const answers = parts.answersOf ? parts.answersOf(local, { jobs, inputs, service }) : local;
  const role = parts.role ?? 'all';
  // One set of limits for every surface: decoded images are held in the memory budget until their job ends.
  const limits: RequestLimits = {
    maxPromptChars: config.contract.max_prompt_chars,
    maxImagePixels: config.contract.max_image_pixels,
    minImageSide: config.contract.min_image_side,
    imageFileDelivery: { rotation: orientationMatrix(config.contract.image_file_rotation), onReject: config.contract.image_file_on_reject },
    imageFileOutput: config.contract.image_file_output,
    imageFilePreset: config.contract.image_file_preset,
    reserveImage: (bytes) => service.images.reserve(bytes),
  };
  const bodyLimitBytes = Math.round(config.server.body_limit_mb * 1024 * 1024);
  const mcpDeps = {
    answers,
    renderPool,
    limits,
    inputs,
    maxInlineBytes: bodyLimitBytes,
    retryAfterS: runtime.retry_after_s,
    logger,
    assets: assetPool,
  };
  const app = createApp(answers, {
    limits,
    inputs,
    idempotency: parts.idempotency ?? new MemoryIdempotencyKeys(config.jobs.retention_s * 1000),
    webhooks,
    bodyLimitBytes,
    healthOkStatus: config.server.health_ok_status,
    retryAfterSeconds: config.runtime.retry_after_s,
    logger,
    metrics,
    authToken: authToken(config, env),
    metricsAuth: config.server.metrics_auth === 'token',
    video: true,
    mayForward: burst !== undefined,
    parseLargeForm: cpuPool && ((body: ArrayBuffer) => cpuPool.parseUrlencoded(body)),
    mcp: mcpHandler(mcpDeps, { maxBodyBytes: bodyLimitBytes }),
    // A worker node takes no requests: it serves /health, /ping and /metrics.
    entryPoints: role !== 'worker',
  });
  return { service, answers, local, jobs, app, gpu, renderPool, cpuPool, assetPool, formats, cache, metrics, role, webhooks };
}

/** Webhooks delivered from this process, counted in the metrics. */
function webhookSender(config: Config, env: NodeJS.ProcessEnv, metrics: Metrics | undefined): WebhookSender {
  return new WebhookSender(config.webhooks, { env, onOutcome: (outcome) => metrics?.webhook(outcome) });
}

function localWebhooks(config: Config, env: NodeJS.ProcessEnv, metrics: Metrics | undefined, logger: Logger | undefined): WebhookDispatch {
  return new LocalWebhooks(webhookSender(config, env, metrics), logger);
}

/**
 * The implementations of what backends need: one GPU worker client per worker section, the model files
 * under the configured weights folder, and worker threads to run the models in.
 */
export function defaultStageDeps(config: Config): StageDeps {
  return {
    models: weightsStore(config.weights.dir, config.weights.verify),
    modelRunner: workerModels(),
    gpuWorker: (section: GpuWorkerSection) =>
      new GpuWorkerClient({
        url: section.url,
        requestTimeoutMs: section.request_timeout_s * 1000,
        connectRetries: section.connect_retries,
        retryDelayMs: section.retry_delay_ms,
        pollIntervalMs: section.poll_interval_s * 1000,
        readyTimeoutMs: section.ready_timeout_s * 1000,
      }),
  };
}

/** The bearer token the generate routes require, or undefined when auth is off. */
export function authToken(config: Config, env: NodeJS.ProcessEnv): string | undefined {
  if (config.server.metrics_auth === 'token' && !config.auth.enabled) {
    throw new ConfigError('server.metrics_auth is "token" but auth.enabled is false: enable auth and set its token');
  }
  if (!config.auth.enabled) return undefined;
  const token = (config.auth.token_env && env[config.auth.token_env]) || config.auth.token;
  if (!token) {
    throw new ConfigError(
      `auth.enabled is true but no token is set: export ${config.auth.token_env || 'the variable named in auth.token_env'} or set auth.token`,
    );
  }
  return token;
}

/**
 * The service as the config says: a single node (compose), or a node of a cluster (queue.backend bullmq) that
 * shares a Redis and an artefact store with the others, in `role`. A cluster's Redis and store are checked here:
 * an unreachable URL or a store that refuses writes stops the start with a sentence that names it.
 */
export async function composeService(config: Config, options: ComposeOptions & { role?: NodeRole } = {}): Promise<Composed> {
  const role = options.role ?? 'all';
  const env = options.env ?? process.env;
  if (config.queue.backend === 'local') {
    if (role !== 'all') throw new ConfigError(`serve --role ${role} needs queue.backend: bullmq (a queue that nodes share)`);
    if (config.store.backend === 'disk' || !config.cache.enabled) return compose(config, options);
    // One node with its cache in a bucket: every node that shares the bucket reads what the others made.
    const store = await openStore(config.store, { env });
    await store.probe();
    const composed = compose(config, options, { cache: storeCacheOf(config, store, options.logger) });
    composed.closeCluster = () => store.close();
    return composed;
  }
  const logger = options.logger;
  const url = config.queue.redis_url;
  await checkRedis(url);
  const store = await openStore(config.store, { env });
  await store.probe();
  const node = config.queue.node || `${hostname()}-${process.pid}`;
  const redis = redisConnection(url, `fast3d:${node}`);
  const subscriber = redisConnection(url, `fast3d:${node}:events`);
  redis.on('error', () => undefined);
  subscriber.on('error', () => undefined);
  const prefix = `${config.queue.name}:`;
  const jobs = new RedisJobs(redis, subscriber, store, { prefix, retentionMs: config.jobs.retention_s * 1000, keep: config.jobs.keep });
  const queue = new JobQueue(redis, {
    name: config.queue.name,
    limits: {
      contract: config.runtime.queue_length,
      interactive: config.runtime.interactive_queue_length,
      background: config.runtime.background_queue_length,
    },
    attempts: config.queue.attempts,
    lockMs: config.queue.lock_s * 1000,
    retryAfterS: config.runtime.retry_after_s,
    stuckMs: config.queue.stuck_s * 1000,
    onStuckWorker: (waiting) =>
      logger?.warn(
        { waiting, node },
        `this node took no job for ${config.queue.stuck_s} s while jobs waited: its queue worker was replaced`,
      ),
  });
  const cache = storeCacheOf(config, store, logger);
  const decodeLimits = { maxPixels: config.contract.max_image_pixels, minSide: config.contract.min_image_side };
  const inputs = new StoredInputs(store, (bytes) => decodeImage(bytes, decodeLimits));

  // Redis's health and the cluster's waiting jobs, as /health reports them: polled, so /ping never waits on Redis.
  let redisUp = true;
  let waiting: Record<Priority, number> | null = null;
  let workers: number | null = null;
  let polling = false;
  const poll = async () => {
    if (polling) return;
    polling = true;
    try {
      // Commands wait for a reconnection rather than fail (BullMQ's setting): a ping that does not come back in
      // time is Redis down.
      await withTimeout(redis.ping(), 1500);
      waiting = await withTimeout(queue.waiting(), 1500);
      workers = await withTimeout(queue.workers(), 1500);
      if (!redisUp) logger?.info({ redis: redactedUrl(url) }, 'Redis answers again');
      redisUp = true;
    } catch (err) {
      if (redisUp) logger?.warn({ redis: redactedUrl(url), err: (err as Error).message }, 'Redis does not answer: new jobs are refused');
      redisUp = false;
    } finally {
      polling = false;
    }
  };
  await poll();
  const poller = setInterval(() => void poll(), 2000);
  poller.unref();

  const metrics = config.metrics.enabled ? new Metrics() : undefined;
  const webhooks = new QueuedWebhooks(webhookSender(config, env, metrics), redis, config.queue.name, logger);
  const composed = compose(
    config,
    { ...options, metrics },
    {
      cache,
      inputs,
      role,
      webhooks,
      idempotency: new RedisIdempotencyKeys(redis, prefix, config.jobs.retention_s * 1000),
      answersOf: (local) =>
        new ClusterAnswers({
          node,
          role,
          local,
          inputs,
          jobs,
          queue,
          store,
          deadlineMs: config.runtime.deadline_s * 1000,
          redisUp: () => redisUp,
          waiting: () => waiting,
          logger,
        }),
    },
  );
  metrics?.watch({ clusterWaiting: () => waiting, clusterWorkers: () => workers });
  if (role !== 'api') {
    // A worker takes jobs once its stages are ready (a job taken before would fail), and delivers webhooks.
    webhooks.work(config.queue.stuck_s * 1000);
    void (async () => {
      while (composed.service.health().status !== 'ok') await new Promise((resolve) => setTimeout(resolve, 200));
      await startWorking({
        node,
        local: composed.local,
        localJobs: composed.jobs,
        jobs,
        queue,
        concurrency: config.runtime.pipeline_concurrency,
        logger,
        onRecovered: () => metrics?.jobRecovered(),
      });
      logger?.info({ node, queue: config.queue.name }, 'taking jobs from the queue');
    })();
  }
  composed.closeCluster = async () => {
    clearInterval(poller);
    await queue.close();
    await webhooks.close();
    subscriber.disconnect();
    await redis.quit().catch(() => undefined);
    await store.close();
  };
  return composed;
}

/** `promise`, or a rejection after `ms`. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The result cache in a shared store, with the cache section's decline memory and memory tier. */
function storeCacheOf(config: Config, store: ArtefactStore, logger: Logger | undefined): StoreCache {
  return new StoreCache(store, {
    declineTtlMs: config.cache.decline_ttl_s * 1000,
    memoryBytes: config.cache.memory_mb * 1024 * 1024,
    logger,
  });
}
