#!/usr/bin/env node
// `npm start`: runs the built CLI in this process (signals reach the service directly), or says how to build it.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
if (!existsSync(cli)) {
  process.stderr.write('fast3d: dist/ is not built yet: run `npm run build` first (or `npm run preview` to run from source)\n');
  process.exit(1);
}
await import(pathToFileURL(cli).href);
