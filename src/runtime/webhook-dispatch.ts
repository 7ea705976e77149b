/**
 * Where a job's webhook goes at its end: on one node, a delivery loop in this process (attempts with backoff);
 * in a cluster, a job on a BullMQ queue of its own, whose attempts any node's worker makes, so a delivery
 * outlives the node that ran the job. Either way a delivery is signed (webhooks.ts) and never the job's failure.
 */
import { Queue, UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';
import { SupervisedWorker, workerStarter } from './cluster/supervised-worker.js';
import type { Logger } from './log.js';
import { backoffMs, type WebhookDelivery, type WebhookSender } from './webhooks.js';

export interface WebhookDispatch {
  /** Checks a job's webhook URL before the job is taken; throws WebhookUrlError (a 400) saying why. */
  check(url: unknown): Promise<string>;
  /** Calls `url` with the end of a job; retried with backoff, logged, never thrown. */
  send(url: string, data: unknown): void;
  close(): Promise<void>;
}

/** The job's end, as the event webhooks carry. */
export const JOB_ENDED = 'job.ended';

/** One node: each delivery is a loop of attempts in this process. */
export class LocalWebhooks implements WebhookDispatch {
  private readonly running = new Set<Promise<unknown>>();
  private readonly stop = new AbortController();

  constructor(
    private readonly sender: WebhookSender,
    private readonly logger?: Logger,
  ) {}

  check(url: unknown): Promise<string> {
    return this.sender.checkUrl(url);
  }

  send(url: string, data: unknown): void {
    const delivery = this.sender.delivery(url, JOB_ENDED, data);
    const run = this.sender.deliver(delivery, this.stop.signal).then(
      (result) =>
        this.logger?.info(
          { webhook: delivery.id, url, outcome: result.outcome, attempts: result.attempt, detail: result.detail },
          'webhook',
        ),
      (err: Error) => this.logger?.warn({ webhook: delivery.id, url, err: err.message }, 'webhook not delivered'),
    );
    this.running.add(run);
    void run.finally(() => this.running.delete(run));
  }

  async close(): Promise<void> {
    this.stop.abort(new Error('the service is stopping'));
    await Promise.allSettled(this.running);
  }
}

/** A cluster: deliveries are jobs on the queue `<name>-webhooks`, attempted by any node that works. */
export class QueuedWebhooks implements WebhookDispatch {
  private readonly queue: Queue<WebhookDelivery, void>;
  private worker: SupervisedWorker<WebhookDelivery, void> | null = null;

  constructor(
    private readonly sender: WebhookSender,
    private readonly connection: Redis,
    private readonly name: string,
    private readonly logger?: Logger,
  ) {
    this.queue = new Queue(`${name}-webhooks`, {
      connection,
      defaultJobOptions: { removeOnComplete: { count: 1000 }, removeOnFail: { count: 1000 } },
    });
  }

  check(url: unknown): Promise<string> {
    return this.sender.checkUrl(url);
  }

  send(url: string, data: unknown): void {
    const delivery = this.sender.delivery(url, JOB_ENDED, data);
    const { attempts } = this.sender.policy;
    this.queue
      .add('deliver', delivery, { jobId: delivery.id, attempts, backoff: { type: 'webhook' } })
      .catch((err: Error) => this.logger?.warn({ webhook: delivery.id, url, err: err.message }, 'webhook not queued'));
  }

  /** Makes this node attempt deliveries (a node that runs jobs), with a worker replaced when it gets stuck. */
  work(stuckMs = 15_000): void {
    const policy = this.sender.policy;
    const start = workerStarter<WebhookDelivery, void>(`${this.name}-webhooks`, this.connection, {
      settings: { backoffStrategy: (attemptsMade: number) => backoffMs(attemptsMade, policy) },
    });
    this.worker = new SupervisedWorker<WebhookDelivery, void>(
      this.queue,
      start,
      async (job) => {
        const result = await this.sender.attempt(job.data, job.attemptsMade + 1);
        this.logger?.info(
          { webhook: job.data.id, url: job.data.url, outcome: result.outcome, attempt: result.attempt, detail: result.detail },
          'webhook',
        );
        if (result.outcome === 'delivered') return;
        if (result.outcome === 'retry') throw new Error(result.detail);
        throw new UnrecoverableError(result.detail);
      },
      { concurrency: 1, stuckMs, onReplaced: () => this.logger?.warn('the webhook worker took no delivery while some waited: replaced') },
    );
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
  }
}
