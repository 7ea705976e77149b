/**
 * A raw HTTP/1.1 client over a TCP socket, for what fetch hides: requests Node's parser refuses, and a
 * reader that stops reading (a paused socket stops taking bytes from the kernel, so the server's queue fills).
 */
import { connect, type Socket } from 'node:net';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Body bytes the headers promised (Content-Length), if they did. */
  expected?: number;
}

/** Splits a raw HTTP/1.1 answer into status, headers and body. */
export function parseAnswer(raw: Buffer): RawAnswer {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) return { status: 0, headers: {}, body: Buffer.alloc(0) };
  const [statusLine, ...lines] = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const length = headers['content-length'];
  return {
    status: Number(statusLine.split(' ')[1]),
    headers,
    body: raw.subarray(end + 4),
    expected: length === undefined ? undefined : Number(length),
  };
}

/** Sends raw bytes, optionally half-closes, and collects everything until the server closes (or `ms`). */
export function rawExchange(
  port: number,
  request: string | Buffer,
  options: { halfClose?: boolean; ms?: number } = {},
): Promise<{ answer: RawAnswer; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closedByServer = false;
    const timer = setTimeout(() => socket.destroy(), options.ms ?? 5000);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      closedByServer = true;
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer: parseAnswer(Buffer.concat(chunks)), closedByServer });
    });
    socket.write(request, () => {
      if (options.halfClose) socket.end();
    });
  });
}

/** An urlencoded POST of a prompt, as raw bytes. */
export function rawPost(path: string, fields: Record<string, string>, extraHeaders = ''): string {
  const body = new URLSearchParams(fields).toString();
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n${body}`;
}

/**
 * A client that sends a request, reads the first chunk of the answer, then stops reading until `resume()`.
 * `firstChunk` resolves when the answer has begun; `done` when the connection closes, with all it got.
 */
export function stallingClient(
  port: number,
  request: string,
): { firstChunk: Promise<void>; resume(): void; done: Promise<{ answer: RawAnswer; bytes: number }>; socket: Socket } {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  let bytes = 0;
  let began: () => void;
  const firstChunk = new Promise<void>((resolve) => {
    began = resolve;
  });
  socket.on('data', (c: Buffer) => {
    chunks.push(c);
    bytes += c.length;
    if (chunks.length === 1) {
      socket.pause();
      began();
    }
  });
  socket.on('error', () => {});
  const done = new Promise<{ answer: RawAnswer; bytes: number }>((resolve) => {
    socket.on('close', () => resolve({ answer: parseAnswer(Buffer.concat(chunks)), bytes }));
  });
  socket.write(request);
  return { firstChunk, resume: () => socket.resume(), done, socket };
}
