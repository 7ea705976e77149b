/** The operator's entry points as a user runs them: npm scripts, --help and --version, paths, npm itself. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeGlb } from '../src/mesh/glb.js';
import { cloneCloud } from '../src/splat/cloud.js';
import { encodeSpz } from '../src/splat/spz.js';
import { fixturePath, loadFixtureCloud } from './helpers/fixtures.js';
import { onLogLines, type LogEntry } from './helpers/log-lines.js';
import { sphereMesh } from './helpers/meshes.js';

const exec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'fast3d-cli-test-'));
  dirs.push(dir);
  return dir;
}

/** Runs a command and returns its exit code and output, whatever the code. */
async function run(file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  try {
    const { stdout, stderr } = await exec(file, args, {
      cwd: options.cwd ?? ROOT,
      env: { ...process.env, ...options.env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
const cli = (...args: string[]) => run(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args]);

describe('fast3d CLI', () => {
  it('lists the presets with what each changes, and refuses a config with a bad one', async () => {
    const dir = tempDir();
    const file = join(dir, 'c.yaml');
    writeFileSync(file, 'presets:\n  mine:\n    description: Mine.\n    pipeline:\n      retries: 3\n');
    const listed = await cli('config', '--presets', '--config', file);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('balanced (contract.preset): ');
    expect(listed.stdout).toContain('fast (contract.image_file_preset): ');
    expect(listed.stdout).toMatch(/realtime: .*\n( {4}.*\n)* {4}pipeline\.max_gaussians = 60000\n/);
    expect(listed.stdout).toMatch(/mine: Mine\.\n {4}pipeline\.retries = 3\n/);
    writeFileSync(file, 'presets:\n  mine:\n    pipeline:\n      retries: 30\n');
    const bad = await cli('config', '--check', file);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/presets\.mine\.pipeline\.retries: /);
  });

  it('prints its version', async () => {
    expect(await cli('--version')).toMatchObject({ code: 0, stdout: `fast3d ${VERSION}\n` });
  });

  it('prints the usage of every command on --help, without running it', async () => {
    for (const command of ['check', 'serve', 'config', 'weights']) {
      const { code, stdout } = await cli(command, '--help');
      expect(code, command).toBe(0);
      expect(stdout, command).toMatch(new RegExp(`^usage: fast3d ${command}`));
    }
  });

  it('npm run fast3d -- check resolves a relative path from where the user stands', async () => {
    const dir = tempDir();
    copyFileSync(fixturePath('hamburger.ply'), join(dir, 'x.ply'));
    const { code, stdout, stderr } = await run('npm', ['--prefix', ROOT, 'run', '-s', 'fast3d', '--', 'check', 'x.ply'], { cwd: dir });
    expect(stderr).not.toMatch(/ENOENT/);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^ok {3}x\.ply: \d+ Gaussians/);
  });

  it("fast3d check reads each file as what its bytes hold: PLY, SPZ (our own writer's) or GLB, whatever its name", async () => {
    const dir = tempDir();
    const cloud = loadFixtureCloud('hamburger.ply');
    writeFileSync(join(dir, 'ours.spz'), encodeSpz(cloud));
    const clear = cloneCloud(cloud);
    clear.columns.opacity.fill(-20); // every opacity byte 0 in the SPZ: all transparent to the validator
    writeFileSync(join(dir, 'clear.spz'), encodeSpz(clear));
    copyFileSync(fixturePath('hamburger.ply'), join(dir, 'ply-named.spz'));
    writeFileSync(join(dir, 'mesh-named.ply'), await encodeGlb(sphereMesh(16, 8)));
    writeFileSync(join(dir, 'notes.spz'), 'not an asset\n');

    const one = await cli('check', join(dir, 'ours.spz'));
    expect(one.code).toBe(0);
    expect(one.stdout).toBe(`ok   ${join(dir, 'ours.spz')}: SPZ, ${cloud.count} Gaussians\n`);

    const names = ['ours.spz', 'clear.spz', 'ply-named.spz', 'mesh-named.ply', 'notes.spz'];
    const all = await cli('check', '--json', ...names.map((n) => join(dir, n)));
    expect(all.code).toBe(1);
    const lines = all.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { format: string | null; ok: boolean; gates?: { name: string; value: number }[]; error?: string });
    expect(lines.map((l) => [l.format, l.ok])).toEqual([
      ['spz', true],
      ['spz', false],
      ['ply', true],
      ['glb', true],
      [null, false],
    ]);
    expect(lines[1].gates?.find((g) => g.name === 'transparent_share')?.value).toBe(1);
    expect(lines[4].error).toMatch(/^neither a PLY, an SPZ nor a GLB file/);
  });

  it("names an unknown flag with the flags its command takes, not parseArgs' advice about '--'", async () => {
    const check = await cli('check', '--jsn', 'x.ply');
    expect(check.code).toBe(2);
    expect(check.stderr).toBe('fast3d check: unknown flag --jsn; fast3d check takes --json, --config (-c), --help\n');
    const render = await cli('render', 'x.ply', '--out', 'x.png', '--sise', '64', '-z');
    expect(render.code).toBe(2);
    expect(render.stderr).toMatch(
      /^fast3d render: unknown flags --sise, -z; fast3d render takes --out \(-o\), --size, --width, .*, --help \(-h\)\nusage: fast3d render /,
    );
    expect(render.stderr).not.toMatch(/after '--'/);
  });

  it('a missing file is named after the command, with the reason in words, not a raw ENOENT', async () => {
    const missing = join(tempDir(), 'absent.ply');
    for (const args of [
      ['check', missing],
      ['render', missing, '--out', `${missing}.png`],
      ['convert', missing, `${missing}.spz`],
    ]) {
      const { code, stderr } = await cli(...args);
      expect(code, args[0]).toBe(1);
      expect(stderr, args[0]).toBe(`fast3d ${args[0]}: cannot read ${missing}: no such file\n`);
    }
  });

  it('npm start before a build says what to run instead of a module-not-found stack', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'scripts'));
    copyFileSync(join(ROOT, 'scripts/start.mjs'), join(dir, 'scripts/start.mjs'));
    const { code, stderr } = await run(process.execPath, [join(dir, 'scripts/start.mjs'), 'serve'], { cwd: dir });
    expect(code).toBe(1);
    expect(stderr).toBe('fast3d: dist/ is not built yet: run `npm run build` first (or `npm run preview` to run from source)\n');
  });

  it('started with no config, says at start-up that auth is off on every interface and how to turn it on, and where the cache writes', async () => {
    const dir = tempDir();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0' };
    delete env.FAST3D_CONFIG;
    delete env.HOST;
    // From another folder, as `npm start` is run from wherever the checkout is: the cache lands in the working directory.
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), join(ROOT, 'src/cli.ts'), 'serve'], {
      cwd: dir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const entries: LogEntry[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        onLogLines(child.stdout!, (entry) => {
          entries.push(entry);
          // Its last start-up line: the notes come with 'listening', before it.
          if (String(entry.msg).startsWith('render workers')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`the service exited with ${code} before its start-up lines`)));
      });
    } finally {
      child.kill('SIGTERM');
    }
    const listening = entries.find((e) => e.msg === 'listening')!;
    expect(listening).toMatchObject({ host: '0.0.0.0', auth: 'off' });
    const warning = entries.find((e) => String(e.msg).startsWith('auth is off'));
    expect(warning?.level).toBe(40);
    expect(warning?.msg).toBe(
      `auth is off and the service listens on 0.0.0.0: anyone who can reach port ${listening.port} can run jobs. ` +
        'To require a bearer token, set auth.enabled: true in a config file (--config FILE or FAST3D_CONFIG) and export the token as ' +
        'FAST3D_API_TOKEN (auth.token_env); or listen on this machine only with HOST=127.0.0.1',
    );
    const cache = entries.find((e) => String(e.msg).startsWith('result cache in '));
    expect(cache).toMatchObject({ directory: join(dir, '.fast3d-cache'), max_size_mb: 2048 });
    expect(cache?.msg).toBe(
      `result cache in ${join(dir, '.fast3d-cache')}, up to 2048 MiB (cache.directory, cache.max_size_mb; cache.enabled: false turns it off)`,
    );
    await new Promise((resolve) => (child.exitCode === null ? child.once('exit', resolve) : resolve(null)));
  }, 60_000);

  it("npm reads the project's .npmrc without warnings", async () => {
    const { code, stderr } = await run('npm', ['config', 'get', 'ignore-scripts']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
  });
});
