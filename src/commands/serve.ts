/**
 * `fast3d serve [--config FILE]`: runs the HTTP service until SIGTERM or SIGINT, then drains in-flight jobs.
 * The one entry point of the service (`npm run preview`, `npm start`, pm2 and Docker all run it).
 */
import { ConfigError } from '../config/load.js';
import { SERVER_FLAGS, startServer, stopOnSignals } from '../main.js';
import { parseFlags } from './args.js';

export const summary = 'start the HTTP service (--config FILE, --role all|api|worker; env PORT, HOST, FAST3D_CONFIG)';

export const usage = `usage: fast3d serve [--config FILE] [--role all|api|worker]

Runs the HTTP service until SIGTERM or Ctrl-C, then finishes the jobs in flight and sends their answers
(within server.shutdown_grace_s); a second signal stops at once.

  -c, --config FILE   YAML config (default: FAST3D_CONFIG, else built-in defaults; see \`fast3d config\`)
      --role ROLE     all (default: takes requests and runs jobs), api (takes every request, runs no job) or
                      worker (runs jobs from the queue; serves /health, /ping and /metrics); api and worker
                      need queue.backend: bullmq, a queue the nodes share

Environment: PORT and HOST override server.port and server.host.
`;

export async function run(argv: string[]): Promise<number> {
  parseFlags('serve', argv, SERVER_FLAGS, false);
  let running;
  try {
    running = await startServer(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fast3d: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`fast3d: cannot start: ${(err as Error).message}\n`);
    return 1;
  }
  stopOnSignals(running);
  // Serves until a signal: stopOnSignals drains, then ends the process with its exit code.
  return new Promise<number>(() => {});
}
