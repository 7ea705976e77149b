/**
 * Deployment pieces that run outside Docker: docker/runpod-start.sh (its --dry-run does everything but start
 * processes), the generated config, the RunPod ping relay, and the pm2 process file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';

const temp = mkdtempSync(join(tmpdir(), 'fast3d-deploy-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

function dryRun(env: Record<string, string>, name: string) {
  const run = join(temp, name);
  const result = spawnSync('bash', ['docker/runpod-start.sh', '--dry-run'], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH!,
      HOME: process.env.HOME ?? temp,
      FAST3D_RUN_DIR: run,
      FAST3D_CACHE: join(run, 'cache'),
      FAST3D_LOG_DIR: join(run, 'logs'),
      FAST3D_VOLUME: join(temp, 'no-volume'),
      ...env,
    },
  });
  const configPath = join(run, 'service.yaml');
  return { ...result, configPath, config: () => parseConfig(parse(readFileSync(configPath, 'utf8'))) };
}

describe('docker/runpod-start.sh', () => {
  it('pod mode serves the legacy contract on 8093 and starts nothing in a dry run', () => {
    const result = dryRun({}, 'pod');
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('mode=pod port=8093 health_ok=ok');
    expect(result.stdout).toContain(`runpod-start: npm run weights -- --config ${result.configPath}`);
    expect(result.stdout).toContain('pm2-runtime start pm2/ecosystem.config.cjs');
    const config = result.config();
    expect(config.server.port).toBe(8093);
    expect(config.text_to_image.backend).toBe('gpu-worker');
    expect(config.image_to_3d.backend).toBe('gpu-worker');
  });

  it('serverless mode honours PORT and relays /ping on PORT_HEALTH when it differs', () => {
    const result = dryRun({ FAST3D_MODE: 'serverless', PORT: '5000', PORT_HEALTH: '5001' }, 'serverless');
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('mode=serverless port=5000 health_ok=ok ping_port=5001');
    expect(result.config().server.port).toBe(5000);
  });

  it('RunPod serverless workers are detected, PORT defaults to 80 and PORT_HEALTH to PORT', () => {
    const result = dryRun({ RUNPOD_ENDPOINT_ID: 'abc123' }, 'detected');
    expect(result.stdout).toContain('mode=serverless port=80 health_ok=ok ping_port=same');
  });

  it('competition mode listens on 10006 and reports "healthy"', () => {
    const result = dryRun({ FAST3D_MODE: 'competition' }, 'competition');
    expect(result.status, result.stderr).toBe(0);
    const config = result.config();
    expect(config.server.port).toBe(10006);
    expect(config.server.health_ok_status).toBe('healthy');
  });

  it("the image's default is the subnet's contract: 0.0.0.0:10006, one request at a time, image-only worker", () => {
    const result = dryRun({ FAST3D_DEFAULT_MODE: 'competition', HOST: '127.0.0.1' }, 'image-default');
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('mode=competition port=10006 health_ok=healthy');
    expect(result.stdout).toContain('flux=off');
    const config = result.config();
    expect(config.server.host).toBe('0.0.0.0');
    expect(config.runtime.pipeline_concurrency).toBe(1);
    expect(config.pipeline.retries).toBe(0);
    expect(config.validate.checks).toEqual(['gates']);
    expect(config.text_to_image.backend).toBe('preview');
    expect(config.image_to_3d.backend).toBe('gpu-worker');
    // Without the image-only default, the text stage and FLUX stay.
    const withText = dryRun({ FAST3D_MODE: 'competition', FAST3D_COMPETITION_TEXT: '1', HF_TOKEN: 't' }, 'competition-text');
    expect(withText.stdout).toContain('flux=loaded');
    expect(withText.config().text_to_image.backend).toBe('gpu-worker');
  });

  it('FAST3D_COMPETITION_OUTPUT=glb serves competition 1: GLB answers and a worker with meshes; another value stops the start', () => {
    const glb = dryRun({ FAST3D_MODE: 'competition', FAST3D_COMPETITION_OUTPUT: 'glb' }, 'competition-glb');
    expect(glb.status, glb.stderr).toBe(0);
    expect(glb.stdout).toContain('meshes=on');
    expect(glb.config().contract.image_file_output).toBe('glb');
    // Under competition 1's hard 180 s per asset.
    expect(glb.config().runtime.deadline_s).toBe(170);
    const ply = dryRun({ FAST3D_MODE: 'competition' }, 'competition-ply');
    expect(ply.stdout).toContain('meshes=off');
    expect(ply.config().contract.image_file_output).toBe('ply');
    const bad = dryRun({ FAST3D_MODE: 'competition', FAST3D_COMPETITION_OUTPUT: 'obj' }, 'competition-obj');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('FAST3D_COMPETITION_OUTPUT must be ply or glb');
  });

  it('passes HF_TOKEN (or HUGGING_FACE_HUB_TOKEN) to the worker without printing it, and warns when FLUX has none', () => {
    const token = 'hf_secretvalue123';
    const given = dryRun({ HF_TOKEN: token }, 'token');
    expect(given.status, given.stderr).toBe(0);
    expect(given.stdout).toContain('hf_token=set (passed to the GPU worker) flux=loaded');
    expect(given.stdout + given.stderr).not.toContain(token);
    expect(given.stderr).not.toContain('HF_TOKEN is not set');
    const alias = dryRun({ HUGGING_FACE_HUB_TOKEN: token }, 'token-alias');
    expect(alias.stdout).toContain('hf_token=set');
    const none = dryRun({}, 'no-token');
    expect(none.stdout).toContain('hf_token=unset');
    expect(none.stderr).toContain('HF_TOKEN is not set and FLUX.1-schnell is gated on its hub');
    expect(none.stderr).toContain('MODEL LICENCE NOT ACCEPTED');
  });

  it('records hub revisions next to the weights on the volume', () => {
    const volume = join(temp, 'revisions-volume');
    mkdirSync(volume);
    const result = dryRun({ FAST3D_VOLUME: volume }, 'revisions');
    expect(result.stdout).toContain(`revisions=${volume}/huggingface-cache/fast3d-revisions.json`);
  });

  it('a first start whose weights cannot all be fetched still goes on to start the service', async () => {
    const missing = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((r) => missing.listen(0, '127.0.0.1', r));
    try {
      const mirror = `http://127.0.0.1:${(missing.address() as AddressInfo).port}`;
      const run = join(temp, 'no-start');
      const result = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn('bash', ['docker/runpod-start.sh', '--no-start'], {
          env: {
            PATH: process.env.PATH!,
            HOME: process.env.HOME ?? temp,
            FAST3D_RUN_DIR: run,
            FAST3D_CACHE: join(run, 'cache'),
            FAST3D_LOG_DIR: join(run, 'logs'),
            FAST3D_VOLUME: join(temp, 'no-volume'),
            FAST3D_MODE: 'pod',
            FAST3D_WEIGHTS_MIRROR: mirror,
            HF_TOKEN: 'x',
          },
        });
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
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toContain(`MISSING ${join(run, 'cache', 'models', 'isnet-general-use.onnx')} not found`);
      expect(result.stderr).toContain('some model files could not be fetched or made; starting anyway, /health names them');
      expect(result.stdout).toContain('pm2-runtime start pm2/ecosystem.config.cjs (not started)');
    } finally {
      missing.close();
    }
  }, 60_000);

  it('puts the model caches on the network volume when one is mounted', () => {
    const volume = join(temp, 'volume');
    mkdirSync(volume);
    const result = dryRun({ FAST3D_VOLUME: volume }, 'volume');
    expect(result.stdout).toContain(
      `cache=${volume}/fast3d-cache models=${volume}/fast3d-cache/models results=${volume}/fast3d-cache/results HF_HOME=${volume}/huggingface-cache TORCH_HOME=${volume}/fast3d-cache/torch`,
    );
    // CUDA's JIT cache too, at CUDA's largest size, so a restart compiles no kernel again.
    expect(result.stdout).toContain(`CUDA_CACHE_PATH=${volume}/fast3d-cache/cuda-jit CUDA_CACHE_MAXSIZE=4294967296`);
    // The service's own model files and result cache live there too: a new pod downloads nothing twice.
    const config = result.config();
    expect(config.weights.dir).toBe(`${volume}/fast3d-cache/models`);
    expect(config.cache.directory).toBe(`${volume}/fast3d-cache/results`);
  });

  it('refuses an unknown mode or a bad port with a clear message', () => {
    const mode = dryRun({ FAST3D_MODE: 'cloud' }, 'bad-mode');
    expect(mode.status).toBe(2);
    expect(mode.stderr).toContain('FAST3D_MODE must be pod, serverless or competition');
    const port = dryRun({ PORT: 'eighty' }, 'bad-port');
    expect(port.status).toBe(2);
    expect(port.stderr).toContain("port 'eighty' is not a number");
  });
});

describe('scripts/ping-relay.mjs', () => {
  const servers: Server[] = [];
  afterAll(() => {
    for (const s of servers) s.close();
  });

  it("relays the service's /ping status (204 starting, 200 ready) and answers 503 when it is unreachable", async () => {
    let ready = false;
    const service = createServer((_req, res) => {
      if (ready) res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ready"}');
      else res.writeHead(204).end();
    });
    servers.push(service);
    await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
    const target = `http://127.0.0.1:${(service.address() as AddressInfo).port}/ping`;
    const relay = spawn(process.execPath, ['scripts/ping-relay.mjs', '--listen', '0', '--host', '127.0.0.1', '--target', target]);
    try {
      const line = await new Promise<string>((resolve) => createInterface({ input: relay.stdout }).once('line', resolve));
      const port = /:(\d+) ->/.exec(line)![1];
      const ping = () => fetch(`http://127.0.0.1:${port}/ping`);
      expect((await ping()).status).toBe(204);
      ready = true;
      const answer = await ping();
      expect(answer.status).toBe(200);
      expect(await answer.json()).toEqual({ status: 'ready' });
      expect((await fetch(`http://127.0.0.1:${port}/generate`)).status).toBe(404);
      await new Promise((r) => service.close(r));
      expect((await ping()).status).toBe(503);
    } finally {
      relay.kill('SIGTERM');
    }
  });
});

describe('pm2/ecosystem.config.cjs', () => {
  const load = (env: Record<string, string | undefined>) => {
    const saved = { ...process.env };
    for (const [key, value] of Object.entries(env))
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    try {
      const require = createRequire(import.meta.url);
      const path = require.resolve('../pm2/ecosystem.config.cjs');
      delete require.cache[path];
      return require(path) as { apps: Record<string, any>[] };
    } finally {
      for (const key of Object.keys(env))
        if (saved[key] === undefined) delete process.env[key];
        else process.env[key] = saved[key];
    }
  };

  it('runs the compiled service and the worker with restart limits, memory limits and log files', () => {
    const { apps } = load({ FAST3D_PING_PORT: undefined, FAST3D_PYTHON: '/opt/venv/bin/python', HF_TOKEN: undefined });
    expect(apps.map((a) => a.name)).toEqual(['fast3d', 'fast3d-gpu-worker']);
    const [service, worker] = apps;
    expect(service.script).toBe('dist/cli.js');
    expect(service.args.slice(0, 2)).toEqual(['serve', '--config']);
    expect(worker.script).toBe('workers/gpu/worker.py');
    expect(worker.interpreter).toBe('/opt/venv/bin/python');
    expect(worker.env).not.toHaveProperty('HF_TOKEN');
    for (const app of apps) {
      expect(app.max_restarts).toBeGreaterThan(0);
      expect(app.max_memory_restart).toMatch(/^\d+[MG]$/);
      expect(app.out_file).toMatch(/\.out\.log$/);
      expect(app.error_file).toMatch(/\.err\.log$/);
    }
  });

  it('hands HF_TOKEN to the worker, not to the service', () => {
    const { apps } = load({ FAST3D_PING_PORT: undefined, HF_TOKEN: 'hf_abc' });
    expect(apps[1].env.HF_TOKEN).toBe('hf_abc');
    expect(apps[0].env).not.toHaveProperty('HF_TOKEN');
  });

  it('adds the ping relay only when PORT_HEALTH differs from PORT', () => {
    const { apps } = load({ FAST3D_PING_PORT: '5001', PORT: '5000' });
    const relay = apps.find((a) => a.name === 'fast3d-ping')!;
    expect(relay.args).toEqual(['--listen', '5001', '--target', 'http://127.0.0.1:5000/ping']);
  });
});

describe('scripts/orientation-check.ts', () => {
  it('offers the 24 axis-aligned rotations, each proper and distinct, the named ones among them', async () => {
    const { axisRotations } = await import('../scripts/orientation-check.js');
    const { NAMED_ROTATIONS } = await import('../src/splat/frame.js');
    const { assertRotation } = await import('../src/pipelines/image-to-3d/gpu-worker.js');
    const rotations = axisRotations();
    expect(rotations).toHaveLength(24);
    expect(new Set(rotations.map((m) => m.join(','))).size).toBe(24);
    for (const m of rotations) expect(() => assertRotation(m)).not.toThrow();
    for (const named of Object.values(NAMED_ROTATIONS)) expect(rotations.map((m) => m.join(','))).toContain(named.join(','));
  });
});
