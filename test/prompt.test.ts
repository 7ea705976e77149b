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

  it('reports base64 that is not an image, and an empty data: URL', () => {
    const noise = Buffer.alloc(2000, 9).toString('base64');
    expect(sniffPrompt(noise, 1024)).toMatchObject({ kind: 'invalid', reason: expect.stringMatching(/not a PNG, JPEG or WebP/) });
    expect(sniffPrompt('data:image/png;base64,', 1024)).toMatchObject({ kind: 'invalid' });
  });
});
