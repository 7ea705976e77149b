/**
 * Preview meshes per preset: for one text prompt, the median time of the preview pipeline's image-to-3d stage
 * when it also makes the mesh (the closed surface at the preset's mesh_faces, and the splats from it), of GLB
 * encoding and of the GLB check (Khronos validator + geometry rules), with triangles and GLB size. Then the
 * same for a splat-only job, so the mesh's extra cost shows as a ratio. Rounds go through every preset in turn.
 */
import { parseConfig } from '../src/config/load.js';
import { encodeGlb } from '../src/mesh/glb.js';
import { glbRulesOf, glbViolation } from '../src/mesh/rules.js';
import { triangleCount } from '../src/mesh/mesh.js';
import { createStages } from '../src/pipelines/backends.js';
import { standaloneContext } from '../src/pipelines/context.js';
import { Pipeline } from '../src/pipelines/generate.js';
import { presetsOf } from '../src/pipelines/presets.js';
import { median } from './stats.js';

const RUNS = 7;
const PROMPT = 'a red wooden chair';

const config = parseConfig({ log: { level: 'silent' }, cache: { enabled: false } });
const presets = presetsOf(config);
const pipeline = new Pipeline(createStages(config));
const rules = glbRulesOf(config.pipeline);

/** One mesh job and one splat job of a preset; the GLB written and checked (ms). */
async function sample(name: string) {
  const settings = presets.resolve(name).settings;
  const meshJob = await pipeline.run({ id: `bench-${name}`, task: { kind: 'text', prompt: PROMPT }, seed: 42, mesh: true }, standaloneContext(settings));
  const splatJob = await pipeline.run({ id: `bench-${name}`, task: { kind: 'text', prompt: PROMPT }, seed: 42 }, standaloneContext(settings));
  if (meshJob.kind !== 'asset' || !meshJob.mesh || splatJob.kind !== 'asset') throw new Error(`${name}: no asset`);
  let start = performance.now();
  const glb = await encodeGlb(meshJob.mesh);
  const encodeMs = performance.now() - start;
  start = performance.now();
  const violation = await glbViolation(glb, rules);
  const checkMs = performance.now() - start;
  if (violation) throw new Error(`${name}: the GLB breaks a rule: ${violation}`);
  return {
    withMesh: meshJob.report.timings.image_to_3d, splatsOnly: splatJob.report.timings.image_to_3d, encodeMs, checkMs,
    faces: settings.image_to_3d.inflate.mesh_faces, triangles: triangleCount(meshJob.mesh), size: glb.length,
  };
}

// Every preset once before any is measured, then round after round through all of them: the first preset
// measured must not pay for the JIT and heap growth the later ones find done.
const names = presets.names();
for (const name of names) await sample(name);
const samples = new Map(names.map((name) => [name, [] as Awaited<ReturnType<typeof sample>>[]]));
for (let run = 0; run < RUNS; run++) for (const name of names) samples.get(name)!.push(await sample(name));

process.stdout.write(`preview meshes: "${PROMPT}", median of ${RUNS} rounds through the presets after a warm-up round (ms)\n`);
const rows: string[][] = [['preset', 'mesh_faces', 'triangles', 'i23d mesh job', 'i23d splat job', 'ratio', 'GLB encode', 'GLB check', 'GLB MB']];
for (const name of names) {
  const runs = samples.get(name)!;
  const at = (pick: (r: (typeof runs)[number]) => number) => median(runs.map(pick));
  rows.push([
    name,
    String(runs[0].faces),
    String(runs[0].triangles),
    at((r) => r.withMesh).toFixed(1),
    at((r) => r.splatsOnly).toFixed(1),
    (at((r) => r.withMesh) / at((r) => r.splatsOnly)).toFixed(2),
    at((r) => r.encodeMs).toFixed(1),
    at((r) => r.checkMs).toFixed(1),
    (runs[0].size / 1e6).toFixed(2),
  ]);
}
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
for (const row of rows) process.stdout.write(`  ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')}\n`);
