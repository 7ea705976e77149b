/** The house rule: data flows one way, so a lower layer never imports a higher one. */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = new URL('../src/', import.meta.url).pathname;

/** Layer -> the layers it must not import. */
const FORBIDDEN: Record<string, string[]> = {
  splat: ['image', 'render', 'pipelines', 'runtime', 'contract', 'commands', 'app', 'compose', 'main'],
  image: ['splat', 'render', 'pipelines', 'runtime', 'contract', 'commands', 'app', 'compose', 'main'],
  render: ['pipelines', 'runtime', 'contract', 'commands', 'app', 'compose', 'main'],
  // The schema may use splat's pure maths (rotation checks); nothing else below it.
  config: ['image', 'render', 'pipelines', 'runtime', 'contract', 'commands', 'app', 'compose', 'main'],
  pipelines: ['runtime', 'contract', 'commands', 'app', 'compose', 'main'],
  runtime: ['contract', 'commands', 'app', 'compose', 'main'],
  contract: ['runtime', 'commands', 'app', 'compose', 'main'],
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** The top-level module an import resolves to ('splat', 'app', ...), or null for packages. */
function targetLayer(file: string, specifier: string): string | null {
  if (!specifier.startsWith('.')) return null;
  const target = relative(SRC, join(file, '..', specifier));
  if (target.startsWith('..')) return null;
  return target.split('/')[0].replace(/\.(js|ts)$/, '');
}

describe('layers', () => {
  it('no lower layer imports a higher one', () => {
    const violations: string[] = [];
    for (const file of sourceFiles(SRC)) {
      const layer = relative(SRC, file).split('/')[0];
      const forbidden = FORBIDDEN[layer];
      if (!forbidden) continue;
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
        const target = targetLayer(file, match[1]);
        if (target && forbidden.includes(target)) violations.push(`${relative(SRC, file)} imports ${match[1]}`);
      }
    }
    expect(violations).toEqual([]);
  });
});
