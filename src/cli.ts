#!/usr/bin/env node
/**
 * `fast3d <command>`: the operator's tool. Each command lives in src/commands/<name>.ts and exports
 * `run(argv): Promise<number>` (the exit code) and a one-line `summary`.
 */
import { fileProblem, UsageError } from './commands/args.js';

process.env.ORT_DISABLE_TELEMETRY ??= '1';
// npm runs scripts from the package root; `npm run fast3d -- check x.ply` means the x.ply where the user stands.
// (Only that script: the others carry paths relative to the root, such as configs/preview.yaml.)
if (process.env.npm_lifecycle_event === 'fast3d' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);
// `fast3d config | head`: a closed pipe ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

interface Command {
  summary: string;
  /** Printed for `fast3d <command> --help`; commands without it handle --help themselves. */
  usage?: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  serve: () => import('./commands/serve.js'),
  check: () => import('./commands/check.js'),
  config: () => import('./commands/config.js'),
  weights: () => import('./commands/weights.js'),
  pregenerate: () => import('./commands/pregenerate.js'),
  render: () => import('./commands/render.js'),
  turntable: () => import('./commands/turntable.js'),
  convert: () => import('./commands/convert.js'),
  mcp: () => import('./commands/mcp.js'),
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`fast3d ${(await import('./version.js')).VERSION}\n`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const lines = await Promise.all(Object.entries(COMMANDS).map(async ([n, load]) => `  ${n.padEnd(12)} ${(await load()).summary}`));
    process.stdout.write(
      `usage: fast3d <command> [options]   (fast3d <command> --help; fast3d --version)\n\ncommands:\n${lines.join('\n')}\n`,
    );
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`fast3d: unknown command "${name}" (try: fast3d --help)\n`);
    return 2;
  }
  const command = await load();
  if (command.usage && rest.some((a) => a === '--help' || a === '-h')) {
    process.stdout.write(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    process.stderr.write(`fast3d ${name}: ${errorText(err)}\n`);
    return err instanceof UsageError ? 2 : 1;
  }
}

/** An error in words: a file the system refused is named with the reason, not as a raw ENOENT. */
function errorText(err: unknown): string {
  const { code, path } = err as NodeJS.ErrnoException;
  if (!code || !path) return (err as Error).message;
  // Reads name their file themselves (readInputFile); this is a file being written, whose folder may be missing.
  return `${path}: ${code === 'ENOENT' ? 'no such file or folder' : fileProblem(err)}`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    process.stderr.write(`fast3d: ${err.message}\n`);
    process.exitCode = 1;
  },
);
