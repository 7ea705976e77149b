/**
 * The result cache in a shared store (store.backend s3, here an S3-protocol server the test starts): two nodes
 * that share the bucket serve each other's answers, and bytes that are no longer a valid asset are evicted on
 * read and made again, never served.
 */
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Composed, composeService } from '../src/compose.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { serveApp, testConfig, type Served } from './helpers/fake-stages.js';
import { S3RVER_CREDENTIALS, type S3TestServer, startS3Server } from './helpers/s3-server.js';

describe('the result cache in an S3 bucket that two nodes share', () => {
  let s3: S3TestServer;
  const nodes: { composed: Composed; served: Served }[] = [];
  const env = { TEST_S3_KEY: S3RVER_CREDENTIALS.accessKeyId, TEST_S3_SECRET: S3RVER_CREDENTIALS.secretAccessKey };
  const startNode = async () => {
    const config = testConfig({
      pipeline: { image_size: 128, retries: 0 },
      image_to_3d: { inflate: { max_gaussians: 8000 } },
      render: { threads: 1 },
      cache: { enabled: true, memory_mb: 0 },
      store: {
        backend: 's3',
        s3: {
          endpoint: s3.endpoint,
          bucket: 'shared',
          force_path_style: true,
          access_key_env: 'TEST_S3_KEY',
          secret_key_env: 'TEST_S3_SECRET',
        },
      },
    });
    const composed = await composeService(config, { env });
    await composed.service.start();
    const served = await serveApp(composed.app);
    nodes.push({ composed, served });
    return served.url;
  };

  beforeAll(async () => {
    s3 = await startS3Server(['shared']);
  });
  afterAll(async () => {
    for (const { composed, served } of nodes) {
      await served.close();
      await composed.service.close();
      await composed.renderPool.close();
      await composed.cpuPool?.close();
      await composed.closeCluster?.();
    }
    await s3?.stop();
  });

  const generate = (url: string) =>
    fetch(`${url}/generate/`, { method: 'POST', body: new URLSearchParams({ prompt: 'a shared teapot', seed: '5' }) });

  it('serves on one node the answer another node made', async () => {
    const [a, b] = [await startNode(), await startNode()];
    const made = await generate(a);
    expect([made.status, made.headers.get('x-fast3d-cache')]).toEqual([200, 'miss']);
    const again = await generate(b);
    expect([again.status, again.headers.get('x-fast3d-cache')]).toEqual([200, 'hit']);
    expect(Buffer.compare(Buffer.from(await made.arrayBuffer()), Buffer.from(await again.arrayBuffer()))).toBe(0);
  });

  it('evicts an entry whose bytes are no valid asset and makes it again, never serving it', async () => {
    const url = nodes[0].served.url;
    // Every PLY entry replaced behind the service's back by an object of the store's own making that is no PLY.
    const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: 'shared', Prefix: 'cache/' }));
    const plys = (listed.Contents ?? []).map((o) => o.Key!).filter((k) => k.endsWith('.ply'));
    expect(plys.length).toBeGreaterThan(0);
    const store = (nodes[0].composed.cache as unknown as { store: { put(key: string, bytes: Uint8Array): Promise<void> } }).store;
    for (const key of plys) await store.put(key, new TextEncoder().encode('ply\nformat ascii 1.0\nend_header\n'));
    const answer = await generate(url);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-fast3d-cache')).toBe('miss');
    expect(servablePlyViolation(new Uint8Array(await answer.arrayBuffer()))).toBeNull();
    // A torn object (written without the store's checksum) reads as missing too.
    await s3.client.send(new PutObjectCommand({ Bucket: 'shared', Key: plys[0], Body: 'torn' }));
    expect((await generate(url)).status).toBe(200);
  });
});
