/**
 * The studio page: its own few static files (studio/ at the repository root) and, for the browser's import
 * map, three.js and Spark straight from node_modules, so a fresh clone serves it after `npm ci`, offline,
 * with no build step. Only files under each root with an allowed extension are served.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono, type Context } from 'hono';
import { HttpError } from '../contract/errors.js';

const require = createRequire(import.meta.url);

/** The page's own files. */
export const PAGE_DIR = fileURLToPath(new URL('../../studio/', import.meta.url));

/**
 * URL prefix -> folder, for the import map (three resolves to build/three.cjs; Spark to dist/spark.cjs.js). A Map:
 * the prefix comes from the URL, and an object would answer "__proto__" or "constructor" with its prototype's.
 */
export function vendorRoots(): Map<string, string> {
  const threeBuild = dirname(require.resolve('three'));
  return new Map([
    ['three', threeBuild],
    ['three-addons', join(threeBuild, '..', 'examples', 'jsm')],
    ['spark', dirname(require.resolve('@sparkjsdev/spark'))],
  ]);
}

const TYPES = new Map([
  ['.html', 'text/html; charset=utf-8'],
  ['.js', 'text/javascript; charset=utf-8'],
  ['.css', 'text/css; charset=utf-8'],
  ['.svg', 'image/svg+xml'],
  ['.png', 'image/png'],
  ['.wasm', 'application/wasm'],
]);

export function studioRoutes(): Hono {
  const studio = new Hono({ strict: false });
  const vendors = vendorRoots();

  studio.get('/', (c) => c.redirect('/studio', 302));
  studio.get('/studio', (c) => serveFile(c, PAGE_DIR, 'index.html', 'no-cache'));
  studio.get('/studio/vendor/:pkg/*', (c) => {
    const root = vendors.get(c.req.param('pkg'));
    if (!root) throw new HttpError(404, `no vendored package "${c.req.param('pkg').slice(0, 40)}"`);
    const rest = c.req.path.slice(`/studio/vendor/${c.req.param('pkg')}/`.length);
    // WebAssembly too: three's Draco decoder, which the viewer loads for compressed GLBs.
    if (!['.js', '.wasm'].includes(extname(rest)))
      throw new HttpError(404, 'only JavaScript modules and WebAssembly are served from vendored packages');
    return serveFile(c, root, rest, 'public, max-age=86400');
  });
  studio.get('/studio/:file', (c) => serveFile(c, PAGE_DIR, c.req.param('file'), 'no-cache'));
  return studio;
}

async function serveFile(c: Context, root: string, relative: string, cacheControl: string): Promise<Response> {
  let name: string;
  try {
    name = decodeURIComponent(relative);
  } catch {
    throw new HttpError(400, 'malformed path');
  }
  const path = normalize(join(root, name));
  const type = TYPES.get(extname(path));
  if (!type || !path.startsWith(root.endsWith(sep) ? root : root + sep))
    throw new HttpError(404, `no studio file ${c.req.path.slice(0, 120)}`);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch {
    throw new HttpError(404, `no studio file ${c.req.path.slice(0, 120)}`);
  }
  return c.body(new Uint8Array(bytes), 200, { 'Content-Type': type, 'Cache-Control': cacheControl });
}
