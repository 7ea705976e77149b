/**
 * Image formats the service does not take, recognised by their first bytes, so a request carrying one is
 * told which format it sent instead of having its base64 read as a text prompt.
 */
export type UnsupportedImageFormat = 'GIF' | 'SVG' | 'TIFF' | 'BMP' | 'AVIF' | 'HEIC';

/** Bytes needed to recognise any of them (SVG may start with an XML declaration and a comment). */
export const MAGIC_BYTES = 512;

const AVIF_BRANDS = new Set(['avif', 'avis']);
const HEIC_BRANDS = new Set(['heic', 'heix', 'heim', 'heis', 'hevc', 'hevx', 'mif1', 'msf1']);
const BMP_DIB_SIZES = new Set([12, 40, 52, 56, 64, 108, 124]);

export function unsupportedImageFormat(bytes: Uint8Array): UnsupportedImageFormat | null {
  const ascii = (start: number, end: number) => String.fromCharCode(...bytes.subarray(start, end));
  if (bytes.length >= 6 && (ascii(0, 6) === 'GIF87a' || ascii(0, 6) === 'GIF89a')) return 'GIF';
  if (bytes.length >= 4 && (ascii(0, 4) === 'II*\0' || ascii(0, 4) === 'MM\0*')) return 'TIFF';
  // "BM" alone is two letters of text: also require zero reserved fields and a known header size.
  if (
    bytes.length >= 18 &&
    ascii(0, 2) === 'BM' &&
    bytes[6] === 0 &&
    bytes[7] === 0 &&
    bytes[8] === 0 &&
    bytes[9] === 0 &&
    BMP_DIB_SIZES.has(bytes[14] | (bytes[15] << 8) | (bytes[16] << 16) | (bytes[17] << 24))
  )
    return 'BMP';
  if (bytes.length >= 12 && ascii(4, 8) === 'ftyp') {
    const brand = ascii(8, 12);
    if (AVIF_BRANDS.has(brand)) return 'AVIF';
    if (HEIC_BRANDS.has(brand)) return 'HEIC';
  }
  const head = new TextDecoder('utf-8', { fatal: false })
    .decode(bytes.subarray(0, MAGIC_BYTES))
    .replace(/^\uFEFF/, '')
    .trimStart();
  if (head.startsWith('<svg') || ((head.startsWith('<?xml') || head.startsWith('<!')) && head.includes('<svg'))) return 'SVG';
  return null;
}
