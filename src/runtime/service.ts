/**
 * The generation service the HTTP layer talks to: readiness of every stage, admission, and the pipeline.
 * It wraps the pipeline; the pipeline never sees it.
 */
import type { Job, Outcome } from '../pipelines/job.js';
import type { Pipeline } from '../pipelines/generate.js';
import { allBackends, type Readiness } from '../pipelines/stages.js';
import { VERSION } from '../version.js';
import { Admission } from './admission.js';
import type { Logger } from './log.js';

export type Mode = 'preview' | 'gpu';
export type HealthStatus = 'ok' | 'starting' | 'degraded';

export interface StageHealth extends Readiness {
  backend: string;
  preview: boolean;
}

export interface Health {
  status: HealthStatus;
  mode: Mode;
  version: string;
  stages: Record<string, StageHealth>;
  queue: { running: number; waiting: number };
}

export class NotReadyError extends Error {
  override name = 'NotReadyError';
}

export interface ServiceOptions {
  queueLength: number;
}

export class GenerationService {
  readonly mode: Mode;
  private readonly admission: Admission;
  private readonly initErrors = new Map<string, string>();
  private initialising = 0;

  constructor(
    readonly pipeline: Pipeline,
    options: ServiceOptions,
    private readonly logger?: Logger,
  ) {
    this.mode = pipeline.preview ? 'preview' : 'gpu';
    this.admission = new Admission(1, options.queueLength);
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
    const status: HealthStatus = allReady ? 'ok' : this.initialising > 0 ? 'starting' : 'degraded';
    return {
      status,
      mode: this.mode,
      version: VERSION,
      stages,
      queue: { running: this.admission.active, waiting: this.admission.depth },
    };
  }

  /** Runs a job under admission control. Throws NotReadyError or BusyError before any work starts. */
  async generate(job: Job): Promise<Outcome> {
    const health = this.health();
    if (health.status !== 'ok') {
      const missing = Object.entries(health.stages)
        .filter(([, s]) => !s.ready)
        .map(([name, s]) => `${name} (${s.backend}): ${s.detail ?? 'not ready'}`);
      throw new NotReadyError(`service is ${health.status}: ${missing.join('; ')}`);
    }
    return this.admission.run(() => this.pipeline.run(job), job.signal);
  }

  async close(): Promise<void> {
    await Promise.all(allBackends(this.pipeline.stages).map(({ backend }) => backend.close?.()));
  }
}
