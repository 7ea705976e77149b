/**
 * Requests Node's HTTP parser refuses before the app sees them get the same JSON error body as every other
 * 4xx, over the real server that `fast3d serve` starts, and their connection is closed.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../src/main.js';
import { fakeStages } from './helpers/fake-stages.js';
import { rawExchange } from './helpers/raw-http.js';

let running: RunningServer;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fast3d-client-error-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(config, 'server: { host: 127.0.0.1, port: 0, shutdown_grace_s: 0 }\ncache: { enabled: false }\nlog: { level: silent }\n');
  running = await startServer(['--config', config], { stages: fakeStages().stages });
});
afterAll(async () => {
  await running.stop();
  rmSync(dir, { recursive: true, force: true });
});

const head = (lines: string) =>
  `POST /generate/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n${lines}\r\n`;

const CASES: { name: string; request: string; halfClose?: boolean; status: number; error: RegExp }[] = [
  {
    name: 'a bad chunk size',
    request: `${head('Transfer-Encoding: chunked\r\n')}zz\r\nprompt=a\r\n0\r\n\r\n`,
    status: 400,
    error: /invalid chunk size/,
  },
  {
    name: 'both Content-Length and Transfer-Encoding',
    request: `${head('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n')}0\r\n\r\n`,
    status: 400,
    error: /both Content-Length and Transfer-Encoding/,
  },
  { name: 'an invalid Content-Length', request: head('Content-Length: ten\r\n'), status: 400, error: /invalid Content-Length/ },
  { name: 'a negative Content-Length', request: head('Content-Length: -5\r\n'), status: 400, error: /invalid Content-Length/ },
  {
    name: 'a truncated body',
    request: `${head('Content-Length: 100\r\n')}prompt=a%20chair`,
    halfClose: true,
    status: 400,
    error: /ended before its body was complete/,
  },
  {
    name: 'a 64 KiB header',
    request: `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(65536)}\r\n\r\n`,
    status: 431,
    error: /too large/,
  },
  { name: 'a 20 KiB URL', request: `GET /${'a'.repeat(20 * 1024)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`, status: 431, error: /too large/ },
  { name: 'a garbage request line', request: 'HELLO THERE\r\n\r\n', status: 400, error: /malformed request line/ },
];

describe('requests the HTTP parser refuses', () => {
  for (const c of CASES) {
    it(`answers ${c.name} with ${c.status} and a JSON error, then closes`, async () => {
      const { answer, closedByServer } = await rawExchange(running.port, c.request, { halfClose: c.halfClose });
      expect(answer.status).toBe(c.status);
      expect(answer.headers['content-type']).toBe('application/json');
      expect(answer.headers.connection).toBe('close');
      expect(answer.body.length).toBe(answer.expected);
      expect((JSON.parse(answer.body.toString()) as { error: string }).error).toMatch(c.error);
      expect(closedByServer).toBe(true);
    });
  }

  it('answers a backslash in the path, or a Host that is no host, with a 400 JSON error (the adapter refuses them before the app)', async () => {
    const cases: [string, RegExp][] = [
      [
        'GET /studio\\..\\package.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
        /^malformed request: backslash in request path$/,
      ],
      [
        'POST /generate\\ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 8\r\nConnection: close\r\n\r\nprompt=a',
        /^malformed request: backslash in request path$/,
      ],
      ['GET /health HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n', /^malformed request: /],
    ];
    for (const [request, error] of cases) {
      const { answer } = await rawExchange(running.port, request);
      expect(answer.status, request).toBe(400);
      expect(answer.headers['content-type'], request).toMatch(/^application\/json/);
      expect(answer.body.length, request).toBe(answer.expected);
      expect((JSON.parse(answer.body.toString()) as { error: string }).error, request).toMatch(error);
    }
  });

  it('still serves well-formed requests', async () => {
    expect((await fetch(`http://127.0.0.1:${running.port}/health`)).status).toBe(200);
  });
});
