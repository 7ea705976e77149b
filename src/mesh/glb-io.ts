/**
 * glTF-Transform's I/O with the extensions fast3d writes and reads: EXT_meshopt_compression and
 * KHR_draco_mesh_compression (with meshoptimizer's and Draco's WebAssembly codecs), KHR_mesh_quantization and
 * EXT_texture_webp. A codec is started once per thread, and only when a file needs it (Draco's takes about
 * 50 ms to start).
 */
import { NodeIO } from '@gltf-transform/core';
import { EXTMeshoptCompression, EXTTextureWebP, KHRDracoMeshCompression, KHRMeshQuantization } from '@gltf-transform/extensions';
import draco3d from 'draco3dgltf';
import { MeshoptDecoder, MeshoptEncoder } from 'meshoptimizer';

/** What a file needs decoded, from its `extensionsUsed`. */
export interface GlbCodecs {
  draco: boolean;
  meshopt: boolean;
}

let dracoDecoder: Promise<unknown> | undefined;
let dracoEncoder: Promise<unknown> | undefined;

const EXTENSIONS = [EXTMeshoptCompression, KHRDracoMeshCompression, KHRMeshQuantization, EXTTextureWebP];

/** An I/O that reads any GLB fast3d writes (and the same extensions in others'). */
export async function readerIO(codecs: GlbCodecs): Promise<NodeIO> {
  const io = new NodeIO().registerExtensions(EXTENSIONS);
  if (codecs.meshopt) {
    await MeshoptDecoder.ready;
    io.registerDependencies({ 'meshopt.decoder': MeshoptDecoder });
  }
  if (codecs.draco) {
    dracoDecoder ??= draco3d.createDecoderModule({});
    io.registerDependencies({ 'draco3d.decoder': await dracoDecoder });
  }
  return io;
}

/** An I/O that writes the compressed variants (and reads them back). */
export async function writerIO(): Promise<NodeIO> {
  await Promise.all([MeshoptEncoder.ready, MeshoptDecoder.ready]);
  dracoEncoder ??= draco3d.createEncoderModule({});
  dracoDecoder ??= draco3d.createDecoderModule({});
  return new NodeIO().registerExtensions(EXTENSIONS).registerDependencies({
    'meshopt.encoder': MeshoptEncoder,
    'meshopt.decoder': MeshoptDecoder,
    'draco3d.encoder': await dracoEncoder,
    'draco3d.decoder': await dracoDecoder,
  });
}
