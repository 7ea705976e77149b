import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixturePath } from './helpers/fixtures.js';
import { summariseMp4 } from './helpers/mp4.js';
import { readFile, writeFile } from 'node:fs/promises';
import { encodeGlb } from '../src/mesh/glb.js';
import { sphereMesh } from './helpers/meshes.js';

const run = promisify(execFile);
const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');

// The compiled build (dist/) starts its render workers from worker.js, the sources from worker.ts through tsx:
// both paths are exercised here, through the operator's commands.
describe('render and turntable commands, from sources and from the build', () => {
  let out: string;
  let build: string;
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'fast3d-cli-test-'));
    // Inside the checkout (under node_modules, ignored by git) so that the build resolves the installed packages
    // as dist/ does; removed afterwards.
    build = join(root, 'node_modules', '.cache', `fast3d-build-test-${process.pid}`);
    await run(join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json', '--outDir', build, '--sourceMap', 'false'], {
      cwd: root,
    });
  }, 120_000);
  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
    await rm(build, { recursive: true, force: true });
  });

  it('compiled: renders the validator preset to numbered PNGs and prints one JSON line', async () => {
    const png = join(out, 'views.png');
    const { stdout } = await run(process.execPath, [
      join(build, 'cli.js'),
      'render',
      fixturePath('hamburger.ply'),
      '--out',
      png,
      '--preset',
      'validator',
      '--size',
      '64',
      '--threads',
      '2',
      '--json',
    ]);
    const line = JSON.parse(stdout.trim());
    expect(line).toMatchObject({ n: 52709, views: 16 });
    for (const key of ['load_ms', 'render_ms', 'ms_per_view']) expect(line[key]).toBeGreaterThan(0);
    const files = (await readdir(out)).filter((f) => f.startsWith('views_')).sort();
    expect(files).toHaveLength(16);
  });

  it('compiled: writes a turntable MP4', async () => {
    const mp4 = join(out, 'spin.mp4');
    const { stdout } = await run(process.execPath, [
      join(build, 'cli.js'),
      'turntable',
      fixturePath('hamburger.ply'),
      '--out',
      mp4,
      '--size',
      '64',
      '--frames',
      '8',
      '--fps',
      '8',
      '--json',
    ]);
    expect(JSON.parse(stdout.trim())).toMatchObject({ n: 52709, frames: 8, size: 64 });
    const info = summariseMp4(new Uint8Array(await readFile(mp4)));
    expect([info.samples, info.width, info.durationSeconds]).toEqual([8, 64, 1]);
  });

  it('from sources (tsx): renders several thetas into one grid image', async () => {
    const png = join(out, 'grid.png');
    const { stdout } = await run(
      join(root, 'node_modules', '.bin', 'tsx'),
      [
        join(root, 'src', 'cli.ts'),
        'render',
        fixturePath('hamburger.ply'),
        '--out',
        png,
        '--theta',
        '0,90,180',
        '--size',
        '48',
        '--grid',
        '--json',
      ],
      { cwd: root },
    );
    expect(JSON.parse(stdout.trim())).toMatchObject({ views: 3 });
    const sharp = (await import('sharp')).default;
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([96, 96]); // 2 x 2 grid of 48 px views
  });

  it('compiled: renders a GLB mesh with the same cameras, and turns it into an MP4', async () => {
    const glbPath = join(out, 'ball.glb');
    await writeFile(glbPath, await encodeGlb(sphereMesh(32, 16, 0.5, true)));
    const png = join(out, 'ball.png');
    const { stdout } = await run(process.execPath, [join(build, 'cli.js'), 'render', glbPath, '--out', png, '--size', '64', '--json']);
    expect(JSON.parse(stdout.trim())).toMatchObject({ n: 32 * 16 * 2 - 64, views: 1 });
    const sharp = (await import('sharp')).default;
    const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    let drawn = 0;
    for (let i = 0; i < data.length; i += 3) if (data[i] + data[i + 1] + data[i + 2] < 3 * 250) drawn++;
    // A sphere at the validator's framing covers a good part of the white view, and not all of it.
    expect(drawn / (64 * 64)).toBeGreaterThan(0.2);
    expect(drawn / (64 * 64)).toBeLessThan(0.8);
    const mp4 = join(out, 'ball.mp4');
    const spun = await run(process.execPath, [
      join(build, 'cli.js'),
      'turntable',
      glbPath,
      '--out',
      mp4,
      '--size',
      '64',
      '--frames',
      '8',
      '--fps',
      '8',
      '--json',
    ]);
    expect(JSON.parse(spun.stdout.trim())).toMatchObject({ frames: 8, size: 64 });
    expect(summariseMp4(new Uint8Array(await readFile(mp4))).samples).toBe(8);
  });

  it('explains bad arguments with exit code 2', async () => {
    const err = await run(process.execPath, [
      join(build, 'cli.js'),
      'render',
      fixturePath('hamburger.ply'),
      '--out',
      join(out, 'x.png'),
      '--bg',
      'purple',
    ]).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/background must be white, black or #rrggbb/);
    const obj = await run(process.execPath, [join(build, 'cli.js'), 'render', join(out, 'chair.obj'), '--out', join(out, 'x.png')]).catch(
      (e) => e,
    );
    expect(obj.code).toBe(2);
    expect(obj.stderr).toMatch(/reads \.ply, \.spz, \.glb files/);
  });
});
