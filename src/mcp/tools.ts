/**
 * The MCP tools fast3d offers, in one place: name, title, description and zod input schema of each. The
 * service's /mcp endpoint (server.ts) runs them in-process; `fast3d mcp` (proxy.ts) offers the same
 * definitions over stdio and forwards each call to a running service's /mcp.
 */
import { z } from 'zod';
import { VIDEO_RES } from '../config/schema.js';
import { gameOptionShapes } from '../contract/game-options.js';
import { ALL_FORMAT_NAMES, LOD_FORMAT_NAMES } from '../formats/registry.js';
import { MAX_SEED } from '../pipelines/seed.js';

/**
 * Resources: one per artefact of a job, `fast3d://jobs/{job_id}/{artefact}` (artefact: ply, spz, glb, glb_lod1, ...,
 * obj, glb_splat, mp4, views, and draft_<kind> for a progressive job's draft).
 */
export const ARTEFACT_URI_TEMPLATE = 'fast3d://jobs/{job_id}/{artefact}';

export function artefactUri(jobId: string, artefact: string): string {
  return `fast3d://jobs/${encodeURIComponent(jobId)}/${encodeURIComponent(artefact)}`;
}

/** The job id and artefact name of an artefact URI, or null when it is not one. */
export function parseArtefactUri(uri: string): { jobId: string; artefact: string } | null {
  const m = /^fast3d:\/\/jobs\/([^/]+)\/([^/]+)$/.exec(uri);
  if (!m) return null;
  try {
    return { jobId: decodeURIComponent(m[1]), artefact: decodeURIComponent(m[2]) };
  } catch {
    return null;
  }
}

export const MAX_VIEWS = 16;
export const MIN_VIEW_SIZE = 32;
export const MAX_VIEW_SIZE = 1024;

/** The artefacts that hold an asset's geometry: splats (ply, spz) or a mesh (glb, its LODs), and a draft's. */
export const GEOMETRY_ARTEFACTS = ['ply', 'spz', 'glb', ...LOD_FORMAT_NAMES, 'draft_ply', 'draft_spz', 'draft_glb'] as const;

/** The file format of a geometry artefact (a LOD is a GLB, a draft is its kind's), or null for another artefact. */
export function geometryFormat(artefact: string): 'ply' | 'spz' | 'glb' | null {
  if (!(GEOMETRY_ARTEFACTS as readonly string[]).includes(artefact)) return null;
  const kind = artefact.replace(/^draft_/, '');
  return kind.startsWith('glb') ? 'glb' : (kind as 'ply' | 'spz');
}

/** Where a tool finds an asset: a job's artefact, an artefact URI, or the file's bytes themselves. */
const assetSource = {
  job_id: z
    .string()
    .min(1)
    .optional()
    .describe('A job id (from generate_3d_asset or list_recent_assets): its PLY (or the artefact named by "artefact").'),
  artefact: z
    .enum(GEOMETRY_ARTEFACTS)
    .optional()
    .describe(
      "With job_id: which geometry artefact to use (default ply; glb is the mesh of a job that asked for one, glb_lod1... its LODs, draft_<kind> a progressive job's draft).",
    ),
  uri: z.string().min(1).optional().describe('An artefact resource URI, fast3d://jobs/{job_id}/{artefact}.'),
  ply_base64: z
    .string()
    .min(1)
    .optional()
    .describe("A PLY file as base64, for an asset that is not a job of this service (within the service's body limit)."),
  glb_base64: z
    .string()
    .min(1)
    .optional()
    .describe("A GLB file as base64, for a mesh that is not a job of this service (within the service's body limit)."),
};

export const TOOLS = {
  generate_3d_asset: {
    title: 'Generate a 3D asset',
    description:
      'Generates a 3D Gaussian-splat asset from a text prompt or from an image (base64 PNG, JPEG or WebP with one object on a plain ' +
      'background). Reports progress while the job runs (queued, each stage, each artefact). Returns the job id, a resource link per ' +
      "artefact (fast3d://jobs/{job_id}/{artefact}; read them with resources/read) and a PNG of the asset's front view. The PLY is " +
      'always delivered; ask for more formats with "formats". For game engines: "faces", "textureSize", "pivot", "sizeM", ' +
      '"compression" and "textureFormat" shape the mesh files, "lods" delivers one GLB per level (glb, glb_lod1, ...), "spzVersion" ' +
      'picks the SPZ version. "progressive": a quick draft first (draft_spz, draft_glb), its URI in a progress notification. ' +
      'A prompt the service cannot make a good asset of is declined: the tool error says why.',
    inputSchema: {
      prompt: z.string().min(1).optional().describe('What to make, in words (e.g. "a wooden treasure chest"). Give this or image_base64.'),
      image_base64: z.string().min(1).optional().describe('An image of one object as base64 (a data: URL works too). Give this or prompt.'),
      preset: z.string().min(1).optional().describe("Named settings to run with (default: the service's default preset)."),
      seed: z
        .number()
        .int()
        .min(0)
        .max(MAX_SEED)
        .optional()
        .describe('Seed of the first attempt; by default derived from the prompt or image, so a repeated request gives the same asset.'),
      formats: z
        .array(z.enum(ALL_FORMAT_NAMES))
        .max(ALL_FORMAT_NAMES.length)
        .optional()
        .describe(
          'Artefacts to deliver besides the PLY: "spz" (compressed splats), "glb" (a mesh for game engines; the video and views then show the mesh), "glb_lod1".."glb_lod7" (levels of detail; "lods" delivers them all), "obj" (a zip of OBJ, MTL and texture), "glb_splat" (the splats as a KHR_gaussian_splatting GLB), "mp4" (turntable video), "views" (a PNG grid of the validator\'s 16 views).',
        ),
      size: z
        .number()
        .int()
        .min(VIDEO_RES.min)
        .max(VIDEO_RES.max)
        .optional()
        .describe('Side in pixels of the mp4 video (default: the service\'s video side) and of each view in "views" (default 256).'),
      ...gameOptionShapes,
    },
  },
  get_job: {
    title: 'Get a job',
    description:
      'The state of a job (queued, running with its stage, done, declined, failed, cancelled), while it waits its place in line and likely start, the node that ran it (in a cluster), its timings, report (attempts, checks, timings) and artefacts with their resource URIs and when they expire.',
    inputSchema: {
      job_id: z.string().min(1).describe('The job id.'),
    },
  },
  list_recent_assets: {
    title: 'List recent assets',
    description:
      'The most recent finished assets this service made (newest first), each with its job id, what was asked, and a resource link per artefact.',
    inputSchema: {
      limit: z.number().int().min(1).max(100).optional().describe('How many assets at most (default 10).'),
    },
  },
  render_views: {
    title: 'Render views of an asset',
    description:
      'Renders PNG views of an asset on the CPU: "validator" uses the subnet validator\'s cameras (its 16 azimuths, elevation, ' +
      'radius and field of view, white background; "count" picks that many evenly spaced among them), "turntable" uses the ' +
      'service\'s turntable path (its elevations, radius, field of view and background, "count" frames). Splats (ply, spz) and meshes (glb) ' +
      'are seen by the same cameras. Give one of job_id, uri, ply_base64 or glb_base64.',
    inputSchema: {
      ...assetSource,
      cameras: z.enum(['validator', 'turntable']).optional().describe('Which cameras (default validator).'),
      count: z.number().int().min(1).max(MAX_VIEWS).optional().describe('How many views (default 4).'),
      size: z.number().int().min(MIN_VIEW_SIZE).max(MAX_VIEW_SIZE).optional().describe('Side of each view in pixels (default 256).'),
    },
  },
  check_asset: {
    title: 'Check an asset',
    description:
      "Would the subnet accept this asset? A PLY gets the miner's packer rules (header, properties, body size, finite values) and the " +
      "validator's structural gates (Gaussian count, share of transparent Gaussians); a GLB gets the Khronos glTF validator and the mesh " +
      "competition's rules (one mesh, centred, inside the unit cube, size limit). Reports each verdict. Give one of job_id, uri, ply_base64 or glb_base64.",
    inputSchema: {
      job_id: assetSource.job_id,
      artefact: z
        .enum(GEOMETRY_ARTEFACTS.filter((a) => geometryFormat(a) !== 'spz') as [string, ...string[]])
        .optional()
        .describe("With job_id: which file to check (default ply; a GLB, a LOD or a draft's PLY or GLB too)."),
      uri: assetSource.uri,
      ply_base64: assetSource.ply_base64,
      glb_base64: assetSource.glb_base64,
    },
  },
} as const;

export type ToolName = keyof typeof TOOLS;
export const TOOL_NAMES = Object.keys(TOOLS) as ToolName[];
