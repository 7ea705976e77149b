/**
 * Gaussian splats in glTF: KHR_gaussian_splatting (a release candidate of the Khronos extension; three.js
 * 0.187's GLTFGaussianSplatLoaderExtension reads it). One POINTS primitive whose attributes are the splats:
 *
 *   POSITION                                    VEC3 float, the means
 *   KHR_gaussian_splatting:ROTATION             VEC4 float, unit quaternions in glTF order (x, y, z, w)
 *   KHR_gaussian_splatting:SCALE                VEC3 float, linear (exp of the PLY's log scales)
 *   KHR_gaussian_splatting:OPACITY              SCALAR float, linear in [0, 1] (sigmoid of the PLY's logit)
 *   KHR_gaussian_splatting:SH_DEGREE_0_COEF_0   VEC3 float, the DC coefficients as they are (colour = SH0 * C0 + 0.5)
 *   COLOR_0                                     VEC4 unsigned byte normalized, the fallback: linear colour, opacity
 *
 * and the extension on the primitive: kernel "ellipse", colorSpace "srgb_rec709_display" (splats are trained
 * on sRGB pictures), projection "perspective", sortingMethod "cameraDistance". glTF-Transform 4.5 drops
 * extensions it does not know on write, so the extension is registered here (a property per primitive).
 * Positions are written as the cloud has them (no node transform), in glTF's axes: +Y up, front toward +Z.
 */
import {
  Document,
  Extension,
  ExtensionProperty,
  Logger,
  NodeIO,
  Primitive,
  type IProperty,
  type ReaderContext,
  type WriterContext,
} from '@gltf-transform/core';
import { allocateCloud, SH_C0, type GaussianCloud } from '../splat/cloud.js';
import { srgbToLinear } from './glb.js';
import { glbBounds, glbContainerViolation } from './glb-limits.js';

export const KHR_GAUSSIAN_SPLATTING = 'KHR_gaussian_splatting';
export const SPLAT_ATTRIBUTES = {
  rotation: `${KHR_GAUSSIAN_SPLATTING}:ROTATION`,
  scale: `${KHR_GAUSSIAN_SPLATTING}:SCALE`,
  opacity: `${KHR_GAUSSIAN_SPLATTING}:OPACITY`,
  sh0: `${KHR_GAUSSIAN_SPLATTING}:SH_DEGREE_0_COEF_0`,
} as const;

interface ISplatting extends IProperty {
  kernel: string;
  colorSpace: string;
  projection: string;
  sortingMethod: string;
}

type SplattingKey = 'kernel' | 'colorSpace' | 'projection' | 'sortingMethod';
const SPLATTING_KEYS: SplattingKey[] = ['kernel', 'colorSpace', 'projection', 'sortingMethod'];

/** The extension's object on a primitive: how its points are drawn as Gaussians. */
export class GaussianSplatting extends ExtensionProperty<ISplatting> {
  static override EXTENSION_NAME = KHR_GAUSSIAN_SPLATTING;
  declare extensionName: string;
  declare propertyType: 'GaussianSplatting';
  declare parentTypes: ['Primitive'];

  protected override init(): void {
    this.extensionName = KHR_GAUSSIAN_SPLATTING;
    this.propertyType = 'GaussianSplatting';
    this.parentTypes = ['Primitive'];
  }

  protected override getDefaults(): ISplatting {
    return Object.assign(super.getDefaults() as IProperty, {
      kernel: 'ellipse',
      colorSpace: 'srgb_rec709_display',
      projection: 'perspective',
      sortingMethod: 'cameraDistance',
    });
  }

  getValue(key: SplattingKey): string {
    return this.get(key);
  }

  setValue(key: SplattingKey, value: string): this {
    return this.set(key, value);
  }
}

/** KHR_gaussian_splatting for glTF-Transform: reads and writes the primitive's extension object. */
export class KHRGaussianSplatting extends Extension {
  static override EXTENSION_NAME = KHR_GAUSSIAN_SPLATTING;
  public override readonly extensionName = KHR_GAUSSIAN_SPLATTING;

  createSplatting(): GaussianSplatting {
    return new GaussianSplatting(this.document.getGraph());
  }

  read(context: ReaderContext): this {
    (context.jsonDoc.json.meshes ?? []).forEach((meshDef, m) => {
      (meshDef.primitives ?? []).forEach((primitiveDef, p) => {
        const def = primitiveDef.extensions?.[KHR_GAUSSIAN_SPLATTING] as Partial<ISplatting> | undefined;
        if (!def) return;
        const splatting = this.createSplatting();
        for (const key of SPLATTING_KEYS) if (typeof def[key] === 'string') splatting.setValue(key, def[key]);
        context.meshes[m].listPrimitives()[p].setExtension(KHR_GAUSSIAN_SPLATTING, splatting);
      });
    });
    return this;
  }

  write(context: WriterContext): this {
    for (const mesh of this.document.getRoot().listMeshes()) {
      const meshIndex = context.meshIndexMap.get(mesh);
      if (meshIndex === undefined) continue;
      mesh.listPrimitives().forEach((primitive, p) => {
        const splatting = primitive.getExtension<GaussianSplatting>(KHR_GAUSSIAN_SPLATTING);
        if (!splatting) return;
        const primitiveDef = context.jsonDoc.json.meshes![meshIndex].primitives[p];
        primitiveDef.extensions ??= {};
        primitiveDef.extensions[KHR_GAUSSIAN_SPLATTING] = Object.fromEntries(SPLATTING_KEYS.map((key) => [key, splatting.getValue(key)]));
      });
    }
    return this;
  }
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/** The KHR_gaussian_splatting GLB of a cloud (SH degree 0: our clouds have no higher bands). */
export async function encodeSplatGlb(cloud: GaussianCloud): Promise<Uint8Array> {
  const n = cloud.count;
  if (n === 0) throw new RangeError('a splat GLB needs at least one Gaussian');
  const c = cloud.columns;
  const positions = new Float32Array(n * 3),
    rotations = new Float32Array(n * 4),
    scales = new Float32Array(n * 3);
  const opacities = new Float32Array(n),
    sh0 = new Float32Array(n * 3),
    colours = new Uint8Array(n * 4);
  const dc = [c.f_dc_0, c.f_dc_1, c.f_dc_2];
  for (let i = 0; i < n; i++) {
    positions[i * 3] = c.x[i];
    positions[i * 3 + 1] = c.y[i];
    positions[i * 3 + 2] = c.z[i];
    // PLY keeps w first (rot_0); glTF's quaternions are (x, y, z, w), and the extension wants them unit length.
    const w = c.rot_0[i],
      x = c.rot_1[i],
      y = c.rot_2[i],
      z = c.rot_3[i];
    const norm = Math.hypot(x, y, z, w);
    if (norm > 0) rotations.set([x / norm, y / norm, z / norm, w / norm], i * 4);
    else rotations.set([0, 0, 0, 1], i * 4);
    scales[i * 3] = Math.exp(c.scale_0[i]);
    scales[i * 3 + 1] = Math.exp(c.scale_1[i]);
    scales[i * 3 + 2] = Math.exp(c.scale_2[i]);
    opacities[i] = sigmoid(c.opacity[i]);
    for (let k = 0; k < 3; k++) {
      sh0[i * 3 + k] = dc[k][i];
      const srgb = Math.min(1, Math.max(0, dc[k][i] * SH_C0 + 0.5));
      colours[i * 4 + k] = Math.round(srgbToLinear(srgb) * 255);
    }
    colours[i * 4 + 3] = Math.round(opacities[i] * 255);
  }

  const doc = new Document();
  doc.setLogger(new Logger(Logger.Verbosity.WARN));
  doc.getRoot().getAsset().generator = 'fast3d';
  const buffer = doc.createBuffer();
  const accessor = (type: 'VEC3' | 'VEC4' | 'SCALAR', array: Float32Array | Uint8Array) =>
    doc.createAccessor().setType(type).setArray(array).setBuffer(buffer);
  const extension = doc.createExtension(KHRGaussianSplatting);
  const primitive = doc
    .createPrimitive()
    .setMode(Primitive.Mode.POINTS)
    .setAttribute('POSITION', accessor('VEC3', positions))
    .setAttribute('COLOR_0', accessor('VEC4', colours).setNormalized(true))
    .setAttribute(SPLAT_ATTRIBUTES.scale, accessor('VEC3', scales))
    .setAttribute(SPLAT_ATTRIBUTES.rotation, accessor('VEC4', rotations))
    .setAttribute(SPLAT_ATTRIBUTES.opacity, accessor('SCALAR', opacities))
    .setAttribute(SPLAT_ATTRIBUTES.sh0, accessor('VEC3', sh0))
    .setExtension(KHR_GAUSSIAN_SPLATTING, extension.createSplatting());
  const node = doc.createNode('fast3d').setMesh(doc.createMesh('fast3d').addPrimitive(primitive));
  doc.getRoot().setDefaultScene(doc.createScene('fast3d').addChild(node));
  return new NodeIO().registerExtensions([KHRGaussianSplatting]).writeBinary(doc);
}

const SEMANTIC_POINTER =
  /^\/meshes\/\d+\/primitives\/\d+\/attributes\/KHR_gaussian_splatting:(ROTATION|SCALE|OPACITY|SH_DEGREE_[0-3]_COEF_\d)$/;

/** An error the validator gives only because it does not know the extension's attribute names. */
function isExtensionSemantic(code: string, pointer: string | undefined): boolean {
  return code === 'MESH_PRIMITIVE_INVALID_ATTRIBUTE' && pointer !== undefined && SEMANTIC_POINTER.test(pointer);
}

/** Most splats a splat GLB may hold (SPZ's bound). */
export const MAX_SPLAT_GLB_POINTS = 10_000_000;

type Json = Record<string, unknown>;

/** A float attribute of our own layout: a tightly packed view (or one with a stride) in the BIN chunk. */
function floats(json: Json, bin: Uint8Array, index: unknown, type: string, count: number, name: string): Float32Array {
  const accessors = json.accessors as Json[] | undefined;
  const accessor = Number.isInteger(index) ? accessors?.[index as number] : undefined;
  if (!accessor) throw new RangeError(`the splat primitive has no ${name} attribute`);
  if (accessor.type !== type || accessor.componentType !== 5126) throw new RangeError(`${name} must be a ${type} of floats`);
  if (accessor.count !== count) throw new RangeError(`${name} has ${accessor.count} elements, POSITION has ${count}`);
  const views = json.bufferViews as Json[] | undefined;
  const view = Number.isInteger(accessor.bufferView) ? views?.[accessor.bufferView as number] : undefined;
  if (view?.buffer !== 0) throw new RangeError(`${name} is not stored in the GLB's BIN chunk`);
  const width = { SCALAR: 1, VEC3: 3, VEC4: 4 }[type]!;
  const stride = ((view.byteStride as number | undefined) ?? width * 4) / 4;
  const start = ((view.byteOffset as number | undefined) ?? 0) + ((accessor.byteOffset as number | undefined) ?? 0);
  if (start % 4 !== 0 || !Number.isInteger(stride) || stride < width) throw new RangeError(`${name} is not aligned to 4 bytes`);
  // glbBounds has checked the view holds the accessor, and the view the buffer.
  const words = new Float32Array(bin.buffer.slice(bin.byteOffset + start, bin.byteOffset + start + ((count - 1) * stride + width) * 4));
  const out = new Float32Array(count * width);
  for (let i = 0; i < count; i++) for (let k = 0; k < width; k++) out[i * width + k] = words[i * stride + k];
  return out;
}

/** What a splat GLB holds, read without glTF-Transform (synchronously, as splat formats are read back). */
export interface SplatGlb {
  count: number;
  positions: Float32Array;
  rotations: Float32Array;
  scales: Float32Array;
  opacities: Float32Array;
  sh0: Float32Array;
  extension: Json;
}

/**
 * Reads a KHR_gaussian_splatting GLB of float attributes (what encodeSplatGlb writes), within the GLB bounds:
 * one mesh, one POINTS primitive with the extension, each attribute with one element per point. Throws a
 * RangeError saying what is wrong.
 */
export function readSplatGlb(bytes: Uint8Array): SplatGlb {
  const bounds = glbBounds(bytes);
  if ('violation' in bounds) throw new RangeError(bounds.violation);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const jsonLength = view.getUint32(12, true);
  const json = JSON.parse(new TextDecoder().decode(bytes.subarray(20, 20 + jsonLength))) as Json;
  const binAt = 20 + jsonLength;
  const bin = binAt + 8 <= bytes.length ? bytes.subarray(binAt + 8, binAt + 8 + view.getUint32(binAt, true)) : new Uint8Array(0);
  const meshes = (json.meshes as Json[] | undefined) ?? [];
  if (meshes.length !== 1) throw new RangeError(`a splat GLB has one mesh; this one has ${meshes.length}`);
  const primitives = (meshes[0].primitives as Json[] | undefined) ?? [];
  if (primitives.length !== 1) throw new RangeError(`a splat GLB's mesh has one primitive; this one has ${primitives.length}`);
  const primitive = primitives[0];
  if (primitive.mode !== Primitive.Mode.POINTS) throw new RangeError('the splat primitive is not POINTS (mode 0)');
  const extension = (primitive.extensions as Json | undefined)?.[KHR_GAUSSIAN_SPLATTING] as Json | undefined;
  if (!extension) throw new RangeError(`the primitive has no ${KHR_GAUSSIAN_SPLATTING} extension`);
  if (extension.kernel !== 'ellipse') throw new RangeError(`kernel ${JSON.stringify(extension.kernel)} is not "ellipse"`);
  if (typeof extension.colorSpace !== 'string') throw new RangeError('the extension has no colorSpace');
  const attributes = primitive.attributes as Json;
  const count = ((json.accessors as Json[] | undefined)?.[attributes.POSITION as number]?.count as number | undefined) ?? 0;
  if (!(count > 0)) throw new RangeError('the splat primitive has no points');
  if (count > MAX_SPLAT_GLB_POINTS) throw new RangeError(`${count} points is over the limit of ${MAX_SPLAT_GLB_POINTS}`);
  return {
    count,
    positions: floats(json, bin, attributes.POSITION, 'VEC3', count, 'POSITION'),
    rotations: floats(json, bin, attributes[SPLAT_ATTRIBUTES.rotation], 'VEC4', count, SPLAT_ATTRIBUTES.rotation),
    scales: floats(json, bin, attributes[SPLAT_ATTRIBUTES.scale], 'VEC3', count, SPLAT_ATTRIBUTES.scale),
    opacities: floats(json, bin, attributes[SPLAT_ATTRIBUTES.opacity], 'SCALAR', count, SPLAT_ATTRIBUTES.opacity),
    sh0: floats(json, bin, attributes[SPLAT_ATTRIBUTES.sh0], 'VEC3', count, SPLAT_ATTRIBUTES.sh0),
    extension,
  };
}

/**
 * Why bytes may not leave with a 200 as a splat GLB, or null: the container and bounds, the Khronos validator
 * (no errors; it does not know the extension and says so), then the extension's own rules: one POINTS
 * primitive, each attribute per point, finite values, unit rotations, scales not negative, opacities in [0, 1],
 * and no node transform.
 */
export async function splatGlbViolation(bytes: Uint8Array, maxBytes: number): Promise<string | null> {
  if (bytes.length > maxBytes) return `the splat GLB is ${bytes.length} bytes, over the ${maxBytes}-byte limit`;
  const container = glbContainerViolation(bytes);
  if (container) return container;
  let splats: SplatGlb;
  try {
    splats = readSplatGlb(bytes);
  } catch (err) {
    return (err as Error).message;
  }
  const { validateBytes } = await import('gltf-validator');
  const report = await validateBytes(bytes, { format: 'glb', writeTimestamp: false, maxIssues: 100 });
  // The validator predates the extension: it calls the attribute names the extension defines invalid (glTF
  // lets extensions define semantics). Those are the only errors let through, by their exact pointer.
  const errors = report.issues.messages.filter((m) => m.severity === 0 && !isExtensionSemantic(m.code, m.pointer));
  const unlisted = report.issues.numErrors - report.issues.messages.filter((m) => m.severity === 0).length;
  if (errors.length > 0 || unlisted > 0) {
    const first = errors[0];
    return `the Khronos glTF validator reports ${errors.length + unlisted} error(s)${first ? `: ${first.code} at ${first.pointer ?? ''}: ${first.message}` : ''}`;
  }
  const json = JSON.parse(
    new TextDecoder().decode(bytes.subarray(20, 20 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(12, true))),
  ) as Json;
  const nodes = (json.nodes as Json[] | undefined) ?? [];
  if (nodes.some((node) => ['matrix', 'translation', 'rotation', 'scale'].some((k) => node[k] !== undefined)))
    return 'a node of the splat GLB has a transform';
  const { count, positions, rotations, scales, opacities, sh0 } = splats;
  for (const [name, column] of [
    ['POSITION', positions],
    ['SCALE', scales],
    ['ROTATION', rotations],
    ['OPACITY', opacities],
    ['SH_DEGREE_0_COEF_0', sh0],
  ] as const) {
    if (!column.every(Number.isFinite)) return `${name} holds a value that is not a finite number`;
  }
  for (let i = 0; i < count; i++) {
    const q = Math.hypot(rotations[i * 4], rotations[i * 4 + 1], rotations[i * 4 + 2], rotations[i * 4 + 3]);
    if (Math.abs(q - 1) > 1e-3) return `the rotation of splat ${i} is not a unit quaternion (length ${q})`;
    if (scales[i * 3] < 0 || scales[i * 3 + 1] < 0 || scales[i * 3 + 2] < 0) return `splat ${i} has a negative scale`;
    if (!(opacities[i] >= 0 && opacities[i] <= 1)) return `the opacity of splat ${i} is outside [0, 1]`;
  }
  return null;
}

/** A splat GLB back into a cloud in raw PLY space (log scales, logit opacities kept finite, w first). */
export function decodeSplatGlb(bytes: Uint8Array): GaussianCloud {
  const s = readSplatGlb(bytes);
  const cloud = allocateCloud(s.count);
  const c = cloud.columns;
  for (let i = 0; i < s.count; i++) {
    c.x[i] = s.positions[i * 3];
    c.y[i] = s.positions[i * 3 + 1];
    c.z[i] = s.positions[i * 3 + 2];
    c.rot_1[i] = s.rotations[i * 4];
    c.rot_2[i] = s.rotations[i * 4 + 1];
    c.rot_3[i] = s.rotations[i * 4 + 2];
    c.rot_0[i] = s.rotations[i * 4 + 3];
    // A zero scale (a flat splat) would be -Infinity in a PLY: the smallest log scale a float holds instead.
    c.scale_0[i] = Math.log(Math.max(1e-30, s.scales[i * 3]));
    c.scale_1[i] = Math.log(Math.max(1e-30, s.scales[i * 3 + 1]));
    c.scale_2[i] = Math.log(Math.max(1e-30, s.scales[i * 3 + 2]));
    const alpha = Math.min(1 - 1e-6, Math.max(1e-6, s.opacities[i]));
    c.opacity[i] = Math.log(alpha / (1 - alpha));
    c.f_dc_0[i] = s.sh0[i * 3];
    c.f_dc_1[i] = s.sh0[i * 3 + 1];
    c.f_dc_2[i] = s.sh0[i * 3 + 2];
  }
  return cloud;
}
