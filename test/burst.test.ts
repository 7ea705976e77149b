import { afterEach, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { glbViolation } from '../src/mesh/rules.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { discImage } from './helpers/images.js';
import { errorOf, fakeStages, postPrompt, serveApp, testConfig, until, type Served } from './helpers/fake-stages.js';

const servers: Served[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

/** One real instance on an ephemeral port, with slow fake GPU stages (which make meshes too). */
async function instance(sections: Record<string, Record<string, unknown>>, env: NodeJS.ProcessEnv = {}, imageTo3dMs = 300) {
  const fake = fakeStages({ imageTo3dMs, mesh: true });
  const composed = compose(testConfig({ pipeline: { retries: 0 }, ...sections }), { stages: fake.stages, env });
  const served = await serveApp(composed.app);
  servers.push(served);
  return { ...composed, ...fake, url: served.url };
}

/** How long a busy instance's job holds its place: long enough that a request sent meanwhile finds it full. */
const BUSY_MS = 1000;

/** A full local instance (one running job, no queue) that bursts to `peers`. */
function busyLocal(
  peers: { url: string; token_env?: string }[],
  env: NodeJS.ProcessEnv = {},
  timeout_s = 10,
  contract: Record<string, unknown> = {},
) {
  return instance({ runtime: { queue_length: 0, pipeline_concurrency: 1 }, burst: { peers, timeout_s }, contract }, env, BUSY_MS);
}

/** The newer contract's request: an image file and a seed, no format field. */
async function postImageFile(url: string): Promise<Response> {
  const form = new FormData();
  form.set(
    'prompt_image_file',
    new Blob([new Uint8Array(await discImage({ size: 128, radius: 40 }))], { type: 'image/png' }),
    'object.png',
  );
  form.set('seed', '3');
  return fetch(`${url}/generate`, { method: 'POST', body: form });
}

describe('burst to peers', () => {
  it("forwards a request the full local queue cannot take to a peer, with the peer's bearer token", async () => {
    const peer = await instance({ auth: { enabled: true, token_env: 'PEER_SECRET' } }, { PEER_SECRET: 'peer-token-1' });
    const local = await busyLocal([{ url: peer.url, token_env: 'BURST_TOKEN' }], { BURST_TOKEN: 'peer-token-1' });
    const running = postPrompt(local.url, 'a local chair');
    await until(() => local.service.admission.active === 1);
    const forwarded = await postPrompt(local.url, 'a forwarded chair');
    expect(forwarded.status).toBe(200);
    expect(forwarded.headers.get('x-fast3d-cache')).toBe('peer');
    expect(forwarded.headers.get('x-fast3d-peer')).toBe('0');
    expect(forwarded.headers.get('x-fast3d-gaussians')).toBe('8000');
    expect(servablePlyViolation(new Uint8Array(await forwarded.arrayBuffer()))).toBeNull();
    expect((await running).status).toBe(200);
    expect(local.calls.imageTo3d).toBe(1);
    expect(peer.calls.imageTo3d).toBe(1);
    const metrics = await (await fetch(`${local.url}/metrics`)).text();
    expect(metrics).toMatch(/^fast3d_burst_forwards_total\{peer="0",result="ok"\} 1$/m);
    // The same body reached the peer: same prompt, so the peer derived the same seed as local would have.
    const direct = await postPrompt(peer.url, 'a forwarded chair', { headers: { Authorization: 'Bearer peer-token-1' } });
    expect(direct.headers.get('x-fast3d-seed')).toBe(forwarded.headers.get('x-fast3d-seed'));
  });

  it('falls back to the normal 503 when the peer refuses, is down, or is too slow', async () => {
    const guarded = await instance({ auth: { enabled: true, token_env: 'PEER_SECRET' } }, { PEER_SECRET: 'right' });
    const down = await serveApp(compose(testConfig()).app);
    const downUrl = down.url;
    await down.close();
    const slow = await instance({}, {}, 3000);
    const local = await busyLocal(
      [{ url: guarded.url, token_env: 'BURST_TOKEN' }, { url: downUrl }, { url: slow.url }],
      { BURST_TOKEN: 'wrong' },
      1,
    );
    const running = postPrompt(local.url, 'a local chair');
    await until(() => local.service.admission.active === 1);
    const refused = await postPrompt(local.url, 'an unlucky chair');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBeTruthy();
    expect(await errorOf(refused)).toMatch(/busy/);
    expect(guarded.calls.imageTo3d).toBe(0);
    expect((await running).status).toBe(200);
    const metrics = await (await fetch(`${local.url}/metrics`)).text();
    for (const peer of ['0', '1', '2'])
      expect(metrics).toMatch(new RegExp(`^fast3d_burst_forwards_total\\{peer="${peer}",result="failed"\\} 1$`, 'm'));
  });

  it('a peer answers in the format the forwarding service decided, whatever its own image_file_output', async () => {
    for (const [localOutput, peerOutput] of [
      ['glb', 'ply'],
      ['ply', 'glb'],
    ] as const) {
      const peer = await instance({ contract: { image_file_output: peerOutput } });
      const local = await busyLocal([{ url: peer.url }], {}, 10, { image_file_output: localOutput });
      const running = postPrompt(local.url, 'a local chair');
      await until(() => local.service.admission.active === 1);
      const forwarded = await postImageFile(local.url);
      expect(forwarded.status, forwarded.status === 200 ? '' : await errorOf(forwarded)).toBe(200);
      expect(forwarded.headers.get('x-fast3d-cache')).toBe('peer');
      const bytes = new Uint8Array(await forwarded.arrayBuffer());
      if (localOutput === 'glb') {
        expect(forwarded.headers.get('content-type')).toBe('model/gltf-binary');
        expect(await glbViolation(bytes, { extent: 1, maxBytes: 200e6 })).toBeNull();
      } else {
        expect(servablePlyViolation(bytes)).toBeNull();
      }
      // Asked directly, the peer keeps its own default.
      const direct = await postImageFile(peer.url);
      expect(direct.headers.get('content-type')).toBe(peerOutput === 'glb' ? 'model/gltf-binary' : 'application/octet-stream');
      expect((await running).status).toBe(200);
    }
  });

  it('refuses a forwarded request whose format header is not a geometry format', async () => {
    const peer = await instance({});
    const response = await fetch(`${peer.url}/generate/`, {
      method: 'POST',
      body: new URLSearchParams({ prompt: 'a chair' }),
      headers: { 'X-Fast3d-Forwarded': '1', 'X-Fast3d-Format': 'obj' },
    });
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatch(/X-Fast3d-Format must be one of ply, spz, glb, got "obj"/);
  });

  it('never forwards a forwarded request again', async () => {
    // Two full instances that name each other as peers: the request bounces at most once.
    const b = await instance({ runtime: { queue_length: 0, pipeline_concurrency: 1 } }, {}, BUSY_MS);
    const a = await busyLocal([{ url: b.url }]);
    const busyA = postPrompt(a.url, 'a chair for a');
    const busyB = postPrompt(b.url, 'a chair for b');
    await until(() => a.service.admission.active === 1 && b.service.admission.active === 1);
    const refused = await postPrompt(a.url, 'a homeless chair');
    expect(refused.status).toBe(503);
    expect(await (await fetch(`${b.url}/metrics`)).text()).not.toMatch(/fast3d_burst_forwards_total\{/);
    await Promise.all([busyA, busyB]);
  });
});
