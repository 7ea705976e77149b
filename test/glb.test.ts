/** GLB writing, reading and the check before any GLB 200, as the mesh competition and its viewers read them. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Document, NodeIO, Primitive } from '@gltf-transform/core';
import { validateBytes } from 'gltf-validator';
import sharp from 'sharp';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { run as check } from '../src/commands/check.js';
import { decodeGlb, encodeGlb, linearToSrgb, srgbToLinear } from '../src/mesh/glb.js';
import { centreAndFit, type TriangleMesh } from '../src/mesh/mesh.js';
import { glbViolation, inspectGlb } from '../src/mesh/rules.js';
import { buildGlb, parseGlb, readGlbIndependently } from './helpers/glb-chunks.js';

const RULES = { extent: 1, maxBytes: 200e6 };

/** A closed box (8 shared corners, 12 triangles wound outward), sides 2 x 1 x 0.5, off the origin. */
function box(): { positions: Float32Array; indices: Uint32Array } {
  const positions = new Float32Array(24);
  for (let i = 0; i < 8; i++) {
    positions[i * 3] = 3 + (i & 1) * 2;
    positions[i * 3 + 1] = -1 + ((i >> 1) & 1);
    positions[i * 3 + 2] = 0.25 + ((i >> 2) & 1) * 0.5;
  }
  const quads = [
    [0, 2, 6, 4],
    [1, 3, 7, 5],
    [0, 1, 5, 4],
    [2, 3, 7, 6],
    [0, 1, 3, 2],
    [4, 5, 7, 6],
  ];
  const centre = [4, -0.5, 0.5];
  const indices: number[] = [];
  const p = (i: number, a: number) => positions[i * 3 + a];
  for (const [a, b, c, d] of quads) {
    for (const [i, j, k] of [
      [a, b, c],
      [a, c, d],
    ]) {
      const u = [0, 1, 2].map((x) => p(j, x) - p(i, x)),
        v = [0, 1, 2].map((x) => p(k, x) - p(i, x));
      const n = [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]];
      const out = [0, 1, 2].map((x) => (p(i, x) + p(j, x) + p(k, x)) / 3 - centre[x]);
      indices.push(...(n[0] * out[0] + n[1] * out[1] + n[2] * out[2] > 0 ? [i, j, k] : [i, k, j]));
    }
  }
  return { positions, indices: Uint32Array.from(indices) };
}

function colouredBox(extent = 1): TriangleMesh {
  const mesh = { ...box(), colours: new Float32Array(24) };
  for (let i = 0; i < 24; i++) mesh.colours[i] = ((i * 37) % 256) / 255;
  centreAndFit(mesh, extent);
  return mesh;
}

function texturedBox(): TriangleMesh {
  const data = new Uint8ClampedArray(4 * 3 * 4);
  for (let i = 0; i < data.length; i++) data[i] = (i * 53) % 256;
  const uvs = new Float32Array(16);
  for (let i = 0; i < 16; i++) uvs[i] = (i % 5) / 4;
  const mesh = { ...box(), uvs, texture: { width: 4, height: 3, data } };
  centreAndFit(mesh, 1);
  return mesh;
}

const validate = (bytes: Uint8Array) => validateBytes(bytes, { writeTimestamp: false });
const io = () => new NodeIO();

/** A document with one triangle in each of `meshes` meshes, side by side around the origin. */
async function glbWithMeshes(meshes: number): Promise<Uint8Array> {
  const doc = new Document();
  const buffer = doc.createBuffer();
  const scene = doc.createScene();
  for (let m = 0; m < meshes; m++) {
    const dx = (m - (meshes - 1) / 2) * 0.3;
    const position = doc
      .createAccessor()
      .setType('VEC3')
      .setBuffer(buffer)
      .setArray(new Float32Array([dx - 0.1, -0.1, 0, dx + 0.1, -0.1, 0, dx, 0.1, 0]));
    const mesh = doc.createMesh().addPrimitive(doc.createPrimitive().setAttribute('POSITION', position));
    scene.addChild(doc.createNode().setMesh(mesh));
  }
  doc.getRoot().setDefaultScene(scene);
  return io().writeBinary(doc);
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  vi.restoreAllMocks();
});

describe('encodeGlb', () => {
  it('writes a coloured closed mesh that the Khronos validator accepts without errors or warnings', async () => {
    const bytes = await encodeGlb(colouredBox());
    const report = await validate(bytes);
    expect(report.issues.messages).toEqual([]);
    expect(report.issues.numErrors).toBe(0);
    expect(report.issues.numWarnings).toBe(0);
    expect(await glbViolation(bytes, RULES)).toBeNull();
  });

  it("writes one mesh whose declared POSITION bounds are the data's, inside the unit cube (read by hand)", async () => {
    const glb = readGlbIndependently(await encodeGlb(colouredBox()));
    expect(glb.meshes).toBe(1);
    expect(glb.json.asset.generator).toBe('fast3d');
    expect(glb.json.nodes).toHaveLength(1);
    expect(glb.transformed).toBe(false);
    expect(glb.json.meshes![0].primitives).toHaveLength(1);
    const attributes = Object.keys(glb.json.meshes![0].primitives[0].attributes).sort();
    expect(attributes).toEqual(['COLOR_0', 'NORMAL', 'POSITION']);
    const [position] = glb.positions;
    expect(position.count).toBe(8);
    expect(position.declared).toEqual(position.actual);
    for (let a = 0; a < 3; a++) {
      expect(position.actual.min[a]).toBeGreaterThanOrEqual(-0.5);
      expect(position.actual.max[a]).toBeLessThanOrEqual(0.5);
    }
    expect(position.actual.max[0] - position.actual.min[0]).toBeCloseTo(1, 6);
  });

  it('writes a textured mesh with TEXCOORD_0 and a PNG base colour texture on a rough, non-metallic material', async () => {
    const bytes = await encodeGlb(texturedBox());
    const report = await validate(bytes);
    expect(report.issues.numErrors).toBe(0);
    expect(report.issues.numWarnings).toBe(0);
    const { json } = parseGlb(bytes);
    expect(Object.keys(json.meshes![0].primitives[0].attributes).sort()).toEqual(['NORMAL', 'POSITION', 'TEXCOORD_0']);
    const images = json.images as { mimeType: string }[];
    expect(images.map((i) => i.mimeType)).toEqual(['image/png']);
    // glTF's defaults (metallic 1, roughness 1) apply to the factors a file leaves out.
    const [material] = json.materials as {
      pbrMetallicRoughness: { metallicFactor?: number; roughnessFactor?: number; baseColorTexture: unknown };
    }[];
    expect(material.pbrMetallicRoughness.metallicFactor).toBe(0);
    expect(material.pbrMetallicRoughness.roughnessFactor ?? 1).toBeGreaterThanOrEqual(0.9);
    expect(material.pbrMetallicRoughness.baseColorTexture).toBeDefined();
    expect(await glbViolation(bytes, RULES)).toBeNull();
  });

  it("stores COLOR_0 linear, as glTF asks, from the mesh's sRGB colours", async () => {
    const mesh = colouredBox();
    const { json, bin } = parseGlb(await encodeGlb(mesh));
    const accessor = json.accessors![json.meshes![0].primitives[0].attributes.COLOR_0];
    const view = json.bufferViews![accessor.bufferView!];
    const data = new DataView(bin!.buffer, bin!.byteOffset + (view.byteOffset ?? 0) + (accessor.byteOffset ?? 0));
    expect(accessor.componentType).toBe(5126);
    for (let i = 0; i < 24; i++) {
      const stored = data.getFloat32(Math.floor(i / 3) * (view.byteStride ?? 12) + (i % 3) * 4, true);
      expect(stored).toBeCloseTo(srgbToLinear(mesh.colours![i]), 6);
    }
    expect(linearToSrgb(srgbToLinear(0.5))).toBeCloseTo(0.5, 9);
  });
});

describe('decodeGlb', () => {
  it('round-trips positions, triangles and sRGB colours (within 1/255)', async () => {
    const mesh = colouredBox();
    const back = await decodeGlb(await encodeGlb(mesh));
    expect(back.positions).toEqual(mesh.positions);
    expect(back.indices).toEqual(mesh.indices);
    expect(back.uvs).toBeUndefined();
    for (let i = 0; i < 24; i++) expect(Math.abs(back.colours![i] - mesh.colours![i])).toBeLessThanOrEqual(1 / 255);
  });

  it("reads a GLB cut from a larger buffer at an offset that is not a multiple of 4 (a GPU worker's parts)", async () => {
    const glb = await encodeGlb(colouredBox());
    const parts = new Uint8Array(glb.length + 3);
    parts.set(glb, 3);
    const back = await decodeGlb(parts.subarray(3));
    expect(back.positions).toEqual(colouredBox().positions);
    expect(await glbViolation(parts.subarray(3), { extent: 1, maxBytes: 1e6 })).toBeNull();
  });

  it("round-trips a textured mesh's uvs and texture pixels", async () => {
    const mesh = texturedBox();
    const back = await decodeGlb(await encodeGlb(mesh));
    expect(back.colours).toBeUndefined();
    expect(back.uvs).toEqual(mesh.uvs);
    expect(back.texture!.width).toBe(4);
    expect(back.texture!.height).toBe(3);
    expect([...back.texture!.data]).toEqual([...mesh.texture!.data]);
  });

  it('reads a baked GLB: nested node transforms, several primitives merged, one shared JPEG texture', async () => {
    const jpeg = await sharp({ create: { width: 8, height: 4, channels: 3, background: { r: 200, g: 100, b: 50 } } })
      .jpeg()
      .toBuffer();
    const doc = new Document();
    const buffer = doc.createBuffer();
    const texture = doc.createTexture().setImage(new Uint8Array(jpeg)).setMimeType('image/jpeg');
    const material = doc.createMaterial().setBaseColorTexture(texture);
    const triangle = (z: number) =>
      doc
        .createPrimitive()
        .setMaterial(material)
        .setAttribute(
          'POSITION',
          doc
            .createAccessor()
            .setType('VEC3')
            .setBuffer(buffer)
            .setArray(new Float32Array([0, 0, z, 1, 0, z, 0, 1, z])),
        )
        .setAttribute(
          'TEXCOORD_0',
          doc
            .createAccessor()
            .setType('VEC2')
            .setBuffer(buffer)
            .setArray(new Float32Array([0, 0, 1, 0, 0, 1])),
        );
    const mesh = doc.createMesh().addPrimitive(triangle(0)).addPrimitive(triangle(1));
    const child = doc.createNode().setMesh(mesh).setScale([2, 2, 2]);
    const parent = doc.createNode().setTranslation([10, 0, 0]).addChild(child);
    doc.getRoot().setDefaultScene(doc.createScene().addChild(parent));
    const back = await decodeGlb(await io().writeBinary(doc));
    expect([...back.positions]).toEqual([10, 0, 0, 12, 0, 0, 10, 2, 0, 10, 0, 2, 12, 0, 2, 10, 2, 2]);
    expect([...back.indices]).toEqual([0, 1, 2, 3, 4, 5]);
    expect(back.uvs).toHaveLength(12);
    expect(back.texture).toMatchObject({ width: 8, height: 4 });
    expect(Math.abs(back.texture!.data[0] - 200)).toBeLessThanOrEqual(3);
  });

  it('turns normalised byte COLOR_0 and colour factors into sRGB vertex colours, and keeps winding under a mirror', async () => {
    const doc = new Document();
    const buffer = doc.createBuffer();
    const position = () =>
      doc
        .createAccessor()
        .setType('VEC3')
        .setBuffer(buffer)
        .setArray(new Float32Array([0, 0, 0, 1, 0, 0, 0, 1, 0]));
    const bytes = doc
      .createAccessor()
      .setType('VEC4')
      .setBuffer(buffer)
      .setNormalized(true)
      .setArray(new Uint8Array([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255]));
    const coloured = doc.createPrimitive().setAttribute('POSITION', position()).setAttribute('COLOR_0', bytes);
    const tinted = doc
      .createPrimitive()
      .setAttribute('POSITION', position())
      .setMaterial(doc.createMaterial().setBaseColorFactor([0.5, 0.5, 0.5, 1]));
    const points = doc.createPrimitive().setMode(Primitive.Mode.POINTS).setAttribute('POSITION', position());
    const mesh = doc.createMesh().addPrimitive(coloured).addPrimitive(tinted).addPrimitive(points);
    doc.getRoot().setDefaultScene(doc.createScene().addChild(doc.createNode().setMesh(mesh).setScale([-1, 1, 1])));
    const back = await decodeGlb(await io().writeBinary(doc));
    expect(back.positions).toHaveLength(18);
    expect(back.positions[3]).toBe(-1);
    expect([...back.indices]).toEqual([0, 2, 1, 3, 5, 4]);
    expect([...back.colours!.subarray(0, 9)]).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1]);
    expect(back.colours![9]).toBeCloseTo(linearToSrgb(0.5), 5);
  });

  it('refuses a file with no triangle geometry, and bytes that are no GLB, with a clear message', async () => {
    const doc = new Document();
    const position = doc
      .createAccessor()
      .setType('VEC3')
      .setBuffer(doc.createBuffer())
      .setArray(new Float32Array([0, 0, 0, 0.1, 0, 0]));
    const mesh = doc.createMesh().addPrimitive(doc.createPrimitive().setMode(Primitive.Mode.LINES).setAttribute('POSITION', position));
    doc.getRoot().setDefaultScene(doc.createScene().addChild(doc.createNode().setMesh(mesh)));
    const lines = await io().writeBinary(doc);
    await expect(decodeGlb(lines)).rejects.toThrow(/no triangle geometry/);
    expect(await glbViolation(lines, RULES)).toMatch(/no triangles/);
    await expect(decodeGlb(new TextEncoder().encode('solid cube\n'))).rejects.toThrow(
      /not a GLB: 11 bytes, shorter than the 12-byte GLB header/,
    );
  });
});

describe('glbViolation', () => {
  it('refuses a mesh larger than the extent, naming the axes and the cube', async () => {
    const message = await glbViolation(await encodeGlb(colouredBox(2)), RULES);
    expect(message).toMatch(/^the mesh spans x \[-1, 1\], outside \[-0\.5, 0\.5\] \(extent 1, raw vertices\)$/);
    expect(await glbViolation(await encodeGlb(colouredBox(2)), { ...RULES, extent: 2 })).toBeNull();
  });

  it('refuses an off-centre mesh that is inside the cube', async () => {
    const mesh = colouredBox(0.8);
    for (let i = 0; i < mesh.positions.length; i += 3) mesh.positions[i] += 0.1;
    const bytes = await encodeGlb(mesh);
    expect(await glbViolation(bytes, RULES)).toMatch(/off-centre: its bounding box's centre is \(0\.1, 0, 0\)/);
  });

  it('reads raw vertices as the judge does: a node transform is refused, and a node scaling a large mesh down does not make it fit', async () => {
    const moved = await io().readBinary(await encodeGlb(colouredBox()));
    moved.getRoot().listNodes()[0].setTranslation([0, 0.3, 0]);
    const movedBytes = await io().writeBinary(moved);
    expect((await inspectGlb(movedBytes, RULES)).violations).toEqual([
      'the node holding the mesh has a transform; the judge reads the raw vertices and ignores it, so the mesh must have none',
    ]);
    const shrunk = await io().readBinary(await encodeGlb(colouredBox(2)));
    shrunk.getRoot().listNodes()[0].setScale([0.5, 0.5, 0.5]);
    const result = await inspectGlb(await io().writeBinary(shrunk), RULES);
    expect(result.bounds!.max[0]).toBeCloseTo(1, 6);
    expect(result.violations[1]).toMatch(/^the mesh spans x \[-1, 1\], outside \[-0\.5, 0\.5\] \(extent 1, raw vertices\)$/);
  });

  it("refuses one mesh with two primitives (two materials): the judge's loader splits them into two geometries", async () => {
    const doc = await io().readBinary(await encodeGlb(colouredBox()));
    const mesh = doc.getRoot().listMeshes()[0];
    const first = mesh.listPrimitives()[0];
    mesh.addPrimitive(first.clone().setMaterial(doc.createMaterial('second')));
    const bytes = await io().writeBinary(doc);
    expect((await validate(bytes)).issues.numErrors).toBe(0);
    const result = await inspectGlb(bytes, RULES);
    expect(result).toMatchObject({ meshes: 1, primitives: 2 });
    expect(result.violations).toEqual([
      "the GLB's scene places 2 primitives (parts or materials); the judge's loader makes a geometry of each and wants exactly one",
    ]);
  });

  it('refuses a closed mesh wound inward (the judge culls back faces), and measures the winding of one wound outward', async () => {
    const outward = await inspectGlb(await encodeGlb(colouredBox()), RULES);
    expect(outward.violations).toEqual([]);
    expect(outward.winding!.volume).toBeCloseTo(1 * 0.5 * 0.25, 6);
    expect(outward.winding!.outwardShare).toBe(1);
    const inward = colouredBox();
    const flipped = { ...inward, indices: inward.indices.slice() };
    for (let t = 0; t < flipped.indices.length; t += 3)
      [flipped.indices[t + 1], flipped.indices[t + 2]] = [flipped.indices[t + 2], flipped.indices[t + 1]];
    const result = await inspectGlb(await encodeGlb(flipped), RULES);
    expect(result.winding!.volume).toBeCloseTo(-0.125, 6);
    expect(result.violations).toEqual([
      'the triangles are wound inward (signed volume -0.125, 0% of the area facing out): the judge culls back faces, so it would see the inside',
    ]);
  });

  it('checks the size and pivot a request asked for instead of the unit cube', async () => {
    const standing = colouredBox(2);
    for (let i = 1; i < standing.positions.length; i += 3) standing.positions[i] += 0.5; // y from 0 to 1: bottom centre at the origin
    const bytes = await encodeGlb(standing);
    expect(await glbViolation(bytes, { ...RULES, placement: { sizeM: 2, pivot: 'bottom' } })).toBeNull();
    expect(await glbViolation(bytes, RULES)).toMatch(/^the mesh spans x \[-1, 1\], y \[0, 1\], outside \[-0\.5, 0\.5\]/);
    expect(await glbViolation(bytes, { ...RULES, placement: { sizeM: 2, pivot: 'center' } })).toMatch(
      /off-centre: its bounding box's centre is \(0, 0\.5, 0\)/,
    );
    expect(await glbViolation(bytes, { ...RULES, placement: { sizeM: 3, pivot: 'bottom' } })).toBe(
      "the mesh's largest side is 2 m, not the 3 m asked for",
    );
    expect(await glbViolation(await encodeGlb(colouredBox(2)), { ...RULES, placement: { sizeM: 2, pivot: 'bottom' } })).toMatch(
      /^the mesh spans y \[-0\.5, 0\.5\], outside \[0, 2\] \(size 2 m, pivot bottom, raw vertices\)/,
    );
  });

  it('refuses a file with two meshes', async () => {
    const bytes = await glbWithMeshes(2);
    expect((await validate(bytes)).issues.numErrors).toBe(0);
    expect(await glbViolation(bytes, RULES)).toBe('the GLB has 2 meshes; the mesh competition wants exactly one');
    expect(await glbViolation(await glbWithMeshes(1), RULES)).toBeNull();
  });

  it('refuses truncated bytes and bytes that are no GLB', async () => {
    const bytes = await encodeGlb(colouredBox());
    expect(await glbViolation(bytes.subarray(0, bytes.length - 10), RULES)).toMatch(
      /^truncated GLB: the header declares \d+ bytes, the file has \d+/,
    );
    expect(await glbViolation(bytes.subarray(0, 8), RULES)).toMatch(/shorter than the 12-byte GLB header/);
    expect(await glbViolation(new TextEncoder().encode('ply\nformat binary_little_endian 1.0\n'), RULES)).toMatch(/magic "glTF"/);
  });

  it('refuses a file over the size limit before reading it', async () => {
    const bytes = await encodeGlb(colouredBox());
    expect(await glbViolation(bytes, { extent: 1, maxBytes: 100 })).toMatch(/^the GLB is 0\.0 MB, over the 0\.0 MB limit/);
    expect(await glbViolation(bytes, { extent: 1, maxBytes: bytes.length })).toBeNull();
  });

  it('refuses a file the Khronos validator rejects, quoting its first error with the pointer', async () => {
    const { json, bin } = parseGlb(await encodeGlb(colouredBox()));
    json.accessors![json.meshes![0].primitives[0].attributes.POSITION].max = [5, 5, 5];
    const bytes = buildGlb(json, bin);
    expect(readGlbIndependently(bytes).meshes).toBe(1);
    const message = await glbViolation(bytes, RULES);
    expect(message).toMatch(/^the Khronos glTF validator reports \d+ errors?: ACCESSOR_MAX_MISMATCH at \/accessors\/0\/max\/0: /);
  });

  it('inspectGlb gives the counts the CLI prints', async () => {
    const result = await inspectGlb(await encodeGlb(colouredBox()), RULES);
    expect(result).toMatchObject({
      validator: { errors: 0, warnings: 0 },
      meshes: 1,
      primitives: 1,
      triangles: 12,
      vertices: 8,
      violations: [],
    });
    expect(result.bounds!.max[0]).toBeCloseTo(0.5, 6);
  });
});

describe('fast3d check x.glb', () => {
  async function runCheck(...args: string[]): Promise<{ code: number; stdout: string }> {
    let stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      stdout += String(chunk);
      return true;
    });
    const code = await check(args);
    vi.restoreAllMocks();
    return { code, stdout };
  }

  it("prints the validator's counts, the mesh and the rules' verdict; exits 1 on a violation", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fast3d-glb-test-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'good.glb'), await encodeGlb(colouredBox()));
    writeFileSync(join(dir, 'big.glb'), await encodeGlb(colouredBox(2)));
    const good = await runCheck(join(dir, 'good.glb'));
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(
      /^ok {3}.*good\.glb: 1 mesh, 12 triangles, 8 vertices, bounds \[-0\.5, -0\.25, -0\.125\]\.\.\[0\.5, 0\.25, 0\.125\]; validator 0 errors, 0 warnings, 0 infos\n/,
    );
    const bad = await runCheck(join(dir, 'good.glb'), join(dir, 'big.glb'));
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/\nFAIL .*big\.glb: the mesh spans x \[-1, 1\]/);
    const json = await runCheck('--json', join(dir, 'big.glb'));
    const line = JSON.parse(json.stdout) as { ok: boolean; violations: string[]; validator: { errors: number } };
    expect(line.ok).toBe(false);
    expect(line.validator.errors).toBe(0);
    expect(line.violations[0]).toMatch(/outside \[-0\.5, 0\.5\]/);
  });
});
