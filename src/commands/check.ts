/**
 * `fast3d check FILE.ply [...]`: would the miner's packer and the validator's gates accept these files?
 * Exit 0 when all pass, 1 otherwise; one line per file (or JSON with --json).
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { checkGates } from '../splat/gates.js';
import { decodePly } from '../splat/ply.js';
import { servablePlyViolation } from '../splat/servable.js';

export const summary = 'check PLY files against the subnet\'s packer rules and validator gates';

export const usage = `usage: fast3d check FILE.ply [FILE.ply ...] [--json]

Would the miner's packer and the validator's gates accept these files? One line per file (--json: one JSON
object per file). Exit 0 when all pass, 1 otherwise.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { json: { type: 'boolean' } }, allowPositionals: true });
  if (!positionals.length) {
    process.stderr.write(usage);
    return 2;
  }
  let failures = 0;
  for (const path of positionals) {
    const bytes = new Uint8Array(await readFile(path));
    const violation = servablePlyViolation(bytes);
    const gates = violation ? [] : checkGates(decodePly(bytes));
    const failed = gates.filter((g) => !g.passed).map((g) => `${g.name}=${g.value} (limit ${g.threshold})`);
    const ok = !violation && failed.length === 0;
    if (!ok) failures++;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ path, ok, packer: violation ?? 'ok', gates })}\n`);
    } else {
      const why = violation ? `packer rule: ${violation}` : failed.length ? `gates: ${failed.join(', ')}` : `${gates[0].value} Gaussians`;
      process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${path}: ${why}\n`);
    }
  }
  return failures ? 1 : 0;
}
