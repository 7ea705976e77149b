/**
 * Job webhooks: a URL given with a job is called once the job ends, with a JSON body signed by HMAC-SHA256
 * under the service's secret (`X-Fast3d-Signature: sha256=<hex>` over the raw body bytes), so the receiver
 * knows the call is ours and unaltered.
 *
 * A webhook must not let a user make the service call into its own network: unless `webhooks.allow_private`,
 * a URL is refused when its host is, or resolves to, any address that is not public (loopback, private,
 * link-local, carrier-grade NAT, multicast, documentation ranges, IPv4 inside IPv6...). Every address a name
 * resolves to is checked, and the connection is made to the addresses that were checked (the check is the
 * connection's own DNS lookup), so a name that changes its answer between the check and the call gains
 * nothing. Redirects are followed only to URLs that pass the same checks.
 *
 * Delivery is one attempt at a time (`attempt`): a BullMQ job calls it and lets the queue retry with
 * `backoffMs`; `deliver` is the in-process loop of the local mode. A delivery is plain JSON (no secret inside:
 * the body is signed when it is sent), so it can sit in a queue.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { VERSION } from '../version.js';

/** The `webhooks` config section (same keys). */
export interface WebhookSettings {
  secret_env: string;
  allow_private: boolean;
  max_url_length: number;
  timeout_s: number;
  attempts: number;
  backoff_s: number;
  max_backoff_s: number;
  max_redirects: number;
}

export const SIGNATURE_HEADER = 'X-Fast3d-Signature';
export const EVENT_HEADER = 'X-Fast3d-Event';
export const DELIVERY_HEADER = 'X-Fast3d-Delivery';

/** A webhook URL this service will not call: the message says why, for a 400. */
export class WebhookUrlError extends Error {
  override name = 'WebhookUrlError';
}

/** Resolves a host name to every address it has (the system resolver by default; tests give their own). */
export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) =>
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );

/** One webhook call, as a queue holds it: where, which event, and the exact body that is signed and sent. */
export interface WebhookDelivery {
  id: string;
  url: string;
  event: string;
  body: string;
}

/**
 * What one attempt came to: `delivered` (2xx), `retry` (5xx, 408, 425, 429, a network error or a timeout, with
 * attempts left), `gave_up` (the same on the last attempt), `rejected` (another 4xx, too many redirects) or
 * `refused` (the URL or a redirect's target is not allowed). Only `retry` is worth another attempt.
 */
export type AttemptOutcome = 'delivered' | 'retry' | 'gave_up' | 'rejected' | 'refused';

export interface AttemptResult {
  outcome: AttemptOutcome;
  /** 1 for the first attempt. */
  attempt: number;
  /** The receiver's status, when it answered. */
  status?: number;
  /** Why, in words, for logs and the job's record. */
  detail: string;
  /** With `retry`: how long to wait before the next attempt (backoff, or the receiver's Retry-After). */
  retryInMs: number | null;
}

export interface RetryPolicy {
  attempts: number;
  /** Wait before the second attempt; each next wait doubles. */
  backoffMs: number;
  maxBackoffMs: number;
}

/**
 * The wait after `attemptsMade` failed attempts: backoff x 2^(attemptsMade - 1), at most maxBackoffMs; a
 * receiver's Retry-After lengthens it (within the same bound). The same numbers for BullMQ's backoff strategy.
 */
export function backoffMs(attemptsMade: number, policy: RetryPolicy, retryAfterMs?: number): number {
  const exponential = policy.backoffMs * 2 ** Math.max(0, attemptsMade - 1);
  return Math.min(policy.maxBackoffMs, Math.max(exponential, retryAfterMs ?? 0));
}

/** `sha256=<hex>`: HMAC-SHA256 of the raw body bytes under the secret. */
export function signWebhookBody(body: string | Uint8Array, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** What a receiver does: recomputes the signature of the raw body and compares in constant time. */
export function verifyWebhookSignature(body: string | Uint8Array, secret: string, header: string | null | undefined): boolean {
  if (!header) return false;
  const expected = Buffer.from(signWebhookBody(body, secret));
  const given = Buffer.from(header);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ---- Addresses ---------------------------------------------------------------------------------------------

const V4_BLOCKS: [string, number, string][] = [
  ['0.0.0.0', 8, '"this network" (0.0.0.0 reaches this host)'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local (cloud metadata lives here)'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved (and broadcast)'],
];

const V6_BLOCKS: [string, number, string][] = [
  ['::', 128, 'unspecified'],
  ['::1', 128, 'loopback'],
  ['64:ff9b:1::', 48, 'local NAT64'],
  ['100::', 64, 'discard'],
  ['2001:db8::', 32, 'documentation'],
  ['fc00::', 7, 'unique local (private)'],
  ['fe80::', 10, 'link-local'],
  ['fec0::', 10, 'site-local'],
  ['ff00::', 8, 'multicast'],
];

/** IPv6 ranges that carry an IPv4 address, and the byte where it starts: that address is what is reached. */
const V6_EMBEDDING: [string, number, number][] = [
  ['::ffff:0:0', 96, 12], // IPv4-mapped
  ['::ffff:0:0:0', 96, 12], // IPv4-translated
  ['64:ff9b::', 96, 12], // NAT64
  ['2002::', 16, 2], // 6to4
  ['::', 96, 12], // IPv4-compatible (deprecated); :: and ::1 are matched first
];

const parsedV4 = V4_BLOCKS.map(([base, bits, what]) => ({ base: v4Bytes(base)!, bits, what }));
const parsedV6 = V6_BLOCKS.map(([base, bits, what]) => ({ base: v6Bytes(base)!, bits, what }));
const parsedEmbedding = V6_EMBEDDING.map(([base, bits, at]) => ({ base: v6Bytes(base)!, bits, at }));

/** Why an IP address is not a public one ("loopback", "private"...), or null when it is public. */
export function addressProblem(ip: string): string | null {
  const bare = ip.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const v4 = v4Bytes(bare);
  if (v4) return parsedV4.find((block) => inBlock(v4, block.base, block.bits))?.what ?? null;
  const v6 = v6Bytes(bare);
  if (!v6) return 'not an IP address';
  const block = parsedV6.find((b) => inBlock(v6, b.base, b.bits));
  if (block) return block.what;
  const embedding = parsedEmbedding.find((e) => inBlock(v6, e.base, e.bits));
  if (embedding) {
    const inner = v6.subarray(embedding.at, embedding.at + 4);
    const what = parsedV4.find((b) => inBlock(inner, b.base, b.bits))?.what;
    return what ? `${what} (IPv4 ${inner.join('.')} inside IPv6)` : null;
  }
  return null;
}

function inBlock(address: Uint8Array, base: Uint8Array, bits: number): boolean {
  for (let i = 0; i < bits; i++) {
    const mask = 0x80 >> (i % 8);
    if ((address[i >> 3] & mask) !== (base[i >> 3] & mask)) return false;
  }
  return true;
}

function v4Bytes(text: string): Uint8Array | null {
  if (isIP(text) !== 4) return null;
  return Uint8Array.from(text.split('.').map(Number));
}

function v6Bytes(text: string): Uint8Array | null {
  if (isIP(text) !== 6) return null;
  let head = text;
  const tail: number[] = [];
  // A dotted IPv4 at the end counts as the last two groups.
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const v4 = v4Bytes(dotted[1]);
    if (!v4) return null;
    tail.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
    head = text.slice(0, -dotted[1].length);
    if (head.endsWith(':') && !head.endsWith('::')) head = head.slice(0, -1);
  }
  const group = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const [left, right] = head.includes('::') ? head.split('::').map(group) : [group(head), null];
  const groups =
    right === null ? [...left, ...tail] : [...left, ...new Array(8 - left.length - right.length - tail.length).fill(0), ...right, ...tail];
  if (groups.length !== 8) return null;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[2 * i] = g >> 8;
    bytes[2 * i + 1] = g & 0xff;
  });
  return bytes;
}

// ---- URLs --------------------------------------------------------------------------------------------------

export interface UrlPolicy {
  allowPrivate: boolean;
  maxUrlLength: number;
  /** Which addresses are not public (default: `addressProblem`). */
  addressProblem?: (ip: string) => string | null;
}

/** The checks that need no network: a string, bounded, http(s), no credentials, no non-public literal host. */
export function parseWebhookUrl(raw: unknown, policy: UrlPolicy): URL {
  if (typeof raw !== 'string') throw new WebhookUrlError('webhook must be a URL string');
  if (raw.length > policy.maxUrlLength)
    throw new WebhookUrlError(`webhook URL is ${raw.length} characters, over the limit of ${policy.maxUrlLength}`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookUrlError('webhook is not a valid absolute URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new WebhookUrlError(`webhook URL must be http or https, not ${url.protocol.slice(0, -1).slice(0, 20)}`);
  if (url.username || url.password) throw new WebhookUrlError('webhook URL must not carry a user name or password');
  if (!url.hostname) throw new WebhookUrlError('webhook URL has no host');
  if (!policy.allowPrivate) {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (isIP(host)) {
      const problem = (policy.addressProblem ?? addressProblem)(host);
      if (problem) throw new WebhookUrlError(refusal(url.hostname, host, problem));
    } else if (/(^|\.)localhost\.?$/i.test(host)) {
      throw new WebhookUrlError(`webhook host ${host} is this machine (loopback); allowed only with webhooks.allow_private`);
    }
  }
  return url;
}

function refusal(host: string, address: string, problem: string): string {
  const which =
    host.replace(/^\[|\]$/g, '') === address ? `webhook address ${address}` : `webhook host ${host} resolves to ${address}, which`;
  return `${which} is not public: ${problem}; allowed only with webhooks.allow_private`;
}

// ---- Sending -----------------------------------------------------------------------------------------------

export interface WebhookSenderOptions {
  env?: NodeJS.ProcessEnv;
  resolve?: Resolver;
  /** Called once per attempt with its outcome (the deliveries counter). */
  onOutcome?: (outcome: AttemptOutcome) => void;
  /** Which addresses count as not public; tests narrow it to tell one loopback address from another. */
  addressProblem?: (ip: string) => string | null;
}

/** Longest body sent: a job view with its report, never megabytes. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Of a receiver's answer only the status matters; at most this much of its body is read, then dropped. */
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Longest wait for a host name's addresses when a URL is checked up front. */
const RESOLVE_TIMEOUT_MS = 5000;

class Refused extends Error {
  override name = 'Refused';
}

export class WebhookSender {
  readonly policy: RetryPolicy;
  private readonly secret: string;
  private readonly resolve: Resolver;
  private readonly problem: (ip: string) => string | null;

  constructor(
    private readonly settings: WebhookSettings,
    private readonly options: WebhookSenderOptions = {},
  ) {
    this.secret = (options.env ?? process.env)[settings.secret_env] ?? '';
    this.resolve = options.resolve ?? systemResolver;
    this.problem = options.addressProblem ?? addressProblem;
    this.policy = { attempts: settings.attempts, backoffMs: settings.backoff_s * 1000, maxBackoffMs: settings.max_backoff_s * 1000 };
  }

  /** Whether the secret is set: without it no webhook is accepted. */
  get enabled(): boolean {
    return this.secret.length > 0;
  }

  /**
   * Checks a job's webhook before the job is accepted: the URL's form, then every address its host resolves to.
   * Returns the URL as it will be called; throws WebhookUrlError (a 400) with the reason.
   */
  async checkUrl(raw: unknown): Promise<string> {
    if (!this.enabled)
      throw new WebhookUrlError(
        `webhooks are off on this service: the environment variable ${this.settings.secret_env} (webhooks.secret_env) holding their secret is not set`,
      );
    const url = parseWebhookUrl(raw, this.urlPolicy());
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (this.settings.allow_private || isIP(host)) return url.href;
    let addresses: { address: string }[];
    try {
      addresses = await withTimeout(this.resolve(host), RESOLVE_TIMEOUT_MS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') throw new WebhookUrlError(`webhook host ${host} does not resolve to any address`);
      // A resolver that is slow or failing now: the URL is checked again at each attempt.
      return url.href;
    }
    for (const { address } of addresses) {
      const problem = this.problem(address);
      if (problem) throw new WebhookUrlError(refusal(host, address, problem));
    }
    return url.href;
  }

  /** A delivery of `event` with `data` to a checked URL: a fresh id and the body, fixed for every attempt. */
  delivery(url: string, event: string, data: unknown, at = new Date()): WebhookDelivery {
    const id = randomUUID();
    const body = JSON.stringify({ id, event, createdAt: at.toISOString(), data });
    if (Buffer.byteLength(body) > MAX_BODY_BYTES)
      throw new RangeError(`webhook body of ${Buffer.byteLength(body)} bytes is over ${MAX_BODY_BYTES}`);
    return { id, url, event, body };
  }

  /** One attempt (number `attempt`, from 1), following redirects that pass the checks. */
  async attempt(delivery: WebhookDelivery, attempt: number, signal?: AbortSignal): Promise<AttemptResult> {
    const result = await this.tryOnce(delivery, attempt, signal);
    this.options.onOutcome?.(result.outcome);
    return result;
  }

  /** Attempts with backoff until delivered, refused, rejected or out of attempts (the local mode's loop). */
  async deliver(delivery: WebhookDelivery, signal?: AbortSignal): Promise<AttemptResult> {
    for (let attempt = 1; ; attempt++) {
      const result = await this.attempt(delivery, attempt, signal);
      if (result.outcome !== 'retry') return result;
      await sleep(result.retryInMs ?? 0, undefined, { signal });
    }
  }

  private async tryOnce(delivery: WebhookDelivery, attempt: number, signal?: AbortSignal): Promise<AttemptResult> {
    const done = (outcome: AttemptOutcome, detail: string, status?: number, retryAfterMs?: number): AttemptResult => {
      const last = attempt >= this.policy.attempts;
      if (outcome === 'retry' && last)
        return {
          outcome: 'gave_up',
          attempt,
          status,
          detail: `${detail} (attempt ${attempt} of ${this.policy.attempts})`,
          retryInMs: null,
        };
      return { outcome, attempt, status, detail, retryInMs: outcome === 'retry' ? backoffMs(attempt, this.policy, retryAfterMs) : null };
    };
    if (!this.enabled) return done('refused', `the environment variable ${this.settings.secret_env} holding the webhook secret is not set`);
    const body = Buffer.from(delivery.body);
    const headers = {
      'Content-Type': 'application/json',
      'User-Agent': `fast3d/${VERSION}`,
      [SIGNATURE_HEADER]: signWebhookBody(body, this.secret),
      [EVENT_HEADER]: delivery.event,
      [DELIVERY_HEADER]: delivery.id,
    };
    const timeout = AbortSignal.timeout(this.settings.timeout_s * 1000);
    const bounded = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let target = delivery.url;
    for (let hop = 0; ; hop++) {
      let url: URL;
      try {
        url = parseWebhookUrl(target, this.urlPolicy());
      } catch (err) {
        return done('refused', hop ? `redirected to a URL that is not allowed: ${(err as Error).message}` : (err as Error).message);
      }
      let response: { status: number; location?: string; retryAfter?: string };
      try {
        response = await this.post(url, body, headers, bounded);
      } catch (err) {
        if (err instanceof Refused) return done('refused', hop ? `redirected: ${err.message}` : err.message);
        if (signal?.aborted) throw signal.reason;
        if (timeout.aborted) return done('retry', `no answer within ${this.settings.timeout_s} s (webhooks.timeout_s)`);
        const code = (err as NodeJS.ErrnoException).code;
        return done('retry', `${code ?? 'error'}: ${(err as Error).message}`);
      }
      const { status } = response;
      if (status >= 200 && status < 300) return done('delivered', `${status}`, status);
      if (status >= 300 && status < 400 && response.location) {
        if (hop >= this.settings.max_redirects)
          return done('rejected', `more than ${this.settings.max_redirects} redirects (webhooks.max_redirects)`, status);
        try {
          target = new URL(response.location, url).href;
        } catch {
          return done('rejected', `redirected to an invalid URL`, status);
        }
        continue;
      }
      if (status >= 500 || status === 408 || status === 425 || status === 429)
        return done('retry', `the receiver answered ${status}`, status, retryAfterMs(response.retryAfter));
      return done('rejected', `the receiver answered ${status}`, status);
    }
  }

  private urlPolicy(): UrlPolicy {
    return { allowPrivate: this.settings.allow_private, maxUrlLength: this.settings.max_url_length, addressProblem: this.problem };
  }

  /** One POST to one URL: connects only to addresses that pass the check (a literal, or every DNS answer). */
  private post(
    url: URL,
    body: Buffer,
    headers: Record<string, string>,
    signal: AbortSignal,
  ): Promise<{ status: number; location?: string; retryAfter?: string }> {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const allowPrivate = this.settings.allow_private;
    if (!allowPrivate && isIP(host)) {
      const problem = this.problem(host);
      if (problem) return Promise.reject(new Refused(refusal(host, host, problem)));
    }
    const resolve = this.resolve;
    const check = this.problem;
    // The connection's own lookup: what is checked is what is connected to.
    const lookup = (
      hostname: string,
      options: { all?: boolean },
      callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
    ) => {
      resolve(hostname).then(
        (addresses) => {
          if (!allowPrivate) {
            for (const { address } of addresses) {
              const problem = check(address);
              if (problem) return callback(new Refused(refusal(hostname, address, problem)), '');
            }
          }
          if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '');
          if (options.all) return callback(null, addresses as LookupAddress[]);
          callback(null, addresses[0].address, addresses[0].family);
        },
        (err: Error) => callback(err, ''),
      );
    };
    return new Promise((resolveAnswer, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(url, {
        method: 'POST',
        headers: { ...headers, 'Content-Length': String(body.length) },
        agent: false,
        lookup: lookup as never,
        signal,
      });
      req.on('error', (err) =>
        reject((err as Error & { cause?: unknown }).cause instanceof Refused ? (err as { cause: Error }).cause : err),
      );
      req.on('response', (res: IncomingMessage) => {
        const answer = { status: res.statusCode ?? 0, location: res.headers.location, retryAfter: res.headers['retry-after'] };
        // The status is the answer; a little of the body is read so the connection ends cleanly, then dropped.
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES) res.destroy();
        });
        res.on('end', () => resolveAnswer(answer));
        res.on('close', () => resolveAnswer(answer));
        res.on('error', () => resolveAnswer(answer));
      });
      req.end(body);
    });
  }
}

/** A Retry-After in seconds or as an HTTP date, in milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d{1,9}$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error('timed out'), { code: 'ETIMEOUT' })), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
