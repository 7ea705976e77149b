/** The OpenAPI 3.1 document of the job API, generated from the zod schemas the handlers use. */
import { z } from 'zod';
import { SPZ_VERSIONS, TEXTURE_FORMATS } from '../contract/game-options.js';
import { ALL_FORMAT_NAMES } from '../formats/registry.js';
import { GLB_COMPRESSIONS } from '../mesh/glb-variants.js';
import { PIVOTS } from '../mesh/placement.js';
import { VERSION } from '../version.js';
import { ErrorBody, JobBody, JobCreated, JobEventBody, JobList, JobRequest, PresetList } from './schemas.js';

const schemas = { JobRequest, JobCreated, Job: JobBody, JobList, PresetList, JobEvent: JobEventBody, Error: ErrorBody };

const ref = (name: keyof typeof schemas) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: keyof typeof schemas) => ({ 'application/json': { schema: ref(name) } });
const error = (description: string) => ({ description, content: json('Error') });
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };

/** The document for a service whose job API lives under `base`. */
export function openApiDocument(base = '/api/v1', auth = false): Record<string, unknown> {
  const security = auth ? [{ bearer: [] }] : undefined;
  const common = { '401': error('Auth is on and the bearer token is missing or wrong.') };
  const components: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(schemas)) {
    // JSON Schema 2020-12 is OpenAPI 3.1's dialect; drop the per-schema $schema key.
    const { $schema: _, ...body } = z.toJSONSchema(schema, {
      io: name === 'JobRequest' ? 'input' : 'output',
      unrepresentable: 'any',
    }) as Record<string, unknown>;
    components[name] = body;
  }
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
    ...(security ? { security } : {}),
    components: { schemas: components, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    paths: {
      '/jobs': {
        post: {
          summary: 'Start a job',
          requestBody: { required: true, content: { ...json('JobRequest'), 'multipart/form-data': multipart } },
          responses: {
            '202': {
              description: 'Admitted; follow it by its links.',
              headers: { Location: { schema: { type: 'string' } } },
              content: json('JobCreated'),
            },
            '400': error('Invalid request, unknown preset, or an image that does not decode.'),
            '413': error('Body larger than the configured limit.'),
            '415': error('Neither JSON nor a form.'),
            '503': error('Busy, not ready or shutting down (Retry-After says when to retry).'),
            ...common,
          },
        },
        get: {
          summary: 'Recent jobs, newest first',
          parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100, default: 50 } }],
          responses: { '200': { description: 'The jobs', content: json('JobList') }, '400': error('Bad limit.'), ...common },
        },
      },
      '/jobs/{id}': {
        parameters: [idParam],
        get: {
          summary: 'A job: state, stage, timings, report, links',
          responses: { '200': { description: 'The job', content: json('Job') }, '404': error('No such job (or forgotten).'), ...common },
        },
        delete: {
          summary: 'Cancel a job',
          responses: {
            '202': { description: 'Cancelling; the events end with state "cancelled".', content: json('JobCreated') },
            '404': error('No such job.'),
            '409': error(
              "The job has already ended, or is a generate route's job (contract or background class), which the job API does not cancel.",
            ),
            ...common,
          },
        },
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
        ],
        get: {
          summary: 'The job\'s events as server-sent events: those so far, then live ones, ending after "end"',
          responses: {
            '200': {
              description: 'An event stream; each data line is a JobEvent.',
              content: { 'text/event-stream': { schema: ref('JobEvent') } },
            },
            '404': error('No such job.'),
            ...common,
          },
        },
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
        get: {
          summary: 'An artefact, with its content type',
          responses: {
            '200': {
              description:
                'The bytes (application/octet-stream, application/x-spz, model/gltf-binary, application/zip, video/mp4, image/png); a GLB says its triangles in X-Fast3d-Triangles.',
            },
            '404': error('No such job or artefact (yet).'),
            '410': error('No longer held.'),
            ...common,
          },
        },
      },
      '/jobs/{id}/intermediates/{name}': {
        parameters: [idParam, { name: 'name', in: 'path', required: true, schema: { type: 'string', enum: ['image', 'matte'] } }],
        get: {
          summary: 'The generated picture or the matte, as PNG, as soon as it exists',
          responses: { '200': { description: 'image/png' }, '404': error('Not made (yet).'), ...common },
        },
      },
      '/presets': {
        get: {
          summary: 'The presets a job may name',
          responses: { '200': { description: 'Preset names', content: json('PresetList') }, ...common },
        },
      },
      '/openapi.json': { get: { summary: 'This document', security: [], responses: { '200': { description: 'OpenAPI 3.1' } } } },
    },
  };
}
