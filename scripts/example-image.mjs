#!/usr/bin/env node
/**
 * Draws docs/examples/apple.png, the sample picture of the README's image examples: a red apple with a stem and a
 * leaf, lit from the upper left, on a plain white background (what the preview matting keys out), 256 x 256, in a
 * 64-colour palette to keep it a few KB. Drawn here from an SVG, so it carries no one else's rights:
 *   node scripts/example-image.mjs [OUT.png]
 */
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';

const out = process.argv[2] ?? new URL('../docs/examples/apple.png', import.meta.url);

const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">
  <defs>
    <radialGradient id="skin" cx="0.38" cy="0.36" r="0.75">
      <stop offset="0" stop-color="#ff6b5e"/>
      <stop offset="0.45" stop-color="#d8241c"/>
      <stop offset="1" stop-color="#7a0c0a"/>
    </radialGradient>
    <linearGradient id="leaf" x1="0" y1="0" x2="1" y2="1">
      <stop offset="0" stop-color="#7fc45a"/>
      <stop offset="1" stop-color="#2f7a23"/>
    </linearGradient>
  </defs>
  <rect width="256" height="256" fill="#ffffff"/>
  <path d="M128 78 C 100 58, 52 62, 46 116 C 40 170, 82 218, 112 214 C 120 213, 124 209, 128 209
           C 132 209, 136 213, 144 214 C 174 218, 216 170, 210 116 C 204 62, 156 58, 128 78 Z" fill="url(#skin)"/>
  <ellipse cx="98" cy="106" rx="14" ry="22" fill="#ffffff" opacity="0.28" transform="rotate(-25 98 106)"/>
  <path d="M127 80 C 126 66, 128 52, 136 40" stroke="#5a3a1e" stroke-width="7" stroke-linecap="round" fill="none"/>
  <path d="M131 56 C 148 34, 182 32, 198 42 C 184 62, 152 70, 131 56 Z" fill="url(#leaf)"/>
</svg>`;

const png = await sharp(Buffer.from(svg)).png({ palette: true, colours: 64, compressionLevel: 9, effort: 10 }).toBuffer();
writeFileSync(out, png);
process.stdout.write(`${out instanceof URL ? out.pathname : out}: ${png.length} bytes\n`);
