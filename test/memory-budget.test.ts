/**
 * Decoded input images are taken from a memory budget before they are decoded: when the images of requests in
 * flight fill it, a new image request is refused at once with 503 and Retry-After, and what finished requests
 * held is given back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBudget } from '../src/runtime/memory-budget.js';
import { BusyError } from '../src/pipelines/errors.js';
import { discImage } from './helpers/images.js';
import { errorOf, fakeStages, until } from './helpers/fake-stages.js';
import { startTestServer, type TestServer } from './helpers/server.js';

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('the memory budget of decoded images', () => {
  it('refuses what does not fit and takes back what is released, once', () => {
    const budget = new MemoryBudget(100, () => 7);
    const a = budget.reserve(60);
    expect(() => budget.reserve(60)).toThrow(BusyError);
    try {
      budget.reserve(60);
    } catch (err) {
      expect((err as BusyError).retryAfterS).toBe(7);
    }
    a();
    a();
    expect(budget.usedBytes).toBe(0);
    budget.reserve(100);
  });

  it('over HTTP: image requests beyond the budget get 503 with Retry-After before decoding; the budget empties after', async () => {
    // Each 512x512 image decodes to 1 MiB of RGBA: a 2.5 MiB budget holds two.
    const fake = fakeStages({ imageTo3dMs: 600 });
    const server = await startTestServer(
      { runtime: { image_memory_mb: 2.5, queue_length: 8, retry_after_s: 3 }, pipeline: { retries: 0 } },
      fake.stages,
    );
    servers.push(server);
    // Each request its own image: the same image sent twice is held once.
    const pngs = await Promise.all([150, 140, 130, 120].map((radius) => discImage({ size: 512, radius })));
    let sent = 0;
    const post = () => {
      const form = new FormData();
      form.set('prompt_image_file', new Blob([new Uint8Array(pngs[sent++])], { type: 'image/png' }), 'object.png');
      form.set('seed', '1');
      return fetch(`${server.url}/generate`, { method: 'POST', body: form });
    };
    const first = [post(), post()];
    await until(() => server.service.images.usedBytes === 2 * 512 * 512 * 4);
    const refused = await post();
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(3);
    expect(await errorOf(refused)).toMatch(/decoded images of requests in flight hold 2 MiB of 3 MiB; this one needs 1 MiB/);
    for (const r of await Promise.all(first)) expect(r.status).toBe(200);
    expect(server.service.images.usedBytes).toBe(0);
    expect((await post()).status).toBe(200);
    expect(server.service.images.usedBytes).toBe(0);
  });

  it('gives back what a request held when its image cannot be decoded', async () => {
    const server = await startTestServer({ runtime: { image_memory_mb: 1 } });
    servers.push(server);
    const png = await discImage({ size: 256, radius: 80 });
    const broken = new Uint8Array(png).slice(0, 200); // a valid header, cut short
    const form = new FormData();
    form.set('prompt_image_file', new Blob([broken], { type: 'image/png' }), 'broken.png');
    const response = await fetch(`${server.url}/generate`, { method: 'POST', body: form });
    expect(response.status).toBe(400);
    expect(server.service.images.usedBytes).toBe(0);
  });
});
