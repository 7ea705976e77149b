/**
 * Presets in preview: one row per preset with the median time of each stage over several runs of one text
 * prompt, the Gaussian count, the PLY and SPZ sizes, and the GPU work the preset asks of the worker (FLUX steps
 * and side, TRELLIS steps and cfg of both stages). Then the budget's damage: PSNR of the validator's 16 views
 * (518 px) of robocop before and after halving it and cutting it to the realtime budget, with the cut's median time.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseConfig } from '../src/config/load.js';
import { psnrOfViews } from '../src/image/psnr.js';
import { createStages } from '../src/pipelines/backends.js';
import { standaloneContext } from '../src/pipelines/context.js';
import { Pipeline } from '../src/pipelines/generate.js';
import { presetsOf } from '../src/pipelines/presets.js';
import { RenderPool, renderValidatorViews, VALIDATOR_SIZE } from '../src/render/index.js';
import { decodePly, encodePly } from '../src/splat/ply.js';
import { pruneToBudget, type ImportanceMeasure } from '../src/splat/prune.js';
import { encodeSpz } from '../src/splat/spz.js';
import { median, report, timeMedian } from './stats.js';

const RUNS = 5;
const PROMPT = 'a red wooden chair';
const STAGES = ['text_to_image', 'matting', 'image_to_3d', 'normalise', 'validate'] as const;

const config = parseConfig({ log: { level: 'silent' }, cache: { enabled: false } });
const presets = presetsOf(config);
const pipeline = new Pipeline(createStages(config));

process.stdout.write(`presets: "${PROMPT}" in preview, median of ${RUNS} runs (ms per stage)\n`);
const head = [
  'preset',
  ...STAGES.map((s) => s.replace('text_to_image', 't2i').replace('image_to_3d', 'i23d')),
  'total',
  'gaussians',
  'PLY MB',
  'SPZ MB',
  'FLUX steps@side',
  'TRELLIS ss/slat steps (cfg)',
];
const rows: string[][] = [head];
for (const name of presets.names()) {
  const preset = presets.resolve(name);
  const timings: Record<string, number[]> = {};
  const totals: number[] = [];
  let count = 0;
  let ply = 0;
  let spz = 0;
  for (let run = 0; run <= RUNS; run++) {
    const start = performance.now();
    const outcome = await pipeline.run(
      { id: `bench-${name}`, task: { kind: 'text', prompt: PROMPT }, seed: 42 },
      standaloneContext(preset.settings),
    );
    const total = performance.now() - start;
    if (outcome.kind !== 'asset') throw new Error(`${name}: declined: ${outcome.reason}`);
    if (run === 0) continue; // warm-up
    totals.push(total);
    for (const stage of STAGES) (timings[stage] ??= []).push(outcome.report.timings[stage] ?? 0);
    count = outcome.cloud.count;
    ply = encodePly(outcome.cloud).length;
    spz = encodeSpz(outcome.cloud).length;
  }
  const flux = preset.settings.text_to_image.gpu_worker;
  const trellis = preset.settings.image_to_3d.gpu_worker;
  rows.push([
    name,
    ...STAGES.map((s) => median(timings[s]).toFixed(1)),
    median(totals).toFixed(1),
    String(count),
    (ply / 1e6).toFixed(2),
    (spz / 1e6).toFixed(2),
    `${flux.steps}@${flux.size}`,
    `${trellis.sparse_structure_steps}/${trellis.slat_steps} (${trellis.sparse_structure_cfg}/${trellis.slat_cfg})`,
  ]);
}
const widths = head.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const row of rows)
  process.stdout.write(`  ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')}\n`);

const ROBOCOP = new URL('../../shared/fixtures/robocop.ply', import.meta.url).pathname;
if (!existsSync(ROBOCOP)) {
  process.stderr.write(`fixture missing: ${ROBOCOP}\n`);
  process.exit(1);
}
const cloud = decodePly(new Uint8Array(readFileSync(ROBOCOP)));
const half = Math.round(cloud.count / 2);
const realtime = presets.resolve('realtime').settings.pipeline.max_gaussians;
const pool = new RenderPool(0);
const views = { count: 16, size: VALIDATOR_SIZE };
const before = await renderValidatorViews(cloud, views, pool);
process.stdout.write(
  `\nbudget: robocop (${cloud.count} Gaussians) halved to ${half} and cut to realtime's ${realtime}; PSNR of the validator's 16 views at ${VALIDATOR_SIZE} px\n`,
);
for (const measure of ['area', 'volume'] as ImportanceMeasure[]) {
  const after = await renderValidatorViews(pruneToBudget(cloud, half, measure).cloud, views, pool);
  report(
    `PSNR halved, importance = opacity x ${measure}${measure === 'area' ? ' (the one used)' : ''}`,
    psnrOfViews(before, after),
    'dB',
    '>= 35 dB',
  );
}
report(
  'PSNR cut to the realtime budget',
  psnrOfViews(before, await renderValidatorViews(pruneToBudget(cloud, realtime).cloud, views, pool)),
  'dB',
  '>= 30 dB',
);
report(
  'cut time, halved (importance, runs, mean exchanges, copy, widening)',
  await timeMedian(RUNS, () => pruneToBudget(cloud, half)),
  'ms',
);
await pool.close();
