/**
 * GLB variants for delivery, as transforms over the document encodeGlb makes: `meshopt`
 * (EXT_meshopt_compression over KHR_mesh_quantization) or `draco` (KHR_draco_mesh_compression), and WebP
 * textures (EXT_texture_webp). Every variant keeps what the judge's loader reads: one primitive, no node
 * transform, positions in metres as raw values. That is why the meshopt variant does not quantize positions
 * (glTF-Transform's `meshopt()` would, into integers with a dequantizing node transform): positions stay
 * float32, snapped to a grid of a power of two near 1/16384 of the mesh's extent, so their low mantissa bits are
 * zero and meshopt's byte-wise codec packs them nearly as well as integers. Normals, colours and uvs are
 * quantized. Draco decodes its quantized positions back to floats in metres itself.
 */
import { Logger } from '@gltf-transform/core';
import { EXTMeshoptCompression, KHRMeshQuantization } from '@gltf-transform/extensions';
import { draco, quantize, reorder } from '@gltf-transform/functions';
import { MeshoptEncoder } from 'meshoptimizer';
import { glbDocument, type GlbTextureFormat } from './glb.js';
import { writerIO } from './glb-io.js';
import { meshBounds, type TriangleMesh } from './mesh.js';

export const GLB_COMPRESSIONS = ['none', 'meshopt', 'draco'] as const;
export type GlbCompression = (typeof GLB_COMPRESSIONS)[number];

export interface GlbEncoding {
  compression: GlbCompression;
  /** The base colour texture's format, for a textured mesh (default png). */
  texture?: GlbTextureFormat;
}

/** Bits of position precision over the mesh's extent (glTF-Transform's and gltfpack's default is 14). */
export const POSITION_BITS = 14;

/** The GLB of a mesh in one of the delivery variants; `{ compression: 'none' }` is encodeGlb's file. */
export async function encodeGlbVariant(mesh: TriangleMesh, encoding: GlbEncoding): Promise<Uint8Array> {
  const { compression, texture = 'png' } = encoding;
  if (!GLB_COMPRESSIONS.includes(compression)) throw new RangeError(`compression must be one of ${GLB_COMPRESSIONS.join(', ')}`);
  const source = compression === 'meshopt' ? { ...mesh, positions: snappedPositions(mesh) } : mesh;
  const doc = await glbDocument(source, texture);
  doc.setLogger(new Logger(Logger.Verbosity.WARN));
  if (compression === 'meshopt') {
    await doc.transform(
      reorder({ encoder: MeshoptEncoder, target: 'size' }),
      quantize({ pattern: /^(NORMAL|TEXCOORD_0|COLOR_0)$/, quantizeNormal: 8, quantizeTexcoord: 12, quantizeColor: 8 }),
    );
    // quantize() declares the extension only when it quantizes positions; byte normals need it all the same.
    doc.createExtension(KHRMeshQuantization).setRequired(true);
    doc
      .createExtension(EXTMeshoptCompression)
      .setRequired(true)
      .setEncoderOptions({ method: EXTMeshoptCompression.EncoderMethod.QUANTIZE });
  } else if (compression === 'draco') {
    await doc.transform(
      draco({ method: 'edgebreaker', quantizePosition: POSITION_BITS, quantizeNormal: 8, quantizeColor: 8, quantizeTexcoord: 12 }),
    );
  }
  return (await writerIO()).writeBinary(doc);
}

/**
 * Positions rounded to multiples of a power of two about 1/2^POSITION_BITS of the largest side: exact in
 * float32 (few mantissa bits), within half a step of where they were; the bounding box's faces move by at most
 * that much (a 1 m mesh: 2^-15 m, 0.03 mm).
 */
function snappedPositions(mesh: TriangleMesh): Float32Array {
  const { min, max } = meshBounds(mesh);
  const side = Math.max(max[0] - min[0], max[1] - min[1], max[2] - min[2]);
  const positions = mesh.positions.slice();
  if (!(side > 0 && Number.isFinite(side))) return positions;
  const step = 2 ** Math.floor(Math.log2(side / 2 ** POSITION_BITS));
  for (let i = 0; i < positions.length; i++) positions[i] = Math.round(positions[i] / step) * step;
  return positions;
}
