/**
 * What a request may ask of its files beyond their kind: the mesh's faces, texture side, pivot, size and levels
 * of detail, the GLB's compression and texture format, the SPZ version, and a draft first. One set of names per
 * transport: the generate routes' form fields in snake_case (`texture_size`, `size_m`, `lods` comma-separated),
 * the job API's JSON and MCP's arguments in camelCase (`textureSize`, `sizeM`, `lods` a list), with the zod
 * shapes both share. Here only their syntax is read; the request builder says whether they can be met.
 */
import { z } from 'zod';
import { MAX_TEXTURE_SIZE, MIN_TEXTURE_SIZE } from '../mesh/bake.js';
import { MIN_FACES } from '../mesh/game.js';
import type { GlbTextureFormat } from '../mesh/glb.js';
import { GLB_COMPRESSIONS, type GlbCompression } from '../mesh/glb-variants.js';
import { MAX_LODS } from '../mesh/lod.js';
import { MAX_SIZE_M, MIN_SIZE_M, PIVOTS, type Pivot } from '../mesh/placement.js';
import { SPZ_WRITE_VERSIONS, type SpzVersion } from '../splat/spz.js';
import { HttpError } from './errors.js';
import { decimalInteger, single, type FormFields } from './request.js';

export const TEXTURE_FORMATS = ['png', 'webp'] as const;
/** The SPZ versions a request may ask for. */
export const SPZ_VERSIONS = SPZ_WRITE_VERSIONS;

/** The options, as every surface hands them to the request builder (names of the JSON transports). */
export interface GameOptions {
  /** Target triangles of the mesh's top level. */
  faces?: number;
  /** Side of the mesh's texture in pixels. */
  textureSize?: number;
  pivot?: Pivot;
  /** Largest side of the mesh in metres. */
  sizeM?: number;
  /** Fractions of the top level's triangles, 1 first: one GLB per level. */
  lods?: number[];
  compression?: GlbCompression;
  textureFormat?: GlbTextureFormat;
  spzVersion?: SpzVersion;
  /** A draft from the realtime preset first, then the final (the job API and MCP; the generate routes ignore it). */
  progressive?: boolean;
}

export const GAME_OPTION_NAMES = [
  'faces',
  'textureSize',
  'pivot',
  'sizeM',
  'lods',
  'compression',
  'textureFormat',
  'spzVersion',
  'progressive',
] as const satisfies readonly (keyof GameOptions)[];
export type GameOptionName = (typeof GAME_OPTION_NAMES)[number];

/** Each option's form field. */
export const FORM_NAMES: Record<GameOptionName, string> = {
  faces: 'faces',
  textureSize: 'texture_size',
  pivot: 'pivot',
  sizeM: 'size_m',
  lods: 'lods',
  compression: 'compression',
  textureFormat: 'texture_format',
  spzVersion: 'spz_version',
  progressive: 'progressive',
};

/**
 * The options as zod shapes, for the job API's request schema (and so its OpenAPI document) and MCP's tool
 * arguments. Ranges a preset decides (the most faces) are the builder's to check.
 */
export const gameOptionShapes = {
  faces: z
    .number()
    .int()
    .min(MIN_FACES)
    .optional()
    .describe(
      `Target triangle count of the mesh (glb, its LODs, obj), from ${MIN_FACES} to the preset's max_faces: simplified with meshoptimizer, UV seams and colours kept; the count reached is each GLB artefact's "triangles".`,
    ),
  textureSize: z
    .number()
    .int()
    .min(MIN_TEXTURE_SIZE)
    .max(MAX_TEXTURE_SIZE)
    .optional()
    .describe(
      `Side of the mesh's texture in pixels, ${MIN_TEXTURE_SIZE} to ${MAX_TEXTURE_SIZE}: vertex colours are baked into one, a texture is scaled to it.`,
    ),
  pivot: z
    .enum(PIVOTS)
    .optional()
    .describe('Where the mesh\'s origin is: "center" (default, the unit cube\'s) or "bottom" (its bottom centre, as engines place props).'),
  sizeM: z
    .number()
    .min(MIN_SIZE_M)
    .max(MAX_SIZE_M)
    .optional()
    .describe('Largest side of the mesh in metres (default 1, the unit cube), on the vertices themselves (no node transform).'),
  lods: z
    .array(z.number().gt(0).max(1))
    .min(1)
    .max(MAX_LODS)
    .optional()
    .describe(
      `Levels of detail as fractions of the top level's triangles, 1 first, then decreasing (for example [1, 0.5, 0.25, 0.1]; at most ${MAX_LODS}): one GLB per level, artefacts glb, glb_lod1, glb_lod2, ... (needs glb in the outputs).`,
    ),
  compression: z
    .enum(GLB_COMPRESSIONS)
    .optional()
    .describe(
      'The GLBs\' compression: "none" (default), "meshopt" (EXT_meshopt_compression, quantised) or "draco" (KHR_draco_mesh_compression).',
    ),
  textureFormat: z.enum(TEXTURE_FORMATS).optional().describe('The GLBs\' texture format: "png" (default) or "webp" (EXT_texture_webp).'),
  spzVersion: z
    .union(SPZ_WRITE_VERSIONS.map((v) => z.literal(v)) as [z.ZodLiteral<3>, z.ZodLiteral<4>])
    .optional()
    .describe("SPZ version of the spz artefact: 3 (default; Spark reads 1 to 3) or 4 (zstd; three.js's SPZLoader reads it)."),
  progressive: z
    .boolean()
    .optional()
    .describe(
      "A draft first: the realtime preset's asset arrives as artefacts marked draft (draft_spz, draft_ply, draft_glb), then the final from the requested preset.",
    ),
};

/**
 * The options of a generate route's form, by their snake_case fields: numbers as decimal digits (size_m and each
 * of lods may have a fraction), progressive as true/false (or 1/0, on/off). Values are checked by the builder.
 */
export function gameFormOptions(fields: FormFields): GameOptions {
  const text = (option: GameOptionName): string | undefined => {
    const name = FORM_NAMES[option];
    const value = single(fields, name);
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'string') throw new HttpError(400, `form field "${name}" must be text, not a file`);
    return value.trim();
  };
  const integer = (option: GameOptionName): number | undefined => {
    const value = text(option);
    if (value === undefined) return undefined;
    const n = decimalInteger(value);
    if (n === null) throw new HttpError(400, `form field "${FORM_NAMES[option]}" must be a whole number, got "${value.slice(0, 40)}"`);
    return n;
  };
  const options: GameOptions = {};
  const faces = integer('faces');
  if (faces !== undefined) options.faces = faces;
  const textureSize = integer('textureSize');
  if (textureSize !== undefined) options.textureSize = textureSize;
  const pivot = text('pivot');
  if (pivot !== undefined) options.pivot = pivot.toLowerCase() as Pivot;
  const sizeM = text('sizeM');
  if (sizeM !== undefined) options.sizeM = decimal(sizeM, 'size_m');
  const lods = text('lods');
  if (lods !== undefined) options.lods = lods.split(',').map((part) => decimal(part.trim(), 'lods'));
  const compression = text('compression');
  if (compression !== undefined) options.compression = compression.toLowerCase() as GlbCompression;
  const textureFormat = text('textureFormat');
  if (textureFormat !== undefined) options.textureFormat = textureFormat.toLowerCase() as GlbTextureFormat;
  const spzVersion = integer('spzVersion');
  if (spzVersion !== undefined) options.spzVersion = spzVersion as SpzVersion;
  const progressive = text('progressive');
  if (progressive !== undefined) options.progressive = flag(progressive);
  return options;
}

/** A decimal number as a person writes one (12, 1.8, 0.25, .5), or a 400 naming the field. */
function decimal(value: string, field: string): number {
  if (!/^(\d{1,9}(\.\d{0,9})?|\.\d{1,9})$/.test(value))
    throw new HttpError(
      400,
      `form field "${field}" must be a decimal number such as 1.8${field === 'lods' ? ' (lods: comma-separated, such as 1,0.5,0.25)' : ''}, got "${value.slice(0, 40)}"`,
    );
  return Number(value);
}

function flag(value: string): boolean {
  const lower = value.toLowerCase();
  if (['true', '1', 'on', 'yes'].includes(lower)) return true;
  if (['false', '0', 'off', 'no'].includes(lower)) return false;
  throw new HttpError(400, `form field "progressive" must be true or false, got "${value.slice(0, 40)}"`);
}

/** The options a request gave (any of them), by their names. */
export function givenOptions(options: GameOptions): GameOptionName[] {
  return GAME_OPTION_NAMES.filter((name) => options[name] !== undefined);
}
