/**
 * `fast3d render FILE.ply --out OUT.png`: renders views of a splat file (PLY, SPZ) or a mesh (GLB) on the CPU,
 * the mesh with the triangle rasteriser and the same cameras; as the validator sees it
 * (its normalisation, cameras and white background) unless told otherwise. Several views go to numbered files
 * (OUT_0.png, OUT_1.png, ...) or, with --grid, into one image.
 */
import { writeFile } from 'node:fs/promises';
import { encodePng } from '../image/codec.js';
import { gridImage, type RgbaImage } from '../image/rgba.js';
import {
  linspace,
  orbitCamera,
  parseBackground,
  RenderPool,
  renderViews,
  VALIDATOR_ELEVATION,
  VALIDATOR_EXTENT,
  VALIDATOR_FOV,
  VALIDATOR_RADIUS,
  VALIDATOR_SIZE,
  type Camera,
} from '../render/index.js';
import { assertAssetPath, loadAsset } from './asset.js';
import { assertExtension, integerFlag, numberFlag, parseCommandArgs, tenths } from './args.js';

export const summary = 'render PNG views of a PLY, SPZ or GLB as the validator does (--preset validator, --theta, --size, --json)';

const USAGE = `usage: fast3d render FILE.ply|FILE.spz|FILE.glb --out OUT.png [--size N | --width W --height H]
         [--theta DEG[,DEG...] | --preset validator] [--phi DEG] [--radius R] [--fov DEG]
         [--ref-bbox S] [--bg white|black|#rrggbb] [--grid] [--threads N] [--json]
  --theta     azimuths in degrees (0 looks from +Z, the object's front); default 0
  --phi       elevation in degrees (negative looks down); default ${VALIDATOR_ELEVATION}
  --preset    validator: the validator's 16 views (azimuths linspace(0, 360, 16), elevation ${VALIDATOR_ELEVATION})
  --ref-bbox  largest bounding-box extent after normalisation (validator ${VALIDATOR_EXTENT}); 0 keeps the file's frame
  --grid      several views go into one image instead of OUT_0.png, OUT_1.png, ...
  --json      print {"n","views","load_ms","render_ms","ms_per_view"} as one line
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommandArgs(
    'render',
    USAGE,
    argv,
    {
      out: { type: 'string', short: 'o' },
      size: { type: 'string' },
      width: { type: 'string' },
      height: { type: 'string' },
      theta: { type: 'string' },
      phi: { type: 'string' },
      preset: { type: 'string' },
      radius: { type: 'string' },
      fov: { type: 'string' },
      'ref-bbox': { type: 'string' },
      bg: { type: 'string' },
      grid: { type: 'boolean' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    ['out'],
  );
  if (typeof args === 'number') return args;
  const { values, target } = args;
  let cameras: Camera[];
  let background;
  let extent: number | null;
  let threads: number;
  try {
    assertExtension(values.out!, 'out', ['.png']);
    assertAssetPath(target);
    const size = values.size !== undefined ? integerFlag(values.size, 'size', 8, 8192) : VALIDATOR_SIZE;
    const width = values.width !== undefined ? integerFlag(values.width, 'width', 8, 8192) : size;
    const height = values.height !== undefined ? integerFlag(values.height, 'height', 8, 8192) : size;
    const fov = values.fov !== undefined ? numberFlag(values.fov, 'fov', 1, 170) : VALIDATOR_FOV;
    const radius = values.radius !== undefined ? numberFlag(values.radius, 'radius', 1e-3, 1e4) : VALIDATOR_RADIUS;
    const phi = values.phi !== undefined ? numberFlag(values.phi, 'phi', -90, 90) : VALIDATOR_ELEVATION;
    const bbox = values['ref-bbox'] !== undefined ? numberFlag(values['ref-bbox'], 'ref-bbox', 0, 1e6) : VALIDATOR_EXTENT;
    extent = bbox > 0 ? bbox : null;
    background = parseBackground(values.bg ?? 'white');
    threads = values.threads !== undefined ? integerFlag(values.threads, 'threads', 0, 256) : 0;
    if (values.preset !== undefined) {
      if (values.preset !== 'validator') throw new Error(`unknown preset "${values.preset}" (known: validator)`);
      if (values.theta !== undefined) throw new Error('use either --preset or --theta');
      // The validator's azimuths; elevation, radius and fov default to its values too.
      cameras = linspace(0, 360, 16).map((azimuth) => orbitCamera({ azimuth, elevation: phi, radius }, { width, height, fov }));
    } else {
      const thetas = (values.theta ?? '0').split(',').map((t) => numberFlag(t, 'theta', -3600, 3600));
      cameras = thetas.map((azimuth) => orbitCamera({ azimuth, elevation: phi, radius }, { width, height, fov }));
    }
  } catch (err) {
    process.stderr.write(`fast3d render: ${(err as Error).message}\n`);
    return 2;
  }

  const t0 = performance.now();
  const asset = await loadAsset(target, extent);
  const t1 = performance.now();
  const pool = new RenderPool(threads);
  let images: RgbaImage[];
  try {
    images = await renderViews(asset.scene, cameras, { background, pool });
  } finally {
    await pool.close();
  }
  const t2 = performance.now();

  const out = values.out!;
  if (images.length === 1) {
    await writeFile(out, await encodePng(images[0]));
  } else if (values.grid) {
    await writeFile(out, await encodePng(gridImage(images)));
  } else {
    const stem = out.replace(/\.png$/i, '');
    await Promise.all(images.map(async (image, i) => writeFile(`${stem}_${i}.png`, await encodePng(image))));
  }
  const renderMs = t2 - t1;
  if (values.json) {
    const line = {
      n: asset.count,
      views: images.length,
      load_ms: tenths(t1 - t0),
      render_ms: tenths(renderMs),
      ms_per_view: tenths(renderMs / images.length),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  } else {
    process.stdout.write(`${target}: ${asset.count} ${asset.unit}, ${images.length} view(s) in ${tenths(renderMs)} ms -> ${out}\n`);
  }
  return 0;
}
