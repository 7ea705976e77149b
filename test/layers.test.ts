/**
 * The house rule: data flows one way, so a module imports only the modules below it. The rule is the table in
 * docs/architecture.md ("Layers"): every top-level module of src/ has a row, and its last column lists what it
 * may import. This test reads that table, so the document and the code cannot drift apart.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src/', import.meta.url).pathname;
const DOC = new URL('../docs/architecture.md', import.meta.url).pathname;

/** Module name of a top-level entry of src/: "splat" for splat/ or splat/x.ts, "app" for app.ts. */
const moduleOf = (entry: string) => entry.replace(/\/.*$/, '').replace(/\.(js|ts)$/, '');

/** Module -> the modules it may import ("everything" = no limit), from the architecture document's table. */
function layerTable(): Map<string, Set<string> | 'everything'> {
  const text = readFileSync(DOC, 'utf8');
  const section = text.slice(text.indexOf('## Layers'), text.indexOf('\n## ', text.indexOf('## Layers') + 1));
  const table = new Map<string, Set<string> | 'everything'>();
  for (const line of section.split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    const names = [...cells[0].matchAll(/`([^`]+)`/g)].map((m) => moduleOf(m[1]));
    const allowed = cells[cells.length - 1];
    const rule = allowed === 'everything' ? 'everything' : new Set([...allowed.matchAll(/`([^`]+)`/g)].map((m) => moduleOf(m[1])));
    for (const name of names) table.set(name, rule);
  }
  return table;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The top-level module an import resolves to ('splat', 'app', ...), or null for packages. */
function targetModule(file: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const target = relative(SRC, join(file, '..', specifier));
  if (target.startsWith('..')) return null;
  return moduleOf(target);
}

describe('layers', () => {
  const table = layerTable();

  it('the architecture document has a row for every top-level module of src/', () => {
    const modules = [
      ...new Set(
        readdirSync(SRC)
          .filter((n) => n !== 'types')
          .map(moduleOf),
      ),
    ].sort();
    expect(modules.filter((m) => !table.has(m))).toEqual([]);
    expect([...table.keys()].filter((m) => !modules.includes(m))).toEqual([]);
  });

  it('no module imports one its row does not allow', () => {
    const violations: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const layer = moduleOf(relative(SRC, file));
      const allowed = table.get(layer);
      if (!allowed || allowed === 'everything') continue;
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const target = targetModule(file, match[1]);
        if (target && target !== layer && !allowed.has(target)) violations.push(`${relative(SRC, file)} imports ${match[1]}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('reads the rule itself: splat may import nothing, runtime neither contract nor app', () => {
    expect(table.get('splat')).toEqual(new Set());
    const runtime = table.get('runtime') as Set<string>;
    expect(runtime.has('contract') || runtime.has('app') || runtime.has('commands')).toBe(false);
  });
});
