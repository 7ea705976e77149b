/**
 * The closed surface of the preview's silhouette inflation. The matted object's silhouette is lifted into a body
 * whose half-thickness grows with the distance d to the silhouette's edge, ratio * sqrt(d (2R - d)) with R the
 * largest such distance (a circular profile: a disc becomes a sphere at ratio 1), with a front sheet toward +Z and
 * a back sheet toward -Z that meet at z = 0 on the silhouette's outline.
 *
 * The surface is built on a square grid of points laid over the image. A signed distance to the outline (from two
 * distance transforms, interpolated bilinearly) says which grid points are inside; marching squares cuts each grid
 * cell along the outline, placing one ring vertex on every cell side the outline crosses. Each cell's inside part
 * (a convex polygon) is fanned into triangles from an inside corner, once on the front sheet and once, mirrored,
 * on the back. Ring vertices sit at z = 0 and are shared by both sheets, so every edge has exactly two triangles:
 * the surface is closed, wound counter-clockwise seen from outside, and no triangle has three ring corners.
 *
 * World units are pixels / max(width, height), centred on the image's centre, +Y up (image rows grow downward).
 */
import { alphaBox } from '../../image/frame-object.js';
import type { RgbaImage } from '../../image/rgba.js';
import type { TriangleMesh } from '../../mesh/mesh.js';

export interface SurfaceOptions {
  /** Grid spacing in pixels; when absent it is chosen so the surface has about `triangles` triangles. */
  spacing?: number;
  /** About how many triangles the surface should have (used when `spacing` is absent). */
  triangles?: number;
  /** Half-thickness at the deepest point relative to the inscribed radius. */
  depthRatio: number;
  /** Alpha (0..1) above which a pixel belongs to the silhouette. */
  alphaThreshold: number;
}

export interface InflatedSurface {
  mesh: TriangleMesh;
  /** The image's alpha (0..1) at each vertex (its nearest inside pixel). */
  alpha: Float32Array;
  /** The grid spacing used, in pixels. */
  spacing: number;
  /** Pixels per world unit: max(width, height). */
  pixelsPerUnit: number;
}

/** The back is unseen: it reuses the front's colour, this much darker (sRGB, 0..1). */
export const BACK_SHADE = 0.07;
/** Ring vertices stay this share of a cell side away from the cell's corners, so no triangle degenerates. */
const EDGE_MARGIN = 0.05;
/** Fewest and most grid points along a side: bounds the work whatever the options ask. */
const MAX_GRID_SIDE = 8192;
/** How far (pixels) a vertex looks for an inside pixel to take its colour from. */
const COLOUR_SEARCH = 3;

/** The closed inflated surface of the image's silhouette (empty when nothing is opaque). */
export function inflateSurface(image: RgbaImage, options: SurfaceOptions, silhouette?: Silhouette): TriangleMesh {
  return buildSurface(image, options, silhouette).mesh;
}

/**
 * What the surface is built from, whatever its grid: the silhouette's pixels, area, bounding box and signed
 * distance field. It does not depend on the spacing, so one serves every surface of an image (the splats'
 * attempts at a spacing, and a mesh job's mesh).
 */
export interface Silhouette {
  inside: Uint8Array;
  /** Pixels inside. */
  area: number;
  /** Bounding box of the inside pixels (inclusive); meaningless when `area` is 0. */
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  /** Absent when nothing is inside. */
  field?: SignedDistance;
}

/** The pixels whose alpha is above `alphaThreshold`, and their distance field. */
export function silhouetteOf(image: RgbaImage, alphaThreshold: number): Silhouette {
  const { width, height } = image;
  const inside = new Uint8Array(width * height);
  const box = alphaBox(image, alphaThreshold, inside);
  if (!box) return { inside, area: 0, x0: width, x1: -1, y0: height, y1: -1 };
  return { inside, area: box.pixels, x0: box.x0, x1: box.x1 - 1, y0: box.y0, y1: box.y1 - 1, field: signedDistance(inside, width, height) };
}

/** The surface at a spacing (or a triangle target); `silhouette` must be `silhouetteOf` this image and threshold. */
export function buildSurface(
  image: RgbaImage,
  options: SurfaceOptions,
  silhouette = silhouetteOf(image, options.alphaThreshold),
): InflatedSurface {
  const { width, height, data } = image;
  const { inside, area, x0, x1, y0, y1, field } = silhouette;
  const empty = {
    mesh: { positions: new Float32Array(0), indices: new Uint32Array(0), colours: new Float32Array(0) },
    alpha: new Float32Array(0),
    spacing: options.spacing ?? 1,
    pixelsPerUnit: Math.max(width, height),
  };
  if (!field) return empty;

  const R = field.deepest;
  // Each inside cell gives about two triangles per sheet.
  let s = options.spacing ?? Math.sqrt((4 * area) / Math.max(1, options.triangles ?? 100_000));
  const longest = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  s = Math.max(s, (longest + 2) / (MAX_GRID_SIDE - 4));

  // The grid is centred on the silhouette's bounding box, with at least one outside point beyond each side.
  const nc = Math.ceil((x1 + 1 - x0) / s) + 3,
    nr = Math.ceil((y1 + 1 - y0) / s) + 3;
  const u0 = (x0 + x1 + 1) / 2 - ((nc - 1) * s) / 2,
    v0 = (y0 + y1 + 1) / 2 - ((nr - 1) * s) / 2;
  const points = nc * nr;
  const f = new Float32Array(points);
  for (let r = 0, p = 0; r < nr; r++) {
    const v = v0 + r * s;
    for (let c = 0; c < nc; c++, p++) f[p] = field.sample(u0 + c * s, v);
  }

  // Vertex indices: inside points (front, then back), then ring vertices on the crossed cell sides.
  const front = new Int32Array(points).fill(-1);
  let insideCount = 0;
  for (let p = 0; p < points; p++) if (f[p] > 0) front[p] = insideCount++;
  const across = new Int32Array(points).fill(-1); // side (c, r)-(c + 1, r)
  const down = new Int32Array(points).fill(-1); // side (c, r)-(c, r + 1)
  let ringCount = 0;
  for (let r = 0, p = 0; r < nr; r++) {
    for (let c = 0; c < nc; c++, p++) {
      const a = f[p] > 0;
      if (c + 1 < nc && a !== f[p + 1] > 0) across[p] = 2 * insideCount + ringCount++;
      if (r + 1 < nr && a !== f[p + nc] > 0) down[p] = 2 * insideCount + ringCount++;
    }
  }
  const vertices = 2 * insideCount + ringCount;
  const positions = new Float32Array(vertices * 3);
  const colours = new Float32Array(vertices * 3);
  const alpha = new Float32Array(vertices);
  const unit = 1 / Math.max(width, height);
  const cx = width / 2,
    cy = height / 2;

  const place = (index: number, u: number, v: number, z: number) => {
    positions[index * 3] = (u - cx) * unit;
    positions[index * 3 + 1] = (cy - v) * unit;
    positions[index * 3 + 2] = z * unit;
    const pixel = nearestInside(inside, width, height, u, v);
    const o = pixel * 4;
    colours[index * 3] = data[o] / 255;
    colours[index * 3 + 1] = data[o + 1] / 255;
    colours[index * 3 + 2] = data[o + 2] / 255;
    alpha[index] = data[o + 3] / 255;
  };
  for (let r = 0, p = 0; r < nr; r++) {
    for (let c = 0; c < nc; c++, p++) {
      const k = front[p];
      if (k >= 0) {
        const d = Math.min(f[p], R);
        const h = options.depthRatio * Math.sqrt(Math.max(0, d * (2 * R - d)));
        const u = u0 + c * s,
          v = v0 + r * s;
        place(k, u, v, h);
        place(k + insideCount, u, v, -h);
        for (let a = 0; a < 3; a++) colours[(k + insideCount) * 3 + a] = Math.max(0, colours[k * 3 + a] - BACK_SHADE);
      }
      if (across[p] >= 0) {
        const t = crossing(f[p], f[p + 1]);
        place(across[p], u0 + (c + t) * s, v0 + r * s, 0);
      }
      if (down[p] >= 0) {
        const t = crossing(f[p], f[p + nc]);
        place(down[p], u0 + c * s, v0 + (r + t) * s, 0);
      }
    }
  }

  // At most four triangles per sheet per cell (a hexagon).
  let cells = 0;
  for (let r = 0; r + 1 < nr; r++) {
    for (let c = 0; c + 1 < nc; c++) {
      const p = r * nc + c;
      if (f[p] > 0 || f[p + 1] > 0 || f[p + nc] > 0 || f[p + nc + 1] > 0) cells++;
    }
  }
  const indices = new Uint32Array(cells * 8 * 3);
  let n = 0;
  const poly = new Int32Array(6);
  const corner = new Uint8Array(6); // 1 where poly holds an inside corner (a front index)
  const fan = (start: number, count: number) => {
    // poly[start .. start + count) is convex, in the cell's order A B C D (clockwise seen from +Z), and starts at an inside corner.
    const a = poly[start];
    for (let i = 1; i + 1 < count; i++) {
      const b = poly[start + i],
        c = poly[start + i + 1];
      const cb = corner[start + i],
        cc = corner[start + i + 1];
      // Front: reversed, so counter-clockwise seen from +Z.
      indices[n++] = a;
      indices[n++] = c;
      indices[n++] = b;
      // Back: the same triangle mirrored onto the back sheet, counter-clockwise seen from -Z.
      indices[n++] = a + insideCount;
      indices[n++] = cb ? b + insideCount : b;
      indices[n++] = cc ? c + insideCount : c;
    }
  };
  for (let r = 0; r + 1 < nr; r++) {
    for (let c = 0; c + 1 < nc; c++) {
      const pa = r * nc + c,
        pb = pa + 1,
        pc = pa + nc + 1,
        pd = pa + nc;
      const ia = f[pa] > 0,
        ib = f[pb] > 0,
        ic = f[pc] > 0,
        id = f[pd] > 0;
      if (!(ia || ib || ic || id)) continue;
      // Walk A -> B -> C -> D: each inside corner, then the ring vertex on the side to the next corner if crossed.
      let m = 0;
      if (ia) {
        poly[m] = front[pa];
        corner[m++] = 1;
      }
      if (ia !== ib) {
        poly[m] = across[pa];
        corner[m++] = 0;
      }
      if (ib) {
        poly[m] = front[pb];
        corner[m++] = 1;
      }
      if (ib !== ic) {
        poly[m] = down[pb];
        corner[m++] = 0;
      }
      if (ic) {
        poly[m] = front[pc];
        corner[m++] = 1;
      }
      if (ic !== id) {
        poly[m] = across[pd];
        corner[m++] = 0;
      }
      if (id) {
        poly[m] = front[pd];
        corner[m++] = 1;
      }
      if (id !== ia) {
        poly[m] = down[pa];
        corner[m++] = 0;
      }
      const saddle = ia === ic && ib === id && ia !== ib;
      if (saddle && (f[pa] + f[pb] + f[pc] + f[pd]) / 4 <= 0) {
        // Two separate corners: the hexagon splits into two triangles, each an inside corner and its two neighbours.
        const hexagon = Array.from(poly.subarray(0, 6)),
          kinds = Array.from(corner.subarray(0, 6));
        for (let k = 0, at = 0; k < 6; k++) {
          if (!kinds[k]) continue;
          for (const j of [k, (k + 1) % 6, (k + 5) % 6]) {
            poly[at] = hexagon[j];
            corner[at++] = kinds[j];
          }
        }
        fan(0, 3);
        fan(3, 3);
        continue;
      }
      // Start the fan at an inside corner.
      let first = 0;
      while (!corner[first]) first++;
      rotate(poly, corner, m, first);
      fan(0, m);
    }
  }
  return { mesh: { positions, indices: indices.slice(0, n), colours }, alpha, spacing: s, pixelsPerUnit: Math.max(width, height) };
}

/** Rotates the first m entries of poly (and corner) so the entry at `first` comes first. */
function rotate(poly: Int32Array, corner: Uint8Array, m: number, first: number): void {
  if (first === 0) return;
  const p = Array.from(poly.subarray(0, m)),
    k = Array.from(corner.subarray(0, m));
  for (let i = 0; i < m; i++) {
    poly[i] = p[(i + first) % m];
    corner[i] = k[(i + first) % m];
  }
}

/** Where along a side from a (value fa) to b (fb) the signed distance crosses zero, kept off the corners. */
function crossing(fa: number, fb: number): number {
  const t = fa / (fa - fb);
  return t < EDGE_MARGIN ? EDGE_MARGIN : t > 1 - EDGE_MARGIN ? 1 - EDGE_MARGIN : t;
}

/** The pixel whose colour a vertex at (u, v) takes: its own if inside, else the nearest inside pixel nearby. */
function nearestInside(inside: Uint8Array, width: number, height: number, u: number, v: number): number {
  const px = Math.min(width - 1, Math.max(0, Math.floor(u))),
    py = Math.min(height - 1, Math.max(0, Math.floor(v)));
  if (inside[py * width + px]) return py * width + px;
  let best = py * width + px,
    bestDistance = Infinity;
  for (let y = Math.max(0, py - COLOUR_SEARCH); y <= Math.min(height - 1, py + COLOUR_SEARCH); y++) {
    for (let x = Math.max(0, px - COLOUR_SEARCH); x <= Math.min(width - 1, px + COLOUR_SEARCH); x++) {
      if (!inside[y * width + x]) continue;
      const d = (x + 0.5 - u) ** 2 + (y + 0.5 - v) ** 2;
      if (d < bestDistance) {
        bestDistance = d;
        best = y * width + x;
      }
    }
  }
  return best;
}

export interface SignedDistance {
  /** Largest distance from an inside pixel's centre to the outline, in pixels. */
  deepest: number;
  /** Bilinear signed distance (pixels) to the outline at image point (u, v): positive inside, negative outside. */
  sample(u: number, v: number): number;
}

/**
 * Signed distance to the silhouette's outline at every pixel centre: an inside pixel's distance to the nearest
 * outside pixel's centre less half a pixel, negated the other way round outside. The image is padded with one
 * outside pixel all round, so the outline never leaves the image.
 */
export function signedDistance(inside: Uint8Array, width: number, height: number): SignedDistance {
  const W = width + 2,
    H = height + 2;
  const padded = new Uint8Array(W * H);
  for (let y = 0; y < height; y++) padded.set(inside.subarray(y * width, (y + 1) * width), (y + 1) * W + 1);
  const outsideMask = new Uint8Array(W * H);
  for (let i = 0; i < outsideMask.length; i++) outsideMask[i] = padded[i] ? 0 : 1;
  const toOutside = edt(padded, W, H),
    toInside = edt(outsideMask, W, H);
  const sdf = new Float32Array(W * H);
  let deepest = 0;
  for (let i = 0; i < sdf.length; i++) {
    sdf[i] = padded[i] ? Math.sqrt(toOutside[i]) - 0.5 : 0.5 - Math.sqrt(toInside[i]);
    if (sdf[i] > deepest) deepest = sdf[i];
  }
  return {
    deepest,
    sample(u: number, v: number): number {
      // Pixel (x, y)'s centre is at (x + 0.5, y + 0.5) in the image, (x + 1, y + 1) in the padded grid.
      const gx = Math.min(W - 1, Math.max(0, u + 0.5)),
        gy = Math.min(H - 1, Math.max(0, v + 0.5));
      const ix = Math.min(W - 2, Math.floor(gx)),
        iy = Math.min(H - 2, Math.floor(gy));
      const tx = gx - ix,
        ty = gy - iy;
      const i = iy * W + ix;
      const top = sdf[i] + (sdf[i + 1] - sdf[i]) * tx;
      const bottom = sdf[i + W] + (sdf[i + W + 1] - sdf[i + W]) * tx;
      return top + (bottom - top) * ty;
    },
  };
}

/** Squared Euclidean distance from each inside pixel to the nearest outside pixel (Felzenszwalb-Huttenlocher). */
export function edt(inside: Uint8Array, width: number, height: number): Float32Array {
  const INF = 1e20;
  const grid = new Float32Array(width * height);
  for (let i = 0; i < grid.length; i++) grid[i] = inside[i] ? INF : 0;
  const n = Math.max(width, height);
  const f = new Float32Array(n),
    d = new Float32Array(n),
    z = new Float32Array(n + 1);
  const v = new Int32Array(n);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) f[y] = grid[y * width + x];
    transform1d(f, height, d, v, z);
    for (let y = 0; y < height; y++) grid[y * width + x] = d[y];
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) f[x] = grid[y * width + x];
    transform1d(f, width, d, v, z);
    for (let x = 0; x < width; x++) grid[y * width + x] = d[x];
  }
  return grid;
}

function transform1d(f: Float32Array, n: number, d: Float32Array, v: Int32Array, z: Float32Array): void {
  let k = 0;
  v[0] = 0;
  z[0] = -Infinity;
  z[1] = Infinity;
  for (let q = 1; q < n; q++) {
    let s = (f[q] + q * q - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
    while (s <= z[k]) {
      k--;
      s = (f[q] + q * q - (f[v[k]] + v[k] * v[k])) / (2 * q - 2 * v[k]);
    }
    k++;
    v[k] = q;
    z[k] = s;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    const dq = q - v[k];
    d[q] = dq * dq + f[v[k]];
  }
}
