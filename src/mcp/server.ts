/**
 * The MCP server of the service: the tools of tools.ts run in-process on the answer path, the job registry and
 * the render pool, and every job's artefacts are resources. Jobs run in the `interactive` class, in the
 * validator's frame (+Y up, front +Z), and are declined rather than delivered when self-validation fails.
 *
 * A tool never throws to the SDK for an expected failure: bad input, a decline, a busy service and a missing
 * job all come back as tool errors (isError) whose text says what was wrong.
 */
import { randomUUID } from 'node:crypto';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import {
  ErrorCode,
  type CallToolResult,
  type ReadResourceResult,
  type Resource,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { clipped, HttpError, issuesText, quoted } from '../contract/errors.js';
import { GAME_OPTION_NAMES, type GameOptions } from '../contract/game-options.js';
import { sniffImageField } from '../contract/prompt.js';
import type { RequestLimits } from '../contract/request.js';
import { httpErrorOf } from '../contract/status.js';
import { artefactTriangles, DEFAULT_VIEW_SIZE, type FormatName } from '../formats/registry.js';
import { encodePng } from '../image/codec.js';
import {
  parseBackground,
  renderViews,
  turntableCameras,
  VALIDATOR_EXTENT,
  validatorCameras,
  WHITE,
  type Camera,
  type RenderPool,
  type Rgb,
} from '../render/index.js';
import type { Answers, AnswerRequest } from '../runtime/answer.js';
import { buildAnswerRequest } from '../contract/build.js';
import { UserAssetError, type AssetPool } from '../runtime/asset-pool.js';
import type { ArtefactEntry, JobEvent, JobView } from '../runtime/jobs.js';
import { submitProgressive } from '../runtime/progressive.js';
import type { Logger } from '../runtime/log.js';
import type { InputStore } from '../runtime/inputs.js';
import type { Scene } from '../render/pool.js';
import type { GaussianCloud } from '../splat/cloud.js';
import { checkPly } from '../splat/gates.js';
import { decodePly } from '../splat/ply.js';
import { VERSION } from '../version.js';
import { ARTEFACT_URI_TEMPLATE, artefactUri, geometryFormat, MAX_VIEWS, parseArtefactUri, TOOLS } from './tools.js';

export interface McpDeps {
  answers: Answers;
  renderPool: RenderPool;
  /** The contract's prompt and image limits (length, pixels, smallest side). */
  limits: RequestLimits;
  /** Where requests' images wait for their jobs. */
  inputs: InputStore;
  /** Largest inline bytes (base64 PLY, GLB or image) a call may carry, decoded. */
  maxInlineBytes: number;
  /**
   * Where assets are checked and read apart from the pipeline's workers, under a time budget each (compose.ts
   * gives the asset pool): the GLB check before a 200 with its findings, and a scene ready to render.
   */
  assets: Pick<AssetPool, 'inspectGlb' | 'openScene'>;
  retryAfterS: number;
  logger?: Logger;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** Side of the front view generate_3d_asset returns. */
const FRONT_VIEW_SIZE = 384;
const DEFAULT_VIEW_COUNT = 4;
const DEFAULT_LIST_LIMIT = 10;

/** A failure the caller can act on: it becomes a tool error with this text. */
class ToolInputError extends Error {}

/** A tool error whose text says what was wrong, within the bound of every error message. */
export function toolError(text: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: clipped(text) }] };
}

/** A new MCP server with fast3d's tools and resources (one per HTTP request: the transport is stateless). */
export function createMcpServer(deps: McpDeps): McpServer {
  const server = new McpServer({ name: 'fast3d', version: VERSION }, { capabilities: { logging: {} } });
  const { answers } = deps;

  /** Runs a tool body; expected failures become tool errors, unexpected ones are logged and reported too. */
  const guarded =
    <A>(name: string, body: (args: A, extra: Extra) => Promise<CallToolResult>) =>
    async (args: A, extra: Extra): Promise<CallToolResult> => {
      try {
        return await body(args, extra);
      } catch (err) {
        if (err instanceof ToolInputError) return toolError(err.message);
        const known = httpErrorOf(err, { retryAfterS: deps.retryAfterS });
        if (known) {
          const retry = known.headers['Retry-After'];
          return toolError(retry ? `${known.message} (retry after ${retry} s)` : known.message);
        }
        if (extra.signal.aborted) return toolError('cancelled');
        deps.logger?.error({ tool: name, err: { message: (err as Error).message, stack: (err as Error).stack } }, 'mcp tool failed');
        return toolError(`internal error: ${(err as Error).message}`);
      }
    };

  server.registerTool(
    'generate_3d_asset',
    TOOLS.generate_3d_asset,
    guarded('generate_3d_asset', async (args, extra) => {
      const request = await requestOf(args, deps);
      // Registered before it runs: the job's events can be followed while it does (a progressive job's draft first).
      const { id, done } = await submitProgressive(answers, request, {}, deps.logger);
      done.catch(() => {}); // awaited below; this keeps an early rejection from being reported as unhandled
      // A caller that goes away cancels its job by id, so the job reads "cancelled" afterwards.
      const cancel = () => void answers.cancel(id);
      if (extra.signal.aborted) cancel();
      else extra.signal.addEventListener('abort', cancel, { once: true });
      await reportProgress(id, answers.events(id, extra.signal), extra);
      const result = await done;
      if (result.kind === 'declined') return toolError(`declined (job ${result.jobId}): ${result.reason}`);
      if (result.kind === 'forwarded')
        return toolError(`job ${result.jobId} was answered by a burst peer; its artefacts are not held here`);
      const ply = result.artefacts.find((a) => a.spec.format === 'ply')!;
      const front = await renderViews(decodePly(ply.bytes), validatorCameras(1, FRONT_VIEW_SIZE), { pool: deps.renderPool }, extra.signal);
      const summary = {
        job_id: result.jobId,
        seed: result.seed,
        gaussians: result.gaussians,
        preview: result.report.preview,
        cache: result.cache,
        artefacts: result.artefacts.map((a) => {
          const triangles = artefactTriangles(a.spec.format, a.bytes);
          return {
            name: a.spec.format,
            uri: artefactUri(result.jobId, a.spec.format),
            content_type: a.format.contentType,
            bytes: a.bytes.length,
            ...(triangles !== undefined && { triangles }),
          };
        }),
      };
      return {
        content: [
          { type: 'text', text: JSON.stringify(summary) },
          ...result.artefacts.map((a) => ({
            type: 'resource_link' as const,
            uri: artefactUri(result.jobId, a.spec.format),
            name: `${result.jobId}${a.format.extension}`,
            mimeType: a.format.contentType,
            size: a.bytes.length,
          })),
          { type: 'image', data: base64(await encodePng(front[0])), mimeType: 'image/png' },
        ],
        structuredContent: summary,
      };
    }),
  );

  server.registerTool(
    'get_job',
    TOOLS.get_job,
    guarded('get_job', async ({ job_id }) => {
      const view = await answers.get(job_id);
      if (!view) throw new ToolInputError(`no job ${quoted(job_id, 80)} (unknown, or finished long enough ago to be forgotten)`);
      const job = jobSummary(view);
      return { content: [{ type: 'text', text: JSON.stringify(job) }], structuredContent: job };
    }),
  );

  server.registerTool(
    'list_recent_assets',
    TOOLS.list_recent_assets,
    guarded('list_recent_assets', async ({ limit }) => {
      const assets = await recentAssets(answers, limit ?? DEFAULT_LIST_LIMIT);
      const listed = assets.map((v) => ({
        job_id: v.id,
        title: v.title,
        task: v.task,
        seed: v.seed,
        created_at: new Date(v.createdAt).toISOString(),
        artefacts: v.artefacts.map(artefactSummary(v.id)),
      }));
      return {
        content: [
          { type: 'text', text: JSON.stringify({ assets: listed }) },
          ...assets.flatMap((v) =>
            v.artefacts.map((a) => ({
              type: 'resource_link' as const,
              uri: artefactUri(v.id, a.name),
              name: `${v.id}${a.extension}`,
              description: v.title,
              mimeType: a.contentType,
              size: a.bytes,
            })),
          ),
        ],
        structuredContent: { assets: listed },
      };
    }),
  );

  server.registerTool(
    'render_views',
    TOOLS.render_views,
    guarded('render_views', async (args, extra) => {
      const size = args.size ?? DEFAULT_VIEW_SIZE;
      const count = args.count ?? DEFAULT_VIEW_COUNT;
      const { cameras, background, extent, azimuths } = camerasFor(args.cameras ?? 'validator', count, size, deps);
      // Views share the video line with videos: a full line refuses at once, before the asset is even decoded.
      const { images, label } = await answers.renderLine(async () => {
        const { subject, label } = await assetOf(args, extent, deps, extra.signal);
        return { images: await renderViews(subject, cameras, { pool: deps.renderPool, background, extent }, extra.signal), label };
      }, extra.signal);
      const pngs = await Promise.all(images.map((image) => encodePng(image)));
      return {
        content: [
          {
            type: 'text',
            text: `${images.length} ${args.cameras ?? 'validator'} view(s) of ${label}, ${size}x${size}, azimuths ${azimuths.map((a) => Math.round(a * 10) / 10).join(', ')} degrees`,
          },
          ...pngs.map((png) => ({ type: 'image' as const, data: base64(png), mimeType: 'image/png' })),
        ],
      };
    }),
  );

  server.registerTool(
    'check_asset',
    TOOLS.check_asset,
    guarded('check_asset', async (args, extra) => {
      const { bytes, label, kind } = await checkedBytesOf(args, deps);
      const verdict = kind === 'glb' ? await glbVerdict(bytes, label, deps, extra.signal) : plyVerdict(bytes, label);
      return { content: [{ type: 'text', text: `${verdict.line}\n${JSON.stringify(verdict.report)}` }], structuredContent: verdict.report };
    }),
  );

  server.registerResource(
    'artefact',
    new ResourceTemplate(ARTEFACT_URI_TEMPLATE, { list: async () => ({ resources: await artefactResources(answers) }) }),
    { title: 'Job artefact', description: 'An artefact of a finished job: ply, spz, glb, mp4 or views (PNG).' },
    async (uri): Promise<ReadResourceResult> => {
      const parsed = parseArtefactUri(uri.href);
      const ref = parsed && (await answers.artefact(parsed.jobId, parsed.artefact));
      if (!parsed || !ref) throw new Error(clipped(`no artefact at ${uri.href}`));
      const bytes = await ref.read();
      if (!bytes) throw new Error(clipped(`the bytes of ${uri.href} are no longer available`));
      return { contents: [{ uri: uri.href, mimeType: ref.contentType, blob: base64(bytes) }] };
    },
  );
  answerBadParamsAsInvalidParams(server);
  return server;
}

type RequestHandler = (request: unknown, extra: unknown) => Promise<unknown>;

/**
 * A request whose params the SDK's own schema refuses (`initialize` without params, say) answers -32602, invalid
 * params, in one line. The SDK parses a request before its handler runs and answers what that throws as -32603,
 * internal error, with zod's issues as its message; so each registered handler is wrapped. (The SDK keeps them in a
 * private map; the MCP HTTP tests fail if that changes.)
 */
function answerBadParamsAsInvalidParams(server: McpServer): void {
  const handlers = (server.server as unknown as { _requestHandlers?: Map<string, RequestHandler> })._requestHandlers;
  if (!(handlers instanceof Map)) return;
  for (const [method, handler] of handlers) {
    handlers.set(method, async (request, extra) => {
      try {
        return await handler(request, extra);
      } catch (err) {
        const issues = (err as { issues?: unknown } | null)?.issues;
        if (!Array.isArray(issues)) throw err;
        // The SDK answers an error's own numeric code and message.
        throw Object.assign(new Error(clipped(`invalid params of ${method}: ${issuesText(issues)}`)), { code: ErrorCode.InvalidParams });
      }
    });
  }
}

/**
 * The answer request of a generate call: its prompt, or its image (base64 or a data: URL), through the one
 * builder. The PLY always, then the other formats asked for, each once, `size` their side.
 */
async function requestOf(
  args: { prompt?: string; image_base64?: string; seed?: number; preset?: string; formats?: FormatName[]; size?: number } & GameOptions,
  deps: McpDeps,
): Promise<AnswerRequest> {
  if ((args.prompt === undefined) === (args.image_base64 === undefined)) {
    throw new ToolInputError('give exactly one of "prompt" (text) and "image_base64" (a base64 PNG, JPEG or WebP image)');
  }
  let image: Uint8Array | undefined;
  if (args.image_base64 !== undefined) {
    if (args.image_base64.length > base64Chars(deps.maxInlineBytes))
      throw new ToolInputError(`image_base64 is larger than ${deps.maxInlineBytes} bytes`);
    const sniffed = sniffImageField('image_base64', args.image_base64);
    if (sniffed.kind === 'invalid') throw new ToolInputError(sniffed.reason);
    image = sniffed.bytes;
  }
  const outputs = [{ format: 'ply' as const }, ...(args.formats ?? []).map((format) => ({ format, size: args.size }))];
  try {
    return await buildAnswerRequest(
      {
        id: randomUUID(),
        priority: 'interactive',
        ...(image ? { image: { bytes: image } } : { prompt: args.prompt! }),
        ...(args.seed !== undefined && { seed: args.seed }),
        ...(args.preset !== undefined && { preset: args.preset }),
        outputs,
        // The same names as the job API's JSON; the builder says what cannot be met.
        ...Object.fromEntries(GAME_OPTION_NAMES.filter((name) => args[name] !== undefined).map((name) => [name, args[name]])),
      },
      { limits: deps.limits, presets: deps.answers.presets, inputs: deps.inputs },
    );
  } catch (err) {
    if (err instanceof HttpError) throw new ToolInputError(err.message);
    throw err;
  }
}

/** Sends the job's events as progress notifications when the caller asked for them (a progress token). */
async function reportProgress(jobId: string, events: AsyncIterable<JobEvent>, extra: Extra): Promise<void> {
  const token = extra._meta?.progressToken;
  let progress = 0;
  for await (const event of events) {
    if (token === undefined) continue;
    progress++;
    try {
      await extra.sendNotification({
        method: 'notifications/progress',
        params: { progressToken: token, progress, message: describeEvent(jobId, event) },
      });
    } catch {
      // The caller went away: the job goes on (or is cancelled through the signal); nothing to report to.
    }
  }
}

/** One line per event, for people: attempts are counted from 1; a draft names its URI, to read at once. */
function describeEvent(jobId: string, event: JobEvent): string {
  switch (event.type) {
    case 'queued':
      return 'queued';
    case 'position':
      return `waiting: number ${event.position} in line${event.estimatedStartAt ? `, likely starting at ${event.estimatedStartAt}` : ''}`;
    case 'running':
      return 'running';
    case 'stage':
      return event.phase === 'start'
        ? `${event.stage} started (attempt ${event.attempt + 1})`
        : `${event.stage} done in ${event.ms} ms (attempt ${event.attempt + 1})`;
    case 'intermediate':
      return `${event.name} ready (attempt ${event.attempt + 1})`;
    case 'artefact': {
      const triangles = event.triangles !== undefined ? `, ${event.triangles} triangles` : '';
      return event.draft
        ? `draft ready: ${artefactUri(jobId, event.name)} (${event.bytes} bytes${triangles}); the final follows`
        : `${event.name} ready (${event.bytes} bytes${triangles})`;
    }
    case 'end':
      return event.reason ? `${event.state}: ${event.reason}` : event.error ? `${event.state}: ${event.error}` : event.state;
  }
}

function jobSummary(view: JobView) {
  return {
    job_id: view.id,
    state: view.state,
    stage: view.stage,
    title: view.title,
    task: view.task,
    seed: view.seed,
    priority: view.priority,
    created_at: new Date(view.createdAt).toISOString(),
    timings: view.timings,
    reason: view.reason,
    error: view.error,
    report: view.report,
    queue_position: view.queuePosition ?? null,
    estimated_start_at: view.estimatedStartAt ?? null,
    node: view.node ?? null,
    artefacts: view.artefacts.map(artefactSummary(view.id)),
  };
}

/** An artefact as the tools list it: name, URI, type, size, a GLB's triangles, whether it is a draft, its expiry. */
function artefactSummary(jobId: string) {
  return (a: ArtefactEntry) => ({
    name: a.name,
    uri: artefactUri(jobId, a.name),
    content_type: a.contentType,
    bytes: a.bytes,
    ...(a.triangles !== undefined && { triangles: a.triangles }),
    ...(a.draft && { draft: true }),
    expires_at: a.expiresAt ?? null,
  });
}

async function recentAssets(answers: Answers, limit: number): Promise<JobView[]> {
  return (await answers.list(Number.MAX_SAFE_INTEGER)).filter((v) => v.state === 'done' && v.artefacts.length > 0).slice(0, limit);
}

async function artefactResources(answers: Answers): Promise<Resource[]> {
  return (await recentAssets(answers, 100)).flatMap((v) =>
    v.artefacts.map((a) => ({
      uri: artefactUri(v.id, a.name),
      name: `${v.id}${a.extension}`,
      title: `${v.title} (${a.name})`,
      mimeType: a.contentType,
      size: a.bytes,
    })),
  );
}

interface Verdict {
  /** One line for people: ok, or FAIL and the first broken rule. */
  line: string;
  report: { asset: string; format: 'ply' | 'glb'; ok: boolean } & Record<string, unknown>;
}

function plyVerdict(bytes: Uint8Array, label: string): Verdict {
  const { ok, packer, gates, failed } = checkPly(bytes);
  const line = ok
    ? `ok: ${label} passes the packer rules and the validator's gates`
    : packer
      ? `FAIL: ${label} breaks a packer rule: ${packer}`
      : `FAIL: ${label} fails the validator's gates: ${failed.join(', ')}`;
  return { line, report: { asset: label, format: 'ply', ok, packer: packer ?? 'ok', gates } };
}

/** The check every GLB passes before a 200 (glbViolation's rules), with what it found. */
async function glbVerdict(bytes: Uint8Array, label: string, deps: McpDeps, signal: AbortSignal): Promise<Verdict> {
  const r = await deps.assets.inspectGlb(bytes, signal);
  const ok = r.violations.length === 0;
  const validator = r.validator && { errors: r.validator.errors, warnings: r.validator.warnings, infos: r.validator.infos };
  const found = `${r.meshes} mesh(es), ${r.triangles} triangles${validator ? `, validator ${validator.errors} errors, ${validator.warnings} warnings` : ''}`;
  const line = ok
    ? `ok: ${label} passes the Khronos glTF validator and the mesh rules (${found})`
    : `FAIL: ${label} breaks a mesh rule: ${r.violations.join('; ')}`;
  return {
    line,
    report: {
      asset: label,
      format: 'glb',
      ok,
      validator,
      meshes: r.meshes,
      triangles: r.triangles,
      vertices: r.vertices,
      bounds: r.bounds,
      violations: r.violations,
    },
  };
}

type SourceArgs = { job_id?: string; artefact?: string; uri?: string; ply_base64?: string; glb_base64?: string };

/** The file a check names: a job's PLY (or GLB), an artefact URI of either, or base64 bytes. */
async function checkedBytesOf(args: SourceArgs, deps: McpDeps): Promise<{ bytes: Uint8Array; label: string; kind: 'ply' | 'glb' }> {
  const source = oneSource(args);
  if (source === 'ply_base64') return { bytes: inlineBytes('ply_base64', args.ply_base64!, deps), label: 'the given PLY', kind: 'ply' };
  if (source === 'glb_base64') return { bytes: inlineBytes('glb_base64', args.glb_base64!, deps), label: 'the given GLB', kind: 'glb' };
  const { jobId, artefact } = source === 'uri' ? artefactOfUri(args.uri!) : { jobId: args.job_id!, artefact: args.artefact ?? 'ply' };
  const kind = geometryFormat(artefact);
  if (kind !== 'ply' && kind !== 'glb')
    throw new ToolInputError(`${artefactUri(jobId, artefact)} is neither a PLY nor a GLB; check_asset checks those`);
  return { bytes: await artefactBytes(jobId, artefact, deps), label: `job ${jobId}'s ${artefact}`, kind };
}

/**
 * The cloud or mesh a call names, ready to render at `extent`: a job's geometry artefact, an artefact URI, or a
 * base64 PLY or GLB. PLYs and GLBs are checked, read and prepared in the asset pool, a file that fails its
 * check (the validator's reason, a broken packer rule, a limit) being a tool error that says why.
 */
async function assetOf(
  args: SourceArgs,
  extent: number,
  deps: McpDeps,
  signal: AbortSignal,
): Promise<{ subject: Scene | GaussianCloud; label: string }> {
  const source = oneSource(args);
  if (source === 'ply_base64')
    return {
      subject: await sceneOf('ply', inlineBytes('ply_base64', args.ply_base64!, deps), 'ply_base64', extent, deps, signal),
      label: 'the given PLY',
    };
  if (source === 'glb_base64')
    return {
      subject: await sceneOf('glb', inlineBytes('glb_base64', args.glb_base64!, deps), 'glb_base64', extent, deps, signal),
      label: 'the given GLB',
    };
  const { jobId, artefact } = source === 'uri' ? artefactOfUri(args.uri!) : { jobId: args.job_id!, artefact: args.artefact ?? 'ply' };
  const kind = geometryFormat(artefact);
  if (!kind) {
    throw new ToolInputError(
      `${artefactUri(jobId, artefact)} is not geometry; render_views renders a ply, spz, glb or glb_lodN artefact (or a draft's)`,
    );
  }
  const bytes = await artefactBytes(jobId, artefact, deps);
  const label = `job ${jobId}'s ${artefact}`;
  if (kind === 'spz') return { subject: deps.answers.formats.spz.decodeCloud!(bytes), label };
  return { subject: await sceneOf(kind, bytes, label, extent, deps, signal), label };
}

/** A PLY or GLB read in the asset pool; a file it refuses is a tool error that says why. */
async function sceneOf(
  kind: 'ply' | 'glb',
  bytes: Uint8Array,
  field: string,
  extent: number,
  deps: McpDeps,
  signal: AbortSignal,
): Promise<Scene> {
  try {
    return await deps.assets.openScene(kind, bytes, extent, signal);
  } catch (err) {
    if (!(err instanceof UserAssetError)) throw err;
    throw new ToolInputError(`${field} is not a ${kind.toUpperCase()} this service can render: ${err.message}`);
  }
}

function oneSource(args: SourceArgs): 'job_id' | 'uri' | 'ply_base64' | 'glb_base64' {
  const given = (['job_id', 'uri', 'ply_base64', 'glb_base64'] as const).filter((k) => args[k] !== undefined);
  if (given.length !== 1)
    throw new ToolInputError(
      `give exactly one of "job_id", "uri", "ply_base64" and "glb_base64"${given.length ? ` (got ${given.join(', ')})` : ''}`,
    );
  return given[0];
}

function artefactOfUri(uri: string): { jobId: string; artefact: string } {
  const parsed = parseArtefactUri(uri);
  if (!parsed) throw new ToolInputError(`${quoted(uri, 80)} is not an artefact URI (fast3d://jobs/{job_id}/{artefact})`);
  return parsed;
}

async function artefactBytes(jobId: string, artefact: string, deps: McpDeps): Promise<Uint8Array> {
  const view = await deps.answers.get(jobId);
  if (!view) throw new ToolInputError(`no job ${quoted(jobId, 80)} (unknown, or finished long enough ago to be forgotten)`);
  const ref = await deps.answers.artefact(jobId, artefact);
  if (!ref)
    throw new ToolInputError(
      `job ${jobId} (${view.state}) has no ${artefact} artefact${view.artefacts.length ? ` (it has: ${view.artefacts.map((a) => a.name).join(', ')})` : ''}`,
    );
  const bytes = await ref.read();
  if (!bytes) throw new ToolInputError(`the bytes of job ${jobId}'s ${artefact} are no longer available`);
  return bytes;
}

const NOT_BASE64 = /[^A-Za-z0-9+/=\s]/;

function inlineBytes(field: string, text: string, deps: McpDeps): Uint8Array {
  if (text.length > base64Chars(deps.maxInlineBytes))
    throw new ToolInputError(`${field} is larger than ${deps.maxInlineBytes} bytes; pass a job_id or uri instead`);
  if (NOT_BASE64.test(text)) throw new ToolInputError(`${field} is not base64`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** The validator's cameras (`count` evenly spaced among its 16) or the service's turntable path. */
function camerasFor(
  kind: 'validator' | 'turntable',
  count: number,
  size: number,
  deps: McpDeps,
): { cameras: Camera[]; background: Rgb; extent: number; azimuths: number[] } {
  if (kind === 'validator') {
    const all = validatorCameras(MAX_VIEWS, size);
    const picked = Array.from({ length: count }, (_, i) => Math.floor((i * MAX_VIEWS) / count));
    return {
      cameras: picked.map((i) => all[i]),
      background: WHITE,
      extent: VALIDATOR_EXTENT,
      azimuths: picked.map((i) => (360 * i) / (MAX_VIEWS - 1)),
    };
  }
  const render = deps.answers.presets.resolve().settings.render;
  const cameras = turntableCameras(
    { frames: count, elevations: render.elevations, turns: render.turns, radius: render.radius, fov: render.fov },
    size,
    size,
  );
  return {
    cameras,
    background: parseBackground(render.background),
    extent: render.extent,
    azimuths: cameras.map((_, i) => (360 * render.turns * i) / count),
  };
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('base64');
}

function base64Chars(bytes: number): number {
  return Math.ceil(bytes / 3) * 4 + 1024;
}
