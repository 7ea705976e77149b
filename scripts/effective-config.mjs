#!/usr/bin/env node
/**
 * Writes a copy of a YAML config with some keys set, for deployments that differ from the file only in a few
 * values (the port, the health word):
 *   node scripts/effective-config.mjs --base configs/service.yaml --out run/service.yaml \
 *     --set server.port=10006 --set server.health_ok_status=healthy
 * Values are parsed as YAML scalars (numbers stay numbers). The file is written to a temporary name, then renamed.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';

const { values } = parseArgs({
  options: { base: { type: 'string' }, out: { type: 'string' }, set: { type: 'string', multiple: true, default: [] } },
});
if (!values.base || !values.out) {
  process.stderr.write('usage: effective-config.mjs --base FILE.yaml --out FILE.yaml [--set key.path=value ...]\n');
  process.exit(2);
}
const config = parse(readFileSync(values.base, 'utf8')) ?? {};
for (const assignment of values.set) {
  const at = assignment.indexOf('=');
  if (at <= 0) {
    process.stderr.write(`--set ${assignment}: expected key.path=value\n`);
    process.exit(2);
  }
  const path = assignment.slice(0, at).split('.');
  let node = config;
  for (const key of path.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== 'object') node[key] = {};
    node = node[key];
  }
  node[path[path.length - 1]] = parse(assignment.slice(at + 1));
}
mkdirSync(dirname(values.out), { recursive: true });
const temporary = `${values.out}.${process.pid}.tmp`;
writeFileSync(temporary, `# Generated from ${values.base} by scripts/effective-config.mjs; edit that file instead.\n${stringify(config)}`);
renameSync(temporary, values.out);
