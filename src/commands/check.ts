/**
 * `fast3d check FILE.ply|FILE.spz|FILE.glb [...]`: would the miner's packer and the validator's gates accept these
 * PLY files, would the validator accept these SPZ files, and would these GLB files pass the check before any GLB
 * 200 (the Khronos validator and the mesh competition's rules)? Each file is read as what its bytes hold, whatever
 * its name. Exit 0 when all pass, 1 otherwise; one line per file (or JSON with --json).
 */
import { ConfigError, loadConfig } from '../config/load.js';
import { glbLimitsOf } from '../mesh/glb-limits.js';
import { glbRulesOf, inspectGlb, type GlbInspection, type GlbRules } from '../mesh/rules.js';
import { checkPly, checkSpz } from '../splat/gates.js';
import { parseFlags, readInputFile } from './args.js';

export const summary = "check PLY and SPZ files against the subnet's packer rules and validator gates, GLB files against the mesh rules";

export const usage = `usage: fast3d check FILE.ply|FILE.spz|FILE.glb [...] [--json] [--config FILE]

Would the miner's packer and the validator's gates accept these PLY files? Would the validator accept these
SPZ files (a complete SPZ stream whose length its header declares, then the same gates)? Would these GLB files
pass the check before any GLB is served: the Khronos glTF validator (no errors) and the mesh competition's rules
(one mesh, triangles, inside the cube of side pipeline.mesh_extent centred on the origin, at most
pipeline.max_glb_mb)? Those two settings come from the config (--config, or FAST3D_CONFIG; defaults 1 and
200). Each file is read as what its first bytes say it is (PLY, SPZ or GLB), whatever its name. One line per
file (--json: one JSON object per file). Exit 0 when all pass, 1 otherwise.
`;

/** What a file holds, by its first bytes: "ply", gzip's 1f 8b (SPZ versions 1 to 3), or "glTF". */
export type AssetKind = 'ply' | 'spz' | 'glb';

export function assetKindOf(bytes: Uint8Array): AssetKind | null {
  const starts = (text: string) => bytes.length >= text.length && [...text].every((ch, i) => bytes[i] === ch.charCodeAt(0));
  if (starts('ply')) return 'ply';
  if (starts('glTF')) return 'glb';
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return 'spz';
  return null;
}

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseFlags('check', argv, { json: { type: 'boolean' }, config: { type: 'string', short: 'c' } });
  if (!positionals.length) {
    process.stderr.write(usage);
    return 2;
  }
  let rules: GlbRules | undefined;
  let failures = 0;
  for (const path of positionals) {
    const bytes = await readInputFile(path);
    let ok: boolean;
    switch (assetKindOf(bytes)) {
      case 'glb':
        try {
          if (!rules) {
            const config = loadConfig({ path: values.config });
            rules = glbRulesOf(config.pipeline, glbLimitsOf(config.assets));
          }
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          process.stderr.write(`fast3d: ${err.message}\n`);
          return 2;
        }
        ok = await reportGlb(path, bytes, rules, values.json);
        break;
      case 'spz':
        ok = reportSpz(path, bytes, values.json);
        break;
      case 'ply':
        ok = reportPly(path, bytes, values.json);
        break;
      default:
        ok = reportUnknown(path, values.json);
    }
    if (!ok) failures++;
  }
  return failures ? 1 : 0;
}

function reportPly(path: string, bytes: Uint8Array, json: boolean | undefined): boolean {
  const { ok, packer: violation, gates, failed } = checkPly(bytes);
  if (json) {
    process.stdout.write(`${JSON.stringify({ path, format: 'ply', ok, packer: violation ?? 'ok', gates })}\n`);
  } else {
    const why = violation ? `packer rule: ${violation}` : failed.length ? `gates: ${failed.join(', ')}` : `${gates[0].value} Gaussians`;
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${path}: ${why}\n`);
  }
  return ok;
}

function reportSpz(path: string, bytes: Uint8Array, json: boolean | undefined): boolean {
  const { ok, spz: violation, gates, failed } = checkSpz(bytes);
  if (json) {
    process.stdout.write(`${JSON.stringify({ path, format: 'spz', ok, spz: violation ?? 'ok', gates })}\n`);
  } else {
    const why = violation
      ? `not a complete SPZ: ${violation}`
      : failed.length
        ? `gates: ${failed.join(', ')}`
        : `SPZ, ${gates[0].value} Gaussians`;
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${path}: ${why}\n`);
  }
  return ok;
}

function reportUnknown(path: string, json: boolean | undefined): boolean {
  const why = 'neither a PLY, an SPZ nor a GLB file (it starts with none of "ply", gzip\'s 1f 8b, "glTF")';
  if (json) process.stdout.write(`${JSON.stringify({ path, format: null, ok: false, error: why })}\n`);
  else process.stdout.write(`FAIL ${path}: ${why}\n`);
  return false;
}

/** The validator's messages printed under a file's line. */
const SHOWN_MESSAGES = 5;
const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function reportGlb(path: string, bytes: Uint8Array, rules: GlbRules, json: boolean | undefined): Promise<boolean> {
  const result = await inspectGlb(bytes, rules);
  const ok = result.violations.length === 0;
  if (json) {
    process.stdout.write(`${JSON.stringify({ path, format: 'glb', ok, rules, ...result })}\n`);
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
