/**
 * The CPU pool runs the preview stages and large form bodies in worker threads: the results must be exactly what
 * the same backends give in process, a job's abort must release its caller at once, and a failing call must
 * reject, never hang.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { configSettings } from '../src/compose.js';
import { inflateImageTo3d, keyingMatting, previewTextToImage } from '../src/pipelines/preview-backends.js';
import { CpuPool, offloadImageTo3d, offloadMatting, offloadTextToImage } from '../src/runtime/cpu-pool.js';
import { decodeGlb, encodeGlb, GlbReadError } from '../src/mesh/glb.js';
import { DEFAULT_GLB_LIMITS } from '../src/mesh/glb-limits.js';
import { centreAndFit } from '../src/mesh/mesh.js';
import { glbRulesOf, inspectGlb } from '../src/mesh/rules.js';
import { createFormats } from '../src/formats/registry.js';
import { RenderPool } from '../src/render/index.js';
import { encodePly } from '../src/splat/ply.js';
import type { ImageTo3d } from '../src/pipelines/stages.js';
import { jobContext, testConfig } from './helpers/fake-stages.js';
import { sphereMesh } from './helpers/meshes.js';

const settings = configSettings(testConfig({ image_to_3d: { inflate: { max_gaussians: 20000 } } }));
const pool = new CpuPool(settings, 1);
afterAll(() => pool.close());

describe('the CPU pool', () => {
  it('gives the bytes the same backends give in process, picture to cloud', async () => {
    const ctx = jobContext({ config: testConfig({ image_to_3d: { inflate: { max_gaussians: 20000 } } }) });
    const local = { t2i: previewTextToImage(settings), matting: keyingMatting(settings), i23: inflateImageTo3d(settings) };
    const remote = {
      t2i: offloadTextToImage(local.t2i, pool),
      matting: offloadMatting(local.matting, pool),
      i23: offloadImageTo3d(local.i23, pool),
    };
    expect(remote.t2i.name).toBe('preview');
    const [a, b] = await Promise.all([local.t2i.generate('a green mug', 4, ctx), remote.t2i.generate('a green mug', 4, ctx)]);
    expect(Buffer.compare(Buffer.from(a.data), Buffer.from(b.data))).toBe(0);
    const [ma, mb] = await Promise.all([
      local.matting.matte({ image: a, fromUser: false }, ctx),
      remote.matting.matte({ image: a, fromUser: false }, ctx),
    ]);
    expect(a.data.length).toBeGreaterThan(0); // the caller's picture is copied to the worker, never taken from it
    expect(Buffer.compare(Buffer.from(ma!.data), Buffer.from(mb!.data))).toBe(0);
    const [ca, cb] = await Promise.all([local.i23.generate(ma!, 4, ctx), remote.i23.generate(ma!, 4, ctx)]);
    expect(cb.count).toBe(ca.count);
    expect(Buffer.compare(encodePly(ca), encodePly(cb))).toBe(0);
  });

  it('runs generateWithMesh in a worker too when the backend has it, cloud and mesh as in process', async () => {
    const config = testConfig({ image_to_3d: { inflate: { max_gaussians: 20000, mesh_faces: 5000 } } });
    const ctx = jobContext({ config });
    const local = inflateImageTo3d(configSettings(config));
    const remote = offloadImageTo3d(local, pool);
    expect(remote.generateWithMesh).toBeTypeOf('function');
    const image = await previewTextToImage(settings).generate('a red ball', 2, ctx);
    const matte = (await keyingMatting(settings).matte({ image, fromUser: false }, ctx))!;
    const [a, b] = await Promise.all([local.generateWithMesh!(matte, 2, ctx), remote.generateWithMesh!(matte, 2, ctx)]);
    expect(Buffer.compare(encodePly(a.cloud), encodePly(b.cloud))).toBe(0);
    expect(b.mesh.indices).toBeInstanceOf(Uint32Array);
    expect(b.mesh.indices.length / 3).toBeGreaterThan(2500);
    for (const key of ['positions', 'indices', 'colours'] as const) {
      expect(Buffer.compare(Buffer.from(a.mesh[key]!.buffer), Buffer.from(b.mesh[key]!.buffer))).toBe(0);
    }
    // A backend without meshes is offloaded without them.
    const cloudOnly: ImageTo3d = {
      name: local.name,
      preview: true,
      readiness: () => local.readiness(),
      generate: (i, s, c) => local.generate(i, s, c),
    };
    expect(offloadImageTo3d(cloudOnly, pool).generateWithMesh).toBeUndefined();
  });

  it('writes, checks and reads GLBs in a worker, byte for byte and verdict for verdict as in process', async () => {
    const config = testConfig({ image_to_3d: { inflate: { mesh_faces: 60_000 } } });
    const ctx = jobContext({ config });
    const image = await previewTextToImage(settings).generate('a red ball', 2, ctx);
    const matte = (await keyingMatting(settings).matte({ image, fromUser: false }, ctx))!;
    const { mesh } = await inflateImageTo3d(configSettings(config)).generateWithMesh!(matte, 2, ctx);
    centreAndFit(mesh, 1);
    const rules = { extent: 1, maxBytes: 200e6 };
    const remote = await pool.artefacts.encodeGlb(mesh);
    const verdict = (await pool.artefacts.inspectGlb(remote, rules)).violations[0] ?? null;
    expect(Buffer.compare(remote, await encodeGlb(mesh))).toBe(0);
    expect(verdict).toBeNull();
    const wide = { extent: 0.5, maxBytes: 200e6 };
    // A rule broken is the same report from the worker as in process.
    const inspection = await pool.artefacts.inspectGlb(remote, wide);
    expect(inspection).toEqual(await inspectGlb(remote, wide));
    expect(inspection.violations[0]).toMatch(/extent|outside|cube/);
    // Read back in a worker: the same columns as in process.
    const read = await pool.artefacts.decodeGlb(remote, DEFAULT_GLB_LIMITS);
    expect(read).toEqual(await decodeGlb(remote));
    // A GLB cut from a larger buffer (as from the GPU worker's parts) reads the same, and the caller keeps its bytes.
    const parts = new Uint8Array(remote.length + 16);
    parts.set(remote, 8);
    expect(await pool.artefacts.decodeGlb(parts.subarray(8, 8 + remote.length), DEFAULT_GLB_LIMITS)).toEqual(read);
    expect([parts.byteLength, remote.byteLength]).toEqual([remote.length + 16, remote.length]);
    expect(read.indices.length / 3).toBe(mesh.indices.length / 3);
    // A file that cannot be read stays a GlbReadError across the thread, so callers can tell it from the pool's own failures.
    await expect(pool.artefacts.decodeGlb(remote.subarray(0, 100), DEFAULT_GLB_LIMITS)).rejects.toBeInstanceOf(GlbReadError);
  });

  it('makes game meshes, their LODs, the OBJ zip and the splat GLB in a worker, byte for byte as in this thread', async () => {
    const config = testConfig({ image_to_3d: { inflate: { max_gaussians: 20000, mesh_faces: 20_000 } } });
    const ctx = jobContext({ config });
    const image = await previewTextToImage(settings).generate('a yellow vase', 3, ctx);
    const matte = (await keyingMatting(settings).matte({ image, fromUser: false }, ctx))!;
    const { cloud, mesh } = await inflateImageTo3d(configSettings(config)).generateWithMesh!(matte, 3, ctx);
    centreAndFit(mesh, 1);
    const before = { positions: mesh.positions.slice(), columns: cloud.columns.opacity.slice() };
    const rules = glbRulesOf(config.pipeline);
    const inThread = createFormats({ pool: new RenderPool(0), mesh: rules });
    const inPool = createFormats({ pool: new RenderPool(0), mesh: rules, work: pool.artefacts });
    const request = { faces: 6000, lods: [1, 0.5], pivot: 'bottom' as const, sizeM: 2, textureSize: 512 };
    for (const [format, compression] of [
      ['glb', 'meshopt'],
      ['glb_lod1', 'draco'],
      ['obj', 'none'],
      ['glb_splat', 'none'],
    ] as const) {
      const spec = { format, mesh: { ...request, compression } };
      const [local, remote] = [
        await inThread[format].encode({ cloud, mesh }, spec, { turntable: {} as never }),
        await inPool[format].encode({ cloud, mesh }, spec, { turntable: {} as never }),
      ];
      expect(Buffer.compare(local, remote), format).toBe(0);
      expect(await inPool[format].violation(remote, spec), format).toBeNull();
    }
    // The arguments went over as copies: the caller's mesh and cloud are whole and unchanged.
    expect(mesh.positions).toEqual(before.positions);
    expect(cloud.columns.opacity).toEqual(before.columns);
    // A broken rule is told from the worker too: the LOD against the bounds of another size.
    const lod = await inPool.glb_lod1.encode({ cloud, mesh }, { format: 'glb_lod1', mesh: request }, { turntable: {} as never });
    expect(await inPool.glb_lod1.violation(lod, { format: 'glb_lod1', mesh: { ...request, sizeM: 1 } })).toMatch(
      /outside .*\(size 1 m, pivot bottom, raw vertices\)/,
    );
  }, 60_000);

  it("sends copies of a caller's bytes, whatever holds them: a Buffer from Node's shared pool or one of its own", async () => {
    const glb = await encodeGlb(sphereMesh(8, 4, 0.5, true));
    for (const bytes of [Buffer.from(glb), Buffer.alloc(64, 1), new Uint8Array(glb)]) {
      const before = Buffer.from(bytes);
      const inspection = await pool.artefacts.inspectGlb(bytes, { extent: 1, maxBytes: 200e6 });
      expect(inspection.violations.length === 0, `${bytes.length} bytes`).toBe(bytes.length === glb.length);
      // Still the caller's: whole, unchanged, not detached by the transfer.
      expect(Buffer.compare(Buffer.from(bytes), before)).toBe(0);
    }
  });

  it('releases a caller whose job aborts, and the pool goes on serving', async () => {
    const controller = new AbortController();
    const ctx = jobContext({ signal: controller.signal });
    const call = pool.run('imageTo3d', [{ width: 8, height: 8, data: new Uint8ClampedArray(256) }, 1], ctx);
    controller.abort(new Error('client went away'));
    await expect(call).rejects.toThrow('client went away');
    const image = await pool.run<{ width: number }>('textToImage', ['a cube', 1], jobContext());
    expect(image.width).toBe(512);
  });

  it("runs each call under its job's settings, not those the workers were built with", async () => {
    const small = jobContext({ config: testConfig({ pipeline: { image_size: 128 } }) });
    expect((await pool.run<{ width: number }>('textToImage', ['a cube', 1], small)).width).toBe(128);
  });

  it('rejects a failing call with its reason', async () => {
    await expect(pool.run('imageTo3d', [{ width: 8, height: 8, data: null }, 1], jobContext())).rejects.toThrow(/null/);
  });

  it('parses urlencoded bodies as Hono does: one value a string, a repeated one an array', async () => {
    const body = new TextEncoder().encode('prompt=a+red%20chair&seed=1&seed=2&empty=').buffer as ArrayBuffer;
    expect(await pool.parseUrlencoded(body)).toEqual({ prompt: 'a red chair', seed: ['1', '2'], empty: '' });
  });
});
