/**
 * Starting a worker thread from its module, from the build or from TypeScript sources. From the build: the
 * `.js` file beside the caller. From sources (tsx, vitest): a small bootstrap that registers tsx's loader
 * inside the worker, then imports the `.ts` file; a loader passed through execArgv does not reach worker
 * threads on every Node 20 release.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts the worker module `name` (without extension) that sits beside the module at `callerUrl`, with
 * `options` (resource limits, say).
 */
export function startWorker(callerUrl: string, name: string, options: WorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${name}.js`, callerUrl), options);
  const require = createRequire(callerUrl);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { exports: Record<string, { import?: { default?: string } }> };
  const api = pkg.exports['./esm/api']?.import?.default;
  if (!api) throw new Error('tsx is needed to run worker threads from TypeScript sources (npm ci), or run the build');
  const apiUrl = pathToFileURL(join(dirname(pkgPath), api)).href;
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const script = `import(${JSON.stringify(apiUrl)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })
  .catch((err) => { console.error(err); process.exit(1); });`;
  return new Worker(script, { ...options, eval: true });
}
