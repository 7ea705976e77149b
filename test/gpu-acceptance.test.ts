/**
 * scripts/gpu-acceptance.sh and its probe: the verdicts it prints (the competitions' time rules, the memory
 * bar, the same-seed bar), the requests it sends, and a dry run of the whole script in GLB mode against the
 * service with the Python GPU worker's fake provider, which answers GLB meshes as competition 1 asks.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import {
  budgetVerdict,
  imageJobs,
  median,
  memoryVerdict,
  redAboveBlue,
  rendersPsnr,
  SAME_SEED_MIN_PSNR,
  twoTonePicture,
  type JobTime,
} from '../scripts/acceptance-probe.js';
import { allocateCloud } from '../src/splat/cloud.js';
import { NAMED_ROTATIONS, rotateCloud } from '../src/splat/frame.js';
import { freePort } from './helpers/ports.js';

const PYTHON = process.env.FAST3D_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const temp = mkdtempSync(join(tmpdir(), 'fast3d-acceptance-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGTERM');
  rmSync(temp, { recursive: true, force: true });
});

const jobs = (...seconds: (number | [number, number])[]): JobTime[] =>
  seconds.map((t, i) =>
    Array.isArray(t) ? { seed: i, status: t[1], seconds: t[0], type: '' } : { seed: i, status: 200, seconds: t, type: '' },
  );

describe('the acceptance verdicts', () => {
  it("takes the median of the times (the orchestrator's trimmed median: as many dropped from each end leave it as it is)", () => {
    expect(median([5, 1, 4, 2, 3])).toBe(3);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([100, 1, 2, 3, 4, 5, 50, 60, 70, 80, 90, 95, 99])).toBe(60);
  });

  it('GLB mode: trimmed median within 90 s and none over the hard 180 s; a failed job counts as 180 s', () => {
    expect(budgetVerdict('glb', jobs(40, 60, 85, 89, 170)).pass).toBe(true);
    expect(budgetVerdict('glb', jobs(40, 60, 85, 89, 170)).detail).toContain('trimmed median 85.0 s of 5 jobs (within 90 s)');
    const slowMedian = budgetVerdict('glb', jobs(40, 91, 95, 100, 120));
    expect(slowMedian.pass).toBe(false);
    expect(slowMedian.detail).toContain('OVER 90 s');
    const hard = budgetVerdict('glb', jobs(40, 50, 60, 70, 181));
    expect(hard.pass).toBe(false);
    expect(hard.detail).toContain('1 OVER the hard 180 s');
    // Two quick failures (503 at once) lift the median to 180 s, as the orchestrator counts them.
    const failures = budgetVerdict('glb', jobs(40, 50, [0.1, 503], [0.1, 503], [0.2, 503]));
    expect(failures.pass).toBe(false);
    expect(failures.detail).toContain('trimmed median 180.0 s');
    expect(failures.detail).toContain('3 job(s) failed (HTTP 503, 503, 503)');
    const few = budgetVerdict('glb', jobs(10, 10, 10, 10));
    expect(few.pass).toBe(false);
    expect(few.detail).toContain('at least 5 jobs');
  });

  it('PLY mode: every job within 30 s', () => {
    expect(budgetVerdict('ply', jobs(10, 12, 29.9)).pass).toBe(true);
    const over = budgetVerdict('ply', jobs(10, 12, 31));
    expect(over.pass).toBe(false);
    expect(over.detail).toContain('1 OVER 30 s');
    expect(budgetVerdict('ply', jobs(10, [2, 500])).pass).toBe(false);
    expect(budgetVerdict('ply', []).pass).toBe(false);
  });

  it("fails GPU memory above 90 % of the card, from nvidia-smi's samples", () => {
    const within = memoryVerdict('1000, 81559\n72000, 81559\n3000, 81559\n');
    expect(within).toEqual({ pass: true, detail: 'peak 70.3 GiB of 79.6 GiB (88 %, within 90 %)' });
    const over = memoryVerdict('1000, 81559\n74000, 81559\n');
    expect(over?.pass).toBe(false);
    expect(over?.detail).toContain('(91 %, OVER 90 %)');
    // Two cards: the fuller one decides, against its own size.
    expect(memoryVerdict('30000, 81559\n23000, 24564\n')?.detail).toBe('peak 22.5 GiB of 24.0 GiB (94 %, OVER 90 %)');
    expect(memoryVerdict('')).toBeNull();
    expect(memoryVerdict('[N/A], [N/A]\n')).toBeNull();
  });

  it('compares same-seed GLBs by their renders: a few pixels apart pass the bar, another picture does not', async () => {
    const { encodePng } = await import('../src/image/codec.js');
    const { createImage } = await import('../src/image/rgba.js');
    const views = (paint: (x: number, y: number) => number) => {
      const image = createImage(64, 64);
      for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) image.data.set([paint(x, y), 90, 90, 255], (y * 64 + x) * 4);
      return image;
    };
    const write = async (name: string, paint: (x: number, y: number) => number) => {
      writeFileSync(join(temp, name), await encodePng(views(paint)));
      return join(temp, name);
    };
    const a = await write('a-views.png', (x) => (x < 32 ? 220 : 40));
    const nudged = await write('nudged-views.png', (x, y) => (x < 32 || (x === 32 && y < 8) ? 220 : 40));
    const other = await write('other-views.png', (_x, y) => (y < 32 ? 220 : 40));
    expect(await rendersPsnr(a, a)).toBe(Infinity);
    expect(await rendersPsnr(a, nudged)).toBeGreaterThanOrEqual(SAME_SEED_MIN_PSNR);
    expect(await rendersPsnr(a, other)).toBeLessThan(SAME_SEED_MIN_PSNR);
  });

  it('judges up from the two-tone picture: red above blue is Y-up, the same asset flipped is not', async () => {
    const cloud = allocateCloud(200);
    for (let i = 0; i < 200; i++) {
      const top = i < 100;
      cloud.columns.y[i] = top ? 0.2 + i / 1000 : -0.2 - i / 1000;
      cloud.columns.f_dc_0[i] = top ? 1.5 : -1.5;
      cloud.columns.f_dc_2[i] = top ? -1.5 : 1.5;
      cloud.columns.rot_0[i] = 1;
    }
    expect(redAboveBlue(cloud)).toBeGreaterThan(0);
    rotateCloud(cloud, NAMED_ROTATIONS['y-down']);
    expect(redAboveBlue(cloud)).toBeLessThan(0);
    expect((await twoTonePicture()).subarray(1, 4).toString()).toBe('PNG');
    expect([...(await twoTonePicture('jpeg')).subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  });
});

describe('the image jobs the probe sends', () => {
  it('posts prompt_image_file as ("prompt.jpg", image/jpeg) with the seed, and times each job to its response headers', async () => {
    const seen: { name: string; type: string; seed: string; size: number }[] = [];
    const server = createServer(async (req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const form = await new Response(Buffer.concat(chunks), { headers: { 'content-type': req.headers['content-type']! } }).formData();
      const file = form.get('prompt_image_file') as File;
      seen.push({ name: file.name, type: file.type, seed: String(form.get('seed')), size: file.size });
      // Headers after 0.3 s, the body 1.5 s later: the orchestrator's clock stops at the headers.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'model/gltf-binary' });
        res.write('glTF');
        setTimeout(() => res.end('-rest'), 1500);
      }, 300);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const picture = join(temp, 'picture.jpg');
      writeFileSync(picture, await twoTonePicture('jpeg'));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const tsv = await imageJobs(url, picture, 70, 2, join(temp, 'job'), 'glb');
      expect(seen).toEqual([
        { name: 'prompt.jpg', type: 'image/jpeg', seed: '70', size: readFileSync(picture).length },
        { name: 'prompt.jpg', type: 'image/jpeg', seed: '71', size: readFileSync(picture).length },
      ]);
      const lines = tsv
        .trim()
        .split('\n')
        .map((l) => l.split('\t'));
      expect(lines.map(([seed, status, , type]) => [seed, status, type])).toEqual([
        ['70', '200', 'model/gltf-binary'],
        ['71', '200', 'model/gltf-binary'],
      ]);
      for (const [, , seconds] of lines) {
        expect(Number(seconds)).toBeGreaterThanOrEqual(0.29);
        expect(Number(seconds)).toBeLessThan(1.5);
      }
      expect(readFileSync(join(temp, 'job-2.glb'), 'utf8')).toBe('glTF-rest');
    } finally {
      server.close();
    }
  });
});

describe('bash scripts/gpu-acceptance.sh', () => {
  it('describes its modes and rows, and refuses unknown arguments', () => {
    const help = spawnSync('bash', ['scripts/gpu-acceptance.sh', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const text of [
      '--mode auto|ply|glb',
      'competition 0',
      'competition 1',
      'trimmed median',
      '180 s',
      '--dry-run',
      '--previous',
      'prompt.jpg',
    ]) {
      expect(help.stdout).toContain(text);
    }
    for (const row of [
      'mode',
      'imports',
      'weights',
      'orientation',
      'image jobs',
      'PLY',
      'GLB',
      'time',
      'text job',
      'same seed PLY',
      'same seed GLB',
      'previous run',
      'GPU memory',
    ]) {
      expect(help.stdout).toMatch(new RegExp(`^  ${row} `, 'm'));
    }
    expect(spawnSync('bash', ['scripts/gpu-acceptance.sh', '--fast'], { encoding: 'utf8' }).status).toBe(2);
    const mode = spawnSync('bash', ['scripts/gpu-acceptance.sh', '--mode', 'obj'], { encoding: 'utf8' });
    expect(mode.status).toBe(2);
    expect(mode.stderr).toContain('--mode must be auto, ply or glb');
  });

  it('a dry run in GLB mode against the fake worker tests GLB answers and passes, from the config the service runs with', async () => {
    // The fake GPU worker, with meshes, as the start script runs the real one in competition 1.
    const worker = spawn(PYTHON, ['workers/gpu/worker.py', '--fake', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(worker);
    const line = await new Promise<string>((resolve) => createInterface({ input: worker.stdout! }).once('line', resolve));
    const workerUrl = /listening on (http:\/\/\S+)/.exec(line)![1];

    // The service's effective config, where docker/runpod-start.sh writes it (FAST3D_RUN_DIR/service.yaml), in
    // competition 1's settings; the CPU stand-ins for the Node process's models (keying matting).
    const port = await freePort();
    const run = join(temp, 'run');
    mkdirSync(run);
    writeFileSync(
      join(run, 'service.yaml'),
      [
        `server: {host: 127.0.0.1, port: ${port}, health_ok_status: healthy}`,
        'contract: {image_file_output: glb}',
        'text_to_image: {backend: preview}',
        `image_to_3d: {backend: gpu-worker, gpu_worker: {url: "${workerUrl}", poll_interval_s: 0.1}}`,
        'matting: {backend: keying}',
        'validate: {checks: [gates]}',
        'runtime: {pipeline_concurrency: 1, deadline_s: 170}',
        'pipeline: {retries: 0}',
        'log: {level: silent}',
        '',
      ].join('\n'),
    );
    const service = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--config', join(run, 'service.yaml')], {
      stdio: 'ignore',
    });
    children.push(service);

    // nvidia-smi as the sampler calls it: 48 GiB of an 80 GB card in use.
    const bin = join(temp, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'nvidia-smi'), '#!/bin/sh\nwhile true; do echo "49152, 81559"; sleep 0.2; done\n');
    chmodSync(join(bin, 'nvidia-smi'), 0o755);

    const out = join(temp, 'out');
    const result = await runScript(['--dry-run', '--out', out], {
      PATH: `${bin}:${process.env.PATH}`,
      FAST3D_RUN_DIR: run,
      FAST3D_CONFIG: '',
      FAST3D_URL: '',
      FAST3D_WORKER_URL: '',
      PORT: '',
    });
    process.stdout.write(result.stdout);
    const rows = tableRows(result.stdout);
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain('tested mode: glb (competition 1');
    expect(result.stdout).toContain('DRY RUN');
    expect(rows.mode).toMatch(
      /^PASS +glb; config .*run\/service\.yaml \(the start script's effective config\); service http:\/\/127\.0\.0\.1:\d+; worker .*provider fake, meshes on/,
    );
    expect(rows.imports).toMatch(/^n\/a .*worker\.py --check-imports --mesh$/);
    expect(rows.weights).toMatch(/^PASS .*run\/service\.yaml loads no model files/);
    expect(rows.orientation).toMatch(/^PASS +red-above-blue [\d.]+ \(Y-up\)/);
    expect(rows['image jobs']).toMatch(/^PASS +5 of 5 answered 200 \(prompt\.jpg, image\/jpeg/);
    expect(rows.PLY).toMatch(/^n\/a /);
    expect(rows.GLB).toMatch(/^PASS +all 5 answers are GLBs fast3d check accepts; image-1\.glb: 1 mesh, \d+ triangles/);
    expect(rows.time).toMatch(/^PASS +trimmed median [\d.]+ s of 5 jobs \(within 90 s\), slowest [\d.]+ s \(within the hard 180 s\)/);
    expect(rows['same seed PLY']).toMatch(/^PASS /);
    expect(rows['same seed GLB']).toMatch(/^PASS +seed 4242 twice: 16 validator views identical/);
    expect(rows['previous run']).toMatch(/^n\/a /);
    expect(rows['GPU memory']).toBe('PASS  peak 48.0 GiB of 79.6 GiB (60 %, within 90 %)');
    // The answers were saved and checked as what they are.
    for (let k = 1; k <= 5; k++)
      expect(
        readFileSync(join(out, `image-${k}.glb`))
          .subarray(0, 4)
          .toString(),
      ).toBe('glTF');
    expect(existsSync(join(out, 'image-1.ply'))).toBe(false);
    expect([...readFileSync(join(out, 'prompt.jpg')).subarray(0, 3)]).toEqual([0xff, 0xd8, 0xff]);
  }, 300_000);
});

/** Runs the script without blocking this process (the service under test may share its event loop). */
function runScript(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['scripts/gpu-acceptance.sh', ...args], { env: { ...process.env, ...env } });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

/** The printed table: row name -> "RESULT DETAIL". */
function tableRows(stdout: string): Record<string, string> {
  const table = stdout.slice(stdout.indexOf('check           result detail'));
  const rows: Record<string, string> = {};
  for (const line of table.split('\n').slice(1)) if (line.trim()) rows[line.slice(0, 15).trim()] = line.slice(16);
  return rows;
}
