/**
 * Small measurements for scripts/gpu-acceptance.sh, which cannot do them in bash:
 *
 *   npx tsx scripts/acceptance-probe.ts picture OUT.png   # the test object: a disc, red above, blue below, on white
 *   npx tsx scripts/acceptance-probe.ts upright FILE.ply  # exit 0 when the red half is at +Y (the asset is Y-up)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import sharp from 'sharp';
import type { GaussianCloud } from '../src/splat/cloud.js';
import { decodePly } from '../src/splat/ply.js';

const SIDE = 512;

/** A picture whose top and bottom TRELLIS cannot confuse: red upper half, blue lower half. */
export async function twoTonePicture(): Promise<Buffer> {
  const rgb = Buffer.alloc(SIDE * SIDE * 3, 255);
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      if (Math.hypot(x + 0.5 - SIDE / 2, y + 0.5 - SIDE / 2) > SIDE * 0.35) continue;
      rgb.set(y < SIDE / 2 ? [200, 30, 30] : [30, 30, 200], (y * SIDE + x) * 3);
    }
  }
  return sharp(rgb, { raw: { width: SIDE, height: SIDE, channels: 3 } }).png().toBuffer();
}

/** How much redder the +Y half is than the -Y half (SH degree 0 colour, red minus blue); > 0 means Y-up. */
export function redAboveBlue(cloud: GaussianCloud): number {
  const { y, f_dc_0, f_dc_2 } = cloud.columns;
  let above = 0, below = 0, nAbove = 0, nBelow = 0;
  for (let i = 0; i < cloud.count; i++) {
    const redness = f_dc_0[i] - f_dc_2[i];
    if (y[i] > 0) { above += redness; nAbove++; } else { below += redness; nBelow++; }
  }
  return above / Math.max(1, nAbove) - below / Math.max(1, nBelow);
}

async function main(argv: string[]): Promise<number> {
  const [command, path] = argv;
  if (command === 'picture' && path) {
    writeFileSync(path, await twoTonePicture());
    return 0;
  }
  if (command === 'upright' && path) {
    const score = redAboveBlue(decodePly(new Uint8Array(readFileSync(path))));
    process.stdout.write(`red-above-blue ${score.toFixed(3)} (${score > 0 ? 'Y-up' : 'upside down'})\n`);
    return score > 0 ? 0 : 1;
  }
  process.stderr.write('usage: acceptance-probe.ts picture OUT.png | upright FILE.ply\n');
  return 2;
}

if (process.argv[1]?.endsWith('acceptance-probe.ts')) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (err: Error) => {
    process.stderr.write(`acceptance-probe: ${err.message}\n`);
    process.exitCode = 1;
  });
}
