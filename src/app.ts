/**
 * The HTTP routes. Only this file and contract/ know about HTTP; everything below works on Jobs.
 */
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId, type RequestIdVariables } from 'hono/request-id';
import { HttpError } from './contract/errors.js';
import { assertFormContentType, integerField, parseGenerateRequest, type GenerateRequest, type RequestLimits } from './contract/request.js';
import { declinedResponse, errorResponse, mp4Response, plyResponse, reportHeaders } from './contract/responses.js';
import type { Job, Outcome } from './pipelines/job.js';
import { BusyError } from './runtime/admission.js';
import type { Logger } from './runtime/log.js';
import { NotReadyError, type GenerationService } from './runtime/service.js';
import type { GaussianCloud } from './splat/cloud.js';

/** Renders an accepted asset as a turntable MP4 (the bytes of a complete file). */
export type TurntableVideo = (cloud: GaussianCloud, options: { size: number }, signal?: AbortSignal) => Promise<Uint8Array>;

export interface VideoOptions {
  turntable: TurntableVideo;
  /** Side in pixels when the request has no video_res. */
  defaultRes: number;
}

export const VIDEO_RES_MIN = 64;
export const VIDEO_RES_MAX = 2048;

export interface AppOptions {
  limits: RequestLimits;
  bodyLimitBytes: number;
  /** Word /health reports when ready ("ok", or "healthy" for the newer contract). */
  healthOkStatus: string;
  retryAfterSeconds: number;
  logger?: Logger;
  /** Enables POST /generate_video/. */
  video?: VideoOptions;
}

type Env = { Variables: RequestIdVariables & { log: Record<string, unknown> } };

export function createApp(service: GenerationService, options: AppOptions): Hono<Env> {
  const app = new Hono<Env>({ strict: false });
  const retryAfter = { 'Retry-After': String(options.retryAfterSeconds) };

  app.use(requestId());
  app.use(async (c, next) => {
    const start = performance.now();
    c.set('log', {});
    await next();
    c.res.headers.set('X-Fast3d-Mode', service.mode);
    c.res.headers.set('X-Request-Id', c.get('requestId'));
    if (c.req.path === '/ping') return;
    options.logger?.info(
      {
        req_id: c.get('requestId'),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        ms: Math.round(performance.now() - start),
        ...c.get('log'),
      },
      'request',
    );
  });

  app.onError((err, c) => {
    if (err instanceof HttpError) return errorResponse(err);
    if (err instanceof BusyError) return errorResponse(new HttpError(503, `${err.message}; retry later`, retryAfter));
    if (err instanceof NotReadyError) return errorResponse(new HttpError(503, err.message, retryAfter));
    if (c.req.raw.signal.aborted) {
      c.set('log', { ...c.get('log'), cancelled: true });
      return errorResponse(new HttpError(503, 'request cancelled'));
    }
    options.logger?.error({ req_id: c.get('requestId'), err: { message: err.message, stack: err.stack } }, 'unhandled error');
    return errorResponse(new HttpError(500, `internal error: ${err.message}`));
  });

  const limitBody = bodyLimit({
    maxSize: options.bodyLimitBytes,
    onError: () => errorResponse(new HttpError(413, `request body is larger than ${options.bodyLimitBytes} bytes`)),
  });

  /** Parses the form, runs the job, records the log fields; the route decides what the asset becomes. */
  async function runGenerate(c: Context<Env>, check?: (request: GenerateRequest) => void): Promise<{ request: GenerateRequest; outcome: Outcome }> {
    assertFormContentType(c.req.header('content-type'));
    let fields;
    try {
      fields = await c.req.parseBody({ all: true });
    } catch (err) {
      throw new HttpError(400, `malformed form body: ${(err as Error).message}`);
    }
    const request = await parseGenerateRequest(fields, options.limits);
    check?.(request);
    const job: Job = { id: c.get('requestId'), task: request.task, seed: request.seed, signal: c.req.raw.signal };
    c.set('log', { task: job.task.kind, seed: job.seed });
    const outcome = await service.generate(job);
    c.set('log', {
      ...c.get('log'),
      outcome: outcome.kind,
      ...(outcome.kind === 'declined' ? { reason: outcome.reason } : { gaussians: outcome.cloud.count, bytes: outcome.ply.length }),
      attempts: outcome.report.attempts,
      timings: outcome.report.timings,
    });
    return { request, outcome };
  }

  app.post('/generate', limitBody, async (c) => {
    const { outcome } = await runGenerate(c);
    const headers = reportHeaders(outcome);
    return outcome.kind === 'asset' ? plyResponse(outcome.ply, headers) : declinedResponse(headers);
  });

  app.post('/generate_video', limitBody, async (c) => {
    const video = options.video;
    if (!video) throw new HttpError(404, 'video rendering is not enabled in this service');
    let size = video.defaultRes;
    const { outcome } = await runGenerate(c, (request) => {
      // Odd sizes are rounded down to even: H.264 in yuv420p needs even dimensions.
      const res = integerField(request.fields, 'video_res', VIDEO_RES_MIN, VIDEO_RES_MAX) ?? video.defaultRes;
      size = res - (res % 2);
    });
    const headers = reportHeaders(outcome);
    if (outcome.kind !== 'asset') return declinedResponse(headers);
    const start = performance.now();
    const mp4 = await video.turntable(outcome.cloud, { size }, c.req.raw.signal);
    c.set('log', { ...c.get('log'), video_res: size, video_bytes: mp4.length, video_ms: Math.round(performance.now() - start) });
    return mp4Response(mp4, headers);
  });

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

  app.notFound((c) => errorResponse(new HttpError(404, `no route for ${c.req.method} ${c.req.path}`)));
  return app;
}
