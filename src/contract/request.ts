/**
 * The generate routes' forms and the rules of their fields (prompt, image, seed, format, preset, video_res,
 * the priority header), and the limits every surface's prompts and images are held to.
 */
import { createHash } from 'node:crypto';
import { VIDEO_RES } from '../config/schema.js';
import { decodeImage, ImageDecodeError, imageSize, sniffImageFormat } from '../image/codec.js';
import { MAGIC_BYTES, unsupportedImageFormat } from '../image/magic.js';
import type { Delivery, Task } from '../pipelines/job.js';
import { MAX_SEED } from '../pipelines/seed.js';
import type { RequestFields } from './build.js';
import { HttpError } from './errors.js';
import { gameFormOptions } from './game-options.js';
import { overLongPrompt, refusedImage, sniffPrompt } from './prompt.js';

export interface RequestLimits {
  maxPromptChars: number;
  maxImagePixels: number;
  minImageSide: number;
  /** How answers to the newer contract (prompt_image_file) are delivered. */
  imageFileDelivery: Delivery;
  /**
   * Takes a decoded image's bytes from the service's memory budget before it is decoded (throws when the budget
   * is full); returns the function that gives them back. Absent: no bound.
   */
  reserveImage?: (bytes: number) => () => void;
  /** The preset of the newer contract's requests that name none (absent: the service's default). */
  imageFilePreset?: string;
  /** What the newer contract's requests without a `format` field get: a splat PLY, or a GLB mesh (absent: PLY). */
  imageFileOutput?: GeometryFormatName;
}

/** The `format` field's values: the geometry formats an answer can be in. */
export const GEOMETRY_FORMATS = ['ply', 'spz', 'glb'] as const;
export type GeometryFormatName = (typeof GEOMETRY_FORMATS)[number];

export type FormValue = string | File;
export type FormFields = Record<string, FormValue | FormValue[]>;

/** A generate route's form, parsed: the fields the request builder takes, and what the route decides from. */
export interface GenerateForm {
  /** For buildAnswerRequest, less what the route decides (priority, outputs). */
  request: Omit<RequestFields, 'priority' | 'outputs'>;
  /**
   * The `format` field, else the newer contract's configured output, else PLY. Generate routes answer in it;
   * the video route renders the mesh when it is GLB.
   */
  format: GeometryFormatName;
  /** The form, for route-specific fields such as video_res. */
  fields: FormFields;
}

const FORM_TYPES = ['application/x-www-form-urlencoded', 'multipart/form-data'];

/** The media type of a Content-Type header, without parameters, lower-cased ('' when absent). */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0].trim().toLowerCase();
}

/** 415 unless the body is a form. */
export function assertFormContentType(contentType: string | undefined): void {
  const type = mediaType(contentType);
  if (!FORM_TYPES.includes(type)) {
    throw new HttpError(
      415,
      `Content-Type must be application/x-www-form-urlencoded or multipart/form-data, got ${type ? `"${type}"` : 'none'}`,
    );
  }
}

/**
 * A generate route's form: the legacy contract (`prompt`: text or a base64 image, urlencoded or multipart) or
 * the newer one (multipart `prompt_image_file` plus `seed`). Nothing is decoded here: a bad seed or format costs
 * nothing, and the builder decodes the image. The game options (`faces`, `texture_size`, `pivot`, `size_m`,
 * `compression`, `texture_format`, `spz_version`) are read for the builder, which takes them with a prompt and
 * refuses them with the competitions' `prompt_image_file`; `lods` is refused (a generate route answers one file)
 * and `progressive` ignored (the answer is the final file, whenever it comes).
 */
export async function parseGenerateForm(fields: FormFields, limits: Pick<RequestLimits, 'imageFileOutput'>): Promise<GenerateForm> {
  const prompt = single(fields, 'prompt');
  const file = single(fields, 'prompt_image_file');
  const seed = parseSeed(single(fields, 'seed'));
  const format = formatField(fields);
  const preset = presetField(fields);
  const { progressive: _ignored, ...options } = gameFormOptions(fields);
  if (options.lods !== undefined)
    throw new HttpError(
      400,
      'lods delivers one GLB per level, and a generate route answers one file: ask /api/v1/jobs for levels of detail',
    );

  const promptText = typeof prompt === 'string' ? prompt : undefined;
  if (file !== undefined && file !== '' && promptText?.trim()) {
    throw new HttpError(400, 'send either prompt or prompt_image_file, not both');
  }
  let request: GenerateForm['request'];
  if (file instanceof File) {
    const bytes = new Uint8Array(await file.arrayBuffer());
    if (!sniffImageFormat(bytes)) throw new HttpError(400, refusedImage('prompt_image_file', bytes));
    request = { image: { bytes, name: file.name }, imageFile: true };
  } else if (typeof file === 'string' && file !== '') {
    throw new HttpError(400, 'prompt_image_file must be a file part of a multipart/form-data body');
  } else if (prompt instanceof File) {
    // A multipart client may send the prompt as a file part: same rules as the text field, and an image file
    // of another format is refused by name rather than read as text.
    const bytes = new Uint8Array(await prompt.arrayBuffer());
    if (!sniffImageFormat(bytes) && unsupportedImageFormat(bytes.subarray(0, MAGIC_BYTES)))
      throw new HttpError(400, refusedImage('prompt', bytes));
    request = sniffImageFormat(bytes) ? { image: { bytes, name: prompt.name } } : { prompt: new TextDecoder().decode(bytes) };
  } else if (typeof prompt === 'string') {
    request = { prompt };
  } else {
    throw new HttpError(400, 'form field "prompt" (text or a base64 image) or "prompt_image_file" is required');
  }
  return {
    request: { ...request, ...(seed !== undefined && { seed }), ...(preset !== undefined && { preset }), ...options },
    format: format ?? (request.imageFile ? (limits.imageFileOutput ?? 'ply') : 'ply'),
    fields,
  };
}

/** The `format` field: one of the geometry formats, or absent. */
function formatField(fields: FormFields): GeometryFormatName | undefined {
  const value = single(fields, 'format');
  if (value === undefined || value === '') return undefined;
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (!(GEOMETRY_FORMATS as readonly string[]).includes(text)) {
    throw new HttpError(
      400,
      `form field "format" must be one of ${GEOMETRY_FORMATS.join(', ')}${typeof value === 'string' ? `, got "${value.slice(0, 40)}"` : ', not a file'}`,
    );
  }
  return text as GeometryFormatName;
}

/** The `preset` field: a name; whether it is known is the answer path's to say (400 listing the known ones). */
function presetField(fields: FormFields): string | undefined {
  const value = single(fields, 'preset');
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new HttpError(400, 'form field "preset" must be text, not a file');
  return value.trim();
}

/** A task made from a prompt, and what gives back its image's share of the memory budget (nothing for text). */
export interface MadeTask {
  task: Task;
  content: string | Uint8Array;
  release: () => void;
}

export async function promptTask(value: string, limits: RequestLimits): Promise<MadeTask> {
  const sniffed = sniffPrompt(value, limits.maxPromptChars);
  switch (sniffed.kind) {
    case 'invalid':
      throw new HttpError(400, sniffed.reason);
    case 'image':
      return imageTask(sniffed.bytes, limits);
    case 'text': {
      const text = sniffed.text;
      if (!text) throw new HttpError(400, 'prompt is empty');
      const chars = [...text].length;
      if (chars > limits.maxPromptChars) throw new HttpError(400, overLongPrompt(chars, limits.maxPromptChars));
      return { task: { kind: 'text', prompt: text }, content: text, release: () => {} };
    }
  }
}

/** An image task, decoded within the limits and the memory budget (its reservation given back by `release`). */
export async function imageTask(bytes: Uint8Array, limits: RequestLimits): Promise<MadeTask & { content: Uint8Array }> {
  // The header says how large the decoded image will be: take that from the budget first, or refuse now.
  const size = limits.reserveImage ? await imageSize(bytes) : null;
  const release = size ? limits.reserveImage!(Math.min(size.width * size.height, limits.maxImagePixels) * 4) : () => {};
  try {
    const image = await decodeImage(bytes, { maxPixels: limits.maxImagePixels, minSide: limits.minImageSide });
    const digest = createHash('sha256').update(bytes).digest('hex');
    return { task: { kind: 'image', image, digest }, content: bytes, release };
  } catch (err) {
    release();
    if (err instanceof ImageDecodeError) throw new HttpError(400, err.message);
    throw err;
  }
}

/**
 * A decimal integer as digits with an optional leading '-', or null for anything else: `Number()` would also take
 * "1e2", "0x2", "+3", "2.0", " 4" and "", which no client means as a count, an id or a seed. The one reader of
 * numeric fields, query parameters and headers; callers check the range.
 */
export function decimalInteger(text: string): number | null {
  return /^-?\d{1,15}$/.test(text) ? Number(text) : null;
}

/** A negative seed means "any seed", as in the newer contract's reference server (which sends -1 by default). */
function parseSeed(value: FormValue | undefined): number | undefined {
  if (value === undefined || value === '') return undefined;
  const seed = typeof value === 'string' ? decimalInteger(value.trim()) : null;
  if (seed !== null && seed < 0) return undefined;
  if (seed === null || seed > MAX_SEED) throw new HttpError(400, `seed must be an integer from 0 to ${MAX_SEED} (negative: derive one)`);
  return seed;
}

/** The one value of a field; a repeated field is an error rather than a silent pick. */
export function single(fields: FormFields, name: string): FormValue | undefined {
  const value = fields[name];
  if (Array.isArray(value)) {
    if (value.length > 1) throw new HttpError(400, `form field "${name}" was sent ${value.length} times; send it once`);
    return value[0];
  }
  return value;
}

/** The `video_res` field: a video's side within the contract's bounds, or absent (the builder's default). */
export function videoResField(fields: FormFields): number | undefined {
  return integerField(fields, 'video_res', VIDEO_RES.min, VIDEO_RES.max);
}

/** Priority classes a generate request may ask for: its own (contract), or lower. */
const PRIORITY_HEADER_VALUES = ['contract', 'interactive', 'background'] as const;
export type RequestPriority = (typeof PRIORITY_HEADER_VALUES)[number];

/**
 * The class a contract route's job runs in: `contract`, unless the X-Fast3d-Priority header lowers it
 * (`fast3d pregenerate` sends `background`, so warming the cache never delays the miner).
 */
export function requestPriority(header: string | undefined): RequestPriority {
  if (header === undefined || header === '') return 'contract';
  const value = header.trim().toLowerCase();
  if ((PRIORITY_HEADER_VALUES as readonly string[]).includes(value)) return value as RequestPriority;
  throw new HttpError(400, `X-Fast3d-Priority must be one of ${PRIORITY_HEADER_VALUES.join(', ')}, got "${header.slice(0, 40)}"`);
}

/** Parses an optional integer field within bounds; 400 names the field and the range. */
export function integerField(fields: FormFields, name: string, min: number, max: number): number | undefined {
  const value = single(fields, name);
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'string' ? decimalInteger(value.trim()) : null;
  if (n === null || n < min || n > max) throw new HttpError(400, `${name} must be an integer from ${min} to ${max}`);
  return n;
}
