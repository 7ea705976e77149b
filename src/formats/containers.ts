/**
 * Container checks for rendered artefacts: cheap structural reads that tell a complete file from a truncated
 * or broken one before it may leave with a 200 (or be served from the cache).
 */

/** Why MP4 bytes may not be served, or null: top-level boxes that tile the file, with ftyp first, a moov and an mdat. */
export function mp4Violation(bytes: Uint8Array): string | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const seen: string[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 8) return `${bytes.length - at} stray bytes after the last box`;
    let size = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]);
    if (size === 1) {
      if (bytes.length - at < 16) return `box "${type}" is cut short`;
      size = Number(view.getBigUint64(at + 8));
    } else if (size === 0) {
      size = bytes.length - at; // the box runs to the end of the file
    }
    if (size < 8 || at + size > bytes.length) return `box "${type}" at byte ${at} runs past the end of the file`;
    seen.push(type);
    at += size;
  }
  if (seen[0] !== 'ftyp') return 'does not start with an ftyp box';
  if (!seen.includes('moov')) return 'has no moov box (the index of the video)';
  if (!seen.includes('mdat')) return 'has no mdat box (the frames)';
  return null;
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Why PNG bytes may not be served, or null: the signature, chunks that tile the file, IHDR first and IEND last. */
export function pngViolation(bytes: Uint8Array): string | null {
  if (bytes.length < 8 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) return 'no PNG signature';
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  let first = '';
  let last = '';
  while (at < bytes.length) {
    if (bytes.length - at < 12) return `chunk at byte ${at} is cut short`;
    const length = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]);
    if (at + 12 + length > bytes.length) return `chunk "${type}" runs past the end of the file`;
    first ||= type;
    last = type;
    at += 12 + length;
  }
  if (first !== 'IHDR') return 'does not start with an IHDR chunk';
  if (last !== 'IEND') return 'does not end with an IEND chunk';
  return null;
}
