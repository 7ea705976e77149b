/**
 * A CPU triangle rasteriser for meshes, with the splat renderer's cameras and conventions (camera.ts: OpenCV
 * axes, pinhole intrinsics, pixel centres at +0.5, principal point (W//2, H//2)), so a mesh and a splat cloud
 * of the same object line up in silhouette. Output: RGB8 or RGBA8 (alpha 255) like `Rasterizer`, colours
 * clipped to [0, 1] and truncated to 8 bits.
 *
 * - z-buffer of 1/z (nearest wins, whatever the draw order), starting at 1/far;
 * - perspective-correct interpolation (barycentrics weighted by 1/z) of sRGB vertex colours or of UVs, with
 *   bilinear texture sampling, glTF's convention ((0, 0) is the texture's top-left corner) and repeat wrapping;
 * - triangles crossing the near plane are clipped in camera space (Sutherland-Hodgman, at most four vertices,
 *   drawn as a fan), triangles wholly behind it are skipped: nothing behind the camera is ever projected;
 * - lighting: ambient plus a Lambert key light along the camera's viewing direction, evaluated per vertex
 *   with the area-weighted vertex normals and interpolated (Gouraud); |n . l|, so back faces (flipped winding)
 *   are lit like front faces. A face seen edge-on gets AMBIENT of its colour, never black;
 * - no culling of back faces, no anti-aliasing: a pixel is covered when its centre lies inside the triangle
 *   (edges inclusive, so shared edges leave no gaps).
 *
 * Speed: one pass over the vertices per view (camera-space position, projection, light), then one over the
 * triangles with bounding-box scans of edge functions stepped incrementally along rows; all scratch memory is
 * reused between renders, and nothing is allocated per vertex or per triangle.
 */
import { centreAndFit, vertexNormals, type TriangleMesh } from '../mesh/mesh.js';
import { VALIDATOR_EXTENT } from '../splat/frame.js';
import type { Camera } from './camera.js';
import type { RasterOptions } from './rasterize.js';

/** Share of the light that reaches every face whatever its orientation. */
export const AMBIENT = 0.35;
/** Colour of a mesh with neither vertex colours nor a texture. */
export const DEFAULT_GREY = 0.8;
/** Largest image side (as the splat rasteriser). */
const MAX_SIDE = 16384;

/**
 * A mesh as the rasteriser and the render pool read it: normalised positions, indices, vertex normals and the
 * colouring, every array on a SharedArrayBuffer so a worker thread receives it without a copy. Read-only once
 * made (workers keep it per scene, recognised by identity).
 */
export interface PreparedMesh {
  readonly kind: 'mesh';
  readonly vertices: number;
  readonly triangles: number;
  /** x, y, z per vertex, normalised. */
  readonly positions: Float32Array;
  readonly indices: Uint32Array;
  /** Unit vertex normals (zero for a vertex no triangle uses). */
  readonly normals: Float32Array;
  /** r, g, b per vertex in [0, 1] (sRGB); absent: a texture or the default grey. */
  readonly colours?: Float32Array;
  readonly uvs?: Float32Array;
  readonly texture?: { readonly width: number; readonly height: number; readonly data: Uint8Array };
}

export interface MeshNormalisation {
  /** Largest bounding-box side after normalisation, the box centred on the origin; null keeps the frame. */
  extent: number | null;
}

export function isPreparedMesh(value: object): value is PreparedMesh {
  return (value as { kind?: unknown }).kind === 'mesh';
}

function shared<T extends Float32Array | Uint32Array | Uint8Array>(
  source: ArrayLike<number>,
  make: (buffer: SharedArrayBuffer) => T,
  bytes: number,
): T {
  const out = make(new SharedArrayBuffer(Math.max(bytes * source.length, 4)));
  (out as unknown as { set(a: ArrayLike<number>): void }).set(source);
  return out;
}

/**
 * Copies a mesh into shared arrays, scaled as clouds are before rendering: the bounding box of the vertices the
 * triangles use is centred on the origin and its largest side scaled to `extent`. Never writes the caller's mesh.
 */
export function prepareMesh(mesh: TriangleMesh, normalisation: MeshNormalisation = { extent: VALIDATOR_EXTENT }): PreparedMesh {
  const vertices = Math.floor(mesh.positions.length / 3);
  const triangles = Math.floor(mesh.indices.length / 3);
  for (let i = 0; i < triangles * 3; i++) {
    if (mesh.indices[i] >= vertices) throw new Error(`mesh index ${mesh.indices[i]} at ${i} is out of range (${vertices} vertices)`);
  }
  const positions = shared(mesh.positions.subarray(0, vertices * 3), (b) => new Float32Array(b), 4);
  const indices = shared(mesh.indices.subarray(0, triangles * 3), (b) => new Uint32Array(b), 4);
  if (normalisation.extent !== null) centreAndFit({ positions, indices }, normalisation.extent);
  // Normals do not change under a uniform scale and a translation: the caller's mesh gives the same ones.
  const normals = shared(vertexNormals({ positions, indices }), (b) => new Float32Array(b), 4);
  const textured = mesh.uvs && mesh.texture && mesh.uvs.length >= vertices * 2 && mesh.texture.width > 0 && mesh.texture.height > 0;
  const out: PreparedMesh = {
    kind: 'mesh',
    vertices,
    triangles,
    positions,
    indices,
    normals,
    ...(textured
      ? {
          uvs: shared(mesh.uvs!.subarray(0, vertices * 2), (b) => new Float32Array(b), 4),
          texture: {
            width: mesh.texture!.width,
            height: mesh.texture!.height,
            data: shared(mesh.texture!.data, (b) => new Uint8Array(b), 1),
          },
        }
      : mesh.colours && mesh.colours.length >= vertices * 3
        ? { colours: shared(mesh.colours.subarray(0, vertices * 3), (b) => new Float32Array(b), 4) }
        : {}),
  };
  return out;
}

/** Per-vertex record of a view: sx sy w(=1/z) a0 a1 a2 (shaded r g b, or u v light) X Y Z (camera space). */
const S = 9;

export interface MeshRasterOptions extends RasterOptions {
  /** Share of ambient light, 0..1 (default AMBIENT). */
  ambient?: number;
}

export class MeshRasterizer {
  private verts = new Float64Array(0);
  private depth = new Float32Array(0);
  /** The triangle clipped by the near plane: at most four vertices. */
  private readonly poly = new Float64Array(8 * S);
  // The view being drawn.
  private out: Uint8Array<ArrayBufferLike> = new Uint8Array(0);
  private width = 0;
  private y0 = 0;
  private y1 = 0;
  private channels = 3;
  private textured = false;
  private tex: Uint8Array<ArrayBufferLike> = new Uint8Array(4);
  private texW = 1;
  private texH = 1;
  private cam = { fx: 1, fy: 1, cx: 0, cy: 0 };

  /** Renders one view into `out` (width * height * channels bytes). */
  render(mesh: PreparedMesh, camera: Camera, options: MeshRasterOptions, out?: Uint8Array): Uint8Array {
    return this.renderRows(mesh, camera, options, 0, camera.height, out);
  }

  /**
   * Renders pixel rows [row0, row1) only, into `out` holding just those rows: a view split into bands and
   * reassembled has the bytes of one render (the render pool shares a last view between workers this way).
   */
  renderRows(
    mesh: PreparedMesh,
    camera: Camera,
    options: MeshRasterOptions,
    row0: number,
    row1: number,
    out: Uint8Array = new Uint8Array(camera.width * (row1 - row0) * options.channels),
  ): Uint8Array {
    const { width, height, near, far } = camera;
    if (!(width >= 1 && height >= 1 && width <= MAX_SIDE && height <= MAX_SIDE && Number.isInteger(width) && Number.isInteger(height))) {
      throw new Error(`images are limited to 1..${MAX_SIDE} pixels per side, got ${width} x ${height}`);
    }
    if (!(near > 0 && far > near)) throw new Error(`the camera needs 0 < near < far, got near ${near}, far ${far}`);
    if (!(Number.isInteger(row0) && Number.isInteger(row1) && row0 >= 0 && row0 < row1 && row1 <= height)) {
      throw new Error(`rows must satisfy 0 <= row0 < row1 <= ${height}, got ${row0}..${row1}`);
    }
    const ch = options.channels;
    const pixels = width * (row1 - row0);
    if (out.length !== pixels * ch) throw new Error(`output holds ${out.length} bytes, expected ${pixels * ch}`);
    // Background, truncated like the splat renderer's output.
    const bg = options.background.map((c) => Math.floor(255 * Math.min(1, Math.max(0, c))));
    out[0] = bg[0];
    out[1] = bg[1];
    out[2] = bg[2];
    if (ch === 4) out[3] = 255;
    for (let filled = ch, total = pixels * ch; filled < total; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, total - filled));
    if (this.depth.length < pixels) this.depth = new Float32Array(pixels);
    this.depth.fill(1 / far, 0, pixels);
    this.out = out;
    this.width = width;
    this.y0 = row0;
    this.y1 = row1;
    this.channels = ch;
    this.cam = { fx: camera.fx, fy: camera.fy, cx: camera.cx, cy: camera.cy };
    this.textured = mesh.texture !== undefined && mesh.uvs !== undefined;
    if (this.textured) {
      this.tex = mesh.texture!.data;
      this.texW = mesh.texture!.width;
      this.texH = mesh.texture!.height;
    }
    const ambient = options.ambient ?? AMBIENT;
    this.transform(mesh, camera, Math.min(1, Math.max(0, ambient)));
    this.drawAll(mesh, near, far);
    this.out = new Uint8Array(0);
    return out;
  }

  /** Camera-space position, projection, light and colouring of every vertex, into `verts`. */
  private transform(mesh: PreparedMesh, cam: Camera, ambient: number): void {
    const n = mesh.vertices;
    if (this.verts.length < n * S) this.verts = new Float64Array(Math.ceil(n * 1.25) * S + S);
    const v = this.verts;
    const { positions: p, normals: nrm, colours, uvs } = mesh;
    const [r00, r01, r02, r10, r11, r12, r20, r21, r22, t0, t1, t2] = cam.view;
    const { fx, fy, cx, cy } = cam;
    const key = 1 - ambient,
      grey = DEFAULT_GREY;
    const mode = uvs && this.textured ? 2 : colours ? 1 : 0;
    for (let i = 0, o = 0; i < n; i++, o += S) {
      const x = p[3 * i],
        y = p[3 * i + 1],
        z = p[3 * i + 2];
      const X = r00 * x + r01 * y + r02 * z + t0;
      const Y = r10 * x + r11 * y + r12 * z + t1;
      const Z = r20 * x + r21 * y + r22 * z + t2;
      const w = 1 / Z;
      v[o] = fx * X * w + cx;
      v[o + 1] = fy * Y * w + cy;
      v[o + 2] = w;
      // The key light shines along the viewing direction (the camera's z axis in world space).
      let d = r20 * nrm[3 * i] + r21 * nrm[3 * i + 1] + r22 * nrm[3 * i + 2];
      if (d < 0) d = -d;
      const light = ambient + key * d;
      if (mode === 2) {
        v[o + 3] = uvs![2 * i];
        v[o + 4] = uvs![2 * i + 1];
        v[o + 5] = light;
      } else if (mode === 1) {
        v[o + 3] = colours![3 * i] * light;
        v[o + 4] = colours![3 * i + 1] * light;
        v[o + 5] = colours![3 * i + 2] * light;
      } else {
        v[o + 3] = v[o + 4] = v[o + 5] = grey * light;
      }
      v[o + 6] = X;
      v[o + 7] = Y;
      v[o + 8] = Z;
    }
  }

  private drawAll(mesh: PreparedMesh, near: number, far: number): void {
    const idx = mesh.indices,
      v = this.verts,
      m = mesh.triangles * 3;
    for (let t = 0; t < m; t += 3) {
      const o0 = idx[t] * S,
        o1 = idx[t + 1] * S,
        o2 = idx[t + 2] * S;
      const z0 = v[o0 + 8],
        z1 = v[o1 + 8],
        z2 = v[o2 + 8];
      if (z0 >= near && z1 >= near && z2 >= near) {
        if (z0 > far && z1 > far && z2 > far) continue;
        this.triangle(v, o0, v, o1, v, o2);
      } else if (z0 >= near || z1 >= near || z2 >= near) {
        this.clipNear(o0, o1, o2, near);
      } // else wholly behind the near plane (or NaN): nothing to draw
    }
  }

  /** Clips the triangle against z >= near in camera space and draws what is left as a fan. */
  private clipNear(o0: number, o1: number, o2: number, near: number): void {
    const v = this.verts,
      poly = this.poly;
    const src = [o0, o1, o2];
    let k = 0;
    for (let e = 0; e < 3; e++) {
      const a = src[e],
        b = src[(e + 1) % 3];
      const za = v[a + 8],
        zb = v[b + 8];
      const ina = za >= near,
        inb = zb >= near;
      if (ina) {
        for (let f = 0; f < S; f++) poly[k * S + f] = v[a + f];
        k++;
      }
      if (ina !== inb) {
        const s = (near - za) / (zb - za);
        const o = k * S;
        // Attributes and camera-space position are linear along the edge in camera space.
        for (let f = 3; f < S; f++) poly[o + f] = v[a + f] + s * (v[b + f] - v[a + f]);
        poly[o + 8] = near;
        k++;
      }
    }
    if (k < 3) return;
    // Project the new vertices (kept ones already carry their projection; recomputing is the same maths).
    const cam = this.cam;
    for (let i = 0; i < k; i++) {
      const o = i * S;
      const w = 1 / poly[o + 8];
      poly[o] = cam.fx * poly[o + 6] * w + cam.cx;
      poly[o + 1] = cam.fy * poly[o + 7] * w + cam.cy;
      poly[o + 2] = w;
    }
    for (let i = 1; i + 1 < k; i++) this.triangle(poly, 0, poly, i * S, poly, (i + 1) * S);
  }

  /** Scan-converts one triangle whose vertices are all in front of the near plane. */
  private triangle(va: Float64Array, a: number, vb: Float64Array, b: number, vc: Float64Array, c: number): void {
    const x0 = va[a],
      y0 = va[a + 1],
      x1 = vb[b],
      y1 = vb[b + 1],
      x2 = vc[c],
      y2 = vc[c + 1];
    let area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0);
    if (!(area > 1e-12 || area < -1e-12)) return; // degenerate, or NaN
    const width = this.width,
      rowA = this.y0,
      rowB = this.y1;
    // Pixel centres (px + 0.5, py + 0.5) inside the bounding box.
    let minX = x0 < x1 ? x0 : x1;
    if (x2 < minX) minX = x2;
    let maxX = x0 > x1 ? x0 : x1;
    if (x2 > maxX) maxX = x2;
    let minY = y0 < y1 ? y0 : y1;
    if (y2 < minY) minY = y2;
    let maxY = y0 > y1 ? y0 : y1;
    if (y2 > maxY) maxY = y2;
    let px0 = Math.ceil(minX - 0.5),
      px1 = Math.floor(maxX - 0.5);
    let py0 = Math.ceil(minY - 0.5),
      py1 = Math.floor(maxY - 0.5);
    if (px0 < 0) px0 = 0;
    if (px1 > width - 1) px1 = width - 1;
    if (py0 < rowA) py0 = rowA;
    if (py1 > rowB - 1) py1 = rowB - 1;
    if (px0 > px1 || py0 > py1) return;
    // Edge functions e_i (opposite vertex i), e0 + e1 + e2 = area; made positive inside whatever the winding.
    const sign = area > 0 ? 1 : -1;
    area *= sign;
    const A0 = (y1 - y2) * sign,
      B0 = (x2 - x1) * sign,
      C0 = (x1 * y2 - x2 * y1) * sign;
    const A1 = (y2 - y0) * sign,
      B1 = (x0 - x2) * sign,
      C1 = (x2 * y0 - x0 * y2) * sign;
    const A2 = (y0 - y1) * sign,
      B2 = (x1 - x0) * sign,
      C2 = (x0 * y1 - x1 * y0) * sign;
    const w0 = va[a + 2],
      w1 = vb[b + 2],
      w2 = vc[c + 2];
    const p0 = va[a + 3],
      p1 = vb[b + 3],
      p2 = vc[c + 3];
    const q0 = va[a + 4],
      q1 = vb[b + 4],
      q2 = vc[c + 4];
    const s0 = va[a + 5],
      s1 = vb[b + 5],
      s2 = vc[c + 5];
    const invArea = 1 / area;
    const depth = this.depth,
      out = this.out,
      ch = this.channels;
    const textured = this.textured;
    for (let py = py0; py <= py1; py++) {
      const sy = py + 0.5;
      // The row's span where every edge function is >= 0, from each edge's crossing, widened by a pixel on
      // each side: the exact per-pixel test below decides, the span only skips the bounding box's empty ends.
      let lo = px0,
        hi = px1;
      const r0 = B0 * sy + C0,
        r1 = B1 * sy + C1,
        r2 = B2 * sy + C2;
      if (A0 > 0) {
        const c = Math.floor(-r0 / A0 - 0.5);
        if (c > lo) lo = c;
      } else if (A0 < 0) {
        const c = Math.ceil(-r0 / A0 - 0.5);
        if (c < hi) hi = c;
      } else if (r0 < 0) continue;
      if (A1 > 0) {
        const c = Math.floor(-r1 / A1 - 0.5);
        if (c > lo) lo = c;
      } else if (A1 < 0) {
        const c = Math.ceil(-r1 / A1 - 0.5);
        if (c < hi) hi = c;
      } else if (r1 < 0) continue;
      if (A2 > 0) {
        const c = Math.floor(-r2 / A2 - 0.5);
        if (c > lo) lo = c;
      } else if (A2 < 0) {
        const c = Math.ceil(-r2 / A2 - 0.5);
        if (c < hi) hi = c;
      } else if (r2 < 0) continue;
      if (lo > hi) continue;
      const sx = lo + 0.5;
      let e0 = A0 * sx + r0,
        e1 = A1 * sx + r1,
        e2 = A2 * sx + r2;
      let pix = (py - rowA) * width + lo;
      for (let px = lo; px <= hi; px++, pix++, e0 += A0, e1 += A1, e2 += A2) {
        if (e0 < 0 || e1 < 0 || e2 < 0) continue;
        const k0 = e0 * w0,
          k1 = e1 * w1,
          k2 = e2 * w2;
        const W = k0 + k1 + k2;
        const z = W * invArea; // interpolated 1/z
        if (!(z > depth[pix])) continue;
        depth[pix] = z;
        const inv = 1 / W;
        const u = (k0 * p0 + k1 * p1 + k2 * p2) * inv;
        const t = (k0 * q0 + k1 * q1 + k2 * q2) * inv;
        const l = (k0 * s0 + k1 * s1 + k2 * s2) * inv;
        let r: number, g: number, bl: number;
        if (textured) {
          const rgb = this.sample(u, t);
          r = rgb[0] * l;
          g = rgb[1] * l;
          bl = rgb[2] * l;
        } else {
          r = u;
          g = t;
          bl = l;
        }
        // Truncated to 8 bits like the splat renderer's output; the bias keeps a colour that interpolation
        // returns a rounding error below an exact level (1 - 1e-16) on that level.
        const o = pix * ch;
        out[o] = r >= 1 ? 255 : r > 0 ? (r * 255 + 1e-9) | 0 : 0;
        out[o + 1] = g >= 1 ? 255 : g > 0 ? (g * 255 + 1e-9) | 0 : 0;
        out[o + 2] = bl >= 1 ? 255 : bl > 0 ? (bl * 255 + 1e-9) | 0 : 0;
      }
    }
  }

  private readonly texel = new Float64Array(3);

  /** Bilinear sample at (u, v), glTF convention, repeat wrapping; colours in [0, 1]. */
  private sample(u: number, v: number): Float64Array {
    const tw = this.texW,
      th = this.texH,
      d = this.tex,
      res = this.texel;
    let x = u * tw - 0.5,
      y = v * th - 0.5;
    if (Number.isNaN(x)) x = 0;
    if (Number.isNaN(y)) y = 0;
    const fx0 = Math.floor(x),
      fy0 = Math.floor(y);
    const fx = x - fx0,
      fy = y - fy0;
    let xa = fx0 % tw;
    if (xa < 0) xa += tw;
    let ya = fy0 % th;
    if (ya < 0) ya += th;
    const xb = xa + 1 === tw ? 0 : xa + 1,
      yb = ya + 1 === th ? 0 : ya + 1;
    const i00 = (ya * tw + xa) * 4,
      i10 = (ya * tw + xb) * 4,
      i01 = (yb * tw + xa) * 4,
      i11 = (yb * tw + xb) * 4;
    const w00 = (1 - fx) * (1 - fy),
      w10 = fx * (1 - fy),
      w01 = (1 - fx) * fy,
      w11 = fx * fy;
    const k = 1 / 255;
    res[0] = (d[i00] * w00 + d[i10] * w10 + d[i01] * w01 + d[i11] * w11) * k;
    res[1] = (d[i00 + 1] * w00 + d[i10 + 1] * w10 + d[i01 + 1] * w01 + d[i11 + 1] * w11) * k;
    res[2] = (d[i00 + 2] * w00 + d[i10 + 2] * w10 + d[i01 + 2] * w01 + d[i11 + 2] * w11) * k;
    return res;
  }
}
