import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { sniffPrompt } from '../src/contract/prompt.js';
import { discImage } from './helpers/images.js';

describe('prompt sniffing', () => {
  it('keeps text as text, trimmed', () => {
    expect(sniffPrompt('  a pink bicycle \n', 1024)).toEqual({ kind: 'text', text: 'a pink bicycle' });
    // Text that happens to use only base64 letters is still text.
    expect(sniffPrompt('RedCarWithWhiteStripesOnTheRoof', 1024)).toEqual({ kind: 'text', text: 'RedCarWithWhiteStripesOnTheRoof' });
    const long = 'A very detailed wooden chair with carved legs and a velvet cushion '.repeat(4);
    expect(sniffPrompt(long, 1024).kind).toBe('text');
  });

  it('recognises PNG, JPEG and WebP base64, with or without a data: prefix', async () => {
    for (const format of ['png', 'jpeg', 'webp'] as const) {
      const b64 = (await discImage({ size: 64, radius: 20, format })).toString('base64');
      expect(sniffPrompt(b64, 1024)).toMatchObject({ kind: 'image', format });
      expect(sniffPrompt(`data:image/${format};base64,${b64}`, 1024)).toMatchObject({ kind: 'image', format });
    }
  });

  it('tolerates wrapped lines, base64url, and pluses turned into spaces by a naive form encoder', async () => {
    const png = await discImage({ size: 96, radius: 30, noise: true });
    const b64 = png.toString('base64');
    expect(b64).toContain('+');
    const decoded = (value: string) => {
      const sniffed = sniffPrompt(value, 1024);
      return sniffed.kind === 'image' ? Buffer.from(sniffed.bytes) : null;
    };
    expect(decoded(b64.replace(/(.{76})/g, '$1\r\n'))?.equals(png)).toBe(true);
    expect(decoded(png.toString('base64url'))?.equals(png)).toBe(true);
    expect(decoded(b64.replace(/\+/g, ' '))?.equals(png)).toBe(true);
  });

  it('reports a data: URL that is empty or not an image', () => {
    expect(sniffPrompt('data:image/png;base64,', 1024)).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/no data/) });
    const noise = Buffer.alloc(2000, 9).toString('base64');
    expect(sniffPrompt(`data:image/png;base64,${noise}`, 1024)).toMatchObject({
      kind: 'invalid',
      reason: expect.stringMatching(/not a PNG, JPEG or WebP/),
    });
  });

  it('reads long base64 that is no image as an over-long text prompt, not as "base64 but not a PNG"', () => {
    const noise = Buffer.alloc(2000, 9).toString('base64');
    expect(sniffPrompt(noise, 1024)).toEqual({ kind: 'invalid', reason: `prompt is ${noise.length} characters long; the limit is 1024` });
    // Characters, not UTF-16 units: 600 emoji are 1200 units but within the limit.
    expect(sniffPrompt('\u{1F600}'.repeat(600), 1024).kind).toBe('text');
    expect(sniffPrompt('\u{1F600}'.repeat(1100), 1024)).toMatchObject({ reason: 'prompt is 1100 characters long; the limit is 1024' });
  });

  it('refuses other image formats by name, base64 or in a data: URL, rather than reading them as text', async () => {
    const tiny = sharp({ create: { width: 16, height: 16, channels: 3, background: '#c04030' } });
    const gif = await tiny.clone().gif().toBuffer();
    const tiff = await tiny.clone().tiff().toBuffer();
    const avif = await tiny.clone().avif().toBuffer();
    const svg = Buffer.from(
      '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><rect width="16" height="16"/></svg>',
    );
    // A 1x1 BMP: file header, BITMAPINFOHEADER (40 bytes), one BGR pixel padded to 4 bytes.
    const bmp = Buffer.alloc(58);
    bmp.write('BM', 0, 'ascii');
    bmp.writeUInt32LE(58, 2);
    bmp.writeUInt32LE(54, 10);
    bmp.writeUInt32LE(40, 14);
    bmp.writeInt32LE(1, 18);
    bmp.writeInt32LE(1, 22);
    bmp.writeUInt16LE(1, 26);
    bmp.writeUInt16LE(24, 28);
    const heic = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from('ftypheic\0\0\0\0mif1heic', 'latin1'), Buffer.alloc(64)]);
    const cases: [string, Buffer][] = [
      ['GIF', gif],
      ['TIFF', tiff],
      ['AVIF', avif],
      ['SVG', svg],
      ['BMP', bmp],
      ['HEIC', heic],
    ];
    for (const [name, bytes] of cases) {
      const b64 = bytes.toString('base64');
      expect(sniffPrompt(b64, 1024), name).toEqual({
        kind: 'invalid',
        reason: `prompt is ${['AVIF', 'SVG'].includes(name) ? 'an' : 'a'} ${name} image; only PNG, JPEG or WebP images are accepted`,
      });
      expect(sniffPrompt(`data:image/x;base64,${b64}`, 1024), name).toMatchObject({
        kind: 'invalid',
        reason: expect.stringContaining(`${name} image`),
      });
    }
    expect(sniffPrompt(`data:image/svg+xml,${encodeURIComponent(svg.toString())}`, 1024)).toMatchObject({
      reason: expect.stringContaining('SVG image'),
    });
  });

  it('takes a data: URL without ;base64 as an image task: percent-encoded or raw bytes', async () => {
    const png = await discImage({ size: 32, radius: 10 });
    for (const payload of [png.toString('latin1'), [...png].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')]) {
      const sniffed = sniffPrompt(`data:image/png,${payload}`, 1024);
      expect(sniffed.kind).toBe('image');
      if (sniffed.kind === 'image') expect(Buffer.from(sniffed.bytes).equals(png)).toBe(true);
    }
    // Bytes mangled into text on the way (not an image) are refused, not taken as a prompt.
    expect(sniffPrompt('data:image/png,\uFFFDPNG garbage', 1024)).toMatchObject({
      kind: 'invalid',
      reason: expect.stringMatching(/without ";base64"/),
    });
    expect(sniffPrompt('data: a red chair', 1024)).toMatchObject({ kind: 'invalid' });
  });

  it('judges a 32 MiB prompt without walking it: base64-like text and prose are refused at once', () => {
    const base64Like = `${'A'.repeat(32 * 1024 * 1024 - 1)}!`;
    const prose = 'a chair '.repeat(4 * 1024 * 1024);
    const breaks = `a${'\n'.repeat(32 * 1024 * 1024)}b`;
    for (const value of [base64Like, prose, breaks]) {
      const start = performance.now();
      const sniffed = sniffPrompt(value, 1024);
      expect(performance.now() - start).toBeLessThan(1000);
      expect(sniffed).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/^prompt is .*characters long; the limit is 1024$/) });
    }
  });
});
