/**
 * Hostile GLBs of a few bytes to a few hundred KB, read by every reader the service has: each is refused with a
 * sentence that names its fault, before anything is allocated in proportion to what it claims, and before the
 * Khronos validator or glTF-Transform recurse on it. World matrices are made top-down, textures decoded once per
 * distinct image within a pixel budget.
 */
import { Document, NodeIO } from '@gltf-transform/core';
import { describe, expect, it } from 'vitest';
import { assetsSchema } from '../src/config/schema.js';
import { decodeGlb } from '../src/mesh/glb.js';
import { DEFAULT_GLB_LIMITS, glbBounds, glbLimitsOf, jsonDepth } from '../src/mesh/glb-limits.js';
import { inspectGlb } from '../src/mesh/rules.js';
import {
  deepJsonGlb,
  indexOverrunGlb,
  manyMeshesGlb,
  nanPositionGlb,
  nodeChainGlb,
  nodeCycleGlb,
  selfParentGlb,
  texturedGlb,
  unbackedAccessorGlb,
  zeroAreaGlb,
} from './helpers/hostile-glb.js';

const RULES = { extent: 1, maxBytes: 200e6 };
const violationOf = (bytes: Uint8Array, limits = DEFAULT_GLB_LIMITS) => {
  const bounds = glbBounds(bytes, limits);
  return 'violation' in bounds ? bounds.violation : null;
};

describe('the bounds every GLB keeps before it is read', () => {
  it("are the assets config section's defaults", () => {
    expect(glbLimitsOf(assetsSchema.parse({}))).toEqual(DEFAULT_GLB_LIMITS);
  });

  it('refuse nodes that form a parent cycle, or a node that is its own child, in every reader', async () => {
    for (const [bytes, reason] of [
      [nodeCycleGlb(), /nodes form a parent cycle/],
      [selfParentGlb(), /nodes\[0\] is its own child/],
    ] as const) {
      expect(violationOf(bytes)).toMatch(reason);
      await expect(decodeGlb(bytes)).rejects.toThrow(reason);
      const inspection = await inspectGlb(bytes, RULES);
      expect(inspection.fault).toMatch(reason);
      expect(inspection.validator).toBeNull(); // refused before the validator walks the graph
    }
  });

  it('refuse a deep node chain and deeply nested JSON before the Khronos validator recurses on them', async () => {
    const chain = nodeChainGlb(60_000);
    expect((await inspectGlb(chain, RULES)).fault).toBe('the GLB has 60,000 nodes, over the limit of 20,000');
    expect((await inspectGlb(nodeChainGlb(200), RULES)).fault).toBe("the GLB's node tree is deeper than 128 levels");
    const deep = deepJsonGlb(100_000);
    expect(deep.length).toBeLessThan(250_000);
    expect((await inspectGlb(deep, RULES)).fault).toBe("the GLB's JSON nests deeper than 64 levels");
    await expect(decodeGlb(deep)).rejects.toThrow(/nests deeper than 64/);
    // The depth scan skips brackets inside strings.
    expect(jsonDepth(new TextEncoder().encode('{"a":"[[[[[[","b":[[1]]}'), 64)).toBe(3);
  });

  it("refuse an accessor whose count the file's bytes do not back, which check_asset called ok", async () => {
    const bytes = unbackedAccessorGlb(30_000_000);
    expect(bytes.length).toBeLessThan(1000);
    const inspection = await inspectGlb(bytes, RULES);
    expect(inspection.fault).toBe(
      'accessors[0] declares 30,000,000 elements with no data behind them (360,000,000 bytes, the file has 260)',
    );
    expect(inspection.violations).toEqual([inspection.fault]);
    await expect(decodeGlb(bytes)).rejects.toThrow(/no data behind them/);
    // Within the file's own size a zero-filled accessor is still read (the validator then judges it).
    expect(violationOf(unbackedAccessorGlb(3))).toBeNull();
  });

  it('cap primitives, vertices and triangles as the scene places them', () => {
    expect(violationOf(manyMeshesGlb(5000))).toBe('the GLB has 5,000 primitives, over the limit of 4,096');
    const capped = { ...DEFAULT_GLB_LIMITS, maxPrimitives: 100_000, maxVertices: 3000, maxTriangles: 500 };
    expect(violationOf(manyMeshesGlb(1001), capped)).toBe("the GLB's scene places 3,003 vertices, over the limit of 3,000");
    expect(violationOf(manyMeshesGlb(600), capped)).toBe("the GLB's scene places 600 triangles, over the limit of 500");
    expect(violationOf(manyMeshesGlb(400), capped)).toBeNull();
  });

  it('make world matrices once, top-down: a 12,000-node chain outside any scene is placed where its transforms say', async () => {
    const limits = { ...DEFAULT_GLB_LIMITS, maxNodeDepth: 20_000 };
    const mesh = await decodeGlb(nodeChainGlb(12_000, false), limits);
    // Each of the 11,999 ancestors moves the triangle 0.001 along x.
    expect(mesh.positions[0]).toBeCloseTo(11.999, 2);
    expect(mesh.positions[3]).toBeCloseTo(12.999, 2);
  });

  it("place nested rotated, scaled and translated nodes as glTF-Transform's own world matrices do", async () => {
    const doc = new Document();
    const buffer = doc.createBuffer();
    const position = doc
      .createAccessor()
      .setType('VEC3')
      .setBuffer(buffer)
      .setArray(new Float32Array([0, 0, 0, 1, 0, 0, 0, 1, 0]));
    const mesh = doc.createMesh().addPrimitive(doc.createPrimitive().setAttribute('POSITION', position));
    const leaf = doc.createNode('leaf').setMesh(mesh).setTranslation([0, 0, 2]).setScale([1, 2, 1]);
    const middle = doc.createNode('middle').setRotation([0, Math.SQRT1_2, 0, Math.SQRT1_2]).addChild(leaf);
    const top = doc.createNode('top').setTranslation([5, 0, 0]).setScale([0.5, 0.5, 0.5]).addChild(middle);
    doc.createScene().addChild(top);
    const expected = leaf.getWorldMatrix();
    const read = await decodeGlb(await new NodeIO().writeBinary(doc));
    const corners = [
      [0, 0, 0],
      [1, 0, 0],
      [0, 1, 0],
    ];
    corners.forEach(([x, y, z], i) => {
      for (let a = 0; a < 3; a++) {
        const want = expected[a] * x + expected[4 + a] * y + expected[8 + a] * z + expected[12 + a];
        expect(read.positions[i * 3 + a]).toBeCloseTo(want, 5);
      }
    });
  });

  it('decode an image shared by many textures once, scaled to the side limit, within a pixel budget per asset', async () => {
    const budget = { ...DEFAULT_GLB_LIMITS, maxTexturePixels: 20 * 1024 * 1024 };
    // Eight materials, eight image entries, one 8192^2 PNG: one decode at 4096^2 fits a budget of one.
    const shared = await decodeGlb(await texturedGlb(8, 8192), budget);
    expect(shared.texture).toMatchObject({ width: 4096, height: 4096 });
    expect([...shared.texture!.data.subarray(0, 3)]).toEqual([200, 60, 30]);
    // Two distinct 4096^2 images do not fit it: refused from their headers, before any pixel is decoded.
    await expect(decodeGlb(await texturedGlb(2, 4096, true), budget)).rejects.toThrow(
      "the GLB's 2 texture(s) decode to 33554432 pixels, over the limit of 20971520",
    );
  });

  it("have the Khronos validator's reason for files it refuses, and refuse a mesh with no area", async () => {
    expect((await inspectGlb(indexOverrunGlb(), RULES)).fault).toMatch(/^the Khronos glTF validator reports 1 error: ACCESSOR_INDEX_OOB/);
    expect((await inspectGlb(nanPositionGlb(), RULES)).fault).toMatch(/ACCESSOR_INVALID_FLOAT/);
    const flat = await inspectGlb(zeroAreaGlb(1000), RULES);
    expect(flat.validator?.errors).toBe(0);
    expect(flat.fault).toBe("the GLB's 1000 triangles have no area: it is no surface");
    expect(flat.violations[0]).toBe(flat.fault);
  });

  it('refuse buffers and images in other files: a GLB read here carries its own data', () => {
    const external = new TextEncoder().encode(
      JSON.stringify({ asset: { version: '2.0' }, buffers: [{ byteLength: 12, uri: '../../etc/passwd' }] }),
    );
    const padded = new Uint8Array(Math.ceil(external.length / 4) * 4).fill(0x20);
    padded.set(external);
    const glb = new Uint8Array(20 + padded.length);
    const view = new DataView(glb.buffer);
    view.setUint32(0, 0x46546c67, true);
    view.setUint32(4, 2, true);
    view.setUint32(8, glb.length, true);
    view.setUint32(12, padded.length, true);
    view.setUint32(16, 0x4e4f534a, true);
    glb.set(padded, 20);
    expect(violationOf(glb)).toBe('buffers[0] refers to another file; a GLB read here must carry its own data');
  });
});
