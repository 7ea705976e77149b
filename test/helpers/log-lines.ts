/** The service's JSON log lines as a child process writes them to a stream, one parsed entry at a time. */
import type { Readable } from 'node:stream';

export interface LogEntry {
  msg?: string;
  port?: number;
  pid?: number;
  [key: string]: unknown;
}

/** Calls `onEntry` for every complete line of `stream` that is a JSON object (other lines are skipped). */
export function onLogLines(stream: Readable, onEntry: (entry: LogEntry) => void): void {
  let buffered = '';
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) if (line.startsWith('{')) onEntry(JSON.parse(line) as LogEntry);
  });
}
