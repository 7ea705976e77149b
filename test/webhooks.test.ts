/**
 * Job webhooks: the signature a receiver checks, which addresses are refused (literal, resolved, redirected),
 * and delivery with retries and backoff against a receiver on 127.0.0.1.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import {
  addressProblem,
  type AttemptOutcome,
  backoffMs,
  parseWebhookUrl,
  type Resolver,
  retryAfterMs,
  signWebhookBody,
  verifyWebhookSignature,
  WebhookSender,
  type WebhookSettings,
  WebhookUrlError,
} from '../src/runtime/webhooks.js';

const SECRET = 'test-secret-of-some-length';
const ENV = { FAST3D_WEBHOOK_SECRET: SECRET };

function settings(overrides: Partial<WebhookSettings> = {}): WebhookSettings {
  return { ...parseConfig({}).webhooks, backoff_s: 0.01, max_backoff_s: 1, ...overrides };
}

interface Received {
  path: string;
  method: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A receiver on 127.0.0.1 that records each request and answers with `answer(request number, request)`. */
async function receiver(
  answer: (n: number, req: Received, res: ServerResponse) => void = (_n, _req, res) => res.end('ok'),
): Promise<{ url: string; port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const record = { path: req.url ?? '', method: req.method ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      received.push(record);
      answer(received.length, record, res);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, port, received };
}

const resolving =
  (table: Record<string, string[]>): Resolver =>
  async (host) => {
    const addresses = table[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

describe('webhook signature', () => {
  it('is the HMAC-SHA256 of the raw body under the secret, and a receiver verifies it', () => {
    const body = '{"event":"job.finished"}';
    // Computed apart: printf '%s' "$body" | openssl dgst -sha256 -hmac key
    expect(signWebhookBody(body, 'key')).toBe('sha256=3ed5cfdc92a31342fead5d65cb0913df43564172f2183edb53704aea11aa384c');
    expect(signWebhookBody(Buffer.from(body), 'key')).toBe(signWebhookBody(body, 'key'));
    const signature = signWebhookBody(body, SECRET);
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(verifyWebhookSignature(body, SECRET, signature)).toBe(true);
    expect(verifyWebhookSignature(`${body} `, SECRET, signature)).toBe(false);
    expect(verifyWebhookSignature(body, 'other', signature)).toBe(false);
    expect(verifyWebhookSignature(body, SECRET, null)).toBe(false);
    expect(verifyWebhookSignature(body, SECRET, 'sha256=00')).toBe(false);
  });
});

describe('webhook addresses', () => {
  it('tells public addresses from the others, IPv4 inside IPv6 included', () => {
    for (const ip of [
      '8.8.8.8',
      '1.1.1.1',
      '93.184.216.34',
      '172.32.0.1',
      '100.128.0.1',
      '192.169.0.1',
      '2606:4700:4700::1111',
      '::ffff:8.8.8.8',
      '2002:808:808::1',
      '64:ff9b::808:808',
    ]) {
      expect(addressProblem(ip), ip).toBeNull();
    }
    const refused: Record<string, RegExp> = {
      '127.0.0.1': /loopback/,
      '127.255.255.254': /loopback/,
      '10.1.2.3': /private/,
      '172.16.0.1': /private/,
      '172.31.255.255': /private/,
      '192.168.1.1': /private/,
      '169.254.169.254': /link-local/,
      '100.64.0.1': /carrier-grade NAT/,
      '0.0.0.0': /this network/,
      '224.0.0.1': /multicast/,
      '255.255.255.255': /reserved/,
      '198.18.0.1': /benchmarking/,
      '::1': /loopback/,
      '::': /unspecified/,
      'fe80::1': /link-local/,
      'fe80::1%eth0': /link-local/,
      'fc00::1': /unique local/,
      'fd12:3456::1': /unique local/,
      'ff02::1': /multicast/,
      '::ffff:127.0.0.1': /loopback \(IPv4 127.0.0.1 inside IPv6\)/,
      '::ffff:7f00:1': /loopback \(IPv4 127.0.0.1/,
      '::ffff:10.0.0.1': /private/,
      '::ffff:169.254.169.254': /link-local/,
      '0:0:0:0:0:ffff:c0a8:0101': /private \(IPv4 192.168.1.1/,
      '64:ff9b::a00:1': /private \(IPv4 10.0.0.1/,
      '2002:7f00:1::1': /loopback/,
      '::127.0.0.1': /loopback/,
    };
    for (const [ip, why] of Object.entries(refused)) expect(addressProblem(ip), ip).toMatch(why);
  });

  it('refuses URLs that are not http(s), too long, with credentials, or at a literal non-public host', () => {
    const policy = { allowPrivate: false, maxUrlLength: 200 };
    const cases: [unknown, RegExp][] = [
      [42, /must be a URL string/],
      ['not a url', /not a valid absolute URL/],
      [`https://example.com/${'x'.repeat(200)}`, /over the limit of 200/],
      ['ftp://example.com/x', /http or https, not ftp/],
      ['file:///etc/passwd', /http or https, not file/],
      ['javascript:alert(1)', /http or https/],
      ['http://user:pw@example.com/', /user name or password/],
      ['http://127.0.0.1:8080/hook', /address 127.0.0.1 is not public: loopback/],
      ['http://[::1]/', /::1 is not public: loopback/],
      ['http://[::ffff:127.0.0.1]/', /loopback/],
      ['http://[fe80::1]/', /link-local/],
      ['http://169.254.169.254/latest/meta-data', /link-local/],
      ['http://10.0.0.8/', /private/],
      ['http://0.0.0.0:80/', /this network/],
      ['http://2130706433/', /127.0.0.1 is not public/],
      ['http://0x7f.0.0.1/', /127.0.0.1 is not public/],
      ['http://localhost:8080/', /localhost is this machine/],
      ['http://LOCALHOST./', /this machine/],
      ['http://api.localhost/', /this machine/],
    ];
    for (const [raw, why] of cases) {
      let error: unknown;
      try {
        parseWebhookUrl(raw, policy);
      } catch (err) {
        error = err;
      }
      expect(error, String(raw)).toBeInstanceOf(WebhookUrlError);
      expect((error as Error).message, String(raw)).toMatch(why);
    }
    expect(parseWebhookUrl('https://hooks.example.com/x?y=1', policy).href).toBe('https://hooks.example.com/x?y=1');
    expect(parseWebhookUrl('http://127.0.0.1:8080/hook', { ...policy, allowPrivate: true }).host).toBe('127.0.0.1:8080');
    expect(parseWebhookUrl('http://localhost/', { ...policy, allowPrivate: true }).hostname).toBe('localhost');
  });

  it('checks every address a host name resolves to before a job is accepted', async () => {
    const resolve = resolving({
      'hooks.example.com': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
      'mixed.example.com': ['93.184.216.34', '::ffff:10.0.0.5'],
      'internal.example.com': ['fd00::5'],
      'alias.example.com': ['127.0.0.1'],
    });
    const sender = new WebhookSender(settings(), { env: ENV, resolve });
    expect(await sender.checkUrl('https://hooks.example.com/x')).toBe('https://hooks.example.com/x');
    await expect(sender.checkUrl('https://mixed.example.com/x')).rejects.toThrow(
      'webhook host mixed.example.com resolves to ::ffff:10.0.0.5, which is not public: private',
    );
    await expect(sender.checkUrl('https://internal.example.com/x')).rejects.toThrow(/fd00::5.*unique local/);
    await expect(sender.checkUrl('https://alias.example.com/x')).rejects.toThrow(/127.0.0.1.*loopback/);
    await expect(sender.checkUrl('https://nowhere.example.com/x')).rejects.toThrow('webhook host nowhere.example.com does not resolve');
    await expect(sender.checkUrl('http://localhost:1/')).rejects.toThrow(WebhookUrlError);
    await expect(sender.checkUrl('http://[::1]:1/')).rejects.toThrow(WebhookUrlError);
    await expect(sender.checkUrl('gopher://x')).rejects.toThrow(WebhookUrlError);
    const open = new WebhookSender(settings({ allow_private: true }), { env: ENV, resolve });
    expect(await open.checkUrl('http://127.0.0.1:1/')).toBe('http://127.0.0.1:1/');
    expect(await open.checkUrl('https://alias.example.com/x')).toBe('https://alias.example.com/x');
  });

  it('without its secret the service accepts no webhook, and says which variable to set', async () => {
    const sender = new WebhookSender(settings(), { env: {} });
    expect(sender.enabled).toBe(false);
    await expect(sender.checkUrl('https://hooks.example.com/x')).rejects.toThrow(
      'the environment variable FAST3D_WEBHOOK_SECRET (webhooks.secret_env) holding their secret is not set',
    );
    const named = new WebhookSender(settings({ secret_env: 'MY_HOOK_SECRET' }), { env: { MY_HOOK_SECRET: 's' } });
    expect(named.enabled).toBe(true);
  });
});

describe('webhook delivery', () => {
  it('POSTs the JSON body with a signature the receiver verifies', async () => {
    const hook = await receiver();
    const outcomes: AttemptOutcome[] = [];
    const sender = new WebhookSender(settings({ allow_private: true }), { env: ENV, onOutcome: (o) => outcomes.push(o) });
    const url = await sender.checkUrl(`${hook.url}/hooks/fast3d?x=1`);
    const delivery = sender.delivery(
      url,
      'job.finished',
      { id: 'job-1', state: 'done', artefacts: ['ply'] },
      new Date('2026-12-07T12:00:00Z'),
    );
    // Plain JSON, no secret inside: a queue can hold it.
    expect(JSON.parse(JSON.stringify(delivery))).toEqual(delivery);
    expect(JSON.stringify(delivery)).not.toContain(SECRET);
    const result = await sender.deliver(delivery);
    expect(result).toMatchObject({ outcome: 'delivered', attempt: 1, status: 200 });
    expect(outcomes).toEqual(['delivered']);
    expect(hook.received).toHaveLength(1);
    const [request] = hook.received;
    expect(request.method).toBe('POST');
    expect(request.path).toBe('/hooks/fast3d?x=1');
    expect(request.headers['content-type']).toBe('application/json');
    expect(request.headers['x-fast3d-event']).toBe('job.finished');
    expect(request.headers['x-fast3d-delivery']).toBe(delivery.id);
    expect(request.headers['user-agent']).toMatch(/^fast3d\//);
    expect(verifyWebhookSignature(request.body, SECRET, request.headers['x-fast3d-signature'] as string)).toBe(true);
    expect(verifyWebhookSignature(request.body, 'wrong-secret', request.headers['x-fast3d-signature'] as string)).toBe(false);
    expect(JSON.parse(request.body.toString())).toEqual({
      id: delivery.id,
      event: 'job.finished',
      createdAt: '2026-12-07T12:00:00.000Z',
      data: { id: 'job-1', state: 'done', artefacts: ['ply'] },
    });
  });

  it('refuses to call a loopback receiver unless allow_private, by literal, by name and by what a name resolves to', async () => {
    const hook = await receiver();
    const outcomes: AttemptOutcome[] = [];
    const resolve = resolving({ 'hooks.example.com': ['93.184.216.34', '127.0.0.1'], 'rebind.example.com': ['127.0.0.1'] });
    const sender = new WebhookSender(settings(), { env: ENV, resolve, onOutcome: (o) => outcomes.push(o) });
    for (const url of [
      `${hook.url}/`,
      `http://localhost:${hook.port}/`,
      `http://[::ffff:127.0.0.1]:${hook.port}/`,
      `http://hooks.example.com:${hook.port}/`,
      `http://rebind.example.com:${hook.port}/`,
    ]) {
      const result = await sender.deliver({ id: 'd', url, event: 'job.finished', body: '{}' });
      expect(result.outcome, url).toBe('refused');
      expect(result.detail, url).toMatch(/not public: loopback|this machine/);
      expect(result.attempt, url).toBe(1);
    }
    expect(hook.received).toEqual([]);
    expect(outcomes).toEqual(['refused', 'refused', 'refused', 'refused', 'refused']);
  });

  it('checks the addresses again at each attempt: a name that answered a public address at submission gains nothing', async () => {
    const hook = await receiver();
    let answers = 0;
    const resolve: Resolver = async () => [{ address: answers++ === 0 ? '93.184.216.34' : '127.0.0.1', family: 4 }];
    const sender = new WebhookSender(settings(), { env: ENV, resolve });
    const url = await sender.checkUrl(`http://flip.example.com:${hook.port}/`);
    const result = await sender.attempt(sender.delivery(url, 'job.finished', {}), 1);
    expect(result.outcome).toBe('refused');
    expect(result.detail).toContain('flip.example.com resolves to 127.0.0.1');
    expect(hook.received).toEqual([]);
  });

  it('retries a 5xx with backoff, then delivers the same body and signature', async () => {
    const hook = await receiver((n, _req, res) => {
      res.statusCode = n === 1 ? 500 : n === 2 ? 503 : 204;
      res.end();
    });
    const outcomes: AttemptOutcome[] = [];
    const sender = new WebhookSender(settings({ allow_private: true, attempts: 4 }), { env: ENV, onOutcome: (o) => outcomes.push(o) });
    const delivery = sender.delivery(`${hook.url}/h`, 'job.finished', { id: 'j' });
    const result = await sender.deliver(delivery);
    expect(result).toMatchObject({ outcome: 'delivered', attempt: 3, status: 204 });
    expect(outcomes).toEqual(['retry', 'retry', 'delivered']);
    expect(hook.received).toHaveLength(3);
    expect(new Set(hook.received.map((r) => r.body.toString()))).toEqual(new Set([delivery.body]));
    expect(new Set(hook.received.map((r) => r.headers['x-fast3d-delivery']))).toEqual(new Set([delivery.id]));
    for (const r of hook.received) expect(verifyWebhookSignature(r.body, SECRET, r.headers['x-fast3d-signature'] as string)).toBe(true);
  });

  it('gives up after its attempts, and does not retry a 4xx', async () => {
    const failing = await receiver((_n, _req, res) => {
      res.statusCode = 502;
      res.end();
    });
    const outcomes: AttemptOutcome[] = [];
    const sender = new WebhookSender(settings({ allow_private: true, attempts: 3 }), { env: ENV, onOutcome: (o) => outcomes.push(o) });
    const result = await sender.deliver(sender.delivery(failing.url, 'job.finished', {}));
    expect(result).toMatchObject({ outcome: 'gave_up', attempt: 3, status: 502, retryInMs: null });
    expect(result.detail).toBe('the receiver answered 502 (attempt 3 of 3)');
    expect(outcomes).toEqual(['retry', 'retry', 'gave_up']);
    expect(failing.received).toHaveLength(3);

    const gone = await receiver((_n, _req, res) => {
      res.statusCode = 410;
      res.end();
    });
    const rejected = await sender.deliver(sender.delivery(gone.url, 'job.finished', {}));
    expect(rejected).toMatchObject({ outcome: 'rejected', attempt: 1, status: 410 });
    expect(gone.received).toHaveLength(1);
  });

  it('a 429 waits at least its Retry-After (within max_backoff_s); a silent receiver times out and is retried', async () => {
    const busy = await receiver((_n, _req, res) => {
      res.writeHead(429, { 'Retry-After': '2' });
      res.end();
    });
    const sender = new WebhookSender(settings({ allow_private: true, backoff_s: 0.05, max_backoff_s: 5, timeout_s: 0.3 }), { env: ENV });
    const busyResult = await sender.attempt(sender.delivery(busy.url, 'job.finished', {}), 1);
    expect(busyResult).toMatchObject({ outcome: 'retry', status: 429, retryInMs: 2000 });

    const silent = await receiver(() => undefined);
    const started = performance.now();
    const silentResult = await sender.attempt(sender.delivery(silent.url, 'job.finished', {}), 2);
    expect(performance.now() - started).toBeLessThan(5000);
    expect(silentResult).toMatchObject({ outcome: 'retry', retryInMs: 100 });
    expect(silentResult.detail).toBe('no answer within 0.3 s (webhooks.timeout_s)');
    // Nothing listening: a network error, retried.
    const closed = await sender.attempt({ id: 'd', url: 'http://127.0.0.1:9/', event: 'e', body: '{}' }, 1);
    expect(closed.outcome).toBe('retry');
    expect(closed.detail).toMatch(/ECONNREFUSED/);
  });

  it('follows redirects only to addresses that pass the checks, and only so many', async () => {
    // 127.0.0.1 stands for a public receiver here; every other address keeps its real verdict.
    const onlyThisOneIsPublic = (ip: string) => (ip === '127.0.0.1' ? null : addressProblem(ip));
    let port = 0;
    const hook = await receiver((_n, req, res) => {
      const to: Record<string, string> = {
        '/moved': `http://127.0.0.1:${port}/final`,
        '/relative': '/final',
        '/to-loopback-2': `http://127.0.0.2:${port}/final`,
        '/to-localhost': `http://localhost:${port}/final`,
        '/to-mapped': `http://[::ffff:127.0.0.2]:${port}/final`,
        '/to-file': 'file:///etc/passwd',
        '/loop': '/loop',
      };
      if (to[req.path]) res.writeHead(307, { Location: to[req.path] });
      res.end();
    });
    port = hook.port;
    const sender = new WebhookSender(settings({ max_redirects: 3 }), { env: ENV, addressProblem: onlyThisOneIsPublic });
    const send = (path: string) => sender.attempt({ id: 'd', url: `${hook.url}${path}`, event: 'job.finished', body: '{"a":1}' }, 1);

    expect(await send('/moved')).toMatchObject({ outcome: 'delivered', status: 200 });
    expect(await send('/relative')).toMatchObject({ outcome: 'delivered' });
    const finals = hook.received.filter((r) => r.path === '/final');
    expect(finals).toHaveLength(2);
    for (const r of finals) {
      expect(r.method).toBe('POST');
      expect(verifyWebhookSignature(r.body, SECRET, r.headers['x-fast3d-signature'] as string)).toBe(true);
    }
    for (const path of ['/to-loopback-2', '/to-localhost', '/to-mapped', '/to-file']) {
      const result = await send(path);
      expect(result.outcome, path).toBe('refused');
      expect(result.detail, path).toMatch(/^redirected/);
    }
    expect(hook.received.filter((r) => r.path === '/final')).toHaveLength(2);
    const loop = await send('/loop');
    expect(loop).toMatchObject({ outcome: 'rejected', status: 307 });
    expect(loop.detail).toBe('more than 3 redirects (webhooks.max_redirects)');
    expect(hook.received.filter((r) => r.path === '/loop')).toHaveLength(4);
  });
});

describe('webhook retry policy', () => {
  it('doubles from backoff_s up to max_backoff_s; Retry-After lengthens a wait within the same bound', () => {
    const policy = { attempts: 6, backoffMs: 5000, maxBackoffMs: 300_000 };
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffMs(n, policy))).toEqual([
      5000, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000,
    ]);
    expect(backoffMs(1, policy, 30_000)).toBe(30_000);
    expect(backoffMs(3, policy, 1000)).toBe(20_000);
    expect(backoffMs(1, policy, 3_600_000)).toBe(300_000);
  });

  it('reads Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2026-12-07T12:00:00Z');
    expect(retryAfterMs('120', now)).toBe(120_000);
    expect(retryAfterMs('Mon, 07 Dec 2026 12:01:00 GMT', now)).toBe(60_000);
    expect(retryAfterMs('Mon, 07 Dec 2026 11:00:00 GMT', now)).toBe(0);
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs(undefined, now)).toBeUndefined();
  });

  it('config: defaults and refusals name the key', () => {
    expect(parseConfig({}).webhooks).toMatchObject({
      secret_env: 'FAST3D_WEBHOOK_SECRET',
      allow_private: false,
      attempts: 6,
      backoff_s: 5,
      max_backoff_s: 300,
    });
    expect(() => parseConfig({ webhooks: { secret_env: 'A B' } })).toThrow('webhooks.secret_env');
    expect(() => parseConfig({ webhooks: { allow_private: 'yes' } })).toThrow('webhooks.allow_private');
    expect(() => parseConfig({ webhooks: { attempts: 0 } })).toThrow('webhooks.attempts');
  });
});
