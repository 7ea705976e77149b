/**
 * The README's examples as a newcomer runs them: every curl line fails on an error answer, every file a curl line
 * sends is in the checkout, and the HTTP contract's and the job API's examples, run as written against the
 * preview service (only the address changed), succeed and make the files that the commands after them check.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { run as check } from '../src/commands/check.js';
import { inspectGlb } from '../src/mesh/rules.js';
import { compose } from '../src/compose.js';
import { parseConfig } from '../src/config/load.js';
import { serveApp } from './helpers/fake-stages.js';

const exec = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
/** Where the README's examples send their requests. */
const README_URL = 'http://127.0.0.1:8093';

/** The README's shell blocks. */
const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
const curlLines = blocks.flatMap((block) => block.split('\n')).filter((line) => line.startsWith('curl '));
const contractBlock = blocks.find((block) => block.includes('/generate/') && block.includes('BLANK='))!;
const jobBlock = blocks.find((block) => block.includes('/api/v1/jobs'))!;
/** The files the block after the contract's examples checks: `npm run fast3d -- check FILE`. */
const checkedFiles = [...blocks[blocks.indexOf(contractBlock) + 1].matchAll(/-- check (\S+)/g)].map((m) => m[1]);

/** Runs a piece of the README in bash, from `cwd`, against `url` instead of the README's address. */
function bash(script: string, cwd: string, url: string) {
  return exec('bash', ['-c', `set -e -o pipefail\n${script.replaceAll(README_URL, url)}`], { cwd, timeout: 180_000, maxBuffer: 16 << 20 });
}

describe('README examples', () => {
  it('every curl line fails on an error answer (--fail-with-body), and every file one sends is in the checkout', () => {
    expect(curlLines.length).toBeGreaterThan(10);
    for (const line of curlLines) expect(line).toContain('--fail-with-body');
    const sent = curlLines.flatMap((line) => [...line.matchAll(/=@([^\s"']+)|base64 -w0 ([^\s)"']+)/g)].map((m) => m[1] ?? m[2]));
    expect(sent.length).toBeGreaterThanOrEqual(2);
    for (const path of sent) expect(existsSync(join(ROOT, path)), path).toBe(true);
  });

  describe('against the preview service', () => {
    let dir: string;
    let url: string;
    let close: () => Promise<void>;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'fast3d-readme-test-'));
      // The examples are run from the checkout: its docs/ folder is where they find the sample image.
      symlinkSync(join(ROOT, 'docs'), join(dir, 'docs'));
      const preview = parseYaml(readFileSync(join(ROOT, 'configs/preview.yaml'), 'utf8')) as Record<string, unknown>;
      const { service, app, renderPool, cpuPool } = compose(
        parseConfig({ ...preview, log: { level: 'silent' }, cache: { enabled: false } }),
      );
      void service.start();
      const served = await serveApp(app);
      url = served.url;
      close = async () => {
        await served.close();
        await service.close();
        await renderPool.close();
        await cpuPool?.close();
      };
    });
    afterAll(async () => {
      await close?.();
      rmSync(dir, { recursive: true, force: true });
    });

    it("the HTTP contract's examples succeed as written and make the files checked after them, which pass", async () => {
      const { stdout } = await bash(contractBlock, dir, url);
      // The blank image's decline, told by its headers.
      expect(stdout).toMatch(/^HTTP\/1\.1 204/m);
      expect(stdout).toMatch(/^x-fast3d-decline-reason: /im);
      expect(checkedFiles).toEqual(expect.arrayContaining(['bicycle.ply', 'bicycle.glb']));
      let report = '';
      vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
        report += String(chunk);
        return true;
      });
      let code: number;
      try {
        code = await check(checkedFiles.map((file) => join(dir, file)));
      } finally {
        vi.restoreAllMocks();
      }
      expect(report).toMatch(/^ok {3}.*bicycle\.ply: \d+ Gaussians\n/m);
      expect(report).toMatch(/^ok {3}.*bicycle\.glb: 1 mesh, /m);
      expect(code).toBe(0);
      for (const file of ['apple.ply', 'apple-7.ply', 'barrel.ply', 'bicycle.mp4']) expect(existsSync(join(dir, file)), file).toBe(true);
      // The game team's line: the faces, size and pivot it asked for, meshopt, and every rule of a GLB 200.
      const game = new Uint8Array(readFileSync(join(dir, 'bicycle-game.glb')));
      const inspected = await inspectGlb(game, { extent: 1, maxBytes: 200e6, placement: { sizeM: 1.8, pivot: 'bottom' } });
      expect(inspected.violations).toEqual([]);
      expect(inspected.triangles).toBeLessThanOrEqual(10_000);
      expect(new TextDecoder().decode(game).includes('EXT_meshopt_compression')).toBe(true);
    }, 240_000);

    it("the game team's job succeeds as written: its levels with their triangles, and its OBJ", async () => {
      const line = blocks.flatMap((block) => block.split('\n')).find((l) => l.startsWith('curl ') && l.includes('"lods"'))!;
      const { id } = JSON.parse((await bash(line, dir, url)).stdout) as { id: string };
      let job: { state: string; artefacts: { name: string; triangles?: number }[] };
      do {
        await new Promise((r) => setTimeout(r, 100));
        job = (await (await fetch(`${url}/api/v1/jobs/${id}`)).json()) as typeof job;
      } while (job.state === 'queued' || job.state === 'running');
      expect(job.state).toBe('done');
      expect(job.artefacts.map((a) => a.name)).toEqual(expect.arrayContaining(['glb', 'glb_lod1', 'glb_lod2', 'obj']));
      expect(job.artefacts.find((a) => a.name === 'glb')!.triangles).toBeLessThanOrEqual(10_000);
    }, 120_000);

    it("the job API's examples succeed as written, with the id the first one answers", async () => {
      const [post, events, artefact] = jobBlock.split('\n').filter((line) => line.startsWith('curl '));
      const created = JSON.parse((await bash(post, dir, url)).stdout) as { id: string };
      const stream = (await bash(events.replaceAll('ID', created.id), dir, url)).stdout;
      expect(stream).toMatch(/^event: end\ndata: \{"type":"end","state":"done"/m);
      await bash(artefact.replaceAll('ID', created.id), dir, url);
      expect(readFileSync(join(dir, 'chair.spz'))[0]).toBe(0x1f);
    }, 120_000);
  });
});
