/**
 * Burst to peers: when the local queue is full, the whole request (same path, body and content type) goes to a
 * peer running this same service, e.g. a RunPod serverless load-balancing endpoint, with the geometry format this
 * service decided to answer in. Peers are tried in turn (starting from the next one each time) within one
 * timeout; a peer answering anything but 200 or 204, or not answering in time, counts as failed, and when every
 * peer failed the caller answers its usual 503.
 */
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';

export interface BurstPeer {
  url: string;
  /** Bearer token sent to the peer (its API key), if any. */
  token?: string;
}

export interface ForwardedAnswer {
  status: 200 | 204;
  headers: Headers;
  body: Uint8Array;
  /** Index of the peer in the config, for logs. */
  peer: number;
}

/** Marks a forwarded request, so the peer never forwards it again. */
export const FORWARDED_HEADER = 'X-Fast3d-Forwarded';

/**
 * On a forwarded request: the geometry format (ply, spz, glb) the forwarding service answers in. A request
 * without a `format` field gets it instead of the peer's own `contract.image_file_output`.
 */
export const FORMAT_HEADER = 'X-Fast3d-Format';

/** A request as it came, and the headers that carry this service's decisions about it. */
export interface ForwardedRequest {
  path: string;
  contentType: string;
  body: ArrayBuffer;
  headers?: Record<string, string>;
}

export class Burst {
  private next = 0;

  constructor(
    private readonly peers: BurstPeer[],
    private readonly timeoutMs: number,
    private readonly metrics?: Metrics,
    private readonly logger?: Logger,
  ) {}

  get enabled(): boolean {
    return this.peers.length > 0;
  }

  /** Forwards a request; null when no peer gave a usable answer in time. */
  async forward({ path, contentType, body, headers }: ForwardedRequest, signal?: AbortSignal): Promise<ForwardedAnswer | null> {
    const deadline = performance.now() + this.timeoutMs;
    const first = this.next;
    this.next = (this.next + 1) % Math.max(1, this.peers.length);
    for (let i = 0; i < this.peers.length; i++) {
      const index = (first + i) % this.peers.length;
      const peer = this.peers[index];
      const remaining = deadline - performance.now();
      if (remaining <= 0 || signal?.aborted) break;
      const label = String(index);
      const url = new URL(path, peer.url.endsWith('/') ? peer.url : `${peer.url}/`).href;
      try {
        const timeout = AbortSignal.timeout(Math.ceil(remaining));
        const response = await fetch(url, {
          method: 'POST',
          headers: {
            ...headers,
            'Content-Type': contentType,
            [FORWARDED_HEADER]: '1',
            ...(peer.token ? { Authorization: `Bearer ${peer.token}` } : {}),
          },
          body,
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        });
        const bytes = new Uint8Array(await response.arrayBuffer());
        if (response.status === 200 || response.status === 204) {
          this.metrics?.burst(label, response.status === 200 ? 'ok' : 'declined');
          return { status: response.status, headers: response.headers, body: bytes, peer: index };
        }
        this.metrics?.burst(label, 'failed');
        this.logger?.warn(
          { peer: index, status: response.status, body: new TextDecoder().decode(bytes.subarray(0, 200)) },
          'burst peer refused the request',
        );
      } catch (err) {
        this.metrics?.burst(label, 'failed');
        this.logger?.warn({ peer: index, err: (err as Error).message }, 'burst peer failed');
      }
    }
    return null;
  }
}
