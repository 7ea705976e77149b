/**
 * Preview meshes per preset: for one text prompt, the median time of the preview pipeline's image-to-3d stage
 * when it also makes the mesh (the closed surface at the preset's mesh_faces, and the splats from it), of GLB
 * encoding and of the GLB check (Khronos validator + geometry rules), with triangles and GLB size. Then the
 * same for a splat-only job, so the mesh's extra cost shows as a ratio. Rounds go through every preset in turn.
 *
 * Then the game-ready controls on each preset's mesh and on a 100k-triangle sphere: simplify time for a few
 * `faces` values (target: 100k to 10k in at most 150 ms), GLB bytes for compression none, meshopt and draco
 * (target: meshopt at most 40% of none), and the time of a LOD chain [1, 0.5, 0.25, 0.1].
 *
 * Last, draft then final: a preview service in this process over real HTTP (cache off), progressive jobs through
 * the job API, the time from the POST to the draft's first artefact event and to the final's (target: the draft
 * within 1 s), beside the same job without a draft.
 */
import { serve } from '@hono/node-server';
import { compose } from '../src/compose.js';
import { parseConfig } from '../src/config/load.js';
import { encodeGlb } from '../src/mesh/glb.js';
import { glbRulesOf, glbViolation } from '../src/mesh/rules.js';
import { encodeGlbVariant } from '../src/mesh/glb-variants.js';
import { lodChain } from '../src/mesh/lod.js';
import { triangleCount, type TriangleMesh } from '../src/mesh/mesh.js';
import { simplifyMesh } from '../src/mesh/simplify.js';
import { createStages } from '../src/pipelines/backends.js';
import { standaloneContext } from '../src/pipelines/context.js';
import { Pipeline } from '../src/pipelines/generate.js';
import { presetsOf } from '../src/pipelines/presets.js';
import { sphereMesh } from '../test/helpers/meshes.js';
import { median } from './stats.js';

const RUNS = 7;
const PROMPT = 'a red wooden chair';

const config = parseConfig({ log: { level: 'silent' }, cache: { enabled: false } });
const presets = presetsOf(config);
const pipeline = new Pipeline(createStages(config));
const rules = glbRulesOf(config.pipeline);

/** Each preset's preview mesh (the last one made), for the game-ready figures. */
const meshes = new Map<string, TriangleMesh>();

/** One mesh job and one splat job of a preset; the GLB written and checked (ms). */
async function sample(name: string) {
  const settings = presets.resolve(name).settings;
  const meshJob = await pipeline.run(
    { id: `bench-${name}`, task: { kind: 'text', prompt: PROMPT }, seed: 42, mesh: true },
    standaloneContext(settings),
  );
  const splatJob = await pipeline.run(
    { id: `bench-${name}`, task: { kind: 'text', prompt: PROMPT }, seed: 42 },
    standaloneContext(settings),
  );
  if (meshJob.kind !== 'asset' || !meshJob.mesh || splatJob.kind !== 'asset') throw new Error(`${name}: no asset`);
  let start = performance.now();
  const glb = await encodeGlb(meshJob.mesh);
  const encodeMs = performance.now() - start;
  start = performance.now();
  const violation = await glbViolation(glb, rules);
  const checkMs = performance.now() - start;
  if (violation) throw new Error(`${name}: the GLB breaks a rule: ${violation}`);
  meshes.set(name, meshJob.mesh);
  return {
    withMesh: meshJob.report.timings.image_to_3d,
    splatsOnly: splatJob.report.timings.image_to_3d,
    encodeMs,
    checkMs,
    faces: settings.image_to_3d.inflate.mesh_faces,
    triangles: triangleCount(meshJob.mesh),
    size: glb.length,
  };
}

// Every preset once before any is measured, then round after round through all of them: the first preset
// measured must not pay for the JIT and heap growth the later ones find done.
const names = presets.names();
for (const name of names) await sample(name);
const samples = new Map(names.map((name) => [name, [] as Awaited<ReturnType<typeof sample>>[]]));
for (let run = 0; run < RUNS; run++) for (const name of names) samples.get(name)!.push(await sample(name));

process.stdout.write(`preview meshes: "${PROMPT}", median of ${RUNS} rounds through the presets after a warm-up round (ms)\n`);
const rows: string[][] = [
  ['preset', 'mesh_faces', 'triangles', 'i23d mesh job', 'i23d splat job', 'ratio', 'GLB encode', 'GLB check', 'GLB MB'],
];
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
for (const row of rows)
  process.stdout.write(`  ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')}\n`);

/** A closed, coloured UV sphere of about `triangles` triangles (2 * s * (s/2 - 1) for s segments). */
function sphere(triangles: number): TriangleMesh {
  const segments = Math.round(Math.sqrt(triangles + 4) + 1) & ~1;
  return sphereMesh(segments, segments / 2, 0.5, true);
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await work();
  return performance.now() - start;
}

const FACES = [50_000, 10_000, 2_000];
const LODS = [1, 0.5, 0.25, 0.1];
const sources: [string, TriangleMesh][] = [
  ['sphere 100k', sphere(100_000)],
  ...[...meshes].map(([name, mesh]): [string, TriangleMesh] => [`preset ${name}`, mesh]),
];
process.stdout.write(`\ngame-ready meshes: median of ${RUNS} runs (ms); GLB bytes as written\n`);
const game: string[][] = [
  ['mesh', 'triangles', ...FACES.map((f) => `simplify ${f / 1000}k`), 'LOD chain', 'GLB none MB', 'meshopt', 'draco'],
];
for (const [name, mesh] of sources) {
  await simplifyMesh(mesh, 1000); // warm the simplifier's WebAssembly
  const simplify = [];
  for (const faces of FACES) {
    if (faces >= triangleCount(mesh)) {
      simplify.push('-');
      continue;
    }
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await timed(() => simplifyMesh(mesh, faces)));
    simplify.push(median(runs).toFixed(1));
  }
  const lodRuns = [];
  for (let i = 0; i < RUNS; i++) lodRuns.push(await timed(() => lodChain(mesh, LODS)));
  const none = (await encodeGlbVariant(mesh, { compression: 'none' })).length;
  const meshopt = (await encodeGlbVariant(mesh, { compression: 'meshopt' })).length;
  const draco = (await encodeGlbVariant(mesh, { compression: 'draco' })).length;
  const share = (bytes: number) => `${(bytes / 1e6).toFixed(2)} (${Math.round((bytes / none) * 100)}%)`;
  game.push([
    name,
    String(triangleCount(mesh)),
    ...simplify,
    median(lodRuns).toFixed(1),
    (none / 1e6).toFixed(2),
    share(meshopt),
    share(draco),
  ]);
}
const gameWidths = game[0].map((_, c) => Math.max(...game.map((r) => r[c].length)));
for (const row of game)
  process.stdout.write(`  ${row.map((cell, c) => (c === 0 ? cell.padEnd(gameWidths[c]) : cell.padStart(gameWidths[c]))).join('  ')}\n`);
process.stdout.write('  targets: simplify 100k to 10k at most 150 ms; meshopt at most 40% of none\n');

// ---- Draft, then final ----

const service = compose(parseConfig({ log: { level: 'silent' }, cache: { enabled: false }, server: { host: '127.0.0.1', port: 0 } }));
await service.service.start();
const server = serve({ fetch: service.app.fetch, hostname: '127.0.0.1', port: 0 });
await new Promise<void>((resolve) => server.once('listening', () => resolve()));
const address = server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/api/v1`;

/** Milliseconds from the POST to the first draft artefact event, the first of the final's, and the job's end. */
async function progressiveJob(body: Record<string, unknown>): Promise<{ draft: number | null; final: number; end: number }> {
  const start = performance.now();
  const created = await fetch(`${base}/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (created.status !== 202) throw new Error(`job refused: ${created.status} ${await created.text()}`);
  const { id } = (await created.json()) as { id: string };
  const stream = (await fetch(`${base}/jobs/${id}/events`)).body!.pipeThrough(new TextDecoderStream()).getReader();
  let draft: number | null = null;
  let final: number | null = null;
  let buffer = '';
  for (;;) {
    const { value, done } = await stream.read();
    if (done) throw new Error(`job ${id}: the stream ended before the job`);
    buffer += value;
    const lines = buffer.split('\n');
    buffer = lines.pop()!;
    for (const line of lines) {
      if (!line.startsWith('data: ')) continue;
      const event = JSON.parse(line.slice(6)) as { type: string; draft?: boolean; state?: string };
      const at = performance.now() - start;
      if (event.type === 'artefact' && event.draft) draft ??= at;
      else if (event.type === 'artefact') final ??= at;
      else if (event.type === 'end') {
        await stream.cancel();
        if (event.state !== 'done' || final === null) throw new Error(`job ${id} ended ${event.state}`);
        return { draft, final, end: at };
      }
    }
  }
}

process.stdout.write(`\ndraft then final: the job API over HTTP, preview backends, median of ${RUNS} jobs each (ms from the POST)\n`);
const cases: [string, Record<string, unknown>][] = [
  ['fast, spz', { preset: 'fast', outputs: ['spz'] }],
  ['balanced, spz', { preset: 'balanced', outputs: ['spz'] }],
  ['quality, spz', { preset: 'quality', outputs: ['spz'] }],
  ['balanced, spz + glb 10k, lods', { preset: 'balanced', outputs: ['spz', 'glb'], faces: 10_000, lods: LODS }],
];
const drafts: string[][] = [['request', 'draft 1st artefact', 'final 1st artefact', 'final end', 'no draft: end', 'drafts']];
let seed = 1000;
for (const [label, request] of cases) {
  await progressiveJob({ prompt: PROMPT, seed: seed++, progressive: true, ...request }); // warm-up
  const runs = [];
  const plain = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push(await progressiveJob({ prompt: PROMPT, seed: seed++, progressive: true, ...request }));
    plain.push(await progressiveJob({ prompt: PROMPT, seed: seed++, ...request }));
  }
  const made = runs.filter((r) => r.draft !== null);
  drafts.push([
    label,
    made.length ? median(made.map((r) => r.draft!)).toFixed(0) : '-',
    median(runs.map((r) => r.final)).toFixed(0),
    median(runs.map((r) => r.end)).toFixed(0),
    median(plain.map((r) => r.end)).toFixed(0),
    `${made.length}/${runs.length}`,
  ]);
}
const draftWidths = drafts[0].map((_, c) => Math.max(...drafts.map((r) => r[c].length)));
for (const row of drafts)
  process.stdout.write(`  ${row.map((cell, c) => (c === 0 ? cell.padEnd(draftWidths[c]) : cell.padStart(draftWidths[c]))).join('  ')}\n`);
process.stdout.write("  target: the draft's first artefact within 1 s of submit; 'drafts': jobs whose draft came before the final\n");
server.close();
await service.service.close();
await service.renderPool.close();
