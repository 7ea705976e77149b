import { afterEach, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { ConfigError } from '../src/config/load.js';
import { needsAuth } from '../src/http/auth.js';
import { fakeStages, postPrompt, serveApp, testConfig, type Served, errorOf } from './helpers/fake-stages.js';

const servers: Served[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function start(auth: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, server: Record<string, unknown> = {}) {
  const fake = fakeStages();
  const composed = compose(testConfig({ auth, server, pipeline: { retries: 0 } }), { stages: fake.stages, env });
  const served = await serveApp(composed.app);
  servers.push(served);
  return { ...fake, url: served.url };
}

describe('bearer auth on the generate routes', () => {
  it('is off by default: the miner sends no token', async () => {
    const s = await start({});
    expect((await postPrompt(s.url, 'an open chair')).status).toBe(200);
  });

  it('when on, refuses missing, malformed and wrong tokens with JSON errors and runs no job', async () => {
    const s = await start({ enabled: true, token_env: 'MY_TOKEN' }, { MY_TOKEN: 's3cret-token' });
    const missing = await postPrompt(s.url, 'a guarded chair');
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect(await errorOf(missing)).toMatch(/Authorization: Bearer/);
    const wrong = await postPrompt(s.url, 'a guarded chair', { headers: { Authorization: 'Bearer not-it' } });
    expect(wrong.status).toBe(401);
    expect(await errorOf(wrong)).toBe('invalid bearer token');
    const malformed = await postPrompt(s.url, 'a guarded chair', { headers: { Authorization: 'Basic abc' } });
    expect(malformed.status).toBe(400);
    // Trailing-slash and future generate routes are covered too.
    const otherRoute = await postPrompt(s.url, 'a guarded chair', { path: '/generate_video/' });
    expect(otherRoute.status).toBe(401);
    expect(s.calls.textToImage).toBe(0);
    const ok = await postPrompt(s.url, 'a guarded chair', { headers: { Authorization: 'Bearer s3cret-token' } });
    expect(ok.status).toBe(200);
    expect(s.calls.textToImage).toBe(1);
  });

  it('leaves /health, /ping and /metrics open', async () => {
    const s = await start({ enabled: true, token: 'inline-token' });
    for (const path of ['/health', '/ping', '/metrics']) expect((await fetch(`${s.url}${path}`)).status).toBe(200);
    expect((await postPrompt(s.url, 'a chair', { headers: { Authorization: 'Bearer inline-token' } })).status).toBe(200);
  });

  it('refuses to start when enabled without a token', () => {
    expect(() => compose(testConfig({ auth: { enabled: true, token_env: 'UNSET_TOKEN_VAR' } }), { env: {} })).toThrow(ConfigError);
    expect(() => compose(testConfig({ auth: { enabled: true, token_env: 'UNSET_TOKEN_VAR' } }), { env: {} })).toThrow(/UNSET_TOKEN_VAR/);
  });

  it("accepts a token with characters outside RFC 6750's token68 (compared as opaque bytes)", async () => {
    const s = await start({ enabled: true }, { FAST3D_API_TOKEN: 'p@ss:w0rd!' });
    const ok = await postPrompt(s.url, 'a punctuated chair', { headers: { Authorization: 'Bearer p@ss:w0rd!' } });
    expect(ok.status).toBe(200);
    const near = await postPrompt(s.url, 'a punctuated chair', { headers: { Authorization: 'Bearer p@ss:w0rd' } });
    expect(near.status).toBe(401);
    expect(await errorOf(near)).toBe('invalid bearer token');
    expect(s.calls.textToImage).toBe(1);
  });

  it('protects /metrics too when server.metrics_auth is "token"', async () => {
    const s = await start({ enabled: true, token: 'scrape-me' }, {}, { metrics_auth: 'token' });
    const open = await fetch(`${s.url}/metrics`);
    expect(open.status).toBe(401);
    expect(await errorOf(open)).toMatch(/Authorization: Bearer/);
    const authed = await fetch(`${s.url}/metrics`, { headers: { Authorization: 'Bearer scrape-me' } });
    expect(authed.status).toBe(200);
    expect(await authed.text()).toMatch(/fast3d_/);
    for (const path of ['/health', '/ping']) expect((await fetch(`${s.url}${path}`)).status).toBe(200);
    expect(() => compose(testConfig({ server: { metrics_auth: 'token' } }), { env: {} })).toThrow(/auth.enabled/);
  });

  it('keeps the open paths in one table: every other path, a new route too, needs the token', () => {
    for (const path of [
      '/generate',
      '/generate/',
      '/generate_video',
      '/generate_video/',
      '/generate_anything',
      '/generated',
      '/mcp',
      '/api/v1/jobs',
      '/api/v2/anything',
      '/studiox',
      '/healthz',
    ])
      expect(needsAuth(path), path).toBe(true);
    for (const path of [
      '/health',
      '/health/',
      '/ping',
      '/metrics',
      '/',
      '/studio',
      '/studio/',
      '/studio/studio.js',
      '/studio/vendor/three/build/three.module.js',
      '/api/v1/openapi.json',
    ])
      expect(needsAuth(path), path).toBe(false);
    expect(needsAuth('/metrics', { metrics: true })).toBe(true);
  });

  it('protects a route the table has never heard of, over HTTP', async () => {
    const s = await start({ enabled: true, token: 'inline-token' });
    // No such route: still 401 before the 404, so nothing about the server's routes is told without the token.
    const unknown = await fetch(`${s.url}/some/new/route`);
    expect(unknown.status).toBe(401);
    expect((await fetch(`${s.url}/some/new/route`, { headers: { Authorization: 'Bearer inline-token' } })).status).toBe(404);
    expect((await fetch(`${s.url}/studio`)).status).toBe(200);
  });
});
