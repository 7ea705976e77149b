/** `fast3d serve [--config FILE]`: runs the HTTP service until SIGTERM or SIGINT. */
import { ConfigError } from '../config/load.js';
import { startServer } from '../main.js';

export const summary = 'start the HTTP service (--config FILE; env PORT, HOST, FAST3D_CONFIG)';

export async function run(argv: string[]): Promise<number> {
  let running;
  try {
    running = await startServer(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`fast3d: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const signal = await new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  process.stderr.write(`fast3d: ${signal} received, finishing in-flight jobs\n`);
  await running.stop();
  return 0;
}
