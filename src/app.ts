/**
 * The HTTP routes. Only this file and contract/ know about HTTP; the answer path below works on parsed requests.
 * Around the routes: request ids and one log line per request, metrics, optional bearer auth on the generate
 * routes, the body limit, and errors as JSON. Each generate route parses, answers and responds.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { requestId, type RequestIdVariables } from 'hono/request-id';
import { assertFormFieldCount, overLongUrlencodedPrompt } from './contract/bounded-body.js';
import { HttpError } from './contract/errors.js';
import {
  assertFormContentType,
  GEOMETRY_FORMATS,
  mediaType,
  parseGenerateForm,
  requestPriority,
  videoResField,
  type GenerateForm,
  type GeometryFormatName,
  type RequestLimits,
} from './contract/request.js';
import { artefactResponse, assetHeaders, declinedResponse, declineHeaders, errorResponse, TRIANGLES_HEADER } from './contract/responses.js';
import { httpErrorOf, retryAfter } from './contract/status.js';
import { artefactTriangles, type ArtefactSpec, type Format, type FormatName } from './formats/registry.js';
import { buildAnswerRequest } from './contract/build.js';
import { BusyError } from './runtime/admission.js';
import type { Answer, Answers } from './runtime/answer.js';
import { FORMAT_HEADER, FORWARDED_HEADER, type ForwardedAnswer } from './runtime/burst.js';
import { API_BASE, jobApi } from './api/routes.js';
import { bearerAuth } from './http/auth.js';
import { readBodyInto } from './http/body.js';
import { studioRoutes } from './studio/routes.js';
import { methodNotAllowed } from './http/method.js';
import type { Logger } from './runtime/log.js';
import type { Metrics } from './runtime/metrics.js';
import type { IdempotencyKeys } from './runtime/idempotency.js';
import type { InputStore } from './runtime/inputs.js';
import type { WebhookDispatch } from './runtime/webhook-dispatch.js';

export interface AppOptions {
  limits: RequestLimits;
  /** Where requests' images wait for their jobs. */
  inputs: InputStore;
  /** Where the job API keeps Idempotency-Key headers. */
  idempotency: IdempotencyKeys;
  /** Checks and calls jobs' webhooks (the job API's `webhook`); absent: webhooks are refused. */
  webhooks?: WebhookDispatch;
  bodyLimitBytes: number;
  /** Word /health reports when ready ("ok", or "healthy" for the newer contract). */
  healthOkStatus: string;
  retryAfterSeconds: number;
  logger?: Logger;
  /** Serves GET /metrics and counts requests when given. */
  metrics?: Metrics;
  /** Bearer token the generate routes require; absent = open. */
  authToken?: string;
  /** The token is also required on GET /metrics. */
  metricsAuth?: boolean;
  /** Serve /generate_video/ (videos are sized by the request's video_res, else its preset's render.video_res). */
  video?: boolean;
  /** Burst peers are configured: keep each request's raw body so it can be forwarded as it came. */
  mayForward?: boolean;
  /** Parses a large urlencoded body off the event loop (its buffer is handed over); absent: parsed in place. */
  parseLargeForm?: (body: ArrayBuffer) => Promise<Record<string, string | string[]>>;
  /** Serves the entry points (generate routes, job API, MCP, studio); false on a worker node (default true). */
  entryPoints?: boolean;
  /** Serves MCP's Streamable HTTP transport at /mcp when given. */
  mcp?: (request: Request) => Promise<Response>;
}

/** Urlencoded bodies larger than this are parsed off the event loop (a base64 image prompt, or a hostile one). */
const LARGE_FORM_BYTES = 1 << 20;
/** A generate request has a handful of fields; a form with more than this is refused before it is parsed. */
const MAX_FORM_FIELDS = 64;

const isUrlencoded = (contentType: string | undefined) => mediaType(contentType) === 'application/x-www-form-urlencoded';

/** Header saying where an answer came from: hit, decline-hit, asset-hit, miss (generated here), or peer. */
export const CACHE_HEADER = 'X-Fast3d-Cache';

/** Header naming the preset whose settings made the answer (the report holds its values). */
export const PRESET_HEADER = 'X-Fast3d-Preset';

/** What the routes keep per request: its id and the fields of its log line. */
export type AppEnv = { Variables: RequestIdVariables & { log: Record<string, unknown> } };
type Env = AppEnv;

export function createApp(answers: Answers, options: AppOptions): Hono<Env> {
  const app = new Hono<Env>({ strict: false });
  let routeNames: Set<string> | undefined;
  const routeLabel = (path: string) => {
    routeNames ??= new Set(app.routes.filter((r) => !r.path.includes('*')).map((r) => r.path));
    const trimmed = path.length > 1 ? path.replace(/\/+$/, '') : path;
    return routeNames.has(trimmed) ? trimmed : 'other';
  };
  const addLog = (c: Context<Env>, fields: Record<string, unknown>) => c.set('log', { ...c.get('log'), ...fields });

  app.use(requestId());
  app.use(async (c, next) => {
    const start = performance.now();
    c.set('log', {});
    await next();
    c.res.headers.set('X-Fast3d-Mode', answers.mode);
    c.res.headers.set('X-Request-Id', c.get('requestId'));
    const ms = performance.now() - start;
    if (c.req.path === '/metrics' || c.req.path === '/ping') return;
    options.metrics?.request(routeLabel(c.req.path), c.res.status, ms / 1000);
    options.logger?.info(
      { req_id: c.get('requestId'), method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(ms), ...c.get('log') },
      'request',
    );
  });

  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    const known = httpErrorOf(err, { retryAfterS: options.retryAfterSeconds });
    if (known) {
      if (known.status >= 500 && known.status !== 503)
        options.logger?.error({ req_id: c.get('requestId'), err: err.message }, 'job failed');
      return errorResponse(known);
    }
    if (c.req.raw.signal.aborted) {
      addLog(c, { cancelled: true });
      return errorResponse(new HttpError(503, 'request cancelled', retryAfter(options.retryAfterSeconds)));
    }
    options.logger?.error(
      { req_id: c.get('requestId'), err: { message: (err as Error).message, stack: (err as Error).stack } },
      'unhandled error',
    );
    return errorResponse(new HttpError(500, `internal error: ${(err as Error).message}`));
  });

  // Every path needs the token but http/auth.ts's OPEN_PATHS: /health, /ping, the studio's files (and by default /metrics).
  if (options.authToken) app.use(bearerAuth(options.authToken, { metrics: options.metricsAuth }));

  const limitBody = bodyLimit({
    maxSize: options.bodyLimitBytes,
    onError: () => errorResponse(new HttpError(413, `request body is larger than ${options.bodyLimitBytes} bytes`)),
  });

  /** The parsed request, plus the raw body when it may have to be forwarded to a peer as it came. */
  async function readRequest(c: Context<Env>): Promise<{ form: GenerateForm; raw?: ArrayBuffer }> {
    const contentType = c.req.header('content-type');
    assertFormContentType(contentType);
    const mayForward = options.mayForward && !c.req.header(FORWARDED_HEADER);
    // Read the bytes first: Hono re-parses the form from them (from its cache), a form re-encoded later would not
    // be the same bytes (multipart boundaries change), and they are sized up before any parse. A large urlencoded
    // body is copied in as it arrives, a MiB per turn of the loop (http/body.ts); it never goes to Hono's parser.
    const declared = Number(c.req.header('content-length'));
    const readInTurns = options.parseLargeForm && isUrlencoded(contentType) && declared > LARGE_FORM_BYTES;
    const bytes = readInTurns
      ? await readBodyInto(c.req.raw, declared).catch((err: Error) => {
          throw new HttpError(400, `malformed body: ${err.message}`);
        })
      : await c.req.arrayBuffer();
    const raw = mayForward ? bytes : undefined;
    assertFormFieldCount(new Uint8Array(bytes), contentType ?? '', MAX_FORM_FIELDS);
    const large = options.parseLargeForm && isUrlencoded(contentType) && bytes.byteLength > LARGE_FORM_BYTES;
    if (large) {
      // Told from the bytes in milliseconds, rather than after a wait for the CPU pool that parses the form.
      const overLong = overLongUrlencodedPrompt(new Uint8Array(bytes), options.limits.maxPromptChars);
      if (overLong) throw new HttpError(400, overLong);
    }
    let fields;
    try {
      // The pool's worker gets a copy of the bytes.
      fields = large ? await options.parseLargeForm!(bytes) : await c.req.parseBody({ all: true });
    } catch (err) {
      throw new HttpError(400, `malformed form body: ${(err as Error).message}`);
    }
    return { form: await parseGenerateForm(fields, forwardedLimits(c, options.limits)), raw };
  }

  /** Parse, build, answer, respond: the whole of a generate route, for the artefact it delivers. */
  async function generate(c: Context<Env>, output: (form: GenerateForm) => { format: FormatName; size?: number }): Promise<Response> {
    const priority = requestPriority(c.req.header('x-fast3d-priority'));
    const { form, raw } = await readRequest(c);
    const request = await buildAnswerRequest(
      // format=glb makes a mesh job: /generate answers the GLB, /generate_video/ turns the mesh.
      { ...form.request, id: c.get('requestId'), priority, outputs: [output(form)], mesh: form.format === 'glb' },
      { limits: options.limits, presets: answers.presets, inputs: options.inputs },
    );
    addLog(c, { task: request.task.kind, seed: request.seed });
    const answer = await answers.answer(request, {
      signal: c.req.raw.signal,
      // The peer answers in the format decided here, whatever its own contract.image_file_output.
      forward: raw && {
        path: c.req.path,
        contentType: c.req.header('content-type') ?? '',
        body: raw,
        headers: { [FORMAT_HEADER]: form.format },
      },
    });
    addLog(c, answerLog(answer));
    return respond(answer, answers.formats[request.wants[0].format], request.wants[0]);
  }

  app.get('/health', (c) => {
    const health = answers.health();
    const status = health.status === 'ok' ? options.healthOkStatus : health.status;
    return health.status === 'ok'
      ? c.json({ ...health, status })
      : c.json({ ...health, status }, 503, retryAfter(options.retryAfterSeconds));
  });

  // RunPod load-balancing endpoints: 200 ready, 204 still initialising, anything else unhealthy.
  app.get('/ping', (c) => {
    const { status } = answers.health();
    if (status === 'ok') return c.json({ status: 'ready' });
    return status === 'starting' ? c.body(null, 204) : c.json({ status }, 503, retryAfter(options.retryAfterSeconds));
  });

  if (options.metrics) {
    const metrics = options.metrics;
    app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType }));
  }

  // A worker node takes no requests: it serves /health, /ping and /metrics alone.
  if (options.entryPoints !== false) {
    app.post('/generate', limitBody, (c) => generate(c, (form) => ({ format: form.format })));

    app.post('/generate_video', limitBody, (c) => {
      if (!options.video) throw new HttpError(404, 'video rendering is not enabled in this service');
      // Without video_res, the builder gives the preset's render.video_res.
      return generate(c, (form) => ({ format: 'mp4', size: videoResField(form.fields) }));
    });

    for (const path of ['/generate', '/generate_video']) app.all(path, methodNotAllowed('POST'));

    const mcp = options.mcp;
    if (mcp) app.all('/mcp', limitBody, (c) => mcp(c.req.raw));

    app.route(
      API_BASE,
      jobApi(answers, {
        limits: options.limits,
        inputs: options.inputs,
        idempotency: options.idempotency,
        webhooks: options.webhooks,
        bodyLimitBytes: options.bodyLimitBytes,
        retryAfterSeconds: options.retryAfterSeconds,
        auth: !!options.authToken,
        logger: options.logger,
      }),
    );
    app.route('/', studioRoutes());
  }

  app.notFound((c) => errorResponse(new HttpError(404, `no route for ${c.req.method} ${c.req.path}`)));
  return app;
}

/**
 * A forwarded request's limits: the forwarding service's geometry format (FORMAT_HEADER) stands in for this
 * service's contract.image_file_output, so a peer answers what was asked of the service it stands in for.
 */
function forwardedLimits(c: Context<Env>, limits: RequestLimits): RequestLimits {
  const format = c.req.header(FORWARDED_HEADER) ? c.req.header(FORMAT_HEADER) : undefined;
  if (format === undefined) return limits;
  if (!(GEOMETRY_FORMATS as readonly string[]).includes(format)) {
    throw new HttpError(400, `header ${FORMAT_HEADER} must be one of ${GEOMETRY_FORMATS.join(', ')}, got "${format.slice(0, 40)}"`);
  }
  return { ...limits, imageFileOutput: format as GeometryFormatName };
}

/**
 * An answer as a response: the artefact (checked once more by its format, against the bounds its spec asked
 * for), a 204, or a peer's answer. A GLB says how many triangles it holds (the count `faces` reached).
 */
function respond(answer: Answer, format: Format, spec: ArtefactSpec): Promise<Response> {
  switch (answer.kind) {
    case 'asset': {
      const { bytes } = answer.artefacts[0];
      const triangles = artefactTriangles(spec.format, bytes);
      return artefactResponse(
        format,
        bytes,
        {
          ...assetHeaders(answer),
          ...(triangles !== undefined && { [TRIANGLES_HEADER]: String(triangles) }),
          [CACHE_HEADER]: answer.cache,
          [PRESET_HEADER]: answer.preset,
        },
        spec,
      );
    }
    case 'declined':
      return Promise.resolve(
        declinedResponse({ ...declineHeaders(answer.reason, answer.report), [CACHE_HEADER]: answer.cache, [PRESET_HEADER]: answer.preset }),
      );
    case 'forwarded':
      return forwardedResponse(answer.answer, format, spec);
  }
}

/** The answer's fields of the request's log line. */
function answerLog(answer: Answer): Record<string, unknown> {
  switch (answer.kind) {
    case 'asset':
      return {
        job: answer.jobId,
        preset: answer.preset,
        cache: answer.cache,
        outcome: 'asset',
        gaussians: answer.gaussians,
        bytes: answer.artefacts[0].bytes.length,
        attempts: answer.report.attempts,
        timings: answer.report.timings,
      };
    case 'declined':
      return {
        job: answer.jobId,
        preset: answer.preset,
        cache: answer.cache,
        outcome: 'declined',
        reason: answer.reason,
        attempts: answer.report?.attempts,
      };
    case 'forwarded':
      return { job: answer.jobId, forwarded: `peer ${answer.answer.peer}` };
  }
}

/**
 * A peer's answer as ours: a 204 passes through; a 200's bytes are checked by the artefact's format, and bytes it
 * refuses become the usual 503 rather than a bad 200.
 */
async function forwardedResponse(answer: ForwardedAnswer, format: Format, spec: ArtefactSpec): Promise<Response> {
  const headers: Record<string, string> = { [CACHE_HEADER]: 'peer' };
  answer.headers.forEach((value, name) => {
    if (name.toLowerCase().startsWith('x-fast3d-') && name.toLowerCase() !== 'x-fast3d-cache') headers[name] = value;
  });
  headers['X-Fast3d-Peer'] = String(answer.peer);
  if (answer.status === 204) return declinedResponse(headers);
  try {
    return await artefactResponse(format, answer.body, headers, spec);
  } catch (err) {
    if (err instanceof HttpError) throw new BusyError(`busy, and burst peer ${answer.peer} returned unservable bytes (${err.message})`);
    throw err;
  }
}
