/**
 * Prompt sniffing. The legacy miner sends image tasks as base64 inside the same `prompt` field as text
 * tasks, without saying which it is; gateways may add a `data:` prefix or wrap lines. We decide by content:
 * base64 whose decoded bytes start with PNG, JPEG or WebP magic is an image; anything else is text.
 */
import { sniffImageFormat, type ImageFormat } from '../image/codec.js';

export type SniffedPrompt =
  | { kind: 'text'; text: string }
  | { kind: 'image'; bytes: Uint8Array; format: ImageFormat }
  | { kind: 'invalid'; reason: string };

const DATA_URL = /^data:([\w.+-]+\/[\w.+-]+)?(;[\w-]+=[\w.-]+)*;base64,/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+={0,2}$/;

/**
 * @param maxTextChars a value longer than this cannot be a text prompt, so base64 that is not an image is
 *   reported as such rather than as an over-long prompt.
 */
export function sniffPrompt(value: string, maxTextChars: number): SniffedPrompt {
  const trimmed = value.trim();
  const dataUrl = DATA_URL.exec(trimmed);
  const body = dataUrl ? trimmed.slice(dataUrl[0].length) : trimmed;
  const candidate = base64Candidate(body);
  if (candidate) {
    const bytes = Buffer.from(candidate, BASE64.test(candidate) ? 'base64' : 'base64url');
    const format = sniffImageFormat(bytes);
    if (format) return { kind: 'image', bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length), format };
    if (dataUrl || candidate.length > maxTextChars) {
      return { kind: 'invalid', reason: 'prompt is base64 data but not a PNG, JPEG or WebP image' };
    }
  } else if (dataUrl) {
    return { kind: 'invalid', reason: 'prompt has a data: prefix but no base64 after it' };
  }
  return { kind: 'text', text: trimmed };
}

/**
 * The value as one base64 run, or null when it cannot be one. Line breaks are dropped (MIME wraps at 76).
 * Spaces are only accepted as '+' turned into spaces by a client that form-encoded base64 without
 * percent-escaping, and then only if the result starts with image magic: prose never does.
 */
function base64Candidate(body: string): string | null {
  const noBreaks = body.replace(/[\r\n\t]/g, '');
  if (noBreaks.length < 16) return null;
  if (!noBreaks.includes(' ')) return BASE64.test(noBreaks) || BASE64URL.test(noBreaks) ? noBreaks : null;
  if (noBreaks.includes('+')) return null;
  const restored = noBreaks.replace(/ /g, '+');
  if (!BASE64.test(restored)) return null;
  return sniffImageFormat(Buffer.from(restored.slice(0, 24), 'base64')) ? restored : null;
}
