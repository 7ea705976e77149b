#!/usr/bin/env node
/**
 * `npm run licenses`: the licence gate and the notices.
 *
 * Writes licenses/THIRD-PARTY-NOTICES.md: the notice for every npm package the service ships (production
 * dependencies per package-lock.json, read from their installed package.json and licence files under node_modules)
 * and the licence of every Python distribution and source checkout of the GPU image (the reviewed records of
 * licenses/python-packages.json, for the names docker/Dockerfile, workers/gpu/requirements.txt and
 * workers/gpu/constraints.txt install). Copyleft licences are listed for review.
 *
 * Exits 1, naming them, when any dependency's licence forbids commercial use or is unknown (an npm package without a
 * licence, a Python name without a record), or when a name known to be non-commercial is in the image's list.
 *
 *   node scripts/licenses.mjs [--out FILE] [--check] [--root DIR]
 *   node scripts/licenses.mjs --python-only --python-freeze pip-freeze.txt [--constraints FILE --strict-pins 1]
 *
 * --check verifies without writing. --python-freeze checks the distributions a build actually installed (the image
 * build runs it); with --strict-pins 1, one not in --constraints fails too.
 */
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'licenses/THIRD-PARTY-NOTICES.md' },
    root: { type: 'string', default: process.cwd() },
    check: { type: 'boolean', default: false },
    'python-only': { type: 'boolean', default: false },
    'python-freeze': { type: 'string' },
    constraints: { type: 'string' },
    'strict-pins': { type: 'string', default: '0' },
  },
});
const root = values.root;
const NON_COMMERCIAL =
  /non-?commercial|\bCC-BY-NC|research (or|and) evaluation|evaluation use only|1-Way Commercial|Gaussian-Splatting License/i;
const UNKNOWN = /^(|UNKNOWN.*|UNLICENSED|SEE LICENSE.*)$/i;
const COPYLEFT = /\b(A?GPL|LGPL|SSPL|EUPL|MPL|CC-BY-SA)/i;
const problems = [];

/** ok, copyleft, non-commercial or unknown. */
function classify(licence) {
  const text = (licence ?? '').trim();
  if (NON_COMMERCIAL.test(text)) return 'non-commercial';
  if (UNKNOWN.test(text)) return 'unknown';
  return COPYLEFT.test(text) ? 'copyleft' : 'ok';
}

/** pip's normal form of a distribution name. */
const normalise = (name) => name.toLowerCase().replace(/[-_.]+/g, '-');

// --- Python: the image's dependency list and its reviewed licences ------------------------------------------------

const records = JSON.parse(readFileSync(join(root, 'licenses/python-packages.json'), 'utf8'));
const denied = new Map(Object.entries(records.non_commercial).map(([name, why]) => [normalise(name), why]));
const known = new Map(Object.entries(records.packages).map(([name, r]) => [normalise(name), r]));

/** name -> {version, from}: the requirement lines and pinned pip/git installs of the image's build files. */
function imageDependencies() {
  const found = new Map();
  const note = (name, version, from) => {
    const key = normalise(name);
    if (!found.has(key)) found.set(key, { name, version, from });
  };
  for (const file of ['workers/gpu/requirements.txt', 'workers/gpu/constraints.txt']) {
    const path = join(root, file);
    if (!existsSync(path)) continue;
    for (const raw of readFileSync(path, 'utf8').split('\n')) {
      const line = raw.replace(/#.*/, '').trim();
      const match = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*([^\s;]+)|@\s*(\S+))?/.exec(line);
      if (match) note(match[1], match[2] ?? match[3] ?? '', file);
    }
  }
  const dockerfile = join(root, 'docker/Dockerfile');
  if (existsSync(dockerfile)) {
    const text = readFileSync(dockerfile, 'utf8').replace(/\\\n/g, ' ');
    for (const line of text.split('\n')) {
      if (/^\s*#/.test(line)) continue;
      for (const m of line.matchAll(/\bpip install ([^&|;]*)/g)) {
        for (const token of m[1].split(/\s+/)) {
          const pinned = /^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s]+)$/.exec(token);
          if (pinned) note(pinned[1], pinned[2], 'docker/Dockerfile');
        }
      }
      for (const m of line.matchAll(/\bgit clone (?:--\S+ )*https:\/\/github\.com\/[^/\s]+\/([^/\s]+?)(?:\.git)?(?:\s|$)/g)) {
        note(m[1], 'git checkout', 'docker/Dockerfile');
      }
    }
  }
  return found;
}

/** name -> version of a `pip freeze`. */
function freezeNames(path) {
  const found = new Map();
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:==\s*(\S+)|@\s*(\S+))/.exec(raw.trim());
    if (match) found.set(normalise(match[1]), { name: match[1], version: match[2] ?? match[3], from: path });
  }
  return found;
}

function gatePython(dependencies) {
  const rows = [];
  for (const [key, dep] of [...dependencies].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (denied.has(key)) {
      problems.push(`python ${dep.name} (${dep.from}): ${denied.get(key)}`);
      rows.push({ ...dep, licence: denied.get(key), kind: 'non-commercial' });
      continue;
    }
    const record = known.get(key);
    const kind = record ? classify(record.licence) : 'unknown';
    if (!record) problems.push(`python ${dep.name} (${dep.from}): no reviewed licence record in licenses/python-packages.json`);
    else if (kind === 'non-commercial' || kind === 'unknown') problems.push(`python ${dep.name}: licence '${record.licence}' is ${kind}`);
    rows.push({ ...dep, licence: record?.licence ?? 'UNKNOWN', source: record?.source ?? '', note: record?.note ?? '', kind });
  }
  return rows;
}

const pythonRows = gatePython(imageDependencies());
if (values['python-freeze']) {
  const installed = freezeNames(values['python-freeze']);
  gatePython(installed);
  if (values['strict-pins'] === '1') {
    const pinned = values.constraints ? freezeNames(values.constraints) : new Map();
    for (const [key, dep] of installed) {
      if (!pinned.has(key) && !/^(git\+|file:)/.test(dep.version ?? ''))
        problems.push(`python ${dep.name}==${dep.version} is installed but not pinned in ${values.constraints}`);
    }
  }
}

// --- npm: the service's production packages -----------------------------------------------------------------------

function licenceOf(pkg) {
  const field = pkg.license ?? pkg.licence;
  if (typeof field === 'string') return field;
  if (field?.type) return field.type;
  const list = Array.isArray(field) ? field : pkg.licenses;
  if (Array.isArray(list)) return list.map((l) => l.type ?? l).join(' OR ');
  return null;
}

function licenceText(dir) {
  const file = readdirSync(dir).find((name) => /^(licen[cs]e|copying|notice)(\.|-|$)/i.test(name));
  return file ? { file, text: readFileSync(join(dir, file), 'utf8').trim() } : null;
}

const entries = [];
if (!values['python-only']) {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
  for (const [path, meta] of Object.entries(lock.packages)) {
    if (!path || meta.dev || meta.link) continue; // the root, dev-only tools, workspace links
    const dir = join(root, path);
    if (!existsSync(join(dir, 'package.json'))) continue; // optional package for another platform
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const text = licenceText(dir);
    const licence = licenceOf(pkg) ?? (text ? `UNKNOWN (see ${text.file})` : 'UNKNOWN');
    const kind = classify(licence);
    if (kind === 'non-commercial' || kind === 'unknown') problems.push(`npm ${pkg.name}@${pkg.version}: licence '${licence}' is ${kind}`);
    const repository = typeof pkg.repository === 'string' ? pkg.repository : (pkg.repository?.url ?? pkg.homepage ?? '');
    entries.push({ name: pkg.name, version: pkg.version, licence, repository, text, kind });
  }
  entries.sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

// --- the notices ----------------------------------------------------------------------------------------------------

if (!values['python-only'] && !values.check) {
  const counts = new Map();
  for (const e of entries) counts.set(e.licence, (counts.get(e.licence) ?? 0) + 1);
  const review = entries.filter((e) => e.kind !== 'ok');
  let out = '# Third-party notices\n\n';
  out +=
    'Generated by `npm run licenses` from package-lock.json, the installed packages and licenses/python-packages.json; do not edit by hand.\n';
  out += `${entries.length} production npm packages; ${pythonRows.length} Python distributions and source checkouts of the GPU image.\n\n`;
  out += '## GPU image: Python packages and source checkouts\n\n';
  out +=
    "The names the image's build files install (docker/Dockerfile, workers/gpu/requirements.txt, workers/gpu/constraints.txt), with their reviewed licences. The build also checks every distribution it actually installed against the same records.\n\n";
  out += '| package | version | licence | source | note |\n|---|---|---|---|---|\n';
  for (const r of pythonRows)
    out += `| ${r.name} | ${r.version} | ${r.licence} | ${r.source ?? ''} | ${r.kind === 'copyleft' && !/^copyleft/.test(r.note) ? `copyleft: ${r.note || 'for review'}` : (r.note ?? '')} |\n`;
  out += `\nTransitive distributions with a record: ${[...known.keys()].filter((k) => !pythonRows.some((r) => normalise(r.name) === k)).join(', ')}.\n`;
  out += '\n## npm licences\n\n| licence | packages |\n|---|---|\n';
  for (const [licence, n] of [...counts].sort((a, b) => b[1] - a[1])) out += `| ${licence} | ${n} |\n`;
  out += '\n## npm packages for review (copyleft)\n\n';
  out += review.length ? `${review.map((e) => `- ${e.name}@${e.version}: ${e.licence}`).join('\n')}\n` : 'None.\n';
  out += '\n## npm packages\n';
  for (const e of entries) {
    out += `\n### ${e.name}@${e.version}\n\nLicence: ${e.licence}${e.repository ? `  \nSource: ${e.repository}` : ''}\n`;
    if (e.text)
      out += `\n<details><summary>${e.text.file}</summary>\n\n\`\`\`text\n${e.text.text.replaceAll('```', "'''")}\n\`\`\`\n\n</details>\n`;
  }
  const target = join(root, values.out);
  const temporary = `${target}.${process.pid}.tmp`;
  writeFileSync(temporary, out);
  renameSync(temporary, target);
  process.stdout.write(
    `${values.out}: ${entries.length} npm packages, ${pythonRows.length} Python dependencies, ${review.length} npm packages for review\n`,
  );
}
const copyleft = pythonRows.filter((r) => r.kind === 'copyleft').map((r) => `${r.name} (${r.licence})`);
process.stdout.write(`python: ${pythonRows.length} dependencies of the image reviewed; copyleft: ${copyleft.join(', ') || 'none'}\n`);
if (problems.length) {
  process.stderr.write(`licence gate FAILED: ${problems.length} dependencies forbid commercial use or have no known licence\n`);
  for (const p of problems) process.stderr.write(`  ${p}\n`);
  process.exit(1);
}
process.stdout.write('licence gate: every dependency allows commercial use\n');
