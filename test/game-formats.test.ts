/** The format registry's kinds for game teams: mesh options on glb, LOD artefacts, the OBJ zip, splats in glTF, SPZ v4. */
import { zipSync, unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { createFormats, formatForPath, specKey, specViolation, type ArtefactSpec, type MeshRequest } from '../src/formats/registry.js';
import { encodeObjZip, inspectObjZip, objZipViolation } from '../src/formats/obj-zip.js';
import { decodeGlb } from '../src/mesh/glb.js';
import { meshBounds, triangleCount } from '../src/mesh/mesh.js';
import type { RenderPool } from '../src/render/index.js';
import { ballCloud } from './helpers/clouds.js';
import { sphereMesh } from './helpers/meshes.js';

const RULES = { extent: 1, maxBytes: 200e6 };
const formats = createFormats({ pool: {} as RenderPool, mesh: RULES });
const env = { turntable: {} as never };
const sphere = sphereMesh(96, 48, 0.5, true); // 9024 triangles
const asset = { cloud: ballCloud(2000), mesh: sphere };

describe('mesh options on glb and the LOD artefacts', () => {
  const request: MeshRequest = { faces: 4000, lods: [1, 0.5, 0.25], sizeM: 2, pivot: 'bottom', compression: 'meshopt' };

  it('writes each level at the size and pivot asked for, checked against those bounds (and refused by the unit cube)', async () => {
    const sizes: number[] = [];
    for (const format of ['glb', 'glb_lod1', 'glb_lod2'] as const) {
      const spec: ArtefactSpec = { format, mesh: request };
      const bytes = await formats[format].encode(asset, spec, env);
      expect(await formats[format].violation(bytes, spec)).toBeNull();
      expect(await formats[format].violation(bytes)).toMatch(/^the mesh spans/);
      const mesh = await decodeGlb(bytes);
      const { min, max } = meshBounds(mesh);
      expect(Math.max(max[0] - min[0], max[1] - min[1], max[2] - min[2])).toBeCloseTo(2, 3);
      expect(min[1]).toBeCloseTo(0, 3);
      sizes.push(triangleCount(mesh));
    }
    expect(sizes[0]).toBeLessThanOrEqual(4000);
    expect(sizes[1]).toBeLessThanOrEqual(Math.round(sizes[0] * 0.5));
    expect(sizes[2]).toBeLessThanOrEqual(Math.round(sizes[0] * 0.25));
    expect(sizes[2]).toBeGreaterThan(Math.round(sizes[0] * 0.2));
    // Without options, glb is the job's mesh as today.
    const plain = await formats.glb.encode(asset, { format: 'glb' }, env);
    expect(triangleCount(await decodeGlb(plain))).toBe(triangleCount(sphere));
  });

  it('says why a request cannot be met, for a 400 before any job', () => {
    const limits = { maxFaces: 100_000 };
    expect(specViolation({ format: 'glb_lod2', mesh: { lods: [1, 0.5] } }, limits)).toBe(
      'glb_lod2 is level 3 of the LOD chain: lods must list at least 3 levels (for example [1, 0.5, 0.25, 0.1])',
    );
    expect(specViolation({ format: 'glb_lod1' }, limits)).toMatch(/lods must list at least 2 levels/);
    expect(specViolation({ format: 'glb', mesh: { compression: 'zip' as never } }, limits)).toBe(
      'compression must be one of none, meshopt, draco',
    );
    expect(specViolation({ format: 'glb', mesh: { faces: 200_000 } }, limits)).toMatch(/faces must be a whole number from 500 to 100000/);
    expect(specViolation({ format: 'spz', spzVersion: 5 as never }, limits)).toBe('spz_version must be one of 3, 4');
    expect(specViolation({ format: 'ply', spzVersion: 4 }, limits)).toBe('spz_version applies to spz artefacts only');
    expect(specViolation({ format: 'glb_lod1', mesh: request }, limits)).toBeNull();
  });

  it('keys each variant apart in the cache, and names files by their longest extension', () => {
    expect(specKey({ format: 'glb' }, 'r')).toBe('glb');
    expect(specKey({ format: 'glb', mesh: request }, 'r')).not.toBe(
      specKey({ format: 'glb', mesh: { ...request, compression: 'draco' } }, 'r'),
    );
    expect(specKey({ format: 'spz', spzVersion: 3 }, 'r')).toBe('spz');
    expect(specKey({ format: 'spz', spzVersion: 4 }, 'r')).toBe('spz:v4');
    expect(formatForPath(formats, 'chair.lod2.glb')!.name).toBe('glb_lod2');
    expect(formatForPath(formats, 'chair.splat.glb')!.name).toBe('glb_splat');
    expect(formatForPath(formats, 'chair.glb')!.name).toBe('glb');
    expect(formatForPath(formats, 'chair.obj.zip')!.name).toBe('obj');
  });
});

describe('OBJ zip', () => {
  const limits = { maxBytes: 50e6, maxUnzippedBytes: 200e6 };

  it('holds model.obj, model.mtl and the baked texture the MTL names; its check reads every face', async () => {
    const bytes = await formats.obj.encode(asset, { format: 'obj', mesh: { faces: 2000, sizeM: 1.5, pivot: 'bottom' } }, env);
    expect(await formats.obj.violation(bytes)).toBeNull();
    const files = unzipSync(bytes);
    expect(Object.keys(files).sort()).toEqual(['model.mtl', 'model.obj', 'texture.png']);
    const contents = inspectObjZip(bytes, limits);
    expect(contents.triangles).toBeLessThanOrEqual(2000);
    expect(contents.triangles).toBeGreaterThan(1800);
    const obj = new TextDecoder().decode(files['model.obj']);
    expect(obj).toMatch(/^mtllib model\.mtl$/m);
    expect(obj).toMatch(/^usemtl fast3d$/m);
    expect(new TextDecoder().decode(files['model.mtl'])).toMatch(/^map_Kd texture\.png$/m);
    // The vertices are placed as asked: the lowest y is 0, the largest side 1.5.
    const ys = [...obj.matchAll(/^v \S+ (\S+) \S+$/gm)].map((m) => Number(m[1]));
    expect(Math.min(...ys)).toBeCloseTo(0, 5);
    expect(Math.max(...ys)).toBeCloseTo(1.5, 4);
  });

  it('refuses zips that are not a whole, consistent OBJ, MTL and texture', async () => {
    const bytes = await encodeObjZip(sphereMesh(16, 8, 0.5, true));
    const files = unzipSync(bytes);
    const text = (name: string) => new TextDecoder().decode(files[name]);
    const rezip = (changes: Record<string, Uint8Array | undefined>) => {
      const next: Record<string, Uint8Array> = {};
      for (const [name, data] of Object.entries({ ...files, ...changes })) if (data) next[name] = data;
      return objZipViolation(zipSync(next), limits);
    };
    const enc = (s: string) => new TextEncoder().encode(s);
    expect(objZipViolation(bytes, limits)).toBeNull();
    expect(objZipViolation(bytes.subarray(0, bytes.length - 30), limits)).toMatch(/^not a readable zip/);
    expect(rezip({ 'model.obj': enc(`${text('model.obj')}f 1/1/1 2/2/2 9999/1/1\n`) })).toMatch(
      /corner 9999\/1\/1 names an element the file does not have/,
    );
    expect(rezip({ 'model.obj': enc(text('model.obj').replace(/^v (\S+)/m, 'v nan')) })).toMatch(/v needs 3 finite numbers/);
    expect(rezip({ 'texture.png': undefined })).toBe('model.mtl names "texture.png", which the zip does not hold');
    expect(rezip({ 'texture.png': files['texture.png'].subarray(0, 100) })).toMatch(/^texture\.png is no whole PNG/);
    expect(rezip({ 'notes.txt': enc('hello') })).toBe('the zip holds files nothing names: notes.txt');
    expect(rezip({ 'model.obj': undefined, 'dir/model.obj': files['model.obj'] })).toMatch(/not a plain file name/);
    expect(rezip({ 'model.obj': enc(text('model.obj').replace('usemtl fast3d', 'usemtl other')) })).toMatch(
      /usemtl names other, which model\.mtl does not define/,
    );
    expect(objZipViolation(bytes, { maxBytes: 50e6, maxUnzippedBytes: 1000 })).toMatch(/declare more than 1000 bytes/);
  });
});

describe('glb_splat and SPZ version 4 through the registry', () => {
  it('writes and checks a splat GLB, and reads it back', async () => {
    const bytes = await formats.glb_splat.encode(asset, { format: 'glb_splat' }, env);
    expect(formats.glb_splat.kind).toBe('splats');
    expect(await formats.glb_splat.violation(bytes)).toBeNull();
    expect(formats.glb_splat.decodeCloud!(bytes).count).toBe(2000);
    expect(await formats.glb.violation(bytes)).toMatch(/^the Khronos glTF validator reports 4 errors/);
  });

  it('writes SPZ version 4 when the spec asks, version 3 otherwise', async () => {
    const v4 = await formats.spz.encode(asset, { format: 'spz', spzVersion: 4 }, env);
    const v3 = await formats.spz.encode(asset, { format: 'spz' }, env);
    expect(new DataView(v4.buffer, v4.byteOffset).getUint32(4, true)).toBe(4);
    expect([v3[0], v3[1]]).toEqual([0x1f, 0x8b]);
    expect(await formats.spz.violation(v4)).toBeNull();
    expect(formats.spz.decodeCloud!(v4).count).toBe(2000);
  });
});
