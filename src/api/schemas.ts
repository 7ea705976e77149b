/**
 * The job API's shapes, as zod schemas: the handlers parse with them, and the OpenAPI document is generated
 * from the same objects (openapi.ts), so the two cannot disagree.
 */
import { z } from 'zod';
import { presetValuesSchema } from '../config/presets.js';
import { VIDEO_RES } from '../config/schema.js';
import { gameOptionShapes } from '../contract/game-options.js';
import { ALL_FORMAT_NAMES } from '../formats/registry.js';
import { STAGE_NAMES } from '../pipelines/context.js';
import { MAX_SEED } from '../pipelines/seed.js';
import { PRIORITIES } from '../runtime/admission.js';

/** What a job delivers when the request names no outputs: the viewer's SPZ, the PLY, the validator's views. */
export const DEFAULT_OUTPUTS = ['ply', 'spz', 'views'] as const;
export const VIEW_SIZE = { min: 64, max: 512, default: 256 };

export const OutputName = z
  .enum(ALL_FORMAT_NAMES)
  .describe(
    "An artefact kind: ply, spz (Spark loads SPZ v3), glb (a textured or vertex-coloured mesh; the job then renders and validates its mesh), mp4 (turntable video), views (PNG grid of the validator's 16 views), obj (a zip of OBJ, MTL and texture), glb_splat (the Gaussians as a KHR_gaussian_splatting GLB), glb_lod1..glb_lod7 (levels of detail: lods lists them, and delivers them all).",
  );

export const JobRequest = z
  .strictObject({
    prompt: z.string().min(1).optional().describe('Text prompt. Send either prompt or image.'),
    image: z
      .string()
      .min(1)
      .optional()
      .describe('A PNG, JPEG or WebP image as base64 or a data: URL (multipart bodies send a file part "image" instead).'),
    seed: z
      .number()
      .int()
      .min(0)
      .max(MAX_SEED)
      .optional()
      .describe('Seed of the first attempt; absent: derived from the prompt or image, so a repeated task gives the same asset.'),
    preset: z.string().min(1).max(64).optional().describe('Preset name (GET /api/v1/presets); absent: the default preset.'),
    outputs: z
      .array(OutputName)
      .min(1)
      .max(ALL_FORMAT_NAMES.length)
      .optional()
      .describe(`Artefacts to make; default ${DEFAULT_OUTPUTS.join(', ')} (mp4 only when asked: it costs CPU).`),
    videoSize: z
      .number()
      .int()
      .min(VIDEO_RES.min)
      .max(VIDEO_RES.max)
      .optional()
      .describe("Side of the mp4 in pixels (default: the preset's render.video_res, as on every route; odd sides are rounded down)."),
    viewSize: z
      .number()
      .int()
      .min(VIEW_SIZE.min)
      .max(VIEW_SIZE.max)
      .optional()
      .describe(`Side of each of the 16 views in pixels (default ${VIEW_SIZE.default}).`),
    group: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,64}$/, 'letters, digits and . _ : - only, at most 64')
      .optional()
      .describe(
        'A tag of your own for jobs that belong together (the studio gives the two jobs of an A/B comparison the same one); job views echo it.',
      ),
    webhook: z
      .string()
      .max(2048)
      .optional()
      .describe(
        "A URL (http or https, to a public address unless webhooks.allow_private) called with POST at the job's end: JSON with the job's state and artefact URLs, signed in X-Fast3d-Signature: sha256=<hex>, the HMAC-SHA256 of the raw body under the webhook secret; retried with backoff.",
      ),
    ...gameOptionShapes,
  })
  .describe(
    'A job: a prompt or an image, with optional seed, preset and outputs, and what to make of its mesh and splat files (docs/meshes.md). An option for none of the outputs, or one the preset cannot meet, is a 400 that says why.',
  );
export type JobRequest = z.infer<typeof JobRequest>;

export const ErrorBody = z.object({ error: z.string() }).describe('Every 4xx and 5xx answer.');

const Links = z.object({
  self: z.string(),
  events: z.string(),
  cancel: z
    .string()
    .nullable()
    .describe("DELETE it to cancel the job; null for a generate route's job (contract or background), which ends with its request."),
});

export const JobState = z.enum(['queued', 'running', 'done', 'declined', 'failed', 'cancelled']);

export const JobCreated = z.object({
  id: z.string(),
  state: z
    .enum([...JobState.options, 'cancelling'])
    .describe('The job\'s state when answered (a replayed Idempotency-Key\'s job may have ended); "cancelling" after DELETE.'),
  links: Links,
});

const IsoTime = z.iso.datetime();

const Check = z.object({ name: z.string(), value: z.number(), threshold: z.number(), passed: z.boolean(), by: z.string() });
const Attempt = z.object({
  seed: z.number(),
  checks: z.array(Check),
  gaussians: z.number(),
  dropped: z
    .number()
    .optional()
    .describe('Gaussians the budget (pipeline.max_gaussians) dropped from what image-to-3d made, or non-finite ones; absent when none.'),
  accepted: z.boolean(),
  reason: z.string().optional().describe('Why the attempt failed, when it did before or during validation.'),
});
export const PresetBody = z
  .object({
    name: z.string(),
    fingerprint: z.string().describe("The start of the settings' fingerprint, which the result cache keys on."),
    values: presetValuesSchema.describe('Every knob a preset may set, as this one resolved it (docs/presets.md).'),
  })
  .describe('A preset as a job runs it.');
export const Report = z.object({
  attempts: z.array(Attempt),
  timings: z.record(z.string(), z.number()).describe('Milliseconds per stage, summed over attempts.'),
  preview: z.boolean().describe('A stage ran a preview backend: such assets are not for mining.'),
  bestEffort: z
    .boolean()
    .optional()
    .describe('The asset failed self-validation and is returned anyway (the newer contract); absent otherwise.'),
  preset: PresetBody.optional().describe('The preset whose settings made it.'),
});

export const Artefact = z.object({
  name: z.string().describe("Its kind (glb, glb_lod1, ...), or draft_<kind> for a progressive job's draft."),
  contentType: z.string(),
  bytes: z.number(),
  triangles: z.number().optional().describe("A GLB's triangles: the count faces (or its LOD level) reached; absent for other kinds."),
  draft: z
    .literal(true)
    .optional()
    .describe("A progressive job's draft, made with the realtime preset before the final; absent otherwise."),
  expiresAt: IsoTime.nullable().describe(
    'When the job, and with it this link, is forgotten (jobs.retention_s after its end); null while it runs.',
  ),
  url: z.string(),
});

export const JobBody = z
  .object({
    id: z.string(),
    title: z.string().describe("The prompt's first words; for an image, its file name (multipart) or its size."),
    task: z.enum(['text', 'image']),
    group: z.string().nullable().describe("The request's group tag, if it had one."),
    seed: z.number(),
    priority: z.enum(PRIORITIES).describe("Its priority class: the job API's and MCP's jobs are interactive."),
    preset: PresetBody.nullable().describe('The preset the job runs with; null until a node takes it up (in a cluster).'),
    state: JobState,
    stage: z.enum(STAGE_NAMES).nullable().describe('The stage running now.'),
    createdAt: z.number().describe('Milliseconds since the epoch.'),
    timings: z.object({ queuedMs: z.number().nullable(), runMs: z.number().nullable(), stages: z.record(z.string(), z.number()) }),
    report: Report.nullable(),
    reason: z.string().nullable().describe('Why the job was declined.'),
    error: z.string().nullable().describe('Why the job failed or was cancelled.'),
    artefacts: z.array(Artefact),
    intermediates: z
      .array(
        z.object({ name: z.enum(['image', 'matte', 'cloud']), url: z.string().nullable().describe('null for the cloud (not served).') }),
      )
      .describe("The picture (`image`: generated, or an image task's own image) and the `matte`; a cache hit has those the cache kept."),
    cached: z
      .boolean()
      .describe('The answer came from the result cache (a remembered asset, or a remembered decline with no report): no stage ran.'),
    node: z.string().nullable().describe('The node that ran the job, in a cluster; null on a single node, and before a node takes it.'),
    queuePosition: z
      .number()
      .int()
      .min(1)
      .nullable()
      .describe('While the job waits: its place in line, from 1 (jobs of higher classes go first); null otherwise, and in lists.'),
    estimatedStartAt: IsoTime.nullable().describe(
      "While the job waits: when it likely starts, from recent jobs' times; null while unknown.",
    ),
    links: Links,
  })
  .describe(
    "A job. Fields every job has are always present, null while they have no value; facts only some artefacts, attempts or events have (a GLB's triangles, a draft's mark) are absent from the others.",
  );

export const JobList = z.object({ jobs: z.array(JobBody) });

export const PresetList = z.object({ presets: z.array(z.object({ name: z.string(), default: z.boolean() })), default: z.string() });

const at = { at: z.number().describe('Milliseconds since the job was created.') };
export const JobEventBody = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('queued'), ...at }),
    z
      .object({
        type: z.literal('position'),
        position: z.number().int().min(1).describe('Its place in line, from 1.'),
        estimatedStartAt: IsoTime.nullable().describe('When it likely starts; null while unknown.'),
        ...at,
      })
      .describe('The job waits in line.'),
    z.object({ type: z.literal('running'), ...at }),
    z.object({
      type: z.literal('stage'),
      phase: z.enum(['start', 'end']),
      stage: z.enum(STAGE_NAMES),
      attempt: z.number().int(),
      ms: z.number().optional().describe("The stage's time, on its end."),
      ...at,
    }),
    z.object({
      type: z.literal('intermediate'),
      name: z.enum(['image', 'matte', 'cloud']),
      attempt: z.number().int(),
      url: z.string().nullable().describe('null for the cloud (not served).'),
      ...at,
    }),
    z.object({
      type: z.literal('artefact'),
      name: z.string(),
      contentType: z.string(),
      bytes: z.number(),
      triangles: z.number().optional().describe("A GLB's triangles."),
      draft: z
        .literal(true)
        .optional()
        .describe("A progressive job's draft (named draft_<kind>); every one comes before the final's first artefact."),
      url: z.string(),
      ...at,
    }),
    z.object({
      type: z.literal('end'),
      state: z.enum(['done', 'declined', 'failed', 'cancelled']),
      reason: z.string().optional().describe('Why it was declined.'),
      error: z.string().optional().describe('Why it failed or was cancelled.'),
      job: z.string().describe("The job's URL, to read how it ended."),
      ...at,
    }),
  ])
  .describe(
    "One server-sent event: its SSE `event` field is `type`, its `id` the event's index. queued; position (its place in line and likely start, while it waits); running; stage start/end with `stage`, `attempt`, `ms`; intermediate with `name` and `url`; artefact with `name`, `bytes`, `url`, a GLB's `triangles`, and `draft: true` for a progressive job's draft (named draft_<kind>, before any of the final's); end with `state` and `reason` or `error`.",
  );
