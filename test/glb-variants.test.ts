/** GLB delivery variants: meshopt and Draco compression, WebP textures; the validator, the judge's rules, reading back. */
import { validateBytes } from 'gltf-validator';
import { describe, expect, it } from 'vitest';
import { bakeVertexColours } from '../src/mesh/bake.js';
import { decodeGlb, encodeGlb } from '../src/mesh/glb.js';
import { glbBounds } from '../src/mesh/glb-limits.js';
import { encodeGlbVariant, type GlbEncoding } from '../src/mesh/glb-variants.js';
import { meshBounds, triangleCount } from '../src/mesh/mesh.js';
import { placeMesh } from '../src/mesh/placement.js';
import { inspectGlb } from '../src/mesh/rules.js';
import { buildGlb, parseGlb } from './helpers/glb-chunks.js';
import { sphereMesh } from './helpers/meshes.js';

const RULES = { extent: 1, maxBytes: 200e6 };
const VARIANTS: GlbEncoding[] = [{ compression: 'none' }, { compression: 'meshopt' }, { compression: 'draco' }];
const validate = (bytes: Uint8Array) => validateBytes(bytes, { format: 'glb', writeTimestamp: false });

describe('encodeGlbVariant', () => {
  it("none is encodeGlb's file, byte for byte", async () => {
    const sphere = sphereMesh(32, 16, 0.5, true);
    expect(Buffer.from(await encodeGlbVariant(sphere, { compression: 'none' })).equals(Buffer.from(await encodeGlb(sphere)))).toBe(true);
  });

  for (const variant of VARIANTS) {
    it(`${variant.compression}: 0 validator errors, the judge's rules at a requested size and pivot, read back with the same triangles and colours`, async () => {
      const sphere = sphereMesh(64, 32, 0.5, true);
      placeMesh(sphere, { sizeM: 1.8, pivot: 'bottom' });
      const bytes = await encodeGlbVariant(sphere, variant);
      const report = await validate(bytes);
      expect(report.issues.numErrors).toBe(0);
      const { json } = parseGlb(bytes);
      // What the judge reads: one node with no transform, float positions in metres.
      expect(json.nodes).toHaveLength(1);
      expect(Object.keys(json.nodes![0]).filter((k) => ['matrix', 'translation', 'rotation', 'scale'].includes(k))).toEqual([]);
      expect(json.accessors![json.meshes![0].primitives[0].attributes.POSITION].componentType).toBe(5126);
      const inspection = await inspectGlb(bytes, { ...RULES, placement: { sizeM: 1.8, pivot: 'bottom' } });
      expect(inspection.violations).toEqual([]);
      expect(inspection.primitives).toBe(1);
      expect(inspection.triangles).toBe(triangleCount(sphere));
      const mesh = await decodeGlb(bytes);
      expect(triangleCount(mesh)).toBe(triangleCount(sphere));
      const { min, max } = meshBounds(mesh);
      expect(max[1] - min[1]).toBeCloseTo(1.8, 3);
      expect(min[1]).toBeCloseTo(0, 3);
      // Colours: 8-bit quantization at most, in linear space, read back as sRGB.
      const sorted = (c: Float32Array) => [...c].map((v) => Math.round(v * 50)).sort((a, b) => a - b);
      const a = sorted(mesh.colours!),
        b = sorted(sphere.colours!);
      expect(a.filter((v, i) => Math.abs(v - b[i]) > 1).length).toBe(0);
    });
  }

  it("meshopt is at most 40% of none's bytes, Draco less still, on a 65k-triangle coloured mesh", async () => {
    const sphere = sphereMesh(256, 128, 0.5, true);
    const none = (await encodeGlbVariant(sphere, { compression: 'none' })).length;
    const meshopt = (await encodeGlbVariant(sphere, { compression: 'meshopt' })).length;
    const draco = (await encodeGlbVariant(sphere, { compression: 'draco' })).length;
    expect(meshopt / none).toBeLessThan(0.4);
    expect(draco).toBeLessThan(meshopt);
  });

  it('writes a baked texture as WebP under EXT_texture_webp, smaller than PNG, and reads it back', async () => {
    const baked = bakeVertexColours(sphereMesh(48, 24, 0.5, true), 1024);
    const png = await encodeGlbVariant(baked, { compression: 'meshopt', texture: 'png' });
    const webp = await encodeGlbVariant(baked, { compression: 'meshopt', texture: 'webp' });
    expect(webp.length).toBeLessThan(png.length);
    const { json } = parseGlb(webp);
    expect(json.extensionsRequired).toEqual(
      expect.arrayContaining(['EXT_texture_webp', 'EXT_meshopt_compression', 'KHR_mesh_quantization']),
    );
    expect((await validate(webp)).issues.numErrors).toBe(0);
    expect((await inspectGlb(webp, RULES)).violations).toEqual([]);
    const mesh = await decodeGlb(webp);
    expect(mesh.texture!.width).toBe(1024);
    expect(mesh.uvs!.length).toBe(baked.uvs!.length);
  });

  it("the validator does not decode meshopt or Draco (it says so); the judge's rules read the decoded geometry", async () => {
    const big = sphereMesh(32, 16, 1, true); // 2 m across: outside the unit cube
    for (const compression of ['meshopt', 'draco'] as const) {
      const bytes = await encodeGlbVariant(big, { compression });
      const report = await validate(bytes);
      expect(report.issues.numErrors).toBe(0);
      expect(report.issues.messages.some((m) => m.code === 'UNSUPPORTED_EXTENSION')).toBe(true);
      expect((await inspectGlb(bytes, RULES)).violations[0]).toMatch(
        /^the mesh spans x \[-1, 1\], y \[-1, 1\], z \[-1, 1\], outside \[-0\.5, 0\.5\]/,
      );
    }
  });
});

describe('bounds of compressed GLBs before any decoder runs', () => {
  it('refuses a meshopt view that declares more decoded bytes than it holds, or than its compressed bytes can make', async () => {
    const bytes = await encodeGlbVariant(sphereMesh(32, 16, 0.5, true), { compression: 'meshopt' });
    const { json, bin } = parseGlb(bytes);
    const grown = structuredClone(json);
    (
      grown.bufferViews![1] as unknown as { extensions: { EXT_meshopt_compression: { count: number } } }
    ).extensions.EXT_meshopt_compression.count = 1e7;
    expect(glbBounds(buildGlb(grown, bin))).toEqual({
      violation: expect.stringMatching(/^bufferViews\[1\] decodes to 120,000,000 bytes, more than its/),
    });
    const inflated = structuredClone(json);
    const view = inflated.bufferViews![1] as unknown as {
      byteLength: number;
      extensions: { EXT_meshopt_compression: { count: number; byteLength: number } };
    };
    (inflated.buffers![1] as { byteLength: number }).byteLength = 2e9;
    view.byteLength = 12e8;
    view.extensions.EXT_meshopt_compression.count = 1e8;
    expect(glbBounds(buildGlb(inflated, bin))).toEqual({
      violation: expect.stringMatching(/^bufferViews\[1\] declares 1,200,000,000 bytes from [\d,]+ compressed ones/),
    });
  });

  it('refuses Draco accessors that declare far more than their compressed bytes', async () => {
    const bytes = await encodeGlbVariant(sphereMesh(32, 16, 0.5, true), { compression: 'draco' });
    const { json, bin } = parseGlb(bytes);
    (json.accessors![1] as { count: number }).count = 4e7;
    expect(glbBounds(buildGlb(json, bin))).toEqual({
      violation: expect.stringMatching(/^accessors\[1\] declares 480,000,000 bytes from [\d,]+ bytes of Draco data/),
    });
  });
});
