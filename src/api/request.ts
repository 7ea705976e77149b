/**
 * A job request's body (JSON, or multipart/urlencoded with the same field names) to an answer request's parts.
 * Both bodies are validated by the one zod schema; the prompt or image then goes through the contract's own
 * parsing, so the job API has exactly the contract's limits (prompt length, image size and formats).
 */
import { HttpError } from '../contract/errors.js';
import { mediaType, parseGenerateRequest, type FormFields, type FormValue, type RequestLimits } from '../contract/request.js';
import type { ArtefactSpec, FormatName } from '../formats/registry.js';
import { sniffImageFormat } from '../image/codec.js';
import type { Task } from '../pipelines/job.js';
import { DEFAULT_OUTPUTS, DEFAULT_VIDEO_SIZE, JobRequest, VIEW_SIZE } from './schemas.js';

export interface ParsedJobRequest {
  task: Task;
  seed: number;
  preset?: string;
  wants: ArtefactSpec[];
  /** An image file part's name: what lists call the job. */
  title?: string;
  group?: string;
}

type Body = { json: unknown } | { form: FormFields };

const JSON_TYPE = 'application/json';
const FORM_TYPES = ['multipart/form-data', 'application/x-www-form-urlencoded'];

/** Which parser a Content-Type needs; 415 for anything else. */
export function bodyKind(contentType: string | undefined): 'json' | 'form' {
  const type = mediaType(contentType);
  if (type === JSON_TYPE) return 'json';
  if (FORM_TYPES.includes(type)) return 'form';
  throw new HttpError(415, `Content-Type must be application/json or multipart/form-data, got ${type ? `"${type}"` : 'none'}`);
}

export async function parseJobRequest(body: Body, limits: RequestLimits): Promise<ParsedJobRequest> {
  let imageFile: Uint8Array | undefined;
  let fileName: string | undefined;
  let candidate: unknown;
  if ('json' in body) {
    candidate = body.json;
  } else {
    ({ fields: candidate, file: imageFile, fileName } = await formToObject(body.form));
  }
  const checked = JobRequest.safeParse(candidate);
  if (!checked.success) throw new HttpError(400, `invalid job request: ${issuesText(checked.error.issues)}`);
  const request = checked.data;

  const hasImage = imageFile !== undefined || request.image !== undefined;
  if (hasImage === (request.prompt !== undefined)) throw new HttpError(400, 'send either "prompt" or "image", not both and not neither');
  const imageBytes = imageFile ?? (request.image !== undefined ? base64Image(request.image) : undefined);
  if (imageBytes && !sniffImageFormat(imageBytes)) throw new HttpError(400, 'image is not a PNG, JPEG or WebP image');

  // The contract's parser: an image travels as a file part, so a text prompt is never sniffed as base64 here.
  const fields: FormFields = { prompt: imageBytes ? new File([imageBytes as Uint8Array<ArrayBuffer>], 'image') : request.prompt! };
  if (request.seed !== undefined) fields.seed = String(request.seed);
  const parsed = await parseGenerateRequest(fields, limits);
  if (imageBytes && parsed.task.kind !== 'image') throw new HttpError(400, 'image is not a PNG, JPEG or WebP image');
  const title = imageBytes && fileName !== undefined ? titleOfFile(fileName) : undefined;
  return { task: parsed.task, seed: parsed.seed, preset: request.preset, wants: wantsOf(request), ...(title && { title }), ...(request.group !== undefined && { group: request.group }) };
}

/** A file name as a title: printable, at most 80 characters; none for the name a nameless part gets. */
function titleOfFile(name: string): string | undefined {
  const clean = name.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim().slice(0, 80);
  return clean && clean !== 'blob' ? clean : undefined;
}

/** The artefacts a request asks for, each once, with the sizes rendered ones need. */
export function wantsOf(request: JobRequest): ArtefactSpec[] {
  const names = [...new Set<FormatName>(request.outputs ?? DEFAULT_OUTPUTS)];
  return names.map((format) => {
    if (format === 'mp4') {
      const size = request.videoSize ?? DEFAULT_VIDEO_SIZE;
      return { format, size: size - (size % 2) };
    }
    if (format === 'views') return { format, size: request.viewSize ?? VIEW_SIZE.default };
    return { format };
  });
}

const NUMERIC_FIELDS = new Set(['seed', 'videoSize', 'viewSize']);

/** A form's fields as the JSON body's shape (numbers as numbers, outputs as a list), and the image file part and its name. */
async function formToObject(form: FormFields): Promise<{ fields: Record<string, unknown>; file?: Uint8Array; fileName?: string }> {
  const fields: Record<string, unknown> = {};
  let file: Uint8Array | undefined;
  let fileName: string | undefined;
  for (const [name, raw] of Object.entries(form)) {
    const values: FormValue[] = Array.isArray(raw) ? raw : [raw];
    if (name === 'outputs') {
      fields.outputs = values.flatMap((v): unknown[] => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : [v]));
      continue;
    }
    if (values.length > 1) throw new HttpError(400, `form field "${name}" was sent ${values.length} times; send it once`);
    const value = values[0];
    if (value === '') continue;
    if (name === 'image' && value instanceof File) {
      file = new Uint8Array(await value.arrayBuffer());
      fileName = value.name;
      continue;
    }
    if (value instanceof File) throw new HttpError(400, `form field "${name}" must be text, not a file`);
    fields[name] = NUMERIC_FIELDS.has(name) && /^-?\d{1,12}$/.test(value.trim()) ? Number(value.trim()) : value;
  }
  return { fields, file, fileName };
}

function base64Image(text: string): Uint8Array {
  const payload = text.startsWith('data:') ? text.slice(text.indexOf(',') + 1) : text;
  const clean = payload.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) throw new HttpError(400, 'image must be base64 or a data: URL');
  return new Uint8Array(Buffer.from(clean, 'base64'));
}

function issuesText(issues: readonly { path: PropertyKey[]; message: string }[]): string {
  return issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}
