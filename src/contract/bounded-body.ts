/**
 * Request bodies sized up before they are parsed. JSON.parse and the form parsers build every key and value
 * before anything can refuse them, and a body of a million keys takes the event loop for seconds; a request
 * has a handful of fields. So the keys and values are counted on the raw bytes first (strings and long values
 * skipped by native searches), and a body with more than the route takes is refused before it is parsed.
 */
import { HttpError } from './errors.js';
import { overLongPrompt, PROMPT_HEAD_CHARS, readAsText } from './prompt.js';

/** Where a JSON text's next string starts or its next member or element is counted. */
const STRUCTURE = /["{[,]/g;

/**
 * Members and elements in a JSON text (an opening bracket or a comma each), counted up to `max` + 1. A string
 * counts nothing, whatever its length; it is skipped with indexOf.
 */
export function countJsonValues(text: string, max: number): number {
  let count = 0;
  STRUCTURE.lastIndex = 0;
  for (let match = STRUCTURE.exec(text); match; match = STRUCTURE.exec(text)) {
    if (text.charCodeAt(match.index) === 0x22) {
      const end = closingQuote(text, match.index);
      // Unterminated: JSON.parse says so.
      if (end < 0) break;
      STRUCTURE.lastIndex = end + 1;
      continue;
    }
    if (++count > max) break;
  }
  STRUCTURE.lastIndex = 0;
  return count;
}

/** The quote that ends the string opened at `start` (one not escaped by an odd run of backslashes), or -1. */
function closingQuote(text: string, start: number): number {
  let end = start;
  for (;;) {
    end = text.indexOf('"', end + 1);
    if (end < 0) return -1;
    let slashes = 0;
    while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
    if (slashes % 2 === 0) return end;
  }
}

/** A JSON body with at most `maxValues` keys and array items, parsed; 400 saying which bound it broke, or where it is malformed. */
export function parseBoundedJson(text: string, maxValues: number): unknown {
  if (countJsonValues(text, maxValues) > maxValues) throw new HttpError(400, `JSON body has more than ${maxValues} keys and array items`);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, `malformed JSON body: ${(err as Error).message}`);
  }
}

/**
 * Fields in a form body, counted on its bytes up to `max` + 1: for urlencoded, its `&`-separated parts; for
 * multipart, its boundary lines (a part's content is skipped by the native search for the next one).
 */
export function countFormFields(body: Uint8Array, contentType: string, max: number): number {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const boundary = /;\s*boundary="?([^";]{1,200})"?/i.exec(contentType)?.[1];
  if (boundary === undefined) {
    let count = bytes.length > 0 ? 1 : 0;
    for (let at = bytes.indexOf(0x26); at >= 0 && count <= max; at = bytes.indexOf(0x26, at + 1)) count++;
    return count;
  }
  // A multipart body has one boundary line more than it has parts: its closing delimiter.
  const delimiter = `--${boundary}`;
  let lines = 0;
  for (let at = bytes.indexOf(delimiter); at >= 0 && lines <= max + 1; at = bytes.indexOf(delimiter, at + delimiter.length)) lines++;
  return Math.max(0, lines - 1);
}

/** 400 when a form has more than `max` fields (before it is parsed). */
export function assertFormFieldCount(body: Uint8Array, contentType: string, max: number): void {
  if (countFormFields(body, contentType, max) > max) throw new HttpError(400, `form body has more than ${max} fields`);
}

/** Encoded bytes one prompt character may take: four UTF-8 bytes, each percent-encoded. */
const MAX_ENCODED_BYTES_PER_CHAR = 12;
/**
 * Encoded bytes decoded at either end of a prompt value: enough for the prompt parser's head at the most bytes a
 * character can take, and for the whitespace it trims. A value padded with more is left to the parser.
 */
const EDGE_BYTES = 2 * PROMPT_HEAD_CHARS * MAX_ENCODED_BYTES_PER_CHAR;
const PROMPT_FIELD = 'prompt=';
const WHITESPACE = /\s/;

/**
 * Why an urlencoded body's `prompt` is a text prompt over `maxChars` characters, told from its bytes alone, or
 * null when the bytes do not settle it (then the parser decides). A body that large is otherwise parsed in the
 * CPU pool, behind the stages of every job, only to be refused.
 *
 * The value is read as the parser reads it ('+' a space, %XX a byte, then UTF-8). Its length after trimming is
 * at least its encoded length over 12; a value whose head the prompt parser would read as an image (`readAsText`)
 * is no text prompt, and is bounded by the image limits instead.
 */
export function overLongUrlencodedPrompt(body: Uint8Array, maxChars: number): string | null {
  const bytes = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  // The first field named prompt: at the start, or after a '&' (one native search, whatever the values hold).
  let field = 0;
  if (bytes.subarray(0, PROMPT_FIELD.length).toString('latin1') !== PROMPT_FIELD) {
    field = bytes.indexOf(`&${PROMPT_FIELD}`);
    if (field < 0) return null;
    field += 1;
  }
  const start = field + PROMPT_FIELD.length;
  const found = bytes.indexOf(0x26, start);
  const end = found < 0 ? bytes.length : found;
  if (end - start <= maxChars * MAX_ENCODED_BYTES_PER_CHAR) return null;

  // The value's two ends are decoded; a character that a window's edge may cut is not trusted: one whose
  // encoding could run past the head's end, or that starts within a character's encoding of the tail's start.
  // Whitespace padding longer than a window, or a head too short to sniff, leaves the value to the parser.
  const headEnd = Math.min(end, start + EDGE_BYTES);
  const head = decodeChars(bytes, start, headEnd);
  let trusted = head.points.length;
  while (headEnd < end && trusted > 0 && head.offsets[trusted - 1] + MAX_ENCODED_BYTES_PER_CHAR > headEnd) trusted--;
  let first = 0;
  while (first < trusted && isWhitespace(head.points[first])) first++;
  if (first === trusted || (headEnd < end && trusted - first < PROMPT_HEAD_CHARS)) return null;

  const tailStart = Math.max(start, end - EDGE_BYTES);
  const tail = decodeChars(bytes, tailStart, end);
  let last = tail.points.length - 1;
  while (last >= 0 && isWhitespace(tail.points[last])) last--;
  if (last < 0 || (tailStart > start && tail.offsets[last] < tailStart + MAX_ENCODED_BYTES_PER_CHAR)) return null;

  const trimmedBytes = (last + 1 < tail.points.length ? tail.offsets[last + 1] : end) - head.offsets[first];
  const atLeast = Math.ceil(trimmedBytes / MAX_ENCODED_BYTES_PER_CHAR);
  if (atLeast <= maxChars) return null;
  if (!readAsText(String.fromCodePoint(...head.points.slice(first, first + PROMPT_HEAD_CHARS)))) return null;
  return overLongPrompt(atLeast, maxChars, true);
}

/**
 * Code points of urlencoded bytes [from, to), each with the offset its encoding starts at. An invalid UTF-8
 * sequence is U+FFFD per byte (the parser may group them otherwise: both are characters, and none is whitespace).
 */
function decodeChars(bytes: Uint8Array, from: number, to: number): { points: Int32Array; offsets: Int32Array } {
  const raw = new Uint8Array(to - from);
  const at = new Int32Array(to - from);
  let n = 0;
  for (let i = from; i < to; n++) {
    const hex = bytes[i] === 0x25 && i + 2 < to ? hexByte(bytes[i + 1], bytes[i + 2]) : -1;
    at[n] = i;
    if (hex >= 0) {
      raw[n] = hex;
      i += 3;
    } else {
      raw[n] = bytes[i] === 0x2b ? 0x20 : bytes[i];
      i++;
    }
  }
  const points = new Int32Array(n);
  const offsets = new Int32Array(n);
  let count = 0;
  for (let k = 0; k < n; count++) {
    const lead = raw[k];
    const length =
      lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    let point = length === 1 ? lead : lead & (0xff >> (length + 1));
    let valid = length > 0 && k + length <= n;
    for (let m = 1; valid && m < length; m++) {
      if ((raw[k + m] & 0xc0) !== 0x80) valid = false;
      else point = (point << 6) | (raw[k + m] & 0x3f);
    }
    points[count] = valid ? point : 0xfffd;
    offsets[count] = at[k];
    k += valid ? length : 1;
  }
  return { points: points.subarray(0, count), offsets: offsets.subarray(0, count) };
}

/** Whether a code point is whitespace that String.prototype.trim removes (the prompt parser trims). */
function isWhitespace(point: number): boolean {
  return point <= 0x20 ? point === 0x20 || (point >= 0x09 && point <= 0x0d) : point >= 0xa0 && WHITESPACE.test(String.fromCodePoint(point));
}

function hexByte(high: number, low: number): number {
  const digit = (c: number) =>
    c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x41 && c <= 0x46 ? c - 0x37 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
  const h = digit(high);
  const l = digit(low);
  return h < 0 || l < 0 ? -1 : (h << 4) | l;
}
