/**
 * The asset a rendering command reads: a splat file (PLY, SPZ) or a mesh (GLB), prepared for the renderers with
 * the normalisation asked for (null keeps the file's frame). A GLB is read within the default limits of
 * `assets` and only once it passes the Khronos validator with triangles that have area.
 */
import { decodeGlb, GlbReadError } from '../mesh/glb.js';
import { inspectGlb } from '../mesh/rules.js';
import { triangleCount } from '../mesh/mesh.js';
import { prepareCloud, prepareMesh, type PreparedCloud, type PreparedMesh } from '../render/index.js';
import { decodePly } from '../splat/ply.js';
import { decodeSpz } from '../splat/spz.js';
import { readInputFile } from './args.js';

/** The prepared scene, and what it counts: Gaussians or triangles. */
export interface LoadedAsset {
  scene: PreparedCloud | PreparedMesh;
  count: number;
  unit: 'Gaussians' | 'triangles';
}

const ASSET_EXTENSIONS = ['.ply', '.spz', '.glb'];

/** Throws unless the path names an asset file these commands read. */
export function assertAssetPath(path: string): void {
  const lower = path.toLowerCase();
  if (!ASSET_EXTENSIONS.some((e) => lower.endsWith(e))) throw new Error(`${path}: this command reads ${ASSET_EXTENSIONS.join(', ')} files`);
}

export async function loadAsset(path: string, extent: number | null): Promise<LoadedAsset> {
  const bytes = await readInputFile(path);
  const lower = path.toLowerCase();
  if (lower.endsWith('.glb')) {
    // Checked first: a file the Khronos validator refuses, or with no surface, is not drawn.
    const { fault } = await inspectGlb(bytes, { extent: 1, maxBytes: Number.MAX_SAFE_INTEGER });
    if (fault) throw new GlbReadError(`${path}: ${fault}`);
    const mesh = await decodeGlb(bytes);
    return { scene: prepareMesh(mesh, { extent }), count: triangleCount(mesh), unit: 'triangles' };
  }
  const cloud = lower.endsWith('.spz') ? decodeSpz(bytes) : decodePly(bytes);
  return { scene: prepareCloud(cloud, { extent }), count: cloud.count, unit: 'Gaussians' };
}
