/**
 * Hostile assets sent to a running service: MCP's render_views and check_asset refuse each with a tool error
 * that names its fault while the miner's /generate/ requests in flight complete; no file takes the process, or
 * a job that did not send it, down with it. A CPU worker killed mid-call fails none of the jobs it held, and an
 * asset worker killed or timed out fails only its own call.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { encodeGlb } from '../src/mesh/glb.js';
import { DEFAULT_GLB_LIMITS } from '../src/mesh/glb-limits.js';
import { glbRulesOf } from '../src/mesh/rules.js';
import { AssetPool, UserAssetError } from '../src/runtime/asset-pool.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { serveApp, testConfig, until } from './helpers/fake-stages.js';
import {
  deepJsonGlb,
  indexOverrunGlb,
  nanPositionGlb,
  nodeChainGlb,
  nodeCycleGlb,
  texturedGlb,
  unbackedAccessorGlb,
  zeroAreaGlb,
} from './helpers/hostile-glb.js';
import { httpClient, imagesOf, textOf } from './helpers/mcp.js';
import { sphereMesh } from './helpers/meshes.js';

/** Real preview stages, small enough for a test: the CPU pool does their work. */
const SMALL_JOBS = { pipeline: { retries: 0, image_size: 128 }, image_to_3d: { inflate: { max_gaussians: 8000 } } };
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

async function start(sections: Record<string, Record<string, unknown>> = {}) {
  const composed = compose(testConfig({ ...SMALL_JOBS, render: { threads: 1 }, ...sections }));
  await composed.service.start();
  const served = await serveApp(composed.app);
  const client = await httpClient(served.url);
  const call = (name: string, args: Record<string, unknown>) => client.callTool({ name, arguments: args }) as Promise<CallToolResult>;
  const generate = (prompt: string) =>
    fetch(`${served.url}/generate/`, { method: 'POST', body: new URLSearchParams({ prompt, seed: '1' }) });
  const close = async () => {
    await client.close();
    await served.close();
    await composed.service.close();
    await composed.renderPool.close();
    await composed.cpuPool?.close();
    await composed.assetPool.close();
  };
  return { composed, served, client, call, generate, close };
}

/** A /generate/ answer as the miner reads it: 200 and a PLY its packer takes. */
async function expectPly(response: Response): Promise<void> {
  expect(
    response.status,
    await response
      .clone()
      .text()
      .then((t) => t.slice(0, 200)),
  ).toBe(200);
  expect(servablePlyViolation(new Uint8Array(await response.arrayBuffer()))).toBeNull();
}

describe('hostile GLBs sent to the service', () => {
  let s: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    s = await start();
  });
  afterAll(() => s?.close());

  it('render_views refuses a GLB whose nodes form a parent cycle, and the service goes on', async () => {
    const result = await s.call('render_views', { glb_base64: b64(nodeCycleGlb()), count: 1, size: 32 });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe(
      "glb_base64 is not a GLB this service can render: the GLB's nodes form a parent cycle (nodes[0] is its own ancestor)",
    );
    expect((await fetch(`${s.served.url}/ping`)).status).toBe(200);
  });

  it('check_asset refuses a deep node chain and deeply nested JSON while /generate/ requests in flight complete', async () => {
    const jobs = ['a red chair', 'a blue mug', 'a green lamp'].map((prompt) => s.generate(prompt));
    const [chain, deep] = await Promise.all([
      s.call('check_asset', { glb_base64: b64(nodeChainGlb(60_000)) }),
      s.call('check_asset', { glb_base64: b64(deepJsonGlb(100_000)) }),
    ]);
    expect(textOf(chain)).toMatch(/^FAIL: the given GLB breaks a mesh rule: the GLB has 60,000 nodes, over the limit of 20,000/);
    expect(textOf(deep)).toMatch(/^FAIL: the given GLB breaks a mesh rule: the GLB's JSON nests deeper than 64 levels/);
    for (const response of await Promise.all(jobs)) await expectPly(response);
  });

  it('an accessor of 3e7 vertices with no bytes behind it is refused at once, not called ok', async () => {
    const bytes = b64(unbackedAccessorGlb(30_000_000));
    const checked = await s.call('check_asset', { glb_base64: bytes });
    expect((checked.structuredContent as { ok: boolean }).ok).toBe(false);
    expect(textOf(checked)).toMatch(/accessors\[0\] declares 30,000,000 elements with no data behind them/);
    const rendered = await s.call('render_views', { glb_base64: bytes, count: 1, size: 32 });
    expect(textOf(rendered)).toMatch(/^glb_base64 is not a GLB this service can render: accessors\[0\] declares 30,000,000 elements/);
  });

  it('render_views refuses what the Khronos validator refuses, with its reason; check_asset refuses a mesh with no area', async () => {
    for (const [bytes, code] of [
      [indexOverrunGlb(), 'ACCESSOR_INDEX_OOB'],
      [nanPositionGlb(), 'ACCESSOR_INVALID_FLOAT'],
    ] as const) {
      const result = await s.call('render_views', { glb_base64: b64(bytes), count: 1, size: 32 });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(
        new RegExp(`^glb_base64 is not a GLB this service can render: the Khronos glTF validator reports \\d errors?: ${code}`),
      );
    }
    const flat = await s.call('check_asset', { glb_base64: b64(zeroAreaGlb(1000)) });
    expect((flat.structuredContent as { ok: boolean; violations: string[] }).violations[0]).toBe(
      "the GLB's 1000 triangles have no area: it is no surface",
    );
    // A sound mesh still renders.
    expect(
      imagesOf(await s.call('render_views', { glb_base64: b64(await encodeGlb(sphereMesh(16, 8, 0.5, true))), count: 1, size: 32 })),
    ).toHaveLength(1);
  });

  it('a CPU worker killed mid-call fails none of the jobs it held: they finish on a fresh worker', async () => {
    const pool = s.composed.cpuPool!;
    const slots = (pool as unknown as { slots: { worker: Worker; pending: Map<number, unknown> }[] }).slots;
    const jobs = ['a wooden barrel', 'a stone bench', 'a paper lantern'].map((prompt) => s.generate(prompt));
    await until(() => slots.some((slot) => slot.pending.size > 0), 20_000);
    const victim = slots.find((slot) => slot.pending.size > 0)!;
    await victim.worker.terminate();
    for (const response of await Promise.all(jobs)) await expectPly(response);
    expect(slots).not.toContain(victim);
  });
});

describe('hostile GLBs with the preview stages on the event loop (runtime.cpu_workers: 0)', () => {
  let s: Awaited<ReturnType<typeof start>>;
  beforeAll(async () => {
    s = await start({ runtime: { cpu_workers: 0 } });
  });
  afterAll(() => s?.close());

  it('check_asset on a deeply nested GLB fails its own call and the service lives', async () => {
    const result = await s.call('check_asset', { glb_base64: b64(deepJsonGlb(100_000)) });
    expect(textOf(result)).toMatch(/^FAIL: .*nests deeper than 64 levels/);
    await expectPly(await s.generate('a small red box'));
  });
});

describe('the asset pool', () => {
  const rules = glbRulesOf({ mesh_extent: 1, max_glb_mb: 200 });
  const sphere = () => encodeGlb(sphereMesh(16, 8, 0.5, true));

  it('stops a file past its time budget and refuses it; the next file gets a fresh worker', async () => {
    // Eight 4096^2 images (within a pixel budget raised for them) take their reader about 2 s to scale and sample; a
    // budget of 1 s leaves a fresh worker's first small file room on a loaded machine.
    const roomy = glbRulesOf({ mesh_extent: 1, max_glb_mb: 200 }, { ...DEFAULT_GLB_LIMITS, maxTexturePixels: 8 * 4096 * 4096 });
    const pool = new AssetPool({ workers: 1, timeoutMs: 1000, memoryMb: 512, queueLength: 4, rules: roomy });
    try {
      const slow = pool.openScene('glb', await texturedGlb(8, 4096, true), 1);
      const next = pool.openScene('glb', await sphere(), 1);
      await expect(slow).rejects.toThrow(new UserAssetError('reading the asset took longer than 1 s; it was refused'));
      expect(await next).toMatchObject({ kind: 'mesh', triangles: 16 * 7 * 2 });
    } finally {
      await pool.close();
    }
  });

  it('fails only the call whose worker dies; calls waiting behind it are read', async () => {
    const pool = new AssetPool({ workers: 1, timeoutMs: 20_000, memoryMb: 512, queueLength: 4, rules });
    try {
      const slots = (pool as unknown as { slots: { worker: Worker; call: unknown }[] }).slots;
      const doomed = pool.inspectGlb(await texturedGlb(2, 2048, true));
      const waiting = pool.inspectGlb(await sphere());
      await until(() => slots.length === 1 && slots[0].call !== null);
      await slots[0].worker.terminate();
      await expect(doomed).rejects.toThrow(/^the asset could not be read: its reader stopped/);
      expect((await waiting).violations).toEqual([]);
    } finally {
      await pool.close();
    }
  });

  it('refuses calls beyond its queue as busy, and an aborted caller at once', async () => {
    const pool = new AssetPool({ workers: 1, timeoutMs: 20_000, memoryMb: 512, queueLength: 1, rules });
    try {
      const bytes = await sphere();
      const first = pool.inspectGlb(bytes);
      const controller = new AbortController();
      const second = pool.inspectGlb(bytes, controller.signal);
      await expect(pool.inspectGlb(bytes)).rejects.toThrow(/1 assets are already waiting/);
      controller.abort(new Error('caller went away'));
      await expect(second).rejects.toThrow('caller went away');
      expect((await first).violations).toEqual([]);
    } finally {
      await pool.close();
    }
  });
});
