/**
 * The HTTP routes. Only this file and contract/ know about HTTP; everything below works on Jobs.
 * Around the routes: request ids and one log line per request, metrics, optional bearer auth on the generate
 * routes, result-cache lookups, and forwarding to burst peers when the local queue is full.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { requestId, type RequestIdVariables } from 'hono/request-id';
import { HttpError } from './contract/errors.js';
import { assertFormContentType, integerField, parseGenerateRequest, type GenerateRequest, type RequestLimits } from './contract/request.js';
import { asciiHeader, declinedResponse, errorResponse, mp4Response, plyResponse, reportHeaders } from './contract/responses.js';
import { bearerAuth } from './http/auth.js';
import { methodNotAllowed } from './http/method.js';
import { GpuWorkerError } from './pipelines/gpu-worker.js';
import type { Job, Outcome } from './pipelines/job.js';
import { BusyError, DeadlineError, ShuttingDownError } from './runtime/admission.js';
import { FORWARDED_HEADER, type Burst, type ForwardedAnswer } from './runtime/burst.js';
import type { Artefact, ResultCache } from './runtime/cache.js';
import type { Logger } from './runtime/log.js';
import type { Metrics } from './runtime/metrics.js';
import { NotReadyError, type GenerationService } from './runtime/service.js';
import type { GaussianCloud } from './splat/cloud.js';
import { rotateCloud, transpose } from './splat/frame.js';
import { decodePly, parsePlyHeader } from './splat/ply.js';

/** Renders an accepted asset as a turntable MP4 (the bytes of a complete file). */
export type TurntableVideo = (cloud: GaussianCloud, options: { size: number }, signal?: AbortSignal) => Promise<Uint8Array>;

export interface VideoOptions {
  turntable: TurntableVideo;
  /** Side in pixels when the request has no video_res. */
  defaultRes: number;
  /** Fingerprint of the settings that decide a video's bytes (cache key of the MP4). */
  settings: string;
}

/** The video_res bounds of the contract (upstream's default is 1088). */
export const VIDEO_RES_MIN = 64;
export const VIDEO_RES_MAX = 2048;

export interface AppOptions {
  limits: RequestLimits;
  bodyLimitBytes: number;
  /** Word /health reports when ready ("ok", or "healthy" for the newer contract). */
  healthOkStatus: string;
  retryAfterSeconds: number;
  logger?: Logger;
  /** Serves GET /metrics and counts requests when given. */
  metrics?: Metrics;
  /** Result cache; absent when disabled. */
  cache?: ResultCache;
  /** Peers that take requests the local queue cannot. */
  burst?: Burst;
  /** Bearer token the generate routes require; absent = open. */
  authToken?: string;
  /** The token is also required on GET /metrics. */
  metricsAuth?: boolean;
  /** Enables POST /generate_video/. */
  video?: VideoOptions;
}

/** Header saying where an answer came from: hit, decline-hit, miss (generated here), or peer. */
export const CACHE_HEADER = 'X-Fast3d-Cache';

type Env = { Variables: RequestIdVariables & { log: Record<string, unknown> } };

export function createApp(service: GenerationService, options: AppOptions): Hono<Env> {
  const app = new Hono<Env>({ strict: false });
  const retryAfter = (seconds = options.retryAfterSeconds) => ({ 'Retry-After': String(seconds) });
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
    c.res.headers.set('X-Fast3d-Mode', service.mode);
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
    if (err instanceof HttpError) return errorResponse(err);
    if (err instanceof HTTPException) return err.getResponse();
    if (err instanceof BusyError) return errorResponse(new HttpError(503, `${err.message}; retry later`, retryAfter(err.retryAfterS)));
    if (err instanceof DeadlineError) return errorResponse(new HttpError(503, err.message, retryAfter()));
    if (err instanceof ShuttingDownError) return errorResponse(new HttpError(503, err.message, { ...retryAfter(), Connection: 'close' }));
    if (err instanceof NotReadyError) return errorResponse(new HttpError(503, err.message, retryAfter()));
    // The GPU worker answered wrongly (502) or too late (504): say so, rather than an anonymous 500.
    if (err instanceof GpuWorkerError) {
      options.logger?.error({ req_id: c.get('requestId'), err: err.message }, 'GPU worker error');
      return errorResponse(new HttpError(err.status === 504 ? 504 : 502, err.message));
    }
    if (c.req.raw.signal.aborted) {
      addLog(c, { cancelled: true });
      return errorResponse(new HttpError(503, 'request cancelled'));
    }
    options.logger?.error({ req_id: c.get('requestId'), err: { message: err.message, stack: err.stack } }, 'unhandled error');
    return errorResponse(new HttpError(500, `internal error: ${err.message}`));
  });

  // Which paths need the token is http/auth.ts's PROTECTED_PATHS; /health, /ping (and by default /metrics) stay open.
  if (options.authToken) app.use(bearerAuth(options.authToken, { metrics: options.metricsAuth }));

  const limitBody = bodyLimit({
    maxSize: options.bodyLimitBytes,
    onError: () => errorResponse(new HttpError(413, `request body is larger than ${options.bodyLimitBytes} bytes`)),
  });

  /** The parsed request, plus the raw body when it may have to be forwarded to a peer as it came. */
  async function readRequest(c: Context<Env>): Promise<{ request: GenerateRequest; raw?: ArrayBuffer }> {
    const contentType = c.req.header('content-type');
    assertFormContentType(contentType);
    const mayForward = options.burst?.enabled && !c.req.header(FORWARDED_HEADER);
    let fields;
    let raw: ArrayBuffer | undefined;
    try {
      // Read the bytes first: Hono re-parses the form from them, and a form re-encoded later would not be
      // the same bytes (multipart boundaries change).
      if (mayForward) raw = await c.req.arrayBuffer();
      fields = await c.req.parseBody({ all: true });
    } catch (err) {
      throw new HttpError(400, `malformed form body: ${(err as Error).message}`);
    }
    const request = await parseGenerateRequest(fields, options.limits);
    addLog(c, { task: request.task.kind, seed: request.seed });
    return { request, raw };
  }

  /** A cached answer for the request (artefact or remembered decline), or null. */
  async function cachedAnswer(c: Context<Env>, key: string | undefined, artefact: Artefact, respond: (bytes: Uint8Array) => Response): Promise<Response | null> {
    const cache = options.cache;
    if (!cache || key === undefined) return null;
    const reason = cache.declined(key);
    if (reason !== null) {
      options.metrics?.cacheLookup(artefact.kind, 'decline_hit');
      addLog(c, { cache: 'decline-hit', outcome: 'declined', reason });
      return declinedResponse({ 'X-Fast3d-Decline-Reason': asciiHeader(reason), [CACHE_HEADER]: 'decline-hit' });
    }
    const bytes = await cache.get(key, artefact);
    if (!bytes) return null;
    try {
      const response = respond(bytes);
      addLog(c, { cache: 'hit', outcome: 'asset', bytes: bytes.length });
      return response;
    } catch (err) {
      // Only checked bytes are stored, so this means the rules changed since: regenerate rather than fail.
      if (!(err instanceof HttpError)) throw err;
      options.logger?.warn({ err: err.message }, 'cached artefact refused; regenerating');
      return null;
    }
  }

  /**
   * Runs the job here, or, when the local queue is full and peers are configured, forwards the request.
   * Returns the local outcome, or the peer's answer.
   */
  async function generateOrForward(c: Context<Env>, request: GenerateRequest, raw: ArrayBuffer | undefined): Promise<{ outcome: Outcome } | { forwarded: ForwardedAnswer }> {
    const job: Job = { id: c.get('requestId'), task: request.task, seed: request.seed, delivery: request.delivery, signal: c.req.raw.signal };
    let outcome: Outcome;
    try {
      outcome = await service.generate(job);
    } catch (err) {
      if (!(err instanceof BusyError) || !raw || !options.burst) throw err;
      const forwarded = await options.burst.forward(c.req.path, c.req.header('content-type') ?? '', raw, c.req.raw.signal);
      addLog(c, { forwarded: forwarded ? `peer ${forwarded.peer}` : 'failed' });
      if (!forwarded) throw err;
      return { forwarded };
    }
    addLog(c, {
      outcome: outcome.kind,
      ...(outcome.kind === 'declined' ? { reason: outcome.reason } : { gaussians: outcome.cloud.count, bytes: outcome.ply.length }),
      attempts: outcome.report.attempts,
      timings: outcome.report.timings,
    });
    return { outcome };
  }

  /** Stores what a job produced (the artefact, or the decline) under its request key; never fails the request. */
  async function remember(key: string | undefined, artefact: Artefact, outcome: Outcome, bytes?: Uint8Array): Promise<void> {
    if (outcome.kind === 'declined') {
      if (key !== undefined) options.cache?.rememberDecline(key, outcome.reason);
      return;
    }
    if (bytes) await store(key, artefact, bytes);
  }

  /** Caches checked bytes of one artefact; a failed write is logged, never the request's failure. */
  async function store(key: string | undefined, artefact: Artefact, bytes: Uint8Array): Promise<void> {
    if (!options.cache || key === undefined) return;
    try {
      await options.cache.put(key, artefact, bytes);
    } catch (err) {
      options.logger?.warn({ err: (err as Error).message }, 'cache write failed');
    }
  }

  app.post('/generate', limitBody, async (c) => {
    const artefact: Artefact = { kind: 'ply' };
    const { request, raw } = await readRequest(c);
    const key = options.cache?.requestKey(request.task, request.seed, request.delivery);
    const cached = await cachedAnswer(c, key, artefact, (bytes) =>
      plyResponse(bytes, { [CACHE_HEADER]: 'hit', 'X-Fast3d-Gaussians': String(parsePlyHeader(bytes).vertexCount) }));
    if (cached) return cached;
    const result = await generateOrForward(c, request, raw);
    if ('forwarded' in result) return forwardedResponse(result.forwarded, (bytes, headers) => plyResponse(bytes, headers));
    const { outcome } = result;
    const headers = { ...reportHeaders(outcome), [CACHE_HEADER]: 'miss' };
    // The 200 is built (and its bytes checked) before they are cached, so only servable bytes are stored.
    const response = outcome.kind === 'asset' ? plyResponse(outcome.ply, headers) : declinedResponse(headers);
    await remember(key, artefact, outcome, outcome.kind === 'asset' ? outcome.ply : undefined);
    return response;
  });

  app.post('/generate_video', limitBody, async (c) => {
    const video = options.video;
    if (!video) throw new HttpError(404, 'video rendering is not enabled in this service');
    const { request, raw } = await readRequest(c);
    // Checked before any work: H.264 in yuv420p needs even sides, so odd sizes are rounded down.
    const res = integerField(request.fields, 'video_res', VIDEO_RES_MIN, VIDEO_RES_MAX) ?? video.defaultRes;
    const size = res - (res % 2);
    addLog(c, { video_res: size });
    // Refuse before generating when the video line is already full: an asset nobody renders wastes the GPU.
    if (service.videos.full) throw new BusyError('busy: the video queue is full; retry later', options.retryAfterSeconds);
    const artefact: Artefact = { kind: 'mp4', resolution: size, settings: video.settings };
    const key = options.cache?.requestKey(request.task, request.seed, request.delivery);
    const cached = await cachedAnswer(c, key, artefact, (bytes) => mp4Response(bytes, { [CACHE_HEADER]: 'hit' }));
    if (cached) return cached;

    // The asset may be cached from /generate/: then only the video is rendered, with no GPU work.
    const ply = key === undefined ? null : await options.cache!.get(key, { kind: 'ply' });
    let cloud: GaussianCloud;
    let headers: Record<string, string>;
    let outcome: Outcome | undefined;
    if (ply) {
      cloud = decodePly(ply);
      // Cached bytes are in the delivery's frame; videos are rendered upright, in the validator's.
      if (request.delivery) rotateCloud(cloud, transpose(request.delivery.rotation));
      headers = { [CACHE_HEADER]: 'asset-hit' };
    } else {
      const result = await generateOrForward(c, request, raw);
      if ('forwarded' in result) return forwardedResponse(result.forwarded, (bytes, h) => mp4Response(bytes, h));
      outcome = result.outcome;
      headers = { ...reportHeaders(outcome), [CACHE_HEADER]: 'miss' };
      if (outcome.kind !== 'asset') {
        await remember(key, artefact, outcome);
        return declinedResponse(headers);
      }
      await remember(key, { kind: 'ply' }, outcome, outcome.ply);
      cloud = outcome.cloud;
    }
    const start = performance.now();
    const signal = c.req.raw.signal;
    const mp4 = await service.renderVideo(() => video.turntable(cloud, { size }, signal), signal);
    addLog(c, { video_bytes: mp4.length, video_ms: Math.round(performance.now() - start) });
    const response = mp4Response(mp4, headers);
    await store(key, artefact, mp4);
    return response;
  });

  for (const path of ['/generate', '/generate_video']) app.all(path, methodNotAllowed('POST'));

  app.get('/health', (c) => {
    const health = service.health();
    const status = health.status === 'ok' ? options.healthOkStatus : health.status;
    return c.json({ ...health, status }, health.status === 'ok' ? 200 : 503);
  });

  // RunPod load-balancing endpoints: 200 ready, 204 still initialising, anything else unhealthy.
  app.get('/ping', (c) => {
    const { status } = service.health();
    if (status === 'ok') return c.json({ status: 'ready' });
    return status === 'starting' ? c.body(null, 204) : c.json({ status }, 503);
  });

  if (options.metrics) {
    const metrics = options.metrics;
    app.get('/metrics', async (c) => c.body(await metrics.text(), 200, { 'Content-Type': metrics.contentType }));
  }

  app.notFound((c) => errorResponse(new HttpError(404, `no route for ${c.req.method} ${c.req.path}`)));
  return app;
}

/**
 * A peer's answer as ours: a 204 passes through; a 200's bytes go through `respond` (for assets that is
 * plyResponse, which re-checks them), and bytes it refuses become the usual 503 rather than a bad 200.
 */
function forwardedResponse(answer: ForwardedAnswer, respond: (bytes: Uint8Array, headers: Record<string, string>) => Response): Response {
  const headers: Record<string, string> = { [CACHE_HEADER]: 'peer' };
  answer.headers.forEach((value, name) => {
    if (name.toLowerCase().startsWith('x-fast3d-') && name.toLowerCase() !== 'x-fast3d-cache') headers[name] = value;
  });
  headers['X-Fast3d-Peer'] = String(answer.peer);
  if (answer.status === 204) return declinedResponse(headers);
  try {
    return respond(answer.body, headers);
  } catch (err) {
    if (err instanceof HttpError) throw new BusyError(`busy, and burst peer ${answer.peer} returned unservable bytes (${err.message})`);
    throw err;
  }
}
