/**
 * SPZ: what the service and `fast3d convert` write must load in a reader that follows the published layout
 * (written here from the format's description, sharing no code with src/splat/spz.ts), and round trips must
 * agree with the source within SPZ's quantisation.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { ZSTDDecoder } from 'three/examples/jsm/libs/zstddec.module.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { allocateCloud, SH_C0, type GaussianCloud } from '../src/splat/cloud.js';
import { decodePly, encodePly } from '../src/splat/ply.js';
import { decodeSpz, encodeSpz, MAX_SPZ_POINTS, packSpz, spzViolation } from '../src/splat/spz.js';
import { loadFixtureCloud, fixturePath } from './helpers/fixtures.js';
import { testConfig } from './helpers/fake-stages.js';

const run = promisify(execFile);
const zstd = new ZSTDDecoder();
await zstd.init();
const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

interface IndependentSplat {
  version: number;
  count: number;
  position(i: number): [number, number, number];
  /** Opacity in 0..1. */
  alpha(i: number): number;
  /** Linear colour 0..1 of the DC term. */
  colour(i: number): [number, number, number];
  /** Log scales. */
  scale(i: number): [number, number, number];
  /** Unit quaternion (x, y, z, w). */
  rotation(i: number): [number, number, number, number];
}

/**
 * Version 4 after the published layout (nianticlabs/spz load-spz.cc): a 32-byte header, the table of contents of
 * (compressed, uncompressed) uint64 pairs at its offset, then one zstd frame per block, decoded here with three.js's
 * zstd decoder (zstddec, another build than the writer's); returned as the version 3 layout of header and blocks.
 */
function unpackV4Independently(file: Uint8Array): Uint8Array {
  const dv = new DataView(file.buffer, file.byteOffset, file.byteLength);
  expect(dv.getUint32(0, true)).toBe(0x5053474e);
  expect(dv.getUint32(4, true)).toBe(4);
  const count = dv.getUint32(8, true);
  const streams = file[15];
  const toc = dv.getUint32(16, true);
  expect([...file.subarray(20, 32)]).toEqual(new Array(12).fill(0)); // reserved
  const blocks: Uint8Array[] = [];
  let at = toc + streams * 16;
  for (let i = 0; i < streams; i++) {
    const compressed = Number(dv.getBigUint64(toc + i * 16, true));
    const size = Number(dv.getBigUint64(toc + i * 16 + 8, true));
    blocks.push(zstd.decode(file.subarray(at, at + compressed), size));
    at += compressed;
  }
  expect(at).toBe(file.length);
  expect(blocks.map((b) => b.length)).toEqual([9 * count, count, 3 * count, 3 * count, 4 * count]);
  const raw = new Uint8Array(16 + blocks.reduce((s, b) => s + b.length, 0));
  raw.set(file.subarray(0, 16));
  raw[15] = 0;
  let into = 16;
  for (const block of blocks) {
    raw.set(block, into);
    into += block.length;
  }
  return raw;
}

/** A reader of SPZ versions 2 to 4 after the published description: header, then attribute blocks. */
function readSpzIndependently(file: Uint8Array): IndependentSplat {
  const raw = file[0] === 0x1f ? gunzipSync(file) : unpackV4Independently(file);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  expect(dv.getUint32(0, true)).toBe(0x5053474e);
  const version = dv.getUint32(4, true);
  const count = dv.getUint32(8, true);
  const shDegree = raw[12];
  const fractional = raw[13];
  expect(raw[15]).toBe(0); // reserved
  const rotationBytes = version >= 3 ? 4 : 3;
  const shCoefficients = [0, 3, 8, 15, 24][shDegree] * 3;
  const pos = 16,
    alphas = pos + 9 * count,
    colours = alphas + count,
    scales = colours + 3 * count,
    rotations = scales + 3 * count;
  expect(raw.length).toBe(rotations + rotationBytes * count + shCoefficients * count);
  const fixed = (at: number) => {
    let v = raw[at] + raw[at + 1] * 256 + raw[at + 2] * 65536;
    if (v >= 0x800000) v -= 0x1000000;
    return v / 2 ** fractional;
  };
  return {
    version,
    count,
    position: (i) => [fixed(pos + 9 * i), fixed(pos + 9 * i + 3), fixed(pos + 9 * i + 6)],
    alpha: (i) => raw[alphas + i] / 255,
    colour: (i) => [0, 1, 2].map((k) => 0.5 + SH_C0 * ((raw[colours + 3 * i + k] / 255 - 0.5) / 0.15)) as [number, number, number],
    scale: (i) => [0, 1, 2].map((k) => raw[scales + 3 * i + k] / 16 - 10) as [number, number, number],
    rotation(i) {
      if (version < 3) {
        const [x, y, z] = [0, 1, 2].map((k) => raw[rotations + 3 * i + k] / 127.5 - 1);
        return [x, y, z, Math.sqrt(Math.max(0, 1 - x * x - y * y - z * z))];
      }
      const word = dv.getUint32(rotations + 4 * i, true);
      const largest = Math.floor(word / 2 ** 30);
      const q = [0, 0, 0, 0];
      let rest = word % 2 ** 30;
      let sum = 0;
      for (let k = 3; k >= 0; k--) {
        if (k === largest) continue;
        const magnitude = ((rest % 512) / 511) * Math.SQRT1_2;
        const sign = Math.floor(rest / 512) % 2 ? -1 : 1;
        rest = Math.floor(rest / 1024);
        q[k] = sign * magnitude;
        sum += magnitude * magnitude;
      }
      q[largest] = Math.sqrt(Math.max(0, 1 - sum));
      return q as [number, number, number, number];
    },
  };
}

/** A version 3 SPZ header declaring `count` points at SH degree 0. */
function spzHeader(count: number): Uint8Array {
  const header = new Uint8Array(16);
  const view = new DataView(header.buffer);
  view.setUint32(0, 0x5053474e, true);
  view.setUint32(4, 3, true);
  view.setUint32(8, count, true);
  header[13] = 12;
  return header;
}

/** A gzip stream of `header` followed by `zeros` zero bytes, compressed as it is written (never held whole). */
async function gzipBomb(header: Uint8Array, zeros: number): Promise<Uint8Array> {
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = once(gzip, 'end');
  gzip.write(header);
  const block = Buffer.alloc(1 << 20);
  for (let left = zeros; left > 0; left -= block.length) gzip.write(block.subarray(0, Math.min(left, block.length)));
  gzip.end();
  await ended;
  return new Uint8Array(Buffer.concat(chunks));
}

/** decodeSpz on a file in a fresh process: its error, and how far the resident memory grew above where it stood. */
async function decodeInChild(path: string): Promise<{ error: string; grownMb: number }> {
  const script = `import { readFileSync } from 'node:fs';
    import { decodeSpz } from './src/splat/spz.ts';
    const bytes = readFileSync(${JSON.stringify(path)});
    // The peak so far (loading modules) is the baseline: only a decode that goes past it grows it.
    const before = process.resourceUsage().maxRSS * 1024;
    let error = '';
    try { decodeSpz(bytes); } catch (err) { error = err.message; }
    const peak = process.resourceUsage().maxRSS * 1024;
    console.log(JSON.stringify({ error, grownMb: (peak - before) / 2 ** 20 }));`;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, timeout: 60_000 });
  return JSON.parse(stdout) as { error: string; grownMb: number };
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** The largest differences between a cloud and an SPZ reading of it, per attribute. */
function errors(cloud: GaussianCloud, spz: IndependentSplat) {
  const c = cloud.columns;
  const worst = { position: 0, alpha: 0, colour: 0, scale: 0, rotation: 0 };
  for (let i = 0; i < cloud.count; i++) {
    const p = spz.position(i);
    worst.position = Math.max(worst.position, Math.abs(p[0] - c.x[i]), Math.abs(p[1] - c.y[i]), Math.abs(p[2] - c.z[i]));
    worst.alpha = Math.max(worst.alpha, Math.abs(spz.alpha(i) - sigmoid(c.opacity[i])));
    const colour = spz.colour(i);
    const dc = [c.f_dc_0[i], c.f_dc_1[i], c.f_dc_2[i]];
    for (let k = 0; k < 3; k++) {
      const expected = Math.min(1, Math.max(0, 0.5 + SH_C0 * dc[k]));
      // Colours beyond what SPZ's byte holds are clamped; compare where they fit.
      if (Math.abs(dc[k] * 0.15) < 0.5) worst.colour = Math.max(worst.colour, Math.abs(Math.min(1, Math.max(0, colour[k])) - expected));
    }
    const s = spz.scale(i);
    const logs = [c.scale_0[i], c.scale_1[i], c.scale_2[i]];
    for (let k = 0; k < 3; k++) if (logs[k] > -10 && logs[k] < 5.9) worst.scale = Math.max(worst.scale, Math.abs(s[k] - logs[k]));
    const [x, y, z, w] = spz.rotation(i);
    const n = Math.hypot(c.rot_0[i], c.rot_1[i], c.rot_2[i], c.rot_3[i]);
    const dot = Math.abs((w * c.rot_0[i] + x * c.rot_1[i] + y * c.rot_2[i] + z * c.rot_3[i]) / n);
    worst.rotation = Math.max(worst.rotation, 2 * Math.acos(Math.min(1, dot)));
  }
  return worst;
}

/** What SPZ's quantisation allows: half a step of each encoding (rotation: about a degree). */
const WITHIN = {
  position: 0.5 / 4096 + 1e-6,
  alpha: 0.5 / 255 + 1e-6,
  colour: (0.5 / 255 / 0.15) * SH_C0 + 1e-6,
  scale: 0.5 / 16 + 1e-6,
  rotation: 0.02,
};

describe('SPZ', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fast3d-spz-test-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes version 3 that an independent reader loads, within quantisation of the source', () => {
    const cloud = loadFixtureCloud('robocop.ply');
    const bytes = encodeSpz(cloud);
    expect(spzViolation(bytes)).toBeNull();
    const spz = readSpzIndependently(bytes);
    expect([spz.version, spz.count]).toEqual([3, cloud.count]);
    const worst = errors(cloud, spz);
    for (const key of Object.keys(WITHIN) as (keyof typeof WITHIN)[]) expect(worst[key], key).toBeLessThanOrEqual(WITHIN[key]);
    // 20 bytes a Gaussian before gzip, against the PLY's 56.
    expect(bytes.length / encodePly(cloud).length).toBeLessThan(0.25);
  });

  it('reads back what it writes, and refuses truncated or foreign bytes', () => {
    const cloud = loadFixtureCloud('hamburger.ply');
    const bytes = encodeSpz(cloud);
    const back = decodeSpz(bytes);
    expect(back.count).toBe(cloud.count);
    expect(errors(back, readSpzIndependently(bytes)).position).toBeLessThan(1e-6); // both readers agree
    for (let i = 0; i < back.count; i++) expect(Number.isFinite(back.columns.opacity[i])).toBe(true);
    expect(spzViolation(bytes.subarray(0, bytes.length - 100))).toMatch(/gzip/);
    expect(spzViolation(encodePly(cloud))).toMatch(/gzip/);
    expect(() => decodeSpz(bytes.subarray(0, 10))).toThrow();
  });

  it('inflates a gzip bomb no further than its header declares, in memory and in the error', async () => {
    // 1 point declared (36 bytes), 256 MiB of zeros behind it: about 250 KB on disk.
    const path = join(dir, 'bomb.spz');
    await writeFile(path, await gzipBomb(spzHeader(1), 256 << 20));
    const { error, grownMb } = await decodeInChild(path);
    expect(error).toBe('inflates to more than the 36 bytes its header declares');
    // Reading its header takes at most about a megabyte; the whole stream would be 256 MiB.
    expect(grownMb).toBeLessThan(32);
  }, 60_000);

  it('refuses a header over the point limit before inflating the body, and a stream that ends short or is followed by other bytes', async () => {
    const over = await gzipBomb(spzHeader(MAX_SPZ_POINTS + 1), 1 << 20);
    expect(spzViolation(over)).toBe(`${MAX_SPZ_POINTS + 1} points is over the limit of ${MAX_SPZ_POINTS}`);
    const raw = packSpz(loadFixtureCloud('hamburger.ply'));
    expect(spzViolation(gzipSync(raw.subarray(0, raw.length - 20)))).toBe(
      `holds ${raw.length - 20} bytes, its header declares ${raw.length}`,
    );
    const whole = gzipSync(raw);
    expect(spzViolation(new Uint8Array([...whole, 0, 0, 0, 0]))).toBe('4 bytes of other data after the gzip stream');
    expect(() => decodeSpz(new Uint8Array([...whole, 0, 0, 0, 0]))).toThrow('4 bytes of other data after the gzip stream');
    // A header alone is shorter than what it declares; a file cut inside the gzip header is no gzip stream.
    expect(spzViolation(gzipSync(raw.subarray(0, 10)))).toBe('shorter than the 16-byte SPZ header');
    expect(spzViolation(whole.subarray(0, 8))).toBe('not a gzip stream');
    expect(spzViolation(gzipSync(packSpz(allocateCloud(0))))).toBe('no Gaussians');
    expect(decodeSpz(whole).count).toBe(loadFixtureCloud('hamburger.ply').count);
  });

  it('writes version 4 (zstd streams) on request that an independent reader loads, within quantisation, and reads it back', () => {
    const cloud = loadFixtureCloud('robocop.ply');
    const bytes = encodeSpz(cloud, 4);
    expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true)).toBe(4);
    expect(spzViolation(bytes)).toBeNull();
    const spz = readSpzIndependently(bytes);
    expect([spz.version, spz.count]).toEqual([4, cloud.count]);
    const worst = errors(cloud, spz);
    for (const key of Object.keys(WITHIN) as (keyof typeof WITHIN)[]) expect(worst[key], key).toBeLessThanOrEqual(WITHIN[key]);
    const back = decodeSpz(bytes);
    expect(back.count).toBe(cloud.count);
    expect(errors(back, spz).position).toBeLessThan(1e-6);
    // Version 3 stays the default.
    expect(readSpzIndependently(encodeSpz(cloud)).version).toBe(3);
  });

  it('reads a version 4 header first and refuses what it cannot hold before decoding a stream', () => {
    const bytes = encodeSpz(loadFixtureCloud('hamburger.ply'), 4);
    const edit = (_at: number, write: (dv: DataView) => void) => {
      const copy = bytes.slice();
      write(new DataView(copy.buffer));
      return spzViolation(copy) ?? 'accepted';
    };
    const small = bytes.slice(0, 64);
    new DataView(small.buffer).setUint32(8, 9000, true);
    expect(spzViolation(small)).toBe('9000 points cannot fit in 64 bytes');
    expect(edit(8, (dv) => dv.setUint32(8, 20_000_000, true))).toMatch(/over the limit of 10000000/);
    expect(edit(15, (dv) => dv.setUint8(15, 6))).toMatch(/declares 6 streams; SH degree 0 needs 5/);
    expect(edit(16, (dv) => dv.setUint32(16, bytes.length, true))).toMatch(/table of contents lies outside the file/);
    expect(edit(40, (dv) => dv.setBigUint64(40, 123n, true))).toMatch(/^stream 0 declares 123 bytes/);
    expect(edit(32, (dv) => dv.setBigUint64(32, BigInt(bytes.length), true))).toMatch(/^stream 0 runs past the end of the file/);
    expect(spzViolation(bytes.subarray(0, bytes.length - 1))).toMatch(/stream 4/);
    // A frame whose header declares another size than the table of contents is not decoded.
    const toc = 32,
      first = toc + 5 * 16;
    expect(edit(first + 5, (dv) => dv.setUint8(first + 5, dv.getUint8(first + 5) ^ 0x01))).toMatch(/^stream 0: the zstd frame declares/);
    expect(() => decodeSpz(bytes.subarray(0, 20))).toThrow(/shorter than the 32-byte SPZ version 4 header/);
  });

  it('fast3d convert: PLY to SPZ and back agree within quantisation; outputs are named by their contents', async () => {
    const spzPath = join(dir, 'robocop.spz');
    const plyPath = join(dir, 'robocop-again.ply');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'convert', fixturePath('robocop.ply'), spzPath], {
      cwd: root,
    });
    expect(stdout).toMatch(/robocop\.spz: \d+ Gaussians/);
    await run(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'convert', spzPath, plyPath], { cwd: root });
    const original = loadFixtureCloud('robocop.ply');
    const again = decodePly(new Uint8Array(await readFile(plyPath)));
    expect(again.count).toBe(original.count);
    const worst = errors(original, readSpzIndependently(new Uint8Array(await readFile(spzPath))));
    expect(worst.position).toBeLessThanOrEqual(WITHIN.position);
    let maxMove = 0;
    for (let i = 0; i < again.count; i++) maxMove = Math.max(maxMove, Math.abs(again.columns.x[i] - original.columns.x[i]));
    expect(maxMove).toBeLessThanOrEqual(WITHIN.position);

    const wrong = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'convert', fixturePath('robocop.ply'), join(dir, 'out.jpg')],
      { cwd: root },
    ).catch((e) => e);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/output .*out\.jpg: the extension must be one of \.ply, \.spz, not \.jpg/);
    const render = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli.ts', 'render', fixturePath('robocop.ply'), '--out', join(dir, 'view.jpg')],
      { cwd: root },
    ).catch((e) => e);
    expect(render.code).toBe(2);
    expect(render.stderr).toMatch(/this command writes \.png files/);
  }, 60_000);

  it('an SPZ the service writes loads in the independent reader', async () => {
    const c = compose(testConfig({ pipeline: { retries: 0 } }));
    try {
      const answer = await c.answers.answer({
        title: 'a green teapot',
        task: { kind: 'text', prompt: 'a green teapot' },
        seed: 9,
        priority: 'interactive',
        wants: [{ format: 'spz' }, { format: 'ply' }],
      });
      expect(answer.kind).toBe('asset');
      if (answer.kind !== 'asset') return;
      const [spz, ply] = answer.artefacts;
      expect(spz.format.contentType).toBe('application/x-spz');
      const read = readSpzIndependently(spz.bytes);
      const cloud = decodePly(ply.bytes);
      expect(read.count).toBe(cloud.count);
      expect(errors(cloud, read).position).toBeLessThanOrEqual(WITHIN.position);
      // The viewer's download is far smaller than the PLY.
      expect(spz.bytes.length / ply.bytes.length).toBeLessThan(1 / 6);
    } finally {
      await c.service.close();
      await c.renderPool.close();
    }
  });
});
