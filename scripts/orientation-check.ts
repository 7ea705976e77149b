/**
 * Confirms, on a GPU box, which rotation takes TRELLIS's internal frame to the validator's (+Y up, front toward
 * +Z): the value of image_to_3d.gpu_worker.orientation. Run it with the GPU worker up (pm2 or the Docker image):
 *
 *   npx tsx scripts/orientation-check.ts [--image FILE | --prompt TEXT] [--config configs/service.yaml]
 *                                         [--out out/orientation] [--seed N] [--no-render]
 *
 * 1. The input: --image (any picture of one object; without transparency it is matted by the configured matting
 *    backend), or a FLUX picture of --prompt from the worker (default: an object with an obvious front and top).
 * 2. TRELLIS (the worker's POST /v1/image-to-3d) lifts the framed picture; the raw PLY keeps its internal frame.
 * 3. The configured orientation is applied, the asset normalised as the service does, and rendered at azimuth 0
 *    (the validator's first view, from +Z) with `npm run fast3d -- render`: compare.png puts the picture TRELLIS
 *    saw beside that view. They must show the same side of the object, upright.
 * 4. When they do not, candidates.png shows azimuth 0 under each of the 24 axis-aligned rotations (4 per row,
 *    numbered row by row from 0); the script prints each number's matrix. Put the one that matches into the config.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { loadConfig } from '../src/config/load.js';
import { decodeImage, encodePng } from '../src/image/codec.js';
import { hasTransparency, type RgbaImage } from '../src/image/rgba.js';
import { configSettings, defaultStageDeps } from '../src/compose.js';
import { createStages } from '../src/pipelines/backends.js';
import { standaloneContext } from '../src/pipelines/context.js';
import { normalise } from '../src/pipelines/generate.js';
import { GpuWorkerClient } from '../src/runtime/gpu-client.js';
import { allocateCloud, type GaussianCloud } from '../src/splat/cloud.js';
import { orientationMatrix, rotateCloud, type Matrix3 } from '../src/splat/frame.js';
import { decodePly, encodePly } from '../src/splat/ply.js';

const DEFAULT_PROMPT = 'a red armchair facing the viewer, seen from the front, a single object centred on a plain white background';

/** The 24 proper rotations that map coordinate axes onto coordinate axes (signed permutation matrices, det +1). */
export function axisRotations(): Matrix3[] {
  const out: Matrix3[] = [];
  const perms = [
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ];
  for (const p of perms) {
    for (let signs = 0; signs < 8; signs++) {
      const m = new Array<number>(9).fill(0);
      for (let row = 0; row < 3; row++) m[row * 3 + p[row]] = signs & (1 << row) ? -1 : 1;
      const det = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6]);
      if (det > 0) out.push(m as unknown as Matrix3);
    }
  }
  return out;
}

function copyCloud(cloud: GaussianCloud): GaussianCloud {
  const copy = allocateCloud(cloud.count);
  for (const [name, column] of Object.entries(cloud.columns)) copy.columns[name as keyof typeof copy.columns].set(column);
  return copy;
}

function render(ply: string, png: string): void {
  const result = spawnSync('npm', ['run', '--silent', 'fast3d', '--', 'render', ply, '--out', png, '--theta', '0', '--size', '518'], {
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error(`rendering ${ply} failed (exit ${result.status}); is the render command available?`);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      image: { type: 'string' },
      prompt: { type: 'string', default: DEFAULT_PROMPT },
      config: { type: 'string', default: 'configs/service.yaml' },
      out: { type: 'string', default: 'out/orientation' },
      seed: { type: 'string', default: '1' },
      'no-render': { type: 'boolean', default: false },
    },
  });
  const config = loadConfig({ path: values.config });
  const worker = config.image_to_3d.gpu_worker;
  const seed = Number(values.seed);
  const out = values.out!;
  mkdirSync(out, { recursive: true });
  const client = new GpuWorkerClient({
    url: worker.url,
    requestTimeoutMs: worker.request_timeout_s * 1000,
    connectRetries: worker.connect_retries,
    retryDelayMs: worker.retry_delay_ms,
    pollIntervalMs: 1000,
    readyTimeoutMs: worker.ready_timeout_s * 1000,
  });
  try {
    const readiness = await client.waitUntilReady();
    if (!readiness.ready) throw new Error(readiness.detail ?? 'GPU worker not ready');

    let picture: RgbaImage;
    if (values.image) {
      picture = await decodeImage(new Uint8Array(readFileSync(values.image)), { maxPixels: 100_000_000, minSide: 16 });
    } else {
      const png = await client.generateImage({ prompt: values.prompt!, size: '1024x1024', steps: 4, seed });
      writeFileSync(join(out, 'flux.png'), png);
      picture = await decodeImage(png, { maxPixels: 100_000_000, minSide: 16 });
    }
    const stages = createStages(config, defaultStageDeps(config));
    await stages.matting.init?.();
    const framed = await stages.matting.matte(
      { image: picture, fromUser: Boolean(values.image) && hasTransparency(picture) },
      standaloneContext(configSettings(config)),
    );
    await stages.matting.close?.();
    if (!framed) throw new Error('the matting found no object in the picture');
    const framedPng = await encodePng(framed);
    writeFileSync(join(out, 'input.png'), framedPng);

    const raw = decodePly(
      await client.imageTo3d({
        png: framedPng,
        seed,
        sparseStructureSteps: worker.sparse_structure_steps,
        sparseStructureCfg: worker.sparse_structure_cfg,
        slatSteps: worker.slat_steps,
        slatCfg: worker.slat_cfg,
      }),
    );
    writeFileSync(join(out, 'trellis-internal.ply'), encodePly(raw));

    const configured = orientationMatrix(worker.orientation);
    const asset = copyCloud(raw);
    rotateCloud(asset, configured);
    writeFileSync(join(out, 'configured.ply'), encodePly(await normalise(asset, config.pipeline.extent)));

    const candidates = axisRotations();
    const lines = [
      `configured orientation: ${JSON.stringify(worker.orientation)} = [${configured.join(', ')}]`,
      'candidates (candidates.png, row by row):',
    ];
    for (const [i, m] of candidates.entries()) {
      const cloud = copyCloud(raw);
      rotateCloud(cloud, m);
      writeFileSync(join(out, `candidate-${i}.ply`), encodePly(await normalise(cloud, config.pipeline.extent)));
      const same = m.every((v, k) => v === configured[k]);
      lines.push(`  ${String(i).padStart(2)}: [${m.join(', ')}]${same ? '   <- configured' : ''}`);
    }
    writeFileSync(join(out, 'candidates.txt'), `${lines.join('\n')}\n`);
    process.stdout.write(`${lines.join('\n')}\n`);
    if (values['no-render']) return 0;

    render(join(out, 'configured.ply'), join(out, 'configured-az0.png'));
    for (let i = 0; i < candidates.length; i++) render(join(out, `candidate-${i}.ply`), join(out, `candidate-${i}-az0.png`));
    const tile = 259;
    const input = await sharp(framedPng).flatten({ background: '#ffffff' }).resize(518, 518).toBuffer();
    await sharp({ create: { width: 1036, height: 518, channels: 3, background: '#ffffff' } })
      .composite([
        { input, left: 0, top: 0 },
        { input: join(out, 'configured-az0.png'), left: 518, top: 0 },
      ])
      .png()
      .toFile(join(out, 'compare.png'));
    const tiles = await Promise.all(
      candidates.map(async (_, i) => ({
        input: await sharp(join(out, `candidate-${i}-az0.png`))
          .resize(tile, tile)
          .toBuffer(),
        left: (i % 4) * tile,
        top: Math.floor(i / 4) * tile,
      })),
    );
    await sharp({ create: { width: 4 * tile, height: 6 * tile, channels: 3, background: '#ffffff' } })
      .composite(tiles)
      .png()
      .toFile(join(out, 'candidates.png'));
    process.stdout.write(
      `\n${join(out, 'compare.png')}: left, the picture TRELLIS saw; right, the asset at azimuth 0 as the validator renders it.\n` +
        'Same side, upright: the orientation is right. Otherwise pick the matching tile in candidates.png and set\n' +
        'image_to_3d.gpu_worker.orientation to its nine numbers (candidates.txt).\n',
    );
    return 0;
  } finally {
    client.close();
  }
}

if (process.argv[1]?.endsWith('orientation-check.ts')) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: Error) => {
      process.stderr.write(`orientation-check: ${err.message}\n`);
      process.exitCode = 1;
    },
  );
}
