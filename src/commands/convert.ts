/**
 * `fast3d convert IN OUT`: converts a splat file between PLY and SPZ, chosen by the extensions. The cloud is
 * carried as it is (no change of frame: both formats hold the validator's frame here); SPZ quantises positions
 * to 1/4096, colours, scales and opacities to bytes and rotations to 10 bits per component.
 */
import { rename, writeFile } from 'node:fs/promises';
import type { GaussianCloud } from '../splat/cloud.js';
import { decodePly, encodePly } from '../splat/ply.js';
import { decodeSpz, encodeSpz } from '../splat/spz.js';
import { parseFlags, readInputFile, tenths } from './args.js';

export const summary = 'convert a splat file between PLY and SPZ (by extension)';

const USAGE = 'usage: fast3d convert IN.ply|IN.spz OUT.ply|OUT.spz\n';

interface SplatCodec {
  decode(bytes: Uint8Array): GaussianCloud;
  encode(cloud: GaussianCloud): Uint8Array;
}

const CODECS: Record<string, SplatCodec> = {
  '.ply': { decode: decodePly, encode: encodePly },
  '.spz': { decode: decodeSpz, encode: encodeSpz },
};

function codecFor(path: string, role: string): SplatCodec {
  const extension = /\.[^./\\]+$/.exec(path)?.[0].toLowerCase() ?? '';
  const codec = CODECS[extension];
  if (!codec)
    throw new Error(
      `${role} ${path}: the extension must be one of ${Object.keys(CODECS).join(', ')}${extension ? `, not ${extension}` : ''}`,
    );
  return codec;
}

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseFlags('convert', argv, { help: { type: 'boolean', short: 'h' } });
  } catch (err) {
    process.stderr.write(`fast3d convert: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 2) {
    process.stderr.write(USAGE);
    return 2;
  }
  const [input, output] = parsed.positionals;
  try {
    const from = codecFor(input, 'input');
    const to = codecFor(output, 'output');
    const start = performance.now();
    const cloud = from.decode(await readInputFile(input));
    const bytes = to.encode(cloud);
    // Written beside the target, then renamed: an interrupted run leaves no half-written file.
    const partial = `${output}.partial`;
    await writeFile(partial, bytes);
    await rename(partial, output);
    process.stdout.write(
      `${input} -> ${output}: ${cloud.count} Gaussians, ${bytes.length} bytes in ${tenths(performance.now() - start)} ms\n`,
    );
    return 0;
  } catch (err) {
    process.stderr.write(`fast3d convert: ${(err as Error).message}\n`);
    return 1;
  }
}
