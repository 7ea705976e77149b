/**
 * The job API under /api/v1: start a job (202 with its id and links), read it, follow its events (SSE, with
 * replay for late or reconnecting clients), download its artefacts and intermediates, cancel it, list recent
 * jobs and the presets. Jobs run in the interactive priority class; routes stay thin: parse, answer, respond.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import type { z } from 'zod';
import { bodyLimit } from 'hono/body-limit';
import { HttpError } from '../contract/errors.js';
import { decimalInteger, type RequestLimits } from '../contract/request.js';
import { artefactResponse, errorResponse, TRIANGLES_HEADER } from '../contract/responses.js';
import { ALL_FORMAT_NAMES, type FormatName } from '../formats/registry.js';
import { encodePng } from '../image/codec.js';
import type { RgbaImage } from '../image/rgba.js';
import { methodNotAllowed } from '../http/method.js';
import { buildAnswerRequest } from '../contract/build.js';
import { stableJson } from '../pipelines/settings.js';
import type { Answers } from '../runtime/answer.js';
import type { IdempotencyKeys } from '../runtime/idempotency.js';
import type { InputStore } from '../runtime/inputs.js';
import type { WebhookDispatch } from '../runtime/webhook-dispatch.js';
import type { JobEvent, JobView } from '../runtime/jobs.js';
import type { Logger } from '../runtime/log.js';
import { draftKind, submitProgressive } from '../runtime/progressive.js';
import type { PresetReport, Report } from '../pipelines/job.js';
import { openApiDocument } from './openapi.js';
import { type ParsedJobRequest, parseJobRequest, readJobBody } from './request.js';
import type { JobBody, JobEventBody, PresetBody, Report as ReportBody } from './schemas.js';
import { sseResponse, type SseMessage } from './sse.js';

export const API_BASE = '/api/v1';

export interface JobApiOptions {
  limits: RequestLimits;
  /** Where requests' images wait for their jobs. */
  inputs: InputStore;
  bodyLimitBytes: number;
  retryAfterSeconds: number;
  /** Auth is on: the OpenAPI document says so. */
  auth: boolean;
  /** Where Idempotency-Key headers are kept (this node's memory, or the cluster's Redis). */
  idempotency: IdempotencyKeys;
  /** Checks and calls jobs' webhooks; absent: a request with a webhook is refused. */
  webhooks?: WebhookDispatch;
  logger?: Logger;
}

/** What an Idempotency-Key may be: printable ASCII, 1 to 255 characters (as the IETF draft and vendors take). */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

const INTERMEDIATE_PICTURES = ['image', 'matte'] as const;

export function jobApi(answers: Answers, options: JobApiOptions): Hono {
  const api = new Hono({ strict: false });
  const document = openApiDocument(API_BASE, options.auth);

  const limitBody = bodyLimit({
    maxSize: options.bodyLimitBytes,
    onError: () => errorResponse(new HttpError(413, `request body is larger than ${options.bodyLimitBytes} bytes`)),
  });

  const jobOr404 = async (id: string): Promise<JobView> => {
    const job = await answers.get(id);
    if (!job) throw new HttpError(404, `no job "${id.slice(0, 80)}" (unknown, or finished long enough ago to be forgotten)`);
    return job;
  };

  api.post('/jobs', limitBody, async (c) => {
    const key = c.req.header('idempotency-key');
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
      throw new HttpError(400, 'Idempotency-Key must be 1 to 255 printable ASCII characters');
    const fields = await parseJobRequest(await readJobBody(c.req.header('content-type'), c.req, options.limits));
    // The id is ours, so it can be answered before the job ends; the job itself runs on without this request.
    let id: string = randomUUID();
    if (key !== undefined) {
      const claim = await options.idempotency.claim(key, fingerprintOf(fields), id);
      // The same key and body again: the job the first request made.
      if (!claim.fresh) {
        const job = await jobOr404(claim.id);
        return c.json({ id: job.id, state: job.state, links: links(job.id) }, 202, {
          Location: links(job.id).self,
          'Idempotent-Replayed': 'true',
        });
      }
    }
    try {
      const request = await buildAnswerRequest(
        { ...fields, id, priority: 'interactive' },
        { limits: options.limits, presets: answers.presets, inputs: options.inputs, webhooks: options.webhooks },
      );
      // Refused now (503 with Retry-After) what the job would be refused a moment later: a 202 means an admitted job.
      // A progressive job's draft is submitted first and listed on it (runtime/progressive.ts).
      const submitted = await submitProgressive(answers, request, {}, options.logger);
      id = submitted.id;
      submitted.done.catch((err: Error) => options.logger?.info({ job: id, err: err.message }, 'job ended without an asset'));
    } catch (err) {
      // Refused before any job: the key may be used again.
      if (key !== undefined) await options.idempotency.release(key, id);
      throw err;
    }
    const job = await jobOr404(id);
    return c.json({ id, state: job.state, links: links(id) }, 202, { Location: links(id).self });
  });

  api.get('/jobs', async (c) => {
    const raw = c.req.query('limit');
    const limit = raw === undefined ? 50 : decimalInteger(raw);
    if (limit === null || limit < 1 || limit > 100) throw new HttpError(400, 'limit must be a decimal integer from 1 to 100');
    return c.json({ jobs: (await answers.list(limit)).map(jobBody) });
  });

  api.get('/jobs/:id', async (c) => c.json(jobBody(await jobOr404(c.req.param('id')))));

  api.delete('/jobs/:id', async (c) => {
    const job = await jobOr404(c.req.param('id'));
    if (!cancellable(job)) {
      throw new HttpError(
        409,
        `job ${job.id} is a ${job.priority} job: it belongs to a request on a generate route, whose client waits for its answer; it cannot be cancelled here (it ends with its request)`,
      );
    }
    if (!(await answers.cancel(job.id))) throw new HttpError(409, `job ${job.id} has already ended (${job.state})`);
    return c.json({ id: job.id, state: 'cancelling', links: links(job.id) }, 202);
  });

  api.get('/jobs/:id/events', async (c) => {
    const job = await jobOr404(c.req.param('id'));
    // An id is what the stream sent: its event's index, in decimal. None (or empty) replays from the start.
    const resume = c.req.header('last-event-id') ?? c.req.query('after');
    const after = resume === undefined || resume === '' ? -1 : decimalInteger(resume);
    if (after === null || after < -1)
      throw new HttpError(
        400,
        'Last-Event-ID (or "after") must be an event id from this stream (a decimal integer from 0), or empty to replay it from the start',
      );
    const stop = new AbortController();
    const signal = AbortSignal.any([stop.signal, c.req.raw.signal]);
    return sseResponse(eventMessages(job.id, after, answers.events(job.id, signal)), stop);
  });

  api.get('/jobs/:id/artifacts/:name', async (c) => {
    const job = await jobOr404(c.req.param('id'));
    const name = c.req.param('name');
    // A progressive job's draft is draft_<kind>.
    const kind = draftKind(name) ?? name;
    if (!(ALL_FORMAT_NAMES as readonly string[]).includes(kind))
      throw new HttpError(
        404,
        `no artefact kind "${name.slice(0, 40)}"; kinds are ${ALL_FORMAT_NAMES.join(', ')}, and draft_<kind> for a progressive job's draft`,
      );
    const ref = await answers.artefact(job.id, name);
    if (!ref) {
      const made = job.artefacts.map((a) => a.name);
      throw new HttpError(
        404,
        `job ${job.id} (${job.state}) has no ${name} artefact${made.length ? `; it has ${made.join(', ')}` : ' (yet)'}`,
      );
    }
    const bytes = await ref.read();
    if (!bytes) throw new HttpError(410, `the ${name} artefact of job ${job.id} is no longer held`);
    const suffix = kind === name ? (name === 'views' ? '-views' : '') : '-draft';
    const filename = `fast3d-${job.id.slice(0, 8)}${suffix}${ref.extension}`;
    // Checked against what the request asked of it (a size or pivot), as when it was made.
    return artefactResponse(
      answers.formats[kind as FormatName],
      bytes,
      {
        'Content-Disposition': `attachment; filename="${filename}"`,
        'Cache-Control': 'private, max-age=3600',
        ...(ref.triangles !== undefined && { [TRIANGLES_HEADER]: String(ref.triangles) }),
      },
      ref.spec,
    );
  });

  api.get('/jobs/:id/intermediates/:name', async (c) => {
    const job = await jobOr404(c.req.param('id'));
    const name = c.req.param('name');
    if (!(INTERMEDIATE_PICTURES as readonly string[]).includes(name))
      throw new HttpError(404, `no intermediate picture "${name.slice(0, 40)}"; they are ${INTERMEDIATE_PICTURES.join(', ')}`);
    const item = await answers.intermediate(job.id, name as 'image' | 'matte');
    if (!item) throw new HttpError(404, `job ${job.id} has no ${name} (yet)`);
    const png = await encodePng(item as RgbaImage);
    return c.body(png as Uint8Array<ArrayBuffer>, 200, { 'Content-Type': 'image/png', 'Cache-Control': 'private, max-age=3600' });
  });

  api.get('/presets', (c) => {
    const presets = answers.presets;
    return c.json({
      presets: presets.names().map((name) => ({ name, default: name === presets.defaultName })),
      default: presets.defaultName,
    });
  });

  api.get('/openapi.json', (c) => c.json(document));

  api.all('/jobs', methodNotAllowed('GET', 'POST'));
  api.all('/jobs/:id', methodNotAllowed('GET', 'DELETE'));
  for (const path of ['/jobs/:id/events', '/jobs/:id/artifacts/:name', '/jobs/:id/intermediates/:name', '/presets', '/openapi.json'])
    api.all(path, methodNotAllowed('GET'));
  return api;
}

/**
 * Whether the job API may cancel a job: those of people and agents (the interactive class: this API, MCP). A
 * contract or background job is a generate route's request (the miner's, `fast3d pregenerate`'s) whose client
 * waits on it: cancelling it would answer that client 503 for no fault of its own.
 */
function cancellable(job: JobView): boolean {
  return job.priority === 'interactive';
}

function links(id: string, cancel = true) {
  const self = `${API_BASE}/jobs/${encodeURIComponent(id)}`;
  return { self, events: `${self}/events`, cancel: cancel ? self : null };
}

/** A job as the API declares it (schemas.ts's JobBody): every field named, so nothing internal leaks out. */
function jobBody(job: JobView): z.output<typeof JobBody> {
  const own = links(job.id, cancellable(job));
  return {
    id: job.id,
    title: job.title,
    task: job.task,
    group: job.group ?? null,
    seed: job.seed,
    priority: job.priority,
    preset: job.preset ? presetBody(job.preset) : null,
    state: job.state,
    stage: job.stage,
    createdAt: job.createdAt,
    timings: { queuedMs: job.timings.queuedMs, runMs: job.timings.runMs, stages: job.timings.stages },
    report: job.report && reportBody(job.report),
    reason: job.reason,
    error: job.error,
    artefacts: job.artefacts.map(({ name, contentType, bytes, triangles, draft, expiresAt }) => ({
      name,
      contentType,
      bytes,
      ...(triangles !== undefined && { triangles }),
      ...(draft && { draft }),
      expiresAt: expiresAt ?? null,
      url: `${own.self}/artifacts/${name}`,
    })),
    intermediates: job.intermediates.map((name) => ({ name, url: name === 'cloud' ? null : `${own.self}/intermediates/${name}` })),
    cached: job.cached,
    node: job.node ?? null,
    queuePosition: job.queuePosition ?? null,
    estimatedStartAt: job.estimatedStartAt ?? null,
    links: own,
  };
}

function presetBody({ name, fingerprint, values }: PresetReport): z.output<typeof PresetBody> {
  return { name, fingerprint, values };
}

function reportBody(report: Report): z.output<typeof ReportBody> {
  return {
    attempts: report.attempts.map((a) => ({
      seed: a.seed,
      checks: a.checks.map(({ name, value, threshold, passed, by }) => ({ name, value, threshold, passed, by })),
      gaussians: a.gaussians,
      ...(a.dropped !== undefined && { dropped: a.dropped }),
      accepted: a.accepted,
      ...(a.reason !== undefined && { reason: a.reason }),
    })),
    timings: report.timings,
    preview: report.preview,
    ...(report.bestEffort !== undefined && { bestEffort: report.bestEffort }),
    ...(report.preset && { preset: presetBody(report.preset) }),
  };
}

/** Registry events as SSE messages (id = index in the job's stream), skipping those the client has seen. */
async function* eventMessages(id: string, after: number, events: AsyncIterable<JobEvent>): AsyncGenerator<SseMessage> {
  const { self } = links(id);
  let index = -1;
  for await (const event of events) {
    index++;
    if (index <= after) continue;
    yield { id: String(index), event: event.type, data: eventBody(event, self) };
  }
}

/** An event as the API declares it (schemas.ts's JobEventBody), with the links a client follows. */
function eventBody(event: JobEvent, self: string): z.output<typeof JobEventBody> {
  switch (event.type) {
    case 'intermediate':
      return { ...event, url: event.name === 'cloud' ? null : `${self}/intermediates/${event.name}` };
    case 'artefact':
      return { ...event, url: `${self}/artifacts/${event.name}` };
    case 'end':
      return { ...event, job: self };
    default:
      return event;
  }
}

/** What makes two job requests the same for an Idempotency-Key: their fields, an image by its digest. */
function fingerprintOf(fields: ParsedJobRequest): string {
  const { image, ...rest } = fields;
  const digest = image && createHash('sha256').update(image.bytes).digest('hex');
  return createHash('sha256')
    .update(stableJson({ ...rest, ...(digest && { image: digest }) }))
    .digest('hex');
}
