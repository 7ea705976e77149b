/**
 * Client of the GPU worker (workers/gpu, protocol in docs/gpu-worker.md): one request per call with a
 * timeout, bounded retries when the connection itself fails (refused, reset before an answer; the worker's
 * calls are seeded and side-effect free, so a retry is safe), never on an HTTP answer or a timeout; and a
 * readiness poller behind `readiness()` so /health and /ping reflect the worker without a request each.
 */
import {
  GPU_WORKER_PROTOCOL,
  GPU_WORKER_PROTOCOL_HEADER,
  GpuWorkerError,
  type CloudAndMeshBytes,
  type GpuWorker,
  type ImageGenerationRequest,
  type ImageTo3dRequest,
  type MeshBake,
} from '../pipelines/gpu-worker.js';
import type { Readiness } from '../pipelines/stages.js';
import { NotReadyError } from '../pipelines/errors.js';

export { GpuWorkerError, GPU_WORKER_PROTOCOL };
export type { CloudAndMeshBytes, ImageGenerationRequest, ImageTo3dRequest, MeshBake };

/** The Content-Type of the worker's parts container (a PLY and a GLB), and its magic. */
export const PARTS_CONTENT_TYPE = 'application/x-fast3d-parts';
const PARTS_MAGIC = 'F3DPARTS';

export interface GpuClientOptions {
  /** Base URL, e.g. http://127.0.0.1:9100. */
  url: string;
  /** Longest wait for one request, answer included. */
  requestTimeoutMs: number;
  /** Extra attempts after a connection error. */
  connectRetries: number;
  /** Pause before each retry. */
  retryDelayMs: number;
  /** Pause between readiness polls of GET /health. */
  pollIntervalMs: number;
  /** How long `waitUntilReady` waits for the models to load. */
  readyTimeoutMs: number;
}

/** What the worker's GET /health reports. */
export interface WorkerHealth {
  /** The protocol version the worker speaks; absent from workers before version 2. */
  protocol?: number;
  /** Whether the worker makes meshes (started with --mesh). */
  mesh?: boolean;
  ready: boolean;
  status: 'loading' | 'ready' | 'failed' | string;
  error: string | null;
  provider?: string;
  models: { name: string; id: string; loaded: boolean }[];
  device: string | null;
  vram_total: number | null;
  vram_used: number | null;
}

/**
 * The worker cannot serve now: not reachable, still loading, failed to load, or out of GPU memory (503).
 * A NotReadyError, so the service answers 503 with Retry-After rather than 500.
 */
export class GpuWorkerUnavailableError extends NotReadyError {
  override name = 'GpuWorkerUnavailableError';

  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

const CONNECTION_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ENOTCONN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

export class GpuWorkerClient implements GpuWorker {
  private last: Readiness;
  private health: WorkerHealth | undefined;
  private poller: ReturnType<typeof setTimeout> | undefined;
  private polling = false;
  /** Why the worker was refused (another protocol version), when it was. */
  private refused: string | undefined;
  private closed = false;
  private readonly listeners = new Set<() => void>();

  constructor(readonly options: GpuClientOptions) {
    this.last = { ready: false, detail: `GPU worker at ${this.base} not contacted yet` };
  }

  private get base(): string {
    return this.options.url.replace(/\/+$/, '');
  }

  /** Readiness from the latest poll; `model` also requires that model ("text-to-image", "image-to-3d") loaded. */
  readiness(model?: string): Readiness {
    this.startPolling();
    if (!this.last.ready || !model || !this.health) return this.last;
    const entry = this.health.models.find((m) => m.name === model);
    if (entry?.loaded) return this.last;
    return { ready: false, detail: `GPU worker at ${this.base} is up but has no ${model} model loaded` };
  }

  /** Whether the worker makes meshes, as its last /health answer said (undefined before one). */
  makesMeshes(): boolean | undefined {
    return this.health?.mesh;
  }

  /** The worker's last /health answer, when there was one. */
  lastHealth(): WorkerHealth | undefined {
    return this.health;
  }

  /**
   * Polls until the worker is ready, reports a load failure, or `readyTimeoutMs` passes; resolves with the
   * readiness then (never rejects: /health carries the reason). Polling goes on in the background afterwards,
   * so a worker that recovers (restarted by pm2) becomes ready without restarting the service.
   */
  waitUntilReady(signal?: AbortSignal): Promise<Readiness> {
    this.startPolling();
    const deadline = Date.now() + this.options.readyTimeoutMs;
    return new Promise<Readiness>((resolve) => {
      const check = () => {
        const settled =
          this.last.ready ||
          this.health?.status === 'failed' ||
          this.refused !== undefined ||
          Date.now() >= deadline ||
          signal?.aborted ||
          this.closed;
        if (!settled) return;
        this.listeners.delete(check);
        clearTimeout(timer);
        if (!this.last.ready && Date.now() >= deadline && this.health?.status !== 'failed' && this.refused === undefined) {
          this.last = {
            ready: false,
            detail: `${this.last.detail} (not ready within ${Math.round(this.options.readyTimeoutMs / 1000)} s)`,
          };
        }
        resolve(this.last);
      };
      const timer = setTimeout(check, this.options.readyTimeoutMs);
      timer.unref?.();
      this.listeners.add(check);
      check();
    });
  }

  /** Asks GET /health once and updates the readiness. */
  async poll(): Promise<Readiness> {
    try {
      const response = await this.send('/health', { method: 'GET' }, undefined, Math.min(this.options.requestTimeoutMs, 10_000), 0);
      const body = (await response.json().catch(() => null)) as WorkerHealth | null;
      if (!body || typeof body.ready !== 'boolean') {
        this.last = {
          ready: false,
          detail: `GPU worker at ${this.base} answered /health with HTTP ${response.status} and no health report`,
        };
      } else if (body.protocol !== GPU_WORKER_PROTOCOL) {
        this.health = undefined;
        this.refused = this.protocolMismatch(body.protocol);
        this.last = { ready: false, detail: this.refused };
      } else {
        this.refused = undefined;
        this.health = body;
        this.last = body.ready
          ? { ready: true }
          : {
              ready: false,
              detail: `GPU worker at ${this.base}: ${body.status === 'loading' ? 'loading models' : (body.error ?? body.status)}`,
            };
      }
    } catch (err) {
      this.health = undefined;
      this.last = { ready: false, detail: (err as Error).message };
    }
    for (const listener of [...this.listeners]) listener();
    return this.last;
  }

  private startPolling(): void {
    if (this.polling || this.closed) return;
    this.polling = true;
    const loop = async () => {
      if (this.closed) return;
      await this.poll();
      if (this.closed) return;
      this.poller = setTimeout(loop, this.options.pollIntervalMs);
      this.poller.unref?.();
    };
    void loop();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.poller);
    for (const listener of [...this.listeners]) listener();
  }

  /** POST /v1/images/generations: returns the PNG bytes. */
  async generateImage(request: ImageGenerationRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const response = await this.call(
      '/v1/images/generations',
      {
        prompt: request.prompt,
        size: request.size,
        n: 1,
        response_format: 'b64_json',
        seed: request.seed,
        steps: request.steps,
      },
      signal,
    );
    const body = (await response.json().catch(() => null)) as { data?: { b64_json?: unknown }[] } | null;
    const b64 = body?.data?.[0]?.b64_json;
    if (typeof b64 !== 'string' || !b64) throw new GpuWorkerError(`GPU worker at ${this.base} answered without data[0].b64_json`);
    return new Uint8Array(Buffer.from(b64, 'base64'));
  }

  /** POST /v1/image-to-3d: returns the PLY bytes (TRELLIS's internal frame). */
  async imageTo3d(request: ImageTo3dRequest, signal?: AbortSignal): Promise<Uint8Array> {
    const response = await this.call('/v1/image-to-3d', imageTo3dBody(request), signal);
    return bodyBytes(response, `GPU worker at ${this.base}, /v1/image-to-3d`);
  }

  /**
   * POST /v1/image-to-3d with a `mesh` object: one TRELLIS run, answered as a parts container of the PLY
   * (internal frame) and the GLB TRELLIS's to_glb baked (glTF's Y-up frame).
   */
  async imageTo3dWithMesh(request: ImageTo3dRequest, mesh: MeshBake, signal?: AbortSignal): Promise<CloudAndMeshBytes> {
    const what = `GPU worker at ${this.base}, /v1/image-to-3d with a mesh`;
    const body = { ...imageTo3dBody(request), mesh: { simplify: mesh.simplify, texture_size: mesh.textureSize } };
    const response = await this.call('/v1/image-to-3d', body, signal);
    const type = (response.headers.get('content-type') ?? '').split(';')[0].trim();
    if (type !== PARTS_CONTENT_TYPE) {
      await response.body?.cancel().catch(() => undefined);
      throw new GpuWorkerError(`${what}: answered ${type || 'no Content-Type'}, not ${PARTS_CONTENT_TYPE} (the PLY and the GLB)`, 502);
    }
    const parts = unpackParts(await bodyBytes(response, what), what);
    const ply = parts.get('ply');
    const glb = parts.get('glb');
    if (!ply || !glb)
      throw new GpuWorkerError(
        `${what}: the answer lacks its ${!ply ? 'ply' : 'glb'} part (has: ${[...parts.keys()].join(', ') || 'none'})`,
        502,
      );
    return { ply, glb };
  }

  private protocolMismatch(version: unknown): string {
    const spoken =
      typeof version === 'number' || typeof version === 'string' ? `protocol ${version}` : 'protocol 1 (it reports no version)';
    return (
      `GPU worker at ${this.base} speaks ${spoken}, but this service speaks protocol ${GPU_WORKER_PROTOCOL}: ` +
      'refused; run the worker from the same fast3d version as the service (workers/gpu)'
    );
  }

  /** A JSON POST whose non-2xx answers become errors carrying the worker's message. */
  private async call(path: string, body: unknown, signal?: AbortSignal): Promise<Response> {
    const response = await this.send(
      path,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
      signal,
      this.options.requestTimeoutMs,
      this.options.connectRetries,
    );
    // Only a success must be in our protocol: an error may come from a proxy in between, and says so itself.
    const spoken = response.headers.get(GPU_WORKER_PROTOCOL_HEADER);
    if (response.ok && spoken !== String(GPU_WORKER_PROTOCOL)) {
      await response.body?.cancel().catch(() => undefined);
      throw new GpuWorkerError(`${this.protocolMismatch(spoken ?? undefined)} (answer to ${path})`, 502);
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => '');
    let message = text.slice(0, 500);
    try {
      const parsed = JSON.parse(text) as { error?: unknown };
      if (typeof parsed.error === 'string') message = parsed.error;
    } catch {
      // not JSON: keep the text
    }
    const what = `GPU worker at ${this.base} answered ${path} with HTTP ${response.status}: ${message}`;
    if (response.status === 503) {
      void this.poll();
      throw new GpuWorkerUnavailableError(what, 503);
    }
    throw new GpuWorkerError(what, response.status);
  }

  private async send(
    path: string,
    init: RequestInit,
    signal: AbortSignal | undefined,
    timeoutMs: number,
    retries: number,
  ): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const timeout = AbortSignal.timeout(timeoutMs);
      try {
        return await fetch(this.base + path, { ...init, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      } catch (err) {
        if (signal?.aborted) throw signal.reason ?? err;
        if (timeout.aborted) {
          throw new GpuWorkerError(`GPU worker at ${this.base} did not answer ${path} within ${Math.round(timeoutMs / 100) / 10} s`, 504);
        }
        const code = connectionErrorCode(err);
        if (!code) throw err;
        if (attempt < retries) {
          await delay(this.options.retryDelayMs, signal);
          continue;
        }
        throw new GpuWorkerUnavailableError(
          `GPU worker at ${this.base} not reachable (${code}${attempt ? ` after ${attempt + 1} attempts` : ''}): ` +
            'start it with `npx pm2 start pm2/ecosystem.config.cjs` or `npm run worker`',
        );
      }
    }
  }
}

/** The system error code when `err` is a failed connection (fetch wraps it in a TypeError's cause). */
export function connectionErrorCode(err: unknown): string | null {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 4; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && CONNECTION_ERRORS.has(e.code)) return e.code;
    const nested = (e as { errors?: unknown[] }).errors; // AggregateError of IPv4 / IPv6 attempts
    if (Array.isArray(nested))
      for (const inner of nested) {
        const code = connectionErrorCode(inner);
        if (code) return code;
      }
  }
  return null;
}

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function imageTo3dBody(request: ImageTo3dRequest): Record<string, unknown> {
  return {
    image: Buffer.from(request.png.buffer, request.png.byteOffset, request.png.length).toString('base64'),
    seed: request.seed,
    sparse_structure_steps: request.sparseStructureSteps,
    sparse_structure_cfg: request.sparseStructureCfg,
    slat_steps: request.slatSteps,
    slat_cfg: request.slatCfg,
  };
}

/**
 * The parts of the worker's container (workers/gpu/fast3d_gpu/protocol.py): magic "F3DPARTS", u32 version,
 * u32 count, then per part a 16-byte NUL-padded ASCII name and a u64 length, then the parts back to back;
 * little-endian. The parts are views into `data`, not copies.
 */
export function unpackParts(data: Uint8Array, what = 'GPU worker answer'): Map<string, Uint8Array> {
  const fail = (why: string) => new GpuWorkerError(`${what}: ${why}`, 502);
  if (data.length < 16) throw fail('the parts container is shorter than its header');
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (Buffer.from(data.subarray(0, 8)).toString('latin1') !== PARTS_MAGIC) throw fail('not a parts container (bad magic)');
  const version = view.getUint32(8, true);
  if (version !== GPU_WORKER_PROTOCOL) throw fail(`parts container of protocol ${version}, not ${GPU_WORKER_PROTOCOL}`);
  const count = view.getUint32(12, true);
  let offset = 16 + count * 24;
  if (count > 64 || data.length < offset) throw fail('the parts container is shorter than its part table');
  const parts = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const entry = 16 + i * 24;
    const name = Buffer.from(data.subarray(entry, entry + 16))
      .toString('latin1')
      .replace(/\0+$/, '');
    const length = Number(view.getBigUint64(entry + 16, true));
    if (offset + length > data.length) throw fail(`part ${name} runs past the end of the answer (cut short?)`);
    parts.set(name, data.subarray(offset, offset + length));
    offset += length;
  }
  if (offset !== data.length) throw fail(`${data.length - offset} bytes after the last part`);
  return parts;
}

/** The whole body of a worker's answer; a body cut off by the request's timeout says so (504). */
async function bodyBytes(response: Response, what: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await response.arrayBuffer());
  } catch (err) {
    const timedOut = (err as Error).name === 'TimeoutError';
    throw new GpuWorkerError(
      `${what}: the answer's body ${timedOut ? 'did not arrive in time' : `broke off (${(err as Error).message})`}`,
      timedOut ? 504 : 502,
    );
  }
}
