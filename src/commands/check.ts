/**
 * `fast3d check FILE.ply|FILE.glb [...]`: would the miner's packer and the validator's gates accept these PLY
 * files, and would these GLB files pass the check before any GLB 200 (the Khronos validator and the mesh
 * competition's rules)? Exit 0 when all pass, 1 otherwise; one line per file (or JSON with --json).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/load.js';
import { glbLimitsOf } from '../mesh/glb-limits.js';
import { glbRulesOf, inspectGlb, type GlbInspection, type GlbRules } from '../mesh/rules.js';
import { checkPly } from '../splat/gates.js';

export const summary = 'check PLY files against the subnet\'s packer rules and validator gates, GLB files against the mesh rules';

export const usage = `usage: fast3d check FILE.ply|FILE.glb [...] [--json] [--config FILE]

Would the miner's packer and the validator's gates accept these PLY files? Would these GLB files pass the
check before any GLB is served: the Khronos glTF validator (no errors) and the mesh competition's rules (one
mesh, triangles, inside the cube of side pipeline.mesh_extent centred on the origin, at most
pipeline.max_glb_mb)? Those two settings come from the config (--config, or FAST3D_CONFIG; defaults 1 and
200). One line per file (--json: one JSON object per file). Exit 0 when all pass, 1 otherwise.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { json: { type: 'boolean' }, config: { type: 'string', short: 'c' } },
    allowPositionals: true,
  });
  if (!positionals.length) {
    process.stderr.write(usage);
    return 2;
  }
  let rules: GlbRules | null = null;
  if (positionals.some(isGlb)) {
    try {
      const config = loadConfig({ path: values.config });
      rules = glbRulesOf(config.pipeline, glbLimitsOf(config.assets));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      process.stderr.write(`fast3d: ${err.message}\n`);
      return 2;
    }
  }
  let failures = 0;
  for (const path of positionals) {
    const bytes = new Uint8Array(await readFile(path));
    const ok = rules && isGlb(path) ? await reportGlb(path, bytes, rules, values.json) : reportPly(path, bytes, values.json);
    if (!ok) failures++;
  }
  return failures ? 1 : 0;
}

const isGlb = (path: string): boolean => path.toLowerCase().endsWith('.glb');

function reportPly(path: string, bytes: Uint8Array, json: boolean | undefined): boolean {
  const { ok, packer: violation, gates, failed } = checkPly(bytes);
  if (json) {
    process.stdout.write(`${JSON.stringify({ path, ok, packer: violation ?? 'ok', gates })}\n`);
  } else {
    const why = violation ? `packer rule: ${violation}` : failed.length ? `gates: ${failed.join(', ')}` : `${gates[0].value} Gaussians`;
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${path}: ${why}\n`);
  }
  return ok;
}

/** The validator's messages printed under a file's line. */
const SHOWN_MESSAGES = 5;
const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function reportGlb(path: string, bytes: Uint8Array, rules: GlbRules, json: boolean | undefined): Promise<boolean> {
  const result = await inspectGlb(bytes, rules);
  const ok = result.violations.length === 0;
  if (json) {
    process.stdout.write(`${JSON.stringify({ path, ok, rules, ...result })}\n`);
    return ok;
  }
  const why = ok ? stats(result) : `${result.violations.join('; ')} (${stats(result)})`;
  process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${path}: ${why}\n`);
  for (const m of result.validator?.messages.slice(0, SHOWN_MESSAGES) ?? []) {
    process.stdout.write(`     ${SEVERITY[m.severity]} ${m.code}${m.pointer ? ` at ${m.pointer}` : ''}: ${m.message}\n`);
  }
  return ok;
}

function stats(r: GlbInspection): string {
  const round = (v: number) => String(Number(v.toPrecision(4)));
  const bounds = r.bounds ? `, bounds [${r.bounds.min.map(round).join(', ')}]..[${r.bounds.max.map(round).join(', ')}]` : '';
  const validator = r.validator
    ? `; validator ${r.validator.errors} errors, ${r.validator.warnings} warnings, ${r.validator.infos} infos`
    : '; not validated';
  return `${r.meshes} mesh${r.meshes === 1 ? '' : 'es'}, ${r.triangles} triangles, ${r.vertices} vertices${bounds}${validator}`;
}
