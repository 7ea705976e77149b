/**
 * A job request's body (JSON, or multipart/urlencoded with the same field names) to the request builder's fields.
 * Both bodies are validated by the one zod schema; the builder then holds the prompt and the image to the
 * contract's own limits (prompt length, image size and formats), as on every other route.
 */
import { assertFormFieldCount, overLongUrlencodedPrompt, parseBoundedJson } from '../contract/bounded-body.js';
import { HttpError, issuesText, listed, quoted } from '../contract/errors.js';
import { refusedImage, sniffImageField } from '../contract/prompt.js';
import type { RequestFields } from '../contract/build.js';
import { GAME_OPTION_NAMES, type GameOptions } from '../contract/game-options.js';
import { decimalInteger, mediaType, type FormFields, type FormValue, type RequestLimits } from '../contract/request.js';
import { sniffImageFormat } from '../image/codec.js';
import { DEFAULT_OUTPUTS, JobRequest } from './schemas.js';

/** A job request's fields for the builder (the route sets its id and priority). */
export type ParsedJobRequest = Omit<RequestFields, 'priority' | 'id'>;

type Body = { json: unknown } | { form: FormFields };

const JSON_TYPE = 'application/json';
const FORM_TYPES = ['multipart/form-data', 'application/x-www-form-urlencoded'];

/** Which parser a Content-Type needs; 415 for anything else. */
export function bodyKind(contentType: string | undefined): 'json' | 'form' {
  const type = mediaType(contentType);
  if (type === JSON_TYPE) return 'json';
  if (FORM_TYPES.includes(type)) return 'form';
  throw new HttpError(
    415,
    `Content-Type must be ${JSON_TYPE} (a JSON job request) or ${FORM_TYPES.join(' or ')} (its fields as a form), got ${type ? quoted(type) : 'none'}; send JSON with "Content-Type: ${JSON_TYPE}"`,
  );
}

/** A JSON body sent as a form (curl -d's default type): the form parser would read it as one nameless field. */
function looksLikeJson(bytes: Uint8Array): boolean {
  for (const byte of bytes.subarray(0, 64)) {
    if (byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d) continue;
    return byte === 0x7b || byte === 0x5b;
  }
  return false;
}

/** A job request has 17 fields, at most 15 outputs and 8 lods: a body with far more keys and items is refused unparsed. */
const MAX_JSON_VALUES = 64;
/** The same for a form, whose outputs may be repeated fields. */
const MAX_FORM_FIELDS = 32;

/** What reads a request's body (Hono's request). */
export interface BodySource {
  text(): Promise<string>;
  arrayBuffer(): Promise<ArrayBuffer>;
  parseBody(options: { all: true }): Promise<FormFields>;
}

/**
 * The body as its Content-Type says (415 for another), its keys or fields counted before it is parsed, and an
 * urlencoded text prompt over the limit refused from its bytes.
 */
export async function readJobBody(contentType: string | undefined, source: BodySource, limits: RequestLimits): Promise<Body> {
  if (bodyKind(contentType) === 'json') return { json: parseBoundedJson(await source.text(), MAX_JSON_VALUES) };
  // The form parser reads the same bytes again from the request's cache.
  const bytes = new Uint8Array(await source.arrayBuffer());
  const urlencoded = mediaType(contentType) === 'application/x-www-form-urlencoded';
  if (urlencoded && looksLikeJson(bytes)) {
    throw new HttpError(
      415,
      `the body is JSON but its Content-Type is application/x-www-form-urlencoded (what curl -d sends unless told otherwise); send it with "Content-Type: ${JSON_TYPE}"`,
    );
  }
  assertFormFieldCount(bytes, contentType ?? '', MAX_FORM_FIELDS);
  const overLong = urlencoded ? overLongUrlencodedPrompt(bytes, limits.maxPromptChars) : null;
  if (overLong) throw new HttpError(400, overLong);
  try {
    return { form: await source.parseBody({ all: true }) };
  } catch (err) {
    throw new HttpError(400, `malformed form body: ${(err as Error).message}`);
  }
}

export async function parseJobRequest(body: Body): Promise<ParsedJobRequest> {
  let imageFile: Uint8Array | undefined;
  let fileName: string | undefined;
  let candidate: unknown;
  if ('json' in body) {
    candidate = body.json;
  } else {
    ({ fields: candidate, file: imageFile, fileName } = await formToObject(body.form));
  }
  refuseUnknownFields(candidate);
  const checked = JobRequest.safeParse(candidate);
  if (!checked.success) throw new HttpError(400, `invalid job request: ${issuesText(checked.error.issues)}`);
  const request = checked.data;

  const hasImage = imageFile !== undefined || request.image !== undefined;
  if (hasImage === (request.prompt !== undefined)) throw new HttpError(400, 'send either "prompt" or "image", not both and not neither');
  const imageBytes = imageFile ?? (request.image !== undefined ? imageOfField(request.image) : undefined);
  if (imageBytes && !sniffImageFormat(imageBytes)) throw new HttpError(400, refusedImage('image', imageBytes));
  // An image is always an image task here: a text prompt is never sniffed as base64.
  const outputs = [...new Set(request.outputs ?? DEFAULT_OUTPUTS)].map((format) =>
    format === 'mp4' ? { format, size: request.videoSize } : format === 'views' ? { format, size: request.viewSize } : { format },
  );
  const options = Object.fromEntries(GAME_OPTION_NAMES.filter((name) => request[name] !== undefined).map((name) => [name, request[name]]));
  return {
    ...(imageBytes ? { image: { bytes: imageBytes, ...(fileName !== undefined && { name: fileName }) } } : { prompt: request.prompt! }),
    ...(request.seed !== undefined && { seed: request.seed }),
    ...(request.preset !== undefined && { preset: request.preset }),
    outputs,
    ...(request.group !== undefined && { group: request.group }),
    ...(request.webhook !== undefined && { webhook: request.webhook }),
    ...(options as GameOptions),
  };
}

const NUMERIC_FIELDS = new Set(['seed', 'videoSize', 'viewSize', 'faces', 'textureSize', 'spzVersion']);
/** Form fields whose value is a decimal number, or a comma-separated list of them (lods). */
const DECIMAL_FIELDS = new Set(['sizeM']);
const DECIMAL = /^(\d{1,9}(\.\d{0,9})?|\.\d{1,9})$/;

/** A form field's text as the JSON body's value (numbers as numbers, lods as a list, progressive as a boolean); the schema judges it. */
function formValue(name: string, value: string): unknown {
  const text = value.trim();
  if (NUMERIC_FIELDS.has(name)) return decimalInteger(text) ?? value;
  if (DECIMAL_FIELDS.has(name)) return DECIMAL.test(text) ? Number(text) : value;
  if (name === 'lods') return text.split(',').map((part) => (DECIMAL.test(part.trim()) ? Number(part.trim()) : part));
  if (name === 'progressive') return text === 'true' ? true : text === 'false' ? false : value;
  return value;
}

/** A form's fields as the JSON body's shape (numbers as numbers, outputs as a list), and the image file part and its name. */
async function formToObject(form: FormFields): Promise<{ fields: Record<string, unknown>; file?: Uint8Array; fileName?: string }> {
  // No prototype: a field named "__proto__" is a field (refused as unknown), not a write to the prototype.
  const fields: Record<string, unknown> = Object.create(null);
  let file: Uint8Array | undefined;
  let fileName: string | undefined;
  for (const [name, raw] of Object.entries(form)) {
    const values: FormValue[] = Array.isArray(raw) ? raw : [raw];
    if (name === 'outputs') {
      fields.outputs = values.flatMap((v): unknown[] =>
        typeof v === 'string'
          ? v
              .split(',')
              .map((s) => s.trim())
              .filter(Boolean)
          : [v],
      );
      continue;
    }
    if (values.length > 1) throw new HttpError(400, `form field ${quoted(name)} was sent ${values.length} times; send it once`);
    const value = values[0];
    if (value === '') continue;
    if (name === 'image' && value instanceof File) {
      file = new Uint8Array(await value.arrayBuffer());
      fileName = value.name;
      continue;
    }
    if (value instanceof File) throw new HttpError(400, `form field ${quoted(name)} must be text, not a file`);
    fields[name] = formValue(name, value);
  }
  return { fields, file, fileName };
}

function imageOfField(text: string): Uint8Array {
  const sniffed = sniffImageField('image', text);
  if (sniffed.kind === 'invalid') throw new HttpError(400, sniffed.reason);
  return sniffed.bytes;
}

const FIELDS = Object.keys(JobRequest.shape);

/**
 * 400 naming the first few fields the request does not have (the schema would list every one, whole): a body
 * of unknown keys is answered in a few hundred characters.
 */
function refuseUnknownFields(candidate: unknown): void {
  if (typeof candidate !== 'object' || candidate === null || Array.isArray(candidate)) return;
  const unknown = Object.keys(candidate).filter((key) => !FIELDS.includes(key));
  if (unknown.length === 0) return;
  throw new HttpError(
    400,
    `invalid job request: unknown field${unknown.length > 1 ? 's' : ''} ${listed(
      unknown.map((key) => quoted(key)),
      3,
    )}; the fields are ${FIELDS.join(', ')}`,
  );
}
