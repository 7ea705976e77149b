/** Splats in glTF: a KHR_gaussian_splatting GLB as the extension (release candidate) and three.js's loader read it. */
import { NodeIO } from '@gltf-transform/core';
import { validateBytes } from 'gltf-validator';
import { describe, expect, it } from 'vitest';
import {
  decodeSplatGlb,
  encodeSplatGlb,
  KHRGaussianSplatting,
  readSplatGlb,
  splatGlbViolation,
  type GaussianSplatting,
} from '../src/mesh/glb-splat.js';
import { SH_C0 } from '../src/splat/cloud.js';
import { buildGlb, parseGlb } from './helpers/glb-chunks.js';
import { loadFixtureCloud } from './helpers/fixtures.js';

const LIMIT = 500e6;
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

describe('encodeSplatGlb', () => {
  it("writes one POINTS primitive with the extension's attribute names, encodings and properties", async () => {
    const cloud = loadFixtureCloud('hamburger.ply');
    const bytes = await encodeSplatGlb(cloud);
    const { json } = parseGlb(bytes);
    expect(json.extensionsUsed).toEqual(['KHR_gaussian_splatting']);
    const primitive = json.meshes![0].primitives[0] as {
      mode: number;
      attributes: Record<string, number>;
      extensions: Record<string, unknown>;
    };
    expect(primitive.mode).toBe(0);
    expect(Object.keys(primitive.attributes).sort()).toEqual([
      'COLOR_0',
      'KHR_gaussian_splatting:OPACITY',
      'KHR_gaussian_splatting:ROTATION',
      'KHR_gaussian_splatting:SCALE',
      'KHR_gaussian_splatting:SH_DEGREE_0_COEF_0',
      'POSITION',
    ]);
    expect(primitive.extensions.KHR_gaussian_splatting).toEqual({
      kernel: 'ellipse',
      colorSpace: 'srgb_rec709_display',
      projection: 'perspective',
      sortingMethod: 'cameraDistance',
    });
    const accessor = (name: string) =>
      json.accessors![primitive.attributes[name]] as { type: string; componentType: number; normalized?: boolean; count: number };
    expect(accessor('KHR_gaussian_splatting:ROTATION')).toMatchObject({ type: 'VEC4', componentType: 5126, count: cloud.count });
    expect(accessor('KHR_gaussian_splatting:SCALE')).toMatchObject({ type: 'VEC3', componentType: 5126 });
    expect(accessor('KHR_gaussian_splatting:OPACITY')).toMatchObject({ type: 'SCALAR', componentType: 5126 });
    expect(accessor('COLOR_0')).toMatchObject({ type: 'VEC4', componentType: 5121, normalized: true });
    expect(json.nodes![0]).toEqual({ name: 'fast3d', mesh: 0 });

    // Values: linear scales, sigmoid opacities, unit quaternions in (x, y, z, w), the DC coefficients as they are.
    const splats = readSplatGlb(bytes);
    const c = cloud.columns;
    let worst = 0;
    for (let i = 0; i < cloud.count; i += 97) {
      worst = Math.max(worst, Math.abs(splats.scales[i * 3 + 1] - Math.exp(c.scale_1[i])) / Math.exp(c.scale_1[i]));
      worst = Math.max(worst, Math.abs(splats.opacities[i] - sigmoid(c.opacity[i])));
      worst = Math.max(worst, Math.abs(splats.sh0[i * 3 + 2] - c.f_dc_2[i]));
      const n = Math.hypot(c.rot_0[i], c.rot_1[i], c.rot_2[i], c.rot_3[i]);
      worst = Math.max(worst, Math.abs(splats.rotations[i * 4 + 3] - c.rot_0[i] / n), Math.abs(splats.rotations[i * 4] - c.rot_1[i] / n));
      expect(0.5 + SH_C0 * splats.sh0[i * 3]).toBeCloseTo(0.5 + SH_C0 * c.f_dc_0[i], 5);
    }
    expect(worst).toBeLessThan(1e-5);
    const back = decodeSplatGlb(bytes);
    expect(back.count).toBe(cloud.count);
    expect(back.columns.scale_0[5]).toBeCloseTo(c.scale_0[5], 4);
    expect(back.columns.opacity[5]).toBeCloseTo(c.opacity[5], 3);
  });

  it("passes its check; the validator's only errors are the extension's attribute names, which it does not know", async () => {
    const bytes = await encodeSplatGlb(loadFixtureCloud('hamburger.ply'));
    expect(await splatGlbViolation(bytes, LIMIT)).toBeNull();
    const report = await validateBytes(bytes, { format: 'glb', writeTimestamp: false });
    const errors = report.issues.messages.filter((m) => m.severity === 0);
    expect(errors.map((m) => m.code)).toEqual(new Array(4).fill('MESH_PRIMITIVE_INVALID_ATTRIBUTE'));
    expect(errors.every((m) => m.pointer!.includes('/attributes/KHR_gaussian_splatting:'))).toBe(true);
  });

  it('glTF-Transform keeps the extension through a read and a write once it is registered, and drops it otherwise', async () => {
    const bytes = await encodeSplatGlb(loadFixtureCloud('hamburger.ply'));
    const io = new NodeIO().registerExtensions([KHRGaussianSplatting]);
    const doc = await io.readBinary(bytes);
    const splatting = doc.getRoot().listMeshes()[0].listPrimitives()[0].getExtension<GaussianSplatting>('KHR_gaussian_splatting')!;
    expect(splatting.getValue('colorSpace')).toBe('srgb_rec709_display');
    expect(await splatGlbViolation(await io.writeBinary(doc), LIMIT)).toBeNull();
    const plain = await new NodeIO().writeBinary(await new NodeIO().readBinary(bytes));
    expect(await splatGlbViolation(plain, LIMIT)).toBe('the primitive has no KHR_gaussian_splatting extension');
  });

  it('refuses splats the extension does not allow, and files that are no splat GLB', async () => {
    const cloud = loadFixtureCloud('hamburger.ply');
    const { json, bin: chunk } = parseGlb(await encodeSplatGlb(cloud));
    const bin = chunk!;
    const attributes = json.meshes![0].primitives[0].attributes as Record<string, number>;
    /** The file with one component of one splat's attribute set to `value` (attributes may be interleaved). */
    const edit = (name: string, element: number, component: number, value: number) => {
      const copy = bin.slice();
      const accessor = json.accessors![attributes[name]] as { bufferView: number; byteOffset?: number; type: string };
      const view = json.bufferViews![accessor.bufferView] as { byteOffset?: number; byteStride?: number };
      const stride = view.byteStride ?? { SCALAR: 4, VEC3: 12, VEC4: 16 }[accessor.type]!;
      new DataView(copy.buffer).setFloat32(
        (view.byteOffset ?? 0) + (accessor.byteOffset ?? 0) + element * stride + component * 4,
        value,
        true,
      );
      return splatGlbViolation(buildGlb(json, copy), LIMIT);
    };
    expect(await edit('KHR_gaussian_splatting:SCALE', 1, 0, -0.1)).toBe('splat 1 has a negative scale');
    expect(await edit('KHR_gaussian_splatting:OPACITY', 2, 0, 1.5)).toBe('the opacity of splat 2 is outside [0, 1]');
    expect(await edit('KHR_gaussian_splatting:ROTATION', 0, 0, 3)).toMatch(/^the rotation of splat 0 is not a unit quaternion/);
    expect(await edit('KHR_gaussian_splatting:SH_DEGREE_0_COEF_0', 0, 0, NaN)).toMatch(
      /^the Khronos glTF validator reports 1 error\(s\): ACCESSOR_INVALID_FLOAT/,
    );
    const lines = structuredClone(json);
    (lines.meshes![0].primitives[0] as { mode: number }).mode = 1;
    expect(await splatGlbViolation(buildGlb(lines, bin), LIMIT)).toBe('the splat primitive is not POINTS (mode 0)');
    const moved = structuredClone(json);
    (moved.nodes![0] as { translation?: number[] }).translation = [0, 1, 0];
    expect(await splatGlbViolation(buildGlb(moved, bin), LIMIT)).toBe('a node of the splat GLB has a transform');
    const missing = structuredClone(json);
    delete (missing.meshes![0].primitives[0].attributes as Record<string, number>)['KHR_gaussian_splatting:OPACITY'];
    expect(await splatGlbViolation(buildGlb(missing, bin), LIMIT)).toBe(
      'the splat primitive has no KHR_gaussian_splatting:OPACITY attribute',
    );
    expect(await splatGlbViolation(new Uint8Array(10), LIMIT)).toMatch(/shorter than the 12-byte GLB header/);
    expect(await splatGlbViolation(buildGlb(json, bin), 1000)).toMatch(/over the 1000-byte limit/);
  });
});
