/**
 * Prompt sniffing. The legacy miner sends image tasks as base64 inside the same `prompt` field as text
 * tasks, without saying which it is; gateways may add a `data:` prefix or wrap lines. We decide by content:
 * a `data:` URL, or base64 whose first decoded bytes are an image's magic, is an image task (PNG, JPEG and
 * WebP are decoded, other image formats are refused by name); anything else is text, held to the length limit.
 *
 * A prompt field can be as large as the body limit (32 MiB), so nothing here runs a backtracking regex or
 * walks the whole value before it is known to be an image: text is judged from a bounded head and its length.
 */
import { sniffImageFormat, type ImageFormat } from '../image/codec.js';
import { MAGIC_BYTES, unsupportedImageFormat } from '../image/magic.js';

export type SniffedPrompt =
  | { kind: 'text'; text: string }
  | { kind: 'image'; bytes: Uint8Array; format: ImageFormat }
  | { kind: 'invalid'; reason: string };

/** Shortest base64 run taken for an image (16 chars = 12 bytes, enough for WebP's magic). */
const MIN_BASE64_CHARS = 16;
/** Base64 characters decoded to sniff the format: enough for MAGIC_BYTES bytes. */
const HEAD_CHARS = Math.ceil(MAGIC_BYTES / 3) * 4;
/** Longest `data:<media type>;<params>` header looked at. */
const MAX_DATA_HEADER = 256;
/** Up to this many UTF-16 units, an over-long prompt's exact length is counted (natively); beyond, bounded. */
const MAX_COUNTED_UNITS = 1 << 20;

/** A character that cannot be in (whitespace-wrapped, standard or URL-safe) base64, or padding mid-run. */
const NOT_BASE64 = /[^A-Za-z0-9+/\-_=\r\n\t]|=[^=\r\n\t]/;
const SURROGATE_PAIR = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g;
/** The image formats the service decodes, as every refusal names them. */
const ACCEPTED = 'PNG, JPEG or WebP';

/**
 * Why bytes given as an image are refused, naming the format when it is one the service does not take (GIF, SVG,
 * TIFF, BMP, AVIF, HEIC): the one wording of every route that takes an image. `subject` is the field's name.
 */
export function refusedImage(subject: string, bytes: Uint8Array): string {
  const other = unsupportedImageFormat(bytes.subarray(0, MAGIC_BYTES));
  if (!other) return `${subject} is not a ${ACCEPTED} image`;
  return `${subject} is ${/^[AEIOS]/.test(other) ? 'an' : 'a'} ${other} image; only ${ACCEPTED} images are accepted`;
}

/** Characters of a (trimmed) prompt's head that decide whether it is read as text: see `readAsText`. */
export const PROMPT_HEAD_CHARS = HEAD_CHARS * 2;

/** @param maxTextChars the length limit of text prompts, in characters (code points). */
export function sniffPrompt(value: string, maxTextChars: number): SniffedPrompt {
  const trimmed = value.trim();
  if (isDataUrl(trimmed)) return sniffDataUrl(trimmed);
  const head = base64Head(trimmed);
  if (head) {
    if (sniffImageFormat(head)) return decodedImage(base64Bytes(trimmed), 'base64');
    if (unsupportedImageFormat(head)) return invalid(refusedImage('prompt', head));
  }
  return textPrompt(trimmed, maxTextChars);
}

/**
 * Whether `sniffPrompt` reads a trimmed prompt beginning with `head` (its first PROMPT_HEAD_CHARS characters, or
 * all of it) as text, held to the length limit, rather than as an image (a `data:` URL, or base64 with the magic
 * of any image format, taken or refused by name).
 */
export function readAsText(head: string): boolean {
  if (isDataUrl(head)) return false;
  const bytes = base64Head(head);
  return !bytes || (!sniffImageFormat(bytes) && !unsupportedImageFormat(bytes));
}

/** The one message for a text prompt over the limit; `atLeast` when its exact length was not counted. */
export function overLongPrompt(chars: number, max: number, atLeast = false): string {
  return `prompt is ${atLeast ? 'at least ' : ''}${chars} characters long; the limit is ${max}`;
}

function isDataUrl(trimmed: string): boolean {
  return trimmed.slice(0, 5).toLowerCase() === 'data:';
}

function invalid(reason: string): { kind: 'invalid'; reason: string } {
  return { kind: 'invalid', reason };
}

function textPrompt(text: string, max: number): SniffedPrompt {
  // A character is one or two UTF-16 units, so length alone settles most cases.
  if (text.length <= max) return { kind: 'text', text };
  if (text.length > MAX_COUNTED_UNITS) return invalid(overLongPrompt(Math.ceil(text.length / 2), max, true));
  let chars = text.length;
  SURROGATE_PAIR.lastIndex = 0;
  while (SURROGATE_PAIR.exec(text)) chars--;
  return chars > max ? invalid(overLongPrompt(chars, max)) : { kind: 'text', text };
}

/**
 * The first bytes of the value read as base64, or null when its head is not base64. Line breaks are skipped
 * (MIME wraps at 76); spaces are read as '+' turned into spaces by a client that form-encoded base64 without
 * percent-escaping; only image magic in the result makes it an image, which prose never has.
 */
function base64Head(body: string): Uint8Array | null {
  let chars = '';
  // Bounded by position too: line breaks are skipped, and a value of nothing but breaks must not be walked.
  const end = Math.min(body.length, HEAD_CHARS * 2);
  for (let i = 0; i < end && chars.length < HEAD_CHARS; i++) {
    const c = body[i];
    if (c === '\r' || c === '\n' || c === '\t') continue;
    if (c === '=') break;
    if (!/[A-Za-z0-9+/\-_ ]/.test(c)) return null;
    chars += c === ' ' ? '+' : c;
  }
  if (chars.length < MIN_BASE64_CHARS) return null;
  return Buffer.from(chars.slice(0, chars.length - (chars.length % 4)), 'base64');
}

/** The whole value as base64 bytes, or null when it is not base64 (native scans only: it may be 32 MiB). */
function base64Bytes(body: string): Uint8Array | null {
  const restored = body.includes(' ') ? body.replaceAll(' ', '+') : body;
  if (NOT_BASE64.test(restored)) return null;
  // Node's decoder skips the line breaks and reads the URL-safe alphabet too.
  const bytes = Buffer.from(restored, 'base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

function decodedImage(bytes: Uint8Array | null, encoding: string): SniffedPrompt {
  if (!bytes) return invalid(`prompt starts like a ${encoding} image but has characters that are not ${encoding}`);
  const format = sniffImageFormat(bytes);
  // The head matched, so the whole decodes to the same magic; checked again rather than assumed.
  return format ? { kind: 'image', bytes, format } : invalid(refusedImage('prompt', bytes));
}

/** A `data:` URL (RFC 2397): always an image task, base64 or percent-encoded. */
function sniffDataUrl(value: string): SniffedPrompt {
  const comma = value.slice(0, MAX_DATA_HEADER).indexOf(',');
  if (comma < 0) return invalid('prompt has a data: prefix but is not a data URL (no "," after the media type)');
  const [mediaType, ...params] = value.slice(5, comma).split(';');
  const isBase64 = params.some((p) => p.trim().toLowerCase() === 'base64');
  const payload = value.slice(comma + 1);
  if (!payload) return invalid('prompt has a data: prefix but no data after it');
  const of = mediaType ? ` (${mediaType})` : '';
  const head = isBase64 ? (base64Head(payload) ?? new Uint8Array()) : percentBytes(payload, MAGIC_BYTES);
  if (sniffImageFormat(head))
    return decodedImage(isBase64 ? base64Bytes(payload) : percentBytes(payload, Infinity), isBase64 ? 'base64' : 'percent-encoded');
  if (unsupportedImageFormat(head)) return invalid(refusedImage('prompt', head));
  if (!isBase64)
    return invalid(
      `prompt is a data: URL${of} without ";base64" and its bytes are not an image; send the image base64-encoded (data:image/png;base64,...)`,
    );
  return invalid(`prompt is a data: URL${of} but its bytes are not a ${ACCEPTED} image`);
}

/**
 * An image given in a text field (the job API's `image`, MCP's `image_base64`): base64, or a base64 `data:` URL.
 * Never read as a text prompt: what is not an image of a format the service takes is refused as such, by name.
 */
export function sniffImageField(field: string, value: string): Exclude<SniffedPrompt, { kind: 'text' }> {
  const trimmed = value.trim();
  let payload = trimmed;
  if (isDataUrl(trimmed)) {
    const comma = trimmed.slice(0, MAX_DATA_HEADER).indexOf(',');
    const params = comma < 0 ? [] : trimmed.slice(5, comma).split(';').slice(1);
    if (!params.some((p) => p.trim().toLowerCase() === 'base64'))
      return invalid(`${field} is a data: URL without ";base64"; send the image base64-encoded (data:image/png;base64,...)`);
    payload = trimmed.slice(comma + 1);
  }
  const bytes = base64Bytes(payload);
  if (!bytes) return invalid(`${field} is not base64 (or a base64 data: URL); send a ${ACCEPTED} image base64-encoded`);
  const format = sniffImageFormat(bytes);
  return format ? { kind: 'image', bytes, format } : invalid(refusedImage(field, bytes));
}

/**
 * Bytes of percent-encoded data (up to `limit`): %XX escapes and characters up to U+00FF are bytes; other
 * characters are UTF-8 (an SVG's text). Raw binary that reached us as text is then seen for what it is.
 */
function percentBytes(payload: string, limit: number): Uint8Array {
  // At most 3 UTF-8 bytes per UTF-16 unit (a surrogate pair: 4 bytes for 2 units).
  const out = new Uint8Array(Math.min(limit, payload.length * 3));
  const encoder = new TextEncoder();
  let n = 0;
  for (let i = 0; i < payload.length && n < out.length; i++) {
    const code = payload.charCodeAt(i);
    if (code === 0x25 && /^[0-9a-f]{2}$/i.test(payload.slice(i + 1, i + 3))) {
      out[n++] = parseInt(payload.slice(i + 1, i + 3), 16);
      i += 2;
    } else if (code < 0x100) {
      out[n++] = code;
    } else {
      const units = code >= 0xd800 && code <= 0xdbff ? 2 : 1;
      n += encoder.encodeInto(payload.slice(i, i + units), out.subarray(n)).written;
      i += units - 1;
    }
  }
  return out.subarray(0, n);
}
