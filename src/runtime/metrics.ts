/**
 * Prometheus metrics (prom-client). Each service owns its own registry, so two services in one process (tests,
 * benches) never share counters. Label values are bounded: routes are the known route names, decline reasons
 * are check names, peers are their configured index.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Live values the gauges read at scrape time; whoever owns them registers them with `watch`. */
export interface MetricsSources {
  queueDepth?(): number;
  running?(): number;
  gpuBusyRatio?(): number;
  gpuBusySeconds?(): number;
  cacheSize?(): { entries: number; bytes: number };
  /** Jobs waiting per class across a cluster (its queue), as last counted. */
  clusterWaiting?(): Record<string, number> | null;
  /** Nodes taking jobs from a cluster's queue, as last counted. */
  clusterWorkers?(): number | null;
}

const STAGE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160];

export class Metrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;

  private readonly requests = new Counter({
    name: 'fast3d_http_requests_total',
    help: 'HTTP requests by route and status.',
    labelNames: ['route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly requestSeconds = new Histogram({
    name: 'fast3d_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by route.',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.05, 0.25, 1, 2.5, 5, 10, 20, 40, 80, 160, 300],
    registers: [this.registry],
  });
  private readonly stageSeconds = new Histogram({
    name: 'fast3d_stage_duration_seconds',
    help: 'Time per pipeline stage and job (summed over attempts), from the job report.',
    labelNames: ['stage'] as const,
    buckets: STAGE_BUCKETS,
    registers: [this.registry],
  });
  private readonly outcomes = new Counter({
    name: 'fast3d_jobs_total',
    help: 'Finished pipeline jobs by outcome (asset, declined, cancelled, deadline, error).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly declines = new Counter({
    name: 'fast3d_declines_total',
    help: 'Jobs declined (204) by reason: the failing check, or no_object.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly refusals = new Counter({
    name: 'fast3d_admission_refusals_total',
    help: 'Jobs refused before any work (503) by reason: queue_full, deadline, shutting_down, not_ready.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly cacheLookups = new Counter({
    name: 'fast3d_cache_lookups_total',
    help: 'Result cache lookups by artefact kind and result (hit, miss, decline_hit).',
    labelNames: ['artefact', 'result'] as const,
    registers: [this.registry],
  });
  private readonly cacheCorrupt = new Counter({
    name: 'fast3d_cache_corrupt_total',
    help: 'Cache entries dropped because their checksum or size did not match.',
    registers: [this.registry],
  });
  private readonly cacheEvictions = new Counter({
    name: 'fast3d_cache_evictions_total',
    help: 'Cache entries evicted to stay under cache.max_size_mb.',
    registers: [this.registry],
  });
  private readonly bursts = new Counter({
    name: 'fast3d_burst_forwards_total',
    help: 'Requests forwarded to a peer because the local queue was full, by peer and result (ok, declined, failed).',
    labelNames: ['peer', 'result'] as const,
    registers: [this.registry],
  });

  private readonly webhooks = new Counter({
    name: 'fast3d_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (delivered, retry, gave_up, rejected, refused).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly recovered = new Counter({
    name: 'fast3d_jobs_recovered_total',
    help: 'Jobs this node took up again after the worker that held them died (a cluster).',
    registers: [this.registry],
  });

  private readonly sources: MetricsSources = {};

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const sources = this.sources;
    const gauge = (name: string, help: string, read: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const value = read();
          if (value !== undefined) this.set(value);
        },
      });
    gauge('fast3d_queue_depth', 'Jobs waiting for a place in the pipeline.', () => sources.queueDepth?.());
    gauge('fast3d_jobs_running', 'Jobs inside the pipeline.', () => sources.running?.());
    gauge('fast3d_gpu_busy_ratio', 'Share of the last 60 s during which the GPU lock was held.', () => sources.gpuBusyRatio?.());
    gauge('fast3d_gpu_busy_seconds', 'Seconds the GPU lock was held since start (rate() gives the busy ratio over any window).', () =>
      sources.gpuBusySeconds?.(),
    );
    gauge(
      'fast3d_cache_entries',
      'Entries in the result cache (artefacts and the reports stored with them).',
      () => sources.cacheSize?.().entries,
    );
    gauge('fast3d_cache_bytes', 'Bytes of artefacts in the result cache.', () => sources.cacheSize?.().bytes);
    new Gauge({
      name: 'fast3d_cluster_queue_depth',
      help: "Jobs waiting on a cluster's queue, by class, across every node.",
      labelNames: ['class'] as const,
      registers: [this.registry],
      collect() {
        const waiting = sources.clusterWaiting?.();
        if (waiting) for (const [name, count] of Object.entries(waiting)) this.set({ class: name }, count);
      },
    });
    gauge('fast3d_cluster_workers', "Nodes taking jobs from a cluster's queue.", () => sources.clusterWorkers?.() ?? undefined);
    // Stalls of the event loop delay every answer, /ping included (a load balancer drops a worker whose /ping
    // is late). A 10 ms ticker sees each stall as a late tick; the longest since the last scrape is reported.
    // (perf_hooks' monitorEventLoopDelay drops the first delay after each reset, which may be the stall itself.)
    const tick = 10;
    let last = performance.now();
    let longest = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last - tick);
      last = now;
    }, tick);
    ticker.unref();
    this.stopDelay = () => clearInterval(ticker);
    new Gauge({
      name: 'fast3d_event_loop_stall_max_seconds',
      help: 'Longest event-loop stall since the last scrape, at 10 ms resolution (each scrape starts a new window).',
      registers: [this.registry],
      collect() {
        // A stall still going on (this scrape waited for it) counts too.
        this.set(Math.max(0, longest, performance.now() - last - tick) / 1000);
        longest = 0;
      },
    });
  }

  /** Stops the event-loop ticker (tests that build many services). */
  readonly stopDelay: () => void;

  webhook(outcome: string): void {
    this.webhooks.inc({ outcome });
  }

  jobRecovered(): void {
    this.recovered.inc();
  }

  /** Registers live values for the gauges. */
  watch(sources: MetricsSources): void {
    Object.assign(this.sources, sources);
  }

  request(route: string, status: number, seconds: number): void {
    this.requests.inc({ route, status: String(status) });
    this.requestSeconds.observe({ route }, seconds);
  }

  stages(timingsMs: Record<string, number>): void {
    for (const [stage, ms] of Object.entries(timingsMs)) this.stageSeconds.observe({ stage }, ms / 1000);
  }

  job(outcome: 'asset' | 'declined' | 'cancelled' | 'deadline' | 'error'): void {
    this.outcomes.inc({ outcome });
  }

  decline(reason: string): void {
    this.declines.inc({ reason });
  }

  refusal(reason: 'queue_full' | 'deadline' | 'shutting_down' | 'not_ready' | 'memory'): void {
    this.refusals.inc({ reason });
  }

  cacheLookup(artefact: string, result: 'hit' | 'miss' | 'decline_hit'): void {
    this.cacheLookups.inc({ artefact, result });
  }

  cacheCorruption(): void {
    this.cacheCorrupt.inc();
  }

  cacheEviction(count = 1): void {
    this.cacheEvictions.inc(count);
  }

  burst(peer: string, result: 'ok' | 'declined' | 'failed'): void {
    this.bursts.inc({ peer, result });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
