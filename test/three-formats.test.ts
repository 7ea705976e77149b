/**
 * Proof in three.js 0.187, in Debian's chromium (playwright-core, WebGL through SwiftShader): GLTFLoader loads a
 * plain, a meshopt and a Draco GLB (MeshoptDecoder, DRACOLoader with the decoder files from node_modules), and
 * the splat loaders load the KHR_gaussian_splatting GLB and an SPZ version 4, on WebGPURenderer's WebGL2
 * backend. Each draws pixels that are not blank. The pages are test/three/*.html, served with three from
 * node_modules by a small server the test starts and stops.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { launchChromium, requireChromium } from './helpers/chromium.js';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareGameMesh } from '../src/mesh/game.js';
import { encodeGlbVariant, type GlbCompression } from '../src/mesh/glb-variants.js';
import { encodeSplatGlb } from '../src/mesh/glb-splat.js';
import { triangleCount } from '../src/mesh/mesh.js';
import { encodeSpz } from '../src/splat/spz.js';
import { ballCloud } from './helpers/clouds.js';
import { sphereMesh } from './helpers/meshes.js';

const PAGES = fileURLToPath(new URL('./three/', import.meta.url));
const THREE = fileURLToPath(new URL('../node_modules/three/', import.meta.url));
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.glb': 'model/gltf-binary',
  '.spz': 'application/octet-stream',
};

/** The share of the canvas's pixels that are not the black it clears to. */
async function drawnShare(page: Page): Promise<number> {
  const png = await page.locator('canvas').screenshot();
  const { data } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let drawn = 0;
  for (let i = 0; i < data.length; i += 3) if (data[i] + data[i + 1] + data[i + 2] > 24) drawn++;
  return drawn / (data.length / 3);
}

describe('three.js loads and draws what fast3d delivers', () => {
  let server: Server;
  let base: string;
  let browser: Browser;
  const files = new Map<string, Uint8Array>();
  const errors: string[] = [];
  const mesh = sphereMesh(96, 48, 0.5, true);
  let triangles = 0;

  beforeAll(async () => {
    requireChromium();
    const game = await prepareGameMesh(mesh, { faces: 5000, sizeM: 1.5, pivot: 'bottom' });
    triangles = game.levels[0].triangles;
    for (const compression of ['none', 'meshopt', 'draco'] as GlbCompression[])
      files.set(`${compression}.glb`, await encodeGlbVariant(game.levels[0].mesh, { compression }));
    const cloud = ballCloud(6000, 0.5, 3);
    files.set('splats.glb', await encodeSplatGlb(cloud));
    files.set('v4.spz', encodeSpz(cloud, 4));
    server = createServer((req, res) => {
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
      let body: Uint8Array | undefined;
      if (path.startsWith('/files/')) body = files.get(path.slice(7));
      else {
        const [root, rest] = path.startsWith('/three/') ? [THREE, path.slice(7)] : [PAGES, path.slice(1)];
        const file = normalize(join(root, rest));
        if (file.startsWith(root) && existsSync(file)) body = readFileSync(file);
      }
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'Content-Type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => server?.close(resolve));
  });

  async function open(name: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 256, height: 256 } });
    page.on('pageerror', (err) => errors.push(`${name}: ${err.message}`));
    await page.goto(`${base}/${name}`);
    await page.waitForFunction('window.ready === true', undefined, { timeout: 30_000 });
    return page;
  }

  for (const compression of ['none', 'meshopt', 'draco'] as const) {
    it(`GLTFLoader: the ${compression} GLB, one mesh with its triangles, 1.5 m standing on the origin, drawn`, async () => {
      const page = await open('mesh.html');
      try {
        const shown = await page.evaluate(
          (url) => (globalThis as unknown as { show(u: string): Promise<Record<string, unknown>> }).show(url),
          `/files/${compression}.glb`,
        );
        expect(shown.meshes).toBe(1);
        expect(shown.triangles).toBe(triangles);
        expect(Math.max(...(shown.size as number[]))).toBeCloseTo(1.5, 3);
        expect((shown.min as number[])[1]).toBeCloseTo(0, 3);
        expect(shown.colours).toBe(true);
        expect(await drawnShare(page)).toBeGreaterThan(0.05);
        expect(errors).toEqual([]);
      } finally {
        await page.close();
      }
    }, 60_000);
  }

  for (const [file, kind] of [
    ['splats.glb', 'gltf'],
    ['v4.spz', 'spz'],
  ] as const) {
    it(`the splat loaders: ${file} as Gaussians on WebGPURenderer's WebGL2 backend, drawn`, async () => {
      const page = await open('splat.html');
      try {
        const shown = await page.evaluate(
          ([url, k]) => (globalThis as unknown as { show(u: string, k: string): Promise<Record<string, unknown>> }).show(url, k),
          [`/files/${file}`, kind] as const,
        );
        expect(shown.splats).toBe(1);
        expect(shown.backend).toBe('webgl2');
        expect(await drawnShare(page)).toBeGreaterThan(0.05);
        expect(errors).toEqual([]);
      } finally {
        await page.close();
      }
    }, 90_000);
  }

  it('each file is what the test meant to load', () => {
    expect(triangles).toBeLessThanOrEqual(5000);
    expect(triangles).toBeLessThan(triangleCount(mesh));
    expect(new DataView(files.get('v4.spz')!.buffer).getUint32(4, true)).toBe(4);
  });
});
