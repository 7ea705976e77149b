/**
 * Logs (pino): one line per request, plus lifecycle events. JSON lines for collectors, or, on a terminal,
 * human-readable lines through pino-pretty (log.format: auto picks by whether stdout is a terminal).
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export type LogFormat = 'auto' | 'json' | 'pretty';

/** Whether logs to stdout are written for people rather than collectors. */
export function prettyLogs(format: LogFormat, stdoutIsTerminal: boolean): boolean {
  return format === 'pretty' || (format === 'auto' && stdoutIsTerminal);
}

/** A logger to `destination` (JSON), or to stdout in the format `format` asks for. */
export function createLogger(level: string, destination?: NodeJS.WritableStream, format: LogFormat = 'auto'): Logger {
  const options = { level, base: { service: 'fast3d' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (destination || !prettyLogs(format, process.stdout.isTTY === true)) return pino(options, destination as never);
  // A transport runs in a worker thread; pino flushes it when the process exits.
  return pino(
    options,
    pino.transport({
      target: 'pino-pretty',
      options: {
        colorize: process.stdout.isTTY === true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'service,hostname',
        singleLine: true,
        destination: 1,
      },
    }),
  );
}
