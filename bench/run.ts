/** `npm run bench`: runs every bench/*.ts module in turn (each prints its own medians). */
import { readdirSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';

const here = import.meta.dirname;
for (const file of readdirSync(here).filter((f) => f.endsWith('.ts') && f !== 'run.ts').sort()) {
  process.stdout.write(`\n# ${file}\n`);
  await import(pathToFileURL(join(here, file)).href);
}
