/** The OpenAPI 3.1 document of the job API, generated from the zod schemas the handlers use. */
import { z } from 'zod';
import { SPZ_VERSIONS, TEXTURE_FORMATS } from '../contract/game-options.js';
import { ALL_FORMAT_NAMES, CONTENT_TYPES } from '../formats/registry.js';
import { GLB_COMPRESSIONS } from '../mesh/glb-variants.js';
import { PIVOTS } from '../mesh/placement.js';
import { VERSION } from '../version.js';
import { Artefact, ErrorBody, JobBody, JobCreated, JobEventBody, JobList, JobRequest, PresetBody, PresetList, Report } from './schemas.js';

/** The shapes answers have, each a component; those used inside others are referenced, not repeated. */
const schemas = {
  JobCreated,
  Job: JobBody,
  JobList,
  Artefact,
  Report,
  Preset: PresetBody,
  PresetList,
  JobEvent: JobEventBody,
  Error: ErrorBody,
};
type SchemaName = keyof typeof schemas | 'JobRequest';

const ref = (name: SchemaName) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: SchemaName) => ({ 'application/json': { schema: ref(name) } });
const binary = { schema: { type: 'string', format: 'binary' } };
const retryAfter = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } };
const error = (description: string, headers?: Record<string, unknown>) => ({
  description,
  ...(headers && { headers }),
  content: json('Error'),
});
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

/** The components: the request as a client sends it, the answers as the service writes them. */
function componentSchemas(): Record<string, unknown> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of Object.entries(schemas)) registry.add(schema, { id });
  const uri = (id: string) => `#/components/schemas/${id}`;
  const answers = z.toJSONSchema(registry, { io: 'output', unrepresentable: 'any', uri }).schemas;
  const request = z.toJSONSchema(JobRequest, { io: 'input', unrepresentable: 'any' });
  // JSON Schema 2020-12 is OpenAPI 3.1's dialect; a component needs no $schema or $id of its own.
  const bare = ({ $schema: _, $id: __, ...body }: Record<string, unknown>) => body;
  return {
    JobRequest: bare(request as Record<string, unknown>),
    ...Object.fromEntries(Object.entries(answers).map(([name, body]) => [name, bare(body as Record<string, unknown>)])),
  };
}

/** The content types artefacts are downloaded with, and the kinds of each. */
function artefactContent(): Record<string, { schema: unknown }> {
  return Object.fromEntries([...new Set(Object.values(CONTENT_TYPES))].map((type) => [type, binary]));
}

function artefactTypes(): string {
  const kinds = new Map<string, string[]>();
  for (const [kind, type] of Object.entries(CONTENT_TYPES)) kinds.set(type, [...(kinds.get(type) ?? []), kind]);
  return [...kinds].map(([type, names]) => `${names.join(', ')}: ${type}`).join('; ');
}

/** The document for a service whose job API lives under `base`. */
export function openApiDocument(base = '/api/v1', auth = false): Record<string, unknown> {
  // With auth on, every operation but the document's own needs the token: generated clients then send it.
  const security = auth ? [{ bearer: [] }] : undefined;
  const operation = (id: string, body: Record<string, unknown> & { responses: Record<string, unknown> }) => ({
    operationId: id,
    ...body,
    ...(security && { security }),
    responses: auth ? withAuth(body.responses) : body.responses,
  });
  const multipart = {
    schema: {
      type: 'object',
      description: 'The JSON body\'s fields as form fields; "image" is a file part; "outputs" repeated or comma-separated.',
      properties: {
        prompt: { type: 'string' },
        image: { type: 'string', contentMediaType: 'application/octet-stream' },
        seed: { type: 'integer' },
        preset: { type: 'string' },
        outputs: { type: 'array', items: { type: 'string' } },
        videoSize: { type: 'integer' },
        viewSize: { type: 'integer' },
        group: { type: 'string' },
        webhook: { type: 'string' },
        faces: { type: 'integer' },
        textureSize: { type: 'integer' },
        pivot: { type: 'string', enum: [...PIVOTS] },
        sizeM: { type: 'number' },
        lods: { type: 'string', description: 'Comma-separated fractions, such as 1,0.5,0.25,0.1.' },
        compression: { type: 'string', enum: [...GLB_COMPRESSIONS] },
        textureFormat: { type: 'string', enum: [...TEXTURE_FORMATS] },
        spzVersion: { type: 'integer', enum: [...SPZ_VERSIONS] },
        progressive: { type: 'boolean' },
      },
    },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'fast3d job API',
      version: VERSION,
      description: 'Submit, follow, cancel and download generation jobs. Jobs run in the interactive priority class.',
    },
    servers: [{ url: base }],
    ...(security && { security }),
    components: { schemas: componentSchemas(), securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths: {
      '/jobs': {
        post: operation('createJob', {
          summary: 'Start a job',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              description:
                'Makes a retry safe: the same key with the same body gives the same job (202, Idempotent-Replayed: true); with another body, 409. A key lasts as long as its job is kept.',
              schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
            },
          ],
          requestBody: { required: true, content: { ...json('JobRequest'), 'multipart/form-data': multipart } },
          responses: {
            '202': {
              description: 'Admitted; follow it by its links.',
              headers: {
                Location: { description: "The job's URL.", required: true, schema: { type: 'string' } },
                'Idempotent-Replayed': {
                  description: 'The job an earlier request with this Idempotency-Key and body made.',
                  schema: { type: 'string', enum: ['true'] },
                },
              },
              content: json('JobCreated'),
            },
            '400': error(
              'Invalid request, unknown preset, an image that does not decode, a refused webhook URL, or a malformed Idempotency-Key.',
            ),
            '404': error("The Idempotency-Key's job is forgotten (jobs.retention_s, jobs.keep)."),
            '409': error('The Idempotency-Key was used for another request.'),
            '413': error('Body larger than the configured limit.'),
            '415': error('Neither JSON nor a form.'),
            '503': error('Busy, not ready or shutting down.', retryAfter),
          },
        }),
        get: operation('listJobs', {
          summary: 'Recent jobs, newest first',
          parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 50 } }],
          responses: { '200': { description: 'The jobs', content: json('JobList') }, '400': error('Bad limit.') },
        }),
      },
      '/jobs/{id}': {
        parameters: [idParam],
        get: operation('getJob', {
          summary: 'A job: state, stage, timings, report, links',
          responses: { '200': { description: 'The job', content: json('Job') }, '404': error('No such job (or forgotten).') },
        }),
        delete: operation('cancelJob', {
          summary: 'Cancel a job',
          responses: {
            '202': { description: 'Cancelling; the events end with state "cancelled".', content: json('JobCreated') },
            '404': error('No such job.'),
            '409': error(
              "The job has already ended, or is a generate route's job (contract or background class), which the job API does not cancel.",
            ),
          },
        }),
      },
      '/jobs/{id}/events': {
        parameters: [
          idParam,
          {
            name: 'Last-Event-ID',
            in: 'header',
            schema: { type: 'string' },
            description: 'Resume after this event id (EventSource sends it when reconnecting).',
          },
          {
            name: 'after',
            in: 'query',
            schema: { type: 'integer', minimum: 0 },
            description: 'Resume after this event id, for clients that cannot set Last-Event-ID (the header wins).',
          },
        ],
        get: operation('getJobEvents', {
          summary: 'The job\'s events as server-sent events: those so far, then live ones, ending after "end"',
          responses: {
            '200': {
              description: 'An event stream; each data line is a JobEvent.',
              content: { 'text/event-stream': { schema: ref('JobEvent') } },
            },
            '400': error('Last-Event-ID or after is not an event id (a decimal integer from 0).'),
            '404': error('No such job.'),
          },
        }),
      },
      '/jobs/{id}/artifacts/{name}': {
        parameters: [
          idParam,
          {
            name: 'name',
            in: 'path',
            required: true,
            description: "An artefact kind, or draft_<kind> for a progressive job's draft (draft_spz, draft_ply, draft_glb).",
            schema: { type: 'string', pattern: `^(draft_)?(${ALL_FORMAT_NAMES.join('|')})$` },
          },
        ],
        get: operation('getJobArtifact', {
          summary: 'An artefact, with its content type',
          responses: {
            '200': {
              description: `The bytes, as a download, with its kind's content type (${artefactTypes()}); a GLB says its triangles in X-Fast3d-Triangles.`,
              headers: {
                'Content-Disposition': { description: 'attachment, with a file name.', required: true, schema: { type: 'string' } },
                'X-Fast3d-Triangles': { description: "A GLB's triangles.", schema: { type: 'integer' } },
              },
              content: artefactContent(),
            },
            '404': error('No such job or artefact (yet).'),
            '410': error('No longer held.'),
          },
        }),
      },
      '/jobs/{id}/intermediates/{name}': {
        parameters: [idParam, { name: 'name', in: 'path', required: true, schema: { type: 'string', enum: ['image', 'matte'] } }],
        get: operation('getJobIntermediate', {
          summary: 'The generated picture or the matte, as PNG, as soon as it exists',
          responses: { '200': { description: 'The picture', content: { 'image/png': binary } }, '404': error('Not made (yet).') },
        }),
      },
      '/presets': {
        get: operation('listPresets', {
          summary: 'The presets a job may name',
          responses: { '200': { description: 'Preset names', content: json('PresetList') } },
        }),
      },
      '/openapi.json': {
        get: {
          operationId: 'getOpenApiDocument',
          summary: 'This document',
          // Open with auth on too: it tells clients how to send the token.
          security: [],
          responses: { '200': { description: 'OpenAPI 3.1', content: { 'application/json': { schema: { type: 'object' } } } } },
        },
      },
    },
  };
}

/** What auth adds to an operation's answers: 401 without the right token, 400 for another scheme. */
function withAuth(responses: Record<string, unknown>): Record<string, unknown> {
  const malformed = 'a malformed Authorization header (not "Bearer <token>")';
  const challenge = { 'WWW-Authenticate': { description: 'Bearer, with the error.', schema: { type: 'string' } } };
  const own = responses['400'] as { description: string; headers?: Record<string, unknown> } | undefined;
  return {
    ...responses,
    '400': own
      ? { ...own, description: `${own.description.replace(/\.$/, '')}; or ${malformed}.`, headers: { ...own.headers, ...challenge } }
      : error(`${malformed[0].toUpperCase()}${malformed.slice(1)}.`, challenge),
    '401': error('Auth is on and the bearer token is missing or wrong.', challenge),
  };
}
