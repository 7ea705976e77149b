/**
 * OBJ with its MTL and texture, as one zip (fflate), for the tools that read OBJ (Blender, Godot, Unity):
 *
 *   model.obj   v x y z / vt u v / vn x y z, then `f v/vt/vn` triangles (counter-clockwise, 1-based)
 *   model.mtl   one material, `map_Kd texture.png`
 *   texture.png the base colour
 *
 * OBJ has no standard vertex colours (the `v x y z r g b` extension is not read by every tool, Blender 3.4's
 * `import_scene.obj` among them), so a mesh with vertex colours is baked into a texture first (mesh/bake.ts). OBJ's
 * texture origin is the bottom-left corner, so v is flipped from glTF's. Axes stay glTF's (+Y up, front +Z),
 * which is what OBJ importers assume by default.
 */
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { encodePng } from '../image/codec.js';
import { bakeVertexColours, maxBakedTriangles } from '../mesh/bake.js';
import { triangleCount, vertexCount, vertexNormals, type TriangleMesh } from '../mesh/mesh.js';
import { pngViolation } from './containers.js';

export const OBJ_NAME = 'model.obj';
export const MTL_NAME = 'model.mtl';
export const TEXTURE_NAME = 'texture.png';
const MATERIAL = 'fast3d';
/** Sides tried, smallest first, when a coloured mesh is baked for OBJ without a texture size asked for. */
const BAKE_SIDES = [256, 512, 1024, 2048, 4096];
/** Texels a triangle's cell gets at least, when a side allows (a little room for mipmaps before cells mix). */
const PREFERRED_CELL = 4;

/** The smallest side whose cells are PREFERRED_CELL texels for these triangles, else the smallest that holds them. */
function bakeSide(triangles: number): number {
  const grid = Math.ceil(Math.sqrt(triangles));
  return (
    BAKE_SIDES.find((s) => Math.floor(s / grid) >= PREFERRED_CELL) ??
    BAKE_SIDES.find((s) => maxBakedTriangles(s) >= triangles) ??
    BAKE_SIDES[BAKE_SIDES.length - 1]
  );
}

const num = (v: number): string => String(Number(v.toPrecision(7)));

/** The OBJ text of a textured mesh (uvs), with normals; references model.mtl and its one material. */
function objText(mesh: TriangleMesh): string {
  const n = vertexCount(mesh);
  const normals = mesh.normals ?? vertexNormals(mesh);
  const lines: string[] = ['# fast3d', `mtllib ${MTL_NAME}`, 'o fast3d'];
  const p = mesh.positions;
  for (let v = 0; v < n; v++) lines.push(`v ${num(p[v * 3])} ${num(p[v * 3 + 1])} ${num(p[v * 3 + 2])}`);
  const uvs = mesh.uvs!;
  for (let v = 0; v < n; v++) lines.push(`vt ${num(uvs[v * 2])} ${num(1 - uvs[v * 2 + 1])}`);
  for (let v = 0; v < n; v++) lines.push(`vn ${num(normals[v * 3])} ${num(normals[v * 3 + 1])} ${num(normals[v * 3 + 2])}`);
  lines.push(`usemtl ${MATERIAL}`, 's 1');
  const ix = mesh.indices;
  for (let t = 0; t < ix.length; t += 3) {
    const a = ix[t] + 1,
      b = ix[t + 1] + 1,
      c = ix[t + 2] + 1;
    lines.push(`f ${a}/${a}/${a} ${b}/${b}/${b} ${c}/${c}/${c}`);
  }
  return `${lines.join('\n')}\n`;
}

const MTL_TEXT = [
  '# fast3d',
  `newmtl ${MATERIAL}`,
  'Ka 0 0 0',
  'Kd 1 1 1',
  'Ks 0 0 0',
  'd 1',
  'illum 1',
  `map_Kd ${TEXTURE_NAME}`,
  '',
].join('\n');

/**
 * The zip of a mesh as OBJ, MTL and PNG texture. A mesh with vertex colours and no texture is baked first, at
 * `textureSize` or the smallest of 256 to 4096 that gives each triangle 4 x 4 texels (or at least holds them); a mesh with neither gets a white
 * texture. Throws a RangeError when the triangles do not fit the largest texture.
 */
export async function encodeObjZip(mesh: TriangleMesh, options: { textureSize?: number } = {}): Promise<Uint8Array> {
  let textured = mesh;
  if (!mesh.texture || !mesh.uvs) {
    const side = options.textureSize ?? bakeSide(triangleCount(mesh));
    const colours = mesh.colours ?? new Float32Array(vertexCount(mesh) * 3).fill(1);
    textured = bakeVertexColours({ ...mesh, colours, uvs: undefined, texture: undefined }, side);
  }
  const files: Zippable = {
    [OBJ_NAME]: new TextEncoder().encode(objText(textured)),
    [MTL_NAME]: new TextEncoder().encode(MTL_TEXT),
    // PNG is compressed already: stored, not deflated again.
    [TEXTURE_NAME]: [await encodePng(textured.texture!), { level: 0 }],
  };
  return zipSync(files, { level: 6, mtime: new Date('2000-01-01T00:00:00Z') });
}

export interface ObjZipLimits {
  /** Largest zip, in bytes. */
  maxBytes: number;
  /** Largest total of the files once unzipped, in bytes. */
  maxUnzippedBytes: number;
}

/** What an OBJ zip holds, once checked. */
export interface ObjZipContents {
  vertices: number;
  triangles: number;
  texture: string;
}

/**
 * Why bytes may not leave with a 200 as an OBJ zip, or null: a zip whose entries declare sizes within the
 * limits (checked before anything is inflated) and inflate to them; exactly model.obj, model.mtl and the
 * texture the MTL names (a whole PNG), no paths; the OBJ's mtllib and usemtl name that MTL's material; every
 * `v`, `vt`, `vn` finite; every face a triangle whose indices name existing elements; at least one triangle.
 */
export function objZipViolation(bytes: Uint8Array, limits: ObjZipLimits): string | null {
  try {
    inspectObjZip(bytes, limits);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** The checked contents of an OBJ zip; throws an Error saying what is wrong (see objZipViolation). */
export function inspectObjZip(bytes: Uint8Array, limits: ObjZipLimits): ObjZipContents {
  if (bytes.length > limits.maxBytes) throw new Error(`the zip is ${bytes.length} bytes, over the limit of ${limits.maxBytes}`);
  let declared = 0;
  const sizes = new Map<string, number>();
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(bytes, {
      filter(file) {
        declared += file.originalSize;
        if (declared > limits.maxUnzippedBytes) throw new Error(`the zip's files declare more than ${limits.maxUnzippedBytes} bytes`);
        sizes.set(file.name, file.originalSize);
        return true;
      },
    });
  } catch (err) {
    throw new Error(`not a readable zip: ${(err as Error).message}`);
  }
  const names = Object.keys(files);
  for (const name of names) {
    if (name.includes('/') || name.includes('\\') || name.startsWith('.'))
      throw new Error(`the zip holds ${JSON.stringify(name.slice(0, 80))}, not a plain file name`);
    if (files[name].length !== sizes.get(name))
      throw new Error(`${name} inflates to ${files[name].length} bytes, its entry declares ${sizes.get(name)}`);
  }
  const objs = names.filter((n) => n.toLowerCase().endsWith('.obj')),
    mtls = names.filter((n) => n.toLowerCase().endsWith('.mtl'));
  if (objs.length !== 1 || mtls.length !== 1)
    throw new Error(`the zip holds ${objs.length} .obj and ${mtls.length} .mtl files; it must hold one of each`);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const mtl = decoder.decode(files[mtls[0]]);
  const material = /^newmtl\s+(\S+)\s*$/m.exec(mtl)?.[1];
  const texture = /^map_Kd\s+(\S+)\s*$/m.exec(mtl)?.[1];
  if (!material) throw new Error(`${mtls[0]} defines no material (newmtl)`);
  if (!texture) throw new Error(`${mtls[0]} names no base colour texture (map_Kd)`);
  if (!files[texture]) throw new Error(`${mtls[0]} names ${JSON.stringify(texture.slice(0, 80))}, which the zip does not hold`);
  const png = pngViolation(files[texture]);
  if (png) throw new Error(`${texture} is no whole PNG: ${png}`);
  const extra = names.filter((n) => n !== objs[0] && n !== mtls[0] && n !== texture);
  if (extra.length) throw new Error(`the zip holds files nothing names: ${extra.join(', ').slice(0, 120)}`);
  return { ...checkObj(decoder.decode(files[objs[0]]), objs[0], mtls[0], material), texture };
}

function checkObj(text: string, name: string, mtl: string, material: string): { vertices: number; triangles: number } {
  let v = 0,
    vt = 0,
    vn = 0,
    triangles = 0,
    mtllib = false,
    usemtl = false;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    const where = `${name} line ${i + 1}`;
    switch (parts[0]) {
      case 'v':
      case 'vn':
      case 'vt': {
        const values = parts.slice(1).map(Number);
        const width = parts[0] === 'vt' ? 2 : 3;
        if (values.length < width || !values.every(Number.isFinite)) throw new Error(`${where}: ${parts[0]} needs ${width} finite numbers`);
        if (parts[0] === 'v') v++;
        else if (parts[0] === 'vt') vt++;
        else vn++;
        break;
      }
      case 'f': {
        if (parts.length !== 4) throw new Error(`${where}: a face must be a triangle`);
        for (const corner of parts.slice(1)) {
          const [iv, it, ino] = corner.split('/').map((s) => (s === '' ? undefined : Number(s)));
          const ok = (index: number | undefined, count: number, optional: boolean) =>
            index === undefined ? optional : Number.isInteger(index) && index >= 1 && index <= count;
          if (!ok(iv, v, false) || !ok(it, vt, true) || !ok(ino, vn, true))
            throw new Error(`${where}: corner ${corner} names an element the file does not have`);
        }
        triangles++;
        break;
      }
      case 'mtllib':
        if (parts[1] !== mtl) throw new Error(`${where}: mtllib names ${parts[1]}, not ${mtl}`);
        mtllib = true;
        break;
      case 'usemtl':
        if (parts[1] !== material) throw new Error(`${where}: usemtl names ${parts[1]}, which ${mtl} does not define`);
        usemtl = true;
        break;
      default:
        break;
    }
  }
  if (!mtllib || !usemtl) throw new Error(`${name} does not use its material (mtllib and usemtl)`);
  if (triangles === 0) throw new Error(`${name} has no triangles`);
  return { vertices: v, triangles };
}
