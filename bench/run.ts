/**
 * `npm run bench [-- NAME ...]`: runs each bench/<name>.ts in its own process (so memory figures are its own),
 * one after another, and prints their figures. With names, only those.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const NOT_BENCHES = new Set(['run.ts', 'stats.ts']);
const all = readdirSync(dir)
  .filter((f) => f.endsWith('.ts') && !NOT_BENCHES.has(f))
  .map((f) => f.slice(0, -3))
  .sort();
const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !all.includes(w));
if (unknown.length) {
  process.stderr.write(`unknown bench ${unknown.join(', ')}; choose from: ${all.join(', ')}\n`);
  process.exit(2);
}
process.stdout.write(`fast3d benchmarks on ${process.platform} ${process.arch}, Node ${process.version}\n\n`);
let failed = 0;
for (const name of wanted.length ? wanted : all) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', `${dir}${name}.ts`], {
    stdio: 'inherit',
    env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
  });
  if (result.status !== 0) failed++;
  process.stdout.write('\n');
}
process.exit(failed ? 1 : 0);
