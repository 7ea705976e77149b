import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { run as weightsCommand } from '../src/commands/weights.js';
import { compose } from '../src/compose.js';
import { parseConfig } from '../src/config/load.js';
import { checkFiles, describeProblems, expectedFiles, LOCK_FILE, manifestFiles, recordInLock } from '../src/weights/check.js';
import { downloadFile } from '../src/weights/download.js';
import { AESTHETIC_PTH, AESTHETIC_SAFETENSORS, MANIFEST } from '../src/weights/manifest.js';
import { loadAestheticPredictor } from '../src/pipelines/validate/aesthetic.js';
import { aestheticSafetensors } from './helpers/models.js';
import { flatViewRenderer } from './helpers/views.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fast3d-weights-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

/**
 * Serves `content`. The first `cuts` requests send half of what they promise and drop the connection;
 * Range requests get 206 unless `ignoreRange`.
 */
async function fileServer(content: Uint8Array, options: { cuts?: number; ignoreRange?: boolean } = {}) {
  const ranges: (string | undefined)[] = [];
  let cuts = options.cuts ?? 0;
  const server = createServer((req, res) => {
    ranges.push(req.headers.range);
    const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = match && !options.ignoreRange ? Number(match[1]) : 0;
    const body = content.subarray(start);
    res.writeHead(start ? 206 : 200, {
      'Content-Length': String(body.length),
      ...(start ? { 'Content-Range': `bytes ${start}-${content.length - 1}/${content.length}` } : {}),
    });
    if (cuts > 0) {
      cuts--;
      // Close with a FIN once the half is flushed: the client receives exactly those bytes, then a short body.
      // (A reset could discard bytes still in flight and make the resume offset depend on timing.)
      res.write(body.subarray(0, body.length >> 1), () => res.socket?.end());
    } else {
      res.end(body);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/model.onnx`, ranges };
}

describe('downloader', () => {
  const content = new Uint8Array(randomBytes(3 << 20));

  it('resumes with an HTTP Range request after a dropped connection, verifies and renames', async () => {
    const server = await fileServer(content, { cuts: 2 });
    const target = join(dir, 'resume', 'model.onnx');
    const progress: number[] = [];
    const result = await downloadFile({ url: server.url, size: content.length, sha256: sha(content) }, target, {
      retries: 3,
      backoffMs: 1,
      onProgress: (received) => progress.push(received),
    });
    expect(result).toEqual({ size: content.length, sha256: sha(content) });
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
    // Each resume asks from where the part file ended: two cuts, two growing offsets.
    expect(server.ranges).toHaveLength(3);
    expect(server.ranges[0]).toBeUndefined();
    const offsets = server.ranges.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r ?? '')?.[1]));
    expect(offsets[0]).toBeGreaterThan(0);
    expect(offsets[0]).toBeLessThanOrEqual(content.length >> 1);
    expect(offsets[1]).toBeGreaterThan(offsets[0]);
    expect(existsSync(`${target}.part`)).toBe(false);
    expect(progress.at(-1)).toBe(content.length);
  });

  it('starts over when the server ignores Range', async () => {
    const server = await fileServer(content, { cuts: 1, ignoreRange: true });
    const target = join(dir, 'norange', 'model.onnx');
    await downloadFile({ url: server.url, size: null, sha256: sha(content) }, target, { retries: 2, backoffMs: 1 });
    expect(Buffer.compare(await readFile(target), content)).toBe(0);
    expect(server.ranges[1]).toMatch(/^bytes=\d+-$/);
  });

  it('deletes a download whose checksum does not match and says so', async () => {
    const server = await fileServer(content);
    const target = join(dir, 'bad', 'model.onnx');
    const wrong = '0'.repeat(64);
    await expect(downloadFile({ url: server.url, size: null, sha256: wrong }, target, { retries: 0 })).rejects.toThrow(
      `checksum mismatch for ${target}: sha256 ${sha(content)}, expected ${wrong}; the download was removed`,
    );
    expect(await readdir(join(dir, 'bad'))).toEqual([]);
  });

  it('gives up after the configured resumes and keeps the partial file for the next run', async () => {
    const server = await fileServer(content, { cuts: 10 });
    const target = join(dir, 'giveup', 'model.onnx');
    await expect(
      downloadFile({ url: server.url, size: content.length, sha256: sha(content) }, target, { retries: 1, backoffMs: 1 }),
    ).rejects.toThrow(/failed after 2 tries: .*run again to resume/);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(`${target}.part`)).toBe(true);
  });

  it('retries server errors, but reports missing files at once', async () => {
    let requests = 0;
    const flaky = createServer((_req, res) => {
      requests++;
      if (requests === 1) res.writeHead(503).end('busy');
      else res.writeHead(200, { 'Content-Length': '5' }).end('hello');
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    servers.push(flaky);
    const target = join(dir, 'flaky', 'x');
    await downloadFile({ url: `http://127.0.0.1:${(flaky.address() as AddressInfo).port}/x`, size: 5, sha256: null }, target, {
      retries: 2,
      backoffMs: 1,
    });
    expect(await readFile(target, 'utf8')).toBe('hello');
    expect(requests).toBe(2);

    const server = createServer((_req, res) => res.writeHead(404).end('no'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
    await expect(downloadFile({ url, size: null, sha256: null }, join(dir, 'e', 'x'), { retries: 3 })).rejects.toThrow(
      `${url} answered HTTP 404`,
    );
  });
});

describe('weights check', () => {
  it('names missing, wrong-size and corrupt files, and accepts good ones', async () => {
    const root = join(dir, 'check');
    await mkdir(root, { recursive: true });
    const good = new Uint8Array([1, 2, 3, 4]);
    const manifest = [
      { model: 'isnet' as const, target: 'good.onnx', url: 'http://x/good', size: 4, sha256: sha(good), licence: 'MIT' },
      { model: 'isnet' as const, target: 'short.onnx', url: 'http://x/short', size: 10, sha256: null, licence: 'MIT' },
      { model: 'isnet' as const, target: 'bad.onnx', url: 'http://x/bad', size: 4, sha256: sha(good), licence: 'MIT' },
      { model: 'isnet' as const, target: 'absent.onnx', url: 'http://x/absent', size: 4, sha256: null, licence: 'MIT' },
    ];
    await writeFile(join(root, 'good.onnx'), good);
    await writeFile(join(root, 'short.onnx'), good);
    await writeFile(join(root, 'bad.onnx'), new Uint8Array([4, 3, 2, 1]));
    const files = expectedFiles(
      root,
      manifest.map((m) => join(root, m.target)),
      manifest,
    );
    const statuses = await checkFiles(files, { dir: root, verify: 'checksum' });
    expect(statuses.map((s) => s.state)).toEqual(['ok', 'wrong-size', 'corrupt', 'missing']);
    expect(statuses[1].detail).toBe(`${join(root, 'short.onnx')} has 4 bytes, expected 10 (run: npm run weights)`);
    expect(statuses[2].detail).toContain(
      `${join(root, 'bad.onnx')} is corrupt: sha256 ${sha(new Uint8Array([4, 3, 2, 1]))}, expected ${sha(good)}`,
    );
    expect(statuses[3].detail).toBe(`${join(root, 'absent.onnx')} not found (run: npm run weights)`);
    expect(describeProblems(statuses)).not.toContain('good.onnx');
    // Size mode skips hashing: the corrupt file of the right size passes.
    expect((await checkFiles(files, { dir: root, verify: 'size' })).map((s) => s.state)).toEqual(['ok', 'wrong-size', 'ok', 'missing']);
  });

  it('compares files without a published checksum against the digest recorded at download', async () => {
    const root = join(dir, 'lock');
    await mkdir(root, { recursive: true });
    const path = join(root, 'clip.onnx');
    await writeFile(path, 'first download');
    const [file] = expectedFiles(root, [path], []);
    expect((await checkFiles([file], { dir: root, verify: 'checksum' }))[0].detail).toContain('no known sha256 to compare');
    await recordInLock(root, path, { sha256: sha(new TextEncoder().encode('first download')), size: 14 });
    expect(JSON.parse(await readFile(join(root, LOCK_FILE), 'utf8'))).toHaveProperty(['clip.onnx', 'size'], 14);
    expect((await checkFiles([file], { dir: root, verify: 'checksum' }))[0].detail).toContain('sha256 recorded at download');
    await writeFile(path, 'first d0wnload');
    expect((await checkFiles([file], { dir: root, verify: 'checksum' }))[0].state).toBe('corrupt');
  });

  it('the manifest covers ISNet, the CLIP folder and both aesthetic files, each with a licence', () => {
    expect(MANIFEST.map((m) => m.target)).toEqual(
      expect.arrayContaining([
        'isnet-general-use.onnx',
        'clip-vit-large-patch14/onnx/vision_model.onnx',
        'clip-vit-large-patch14/onnx/text_model.onnx',
        'clip-vit-large-patch14/tokenizer.json',
        'aesthetic/sac+logos+ava1-l14-linearMSE.pth',
        'aesthetic/laion-aesthetic-l14.safetensors',
      ]),
    );
    for (const m of MANIFEST) {
      expect(m.licence).not.toBe('');
      expect(m.url ?? m.producedBy).toBeTruthy();
      if (m.sha256) expect(m.sha256).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('`weights --check` lists exactly what is missing and exits 1', async () => {
    const empty = join(dir, 'empty-models');
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    try {
      expect(await weightsCommand(['--check', '--dir', empty, '--only', 'isnet,aesthetic'])).toBe(1);
    } finally {
      write.mockRestore();
    }
    const lines = out.join('').trim().split('\n');
    expect(lines).toEqual([
      `MISSING ${join(empty, 'isnet-general-use.onnx')} not found (run: npm run weights)`,
      `MISSING ${join(empty, 'aesthetic/sac+logos+ava1-l14-linearMSE.pth')} not found (run: npm run weights)`,
      `MISSING ${join(empty, 'aesthetic/laion-aesthetic-l14.safetensors')} not found (run: npm run weights, which makes it with: python workers/gpu/tools/convert_aesthetic.py ${join(empty, 'aesthetic/sac+logos+ava1-l14-linearMSE.pth')} ${join(empty, 'aesthetic/laion-aesthetic-l14.safetensors')})`,
    ]);
    expect(manifestFiles(empty, ['clip'])).toHaveLength(6);
  });

  it('downloads through the command, records unpublished digests, and --check then catches a changed file', async () => {
    const models = join(dir, 'mirror-models');
    const served = new Map(
      MANIFEST.filter((m) => m.model === 'clip').map((m) => [`/${m.target}`, new TextEncoder().encode(`contents of ${m.target}`)]),
    );
    const requested: string[] = [];
    const server = createServer((req, res) => {
      requested.push(decodeURIComponent(req.url ?? ''));
      const body = served.get(decodeURIComponent(req.url ?? ''));
      if (!body) return void res.writeHead(404).end();
      res.writeHead(200, { 'Content-Length': String(body.length) }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    const errors = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await weightsCommand(['--only', 'clip', '--dir', models, '--mirror', mirror])).toBe(0);
      for (const [path, body] of served) expect(Buffer.compare(await readFile(join(models, path)), body)).toBe(0);
      const lock = JSON.parse(await readFile(join(models, LOCK_FILE), 'utf8')) as Record<string, { sha256: string }>;
      expect(lock['clip-vit-large-patch14/onnx/vision_model.onnx'].sha256).toBe(
        sha(served.get('/clip-vit-large-patch14/onnx/vision_model.onnx')!),
      );
      expect(await weightsCommand(['--check', '--only', 'clip', '--dir', models])).toBe(0);

      await writeFile(
        join(models, 'clip-vit-large-patch14/onnx/vision_model.onnx'),
        'contents of clip-vit-large-patch14/onnx/vision_model.onnY',
      );
      out.length = 0;
      expect(await weightsCommand(['--check', '--only', 'clip', '--dir', models])).toBe(1);
      expect(out.join('')).toContain(`CORRUPT ${join(models, 'clip-vit-large-patch14/onnx/vision_model.onnx')} is corrupt`);
      // Running the download again fetches only the bad file and repairs it.
      requested.length = 0;
      expect(await weightsCommand(['--only', 'clip', '--dir', models, '--mirror', mirror])).toBe(0);
      expect(requested).toEqual(['/clip-vit-large-patch14/onnx/vision_model.onnx']);
      expect(await readFile(join(models, 'clip-vit-large-patch14/onnx/vision_model.onnx'), 'utf8')).toBe(
        'contents of clip-vit-large-patch14/onnx/vision_model.onnx',
      );
    } finally {
      write.mockRestore();
      errors.mockRestore();
    }
  });

  it('on the defaults (preview backends), checks no file and says that preview backends need none', async () => {
    vi.stubEnv('FAST3D_CONFIG', '');
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    try {
      expect(await weightsCommand(['--check', '--dir', join(dir, 'preview-models')])).toBe(0);
    } finally {
      write.mockRestore();
      vi.unstubAllEnvs();
    }
    expect(out.join('')).toBe(
      'nothing to check: the default config runs matting "keying" and validate.checks ["gates"], which load no model files ' +
        "(preview backends need none). For the GPU service's: --config configs/service.yaml, or --only isnet,clip,aesthetic\n",
    );
  });

  it('with configs/service.yaml, checks the files its backends load: ISNet, CLIP and the aesthetic weights', async () => {
    const empty = join(dir, 'service-models');
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    try {
      expect(await weightsCommand(['--check', '--config', 'configs/service.yaml', '--dir', empty, '--json'])).toBe(1);
    } finally {
      write.mockRestore();
    }
    const statuses = out
      .join('')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { path: string; state: string });
    expect(statuses.map((s) => s.path)).toEqual(MANIFEST.map((m) => join(empty, m.target)));
    expect(statuses.every((s) => s.state === 'missing')).toBe(true);
  });
});

describe('first start: download, then convert the aesthetic predictor', () => {
  const python = process.env.FAST3D_PYTHON ?? 'python3';
  const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;

  /** Serves `files` (path -> bytes) and returns a manifest of the aesthetic entries pointing at them. */
  async function aestheticSource(pth: Uint8Array) {
    const server = createServer((req, res) => {
      if (decodeURIComponent(req.url ?? '') !== `/${AESTHETIC_PTH}`) return void res.writeHead(404).end();
      res.writeHead(200, { 'Content-Length': String(pth.length) }).end(pth);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${AESTHETIC_PTH}`;
    return MANIFEST.filter((m) => m.model === 'aesthetic').map((m) =>
      m.target === AESTHETIC_PTH ? { ...m, url, size: pth.length, sha256: sha(pth) } : m,
    );
  }

  /**
   * The converter as the command runs it (interpreter, script, source, target): with PyTorch, the real
   * converter on a real state dict; without it, a stand-in interpreter that logs its arguments and writes a
   * predictor file, so the flow is checked on any machine.
   */
  async function converter(root: string): Promise<{ pth: Uint8Array; python: string[]; log: string }> {
    const log = join(root, 'converter.log');
    if (hasTorch) {
      const path = join(root, 'source.pth');
      const made = spawnSync(python, [
        '-c',
        `import torch; torch.manual_seed(0); torch.save({'layers.0.weight': torch.randn(4, 768), 'layers.0.bias': torch.randn(4), 'layers.2.weight': torch.randn(1, 4), 'layers.2.bias': torch.randn(1)}, ${JSON.stringify(path)})`,
      ]);
      expect(made.status).toBe(0);
      return { pth: new Uint8Array(await readFile(path)), python: [python], log };
    }
    const predictor = join(root, 'predictor.safetensors');
    await writeFile(
      predictor,
      aestheticSafetensors(
        Float32Array.from({ length: 768 }, (_, i) => (i % 7) / 100),
        5,
      ),
    );
    const fake = join(root, 'fake-python.sh');
    await writeFile(fake, `#!/bin/sh\necho "$@" >> ${JSON.stringify(log)}\ncp ${JSON.stringify(predictor)} "$3"\n`, { mode: 0o755 });
    return { pth: randomBytes(4096), python: [fake], log };
  }

  it(`downloads the state dict, makes the safetensors with ${hasTorch ? 'the real converter' : 'a stand-in converter (no torch here)'}, records it, and --check passes`, async () => {
    const root = await mkdtemp(join(dir, 'first-start-'));
    const models = join(root, 'models');
    const { pth, python: interpreter, log } = await converter(root);
    const manifest = await aestheticSource(pth);
    const errors = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await weightsCommand(['--only', 'aesthetic', '--dir', models], { manifest, python: interpreter })).toBe(0);
      expect(await weightsCommand(['--check', '--only', 'aesthetic', '--dir', models], { manifest })).toBe(0);
    } finally {
      errors.mockRestore();
      out.mockRestore();
    }
    const target = join(models, AESTHETIC_SAFETENSORS);
    const predictor = await loadAestheticPredictor(target);
    expect(predictor.dim).toBe(768);
    if (!hasTorch) {
      const [args] = (await readFile(log, 'utf8')).trim().split('\n');
      expect(args.split(' ')).toEqual([
        fileURLToPath(new URL('../workers/gpu/tools/convert_aesthetic.py', import.meta.url)),
        join(models, AESTHETIC_PTH),
        target,
      ]);
    }
    const lock = JSON.parse(await readFile(join(models, LOCK_FILE), 'utf8')) as Record<string, { sha256: string }>;
    expect(lock[AESTHETIC_SAFETENSORS].sha256).toBe(sha(await readFile(target)));
  });

  it('a converter that fails leaves no file behind, exits 1 and the check names the file', async () => {
    const root = await mkdtemp(join(dir, 'failed-convert-'));
    const models = join(root, 'models');
    const pth = randomBytes(1024);
    const manifest = await aestheticSource(pth);
    const broken = join(root, 'broken-python.sh');
    await writeFile(broken, '#!/bin/sh\necho half > "$3"\necho "no module named torch" >&2\nexit 1\n', { mode: 0o755 });
    const errors: string[] = [];
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      errors.push(String(chunk));
      return true;
    });
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    try {
      expect(await weightsCommand(['--only', 'aesthetic', '--dir', models], { manifest, python: [broken] })).toBe(1);
    } finally {
      err.mockRestore();
      write.mockRestore();
    }
    expect(existsSync(join(models, AESTHETIC_SAFETENSORS))).toBe(false);
    expect(errors.join('')).toMatch(/making .*laion-aesthetic-l14\.safetensors failed .*exited 1\): no module named torch/);
    expect(out.join('')).toContain(`MISSING ${join(models, AESTHETIC_SAFETENSORS)} not found`);
    expect(out.join('')).toMatch(/^ok +.*sac\+logos/m);
  });
});

describe('readiness through HTTP with an empty models folder', () => {
  it('reports each model stage not ready with its paths on /health, answers 503 on /generate/, and keeps serving', async () => {
    const empty = join(dir, 'no-models');
    const config = parseConfig({
      cache: { enabled: false },
      matting: { backend: 'isnet' },
      validate: { checks: ['gates', 'clip'] },
      weights: { dir: empty },
    });
    const { service, app } = compose(config, { renderViews: flatViewRenderer() });
    await service.start();

    const health = await app.request('/health');
    expect(health.status).toBe(503);
    const body = (await health.json()) as { status: string; stages: Record<string, { ready: boolean; backend: string; detail?: string }> };
    expect(body.status).toBe('degraded');
    expect(body.stages.matting).toMatchObject({ ready: false, backend: 'isnet' });
    expect(body.stages.matting.detail).toContain(`${join(empty, 'isnet-general-use.onnx')} not found`);
    expect(body.stages['validate.clip']).toMatchObject({ ready: false, backend: 'clip' });
    expect(body.stages['validate.clip'].detail).toContain(join(empty, 'clip-vit-large-patch14/onnx/vision_model.onnx'));
    expect(body.stages['validate.clip'].detail).toContain(join(empty, 'aesthetic/laion-aesthetic-l14.safetensors'));
    expect(body.stages['validate.gates'].ready).toBe(true);

    for (let i = 0; i < 2; i++) {
      const res = await app.request('/generate/', {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: 'prompt=a+red+chair',
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('Retry-After')).toBe(String(config.runtime.retry_after_s));
      const error = ((await res.json()) as { error: string }).error;
      expect(error).toContain('isnet-general-use.onnx');
      expect(error).toContain('validate.clip (clip)');
    }
    expect((await app.request('/ping')).status).toBe(503);
    await service.close();
  });
});
