/** Structured JSON logs (pino): one line per request, plus lifecycle events. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino({ level, base: { service: 'fast3d' }, timestamp: pino.stdTimeFunctions.isoTime }, destination as never);
}
