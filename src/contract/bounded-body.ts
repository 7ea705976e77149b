/**
 * Request bodies sized up before they are parsed. JSON.parse and the form parsers build every key and value
 * before anything can refuse them, and a body of a million keys takes the event loop for seconds; a request
 * has a handful of fields. So the keys and values are counted on the raw bytes first (strings and long values
 * skipped by native searches), and a body with more than the route takes is refused before it is parsed.
 */
import { HttpError } from './errors.js';

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
