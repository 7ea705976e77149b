/**
 * Preview text-to-image: a shaded primitive on white, chosen and coloured from the prompt's words and posed by
 * the seed. Sphere tracing of signed distance functions, orthographic camera looking down -Z. It is a CPU
 * stand-in that exercises every later stage with object-centric pictures; it understands no language.
 */
import { createImage, type RgbaImage } from '../../image/rgba.js';
import type { JobContext } from '../context.js';
import type { Readiness, TextToImage } from '../stages.js';

export type Shape = 'sphere' | 'box' | 'cylinder' | 'cone' | 'torus' | 'capsule';

const SHAPE_WORDS: Record<string, Shape> = {
  ball: 'sphere',
  sphere: 'sphere',
  apple: 'sphere',
  orange: 'sphere',
  globe: 'sphere',
  planet: 'sphere',
  head: 'sphere',
  egg: 'sphere',
  box: 'box',
  cube: 'box',
  crate: 'box',
  house: 'box',
  chest: 'box',
  book: 'box',
  building: 'box',
  car: 'box',
  table: 'box',
  chair: 'box',
  can: 'cylinder',
  cup: 'cylinder',
  mug: 'cylinder',
  bottle: 'cylinder',
  barrel: 'cylinder',
  drum: 'cylinder',
  vase: 'cylinder',
  tower: 'cylinder',
  candle: 'cylinder',
  cone: 'cone',
  tree: 'cone',
  hat: 'cone',
  pyramid: 'cone',
  mountain: 'cone',
  rocket: 'cone',
  donut: 'torus',
  doughnut: 'torus',
  ring: 'torus',
  tire: 'torus',
  tyre: 'torus',
  wheel: 'torus',
  bicycle: 'torus',
  bagel: 'torus',
  capsule: 'capsule',
  pill: 'capsule',
  sausage: 'capsule',
  robot: 'capsule',
  bear: 'capsule',
  cat: 'capsule',
  dog: 'capsule',
  hamburger: 'capsule',
};

const COLOUR_WORDS: Record<string, [number, number, number]> = {
  red: [0.8, 0.1, 0.1],
  pink: [0.95, 0.45, 0.65],
  orange: [0.95, 0.5, 0.1],
  yellow: [0.95, 0.85, 0.15],
  gold: [0.85, 0.65, 0.15],
  golden: [0.85, 0.65, 0.15],
  green: [0.15, 0.65, 0.2],
  blue: [0.15, 0.3, 0.85],
  cyan: [0.1, 0.75, 0.8],
  teal: [0.05, 0.5, 0.5],
  purple: [0.5, 0.2, 0.7],
  violet: [0.55, 0.3, 0.8],
  brown: [0.45, 0.28, 0.12],
  wooden: [0.55, 0.36, 0.18],
  black: [0.08, 0.08, 0.08],
  grey: [0.5, 0.5, 0.5],
  gray: [0.5, 0.5, 0.5],
  silver: [0.72, 0.74, 0.78],
  white: [0.92, 0.92, 0.9],
  beige: [0.85, 0.78, 0.6],
};

export interface PromptLook {
  shape: Shape;
  colour: [number, number, number];
}

/** The shape and colour a prompt asks for: named words win, otherwise a hash of the prompt decides. */
export function lookOfPrompt(prompt: string): PromptLook {
  const words = prompt
    .toLowerCase()
    .split(/[^a-z]+/)
    .filter(Boolean);
  const hash = fnv1a(prompt.toLowerCase().trim());
  const shapes = Object.values(SHAPE_WORDS);
  let shape: Shape | undefined;
  let colour: [number, number, number] | undefined;
  for (const word of words) {
    const singular = word.endsWith('s') ? word.slice(0, -1) : word;
    shape ??= SHAPE_WORDS[word] ?? SHAPE_WORDS[singular];
    colour ??= COLOUR_WORDS[word];
  }
  shape ??= shapes[hash % shapes.length];
  colour ??= hsvToRgb(((hash >>> 8) % 360) / 360, 0.65, 0.8);
  return { shape, colour };
}

export interface PreviewTextToImageOptions {
  /** 0..1: how much the seed perturbs pose and light. */
  lightJitter: number;
}

export interface PrimitiveOptions extends PreviewTextToImageOptions {
  /** Side of the square picture in pixels. */
  size: number;
}

export class PreviewTextToImage implements TextToImage {
  readonly name = 'preview';
  readonly preview = true;

  constructor(private readonly options: PreviewTextToImageOptions) {}

  readiness(): Readiness {
    return { ready: true };
  }

  /** The picture's side is the job's pipeline.image_size (a preset may change it). */
  async generate(prompt: string, seed: number, ctx: JobContext): Promise<RgbaImage> {
    return drawPrimitive(lookOfPrompt(prompt), seed, { ...this.options, size: ctx.settings.pipeline.image_size });
  }
}

type Vec3 = [number, number, number];

export function drawPrimitive(look: PromptLook, seed: number, options: PrimitiveOptions): RgbaImage {
  const size = options.size;
  const image = createImage(size, size);
  image.data.fill(255);
  const random = mulberry32(seed);
  const jitter = options.lightJitter;
  // Pose: tilt toward the viewer so tops show, turned a little by the seed.
  const pitch = 0.45 + (random() - 0.5) * jitter;
  const yaw = 0.6 + (random() - 0.5) * 2 * jitter;
  const light = normalize([-0.5 + (random() - 0.5) * jitter, 0.8, 0.6]);
  const sdf = SDFS[look.shape];
  const cp = Math.cos(pitch),
    sp = Math.sin(pitch),
    cy = Math.cos(yaw),
    sy = Math.sin(yaw);
  // World -> object: undo pitch (about X) then yaw (about Y).
  const toObject = (p: Vec3): Vec3 => {
    const y1 = cp * p[1] + sp * p[2];
    const z1 = -sp * p[1] + cp * p[2];
    return [cy * p[0] - sy * z1, y1, sy * p[0] + cy * z1];
  };
  const scene = (p: Vec3) => sdf(toObject(p));
  const extent = 1.25; // half-width of the view in world units; the primitives fit in the unit sphere
  const data = image.data;
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const x = (((px + 0.5) / size) * 2 - 1) * extent;
      const y = (1 - ((py + 0.5) / size) * 2) * extent;
      if (x * x + y * y > 1.1) continue; // outside every primitive's bounding sphere
      let z = 2;
      let hit = false;
      for (let step = 0; step < 96 && z > -2; step++) {
        const d = scene([x, y, z]);
        if (d < 1e-3) {
          hit = true;
          break;
        }
        z -= d;
      }
      if (!hit) continue;
      const n = normal(scene, [x, y, z]);
      const diffuse = Math.max(0, n[0] * light[0] + n[1] * light[1] + n[2] * light[2]);
      const shade = 0.35 + 0.65 * diffuse;
      const o = (py * size + px) * 4;
      data[o] = 255 * Math.min(1, look.colour[0] * shade);
      data[o + 1] = 255 * Math.min(1, look.colour[1] * shade);
      data[o + 2] = 255 * Math.min(1, look.colour[2] * shade);
    }
  }
  return image;
}

const SDFS: Record<Shape, (p: Vec3) => number> = {
  sphere: (p) => Math.hypot(p[0], p[1], p[2]) - 0.75,
  box: (p) => roundedBox(p, [0.5, 0.45, 0.5], 0.06),
  cylinder: (p) => {
    const dr = Math.hypot(p[0], p[2]) - 0.42,
      dy = Math.abs(p[1]) - 0.65;
    return Math.min(Math.max(dr, dy), 0) + Math.hypot(Math.max(dr, 0), Math.max(dy, 0));
  },
  cone: (p) => {
    // Capped cone, apex up: radius 0.6 at y = -0.6 shrinking to 0 at y = 0.7.
    const q = Math.hypot(p[0], p[2]);
    const h = 1.3,
      r = 0.6,
      y = p[1] + 0.6;
    const side = (q * h + (y - h) * r) / Math.hypot(h, r);
    return Math.max(side, -y);
  },
  torus: (p) => Math.hypot(Math.hypot(p[0], p[2]) - 0.55, p[1]) - 0.2,
  capsule: (p) => {
    const y = Math.max(-0.35, Math.min(0.35, p[1]));
    return Math.hypot(p[0], p[1] - y, p[2]) - 0.4;
  },
};

function roundedBox(p: Vec3, b: Vec3, r: number): number {
  const qx = Math.abs(p[0]) - b[0] + r,
    qy = Math.abs(p[1]) - b[1] + r,
    qz = Math.abs(p[2]) - b[2] + r;
  return Math.hypot(Math.max(qx, 0), Math.max(qy, 0), Math.max(qz, 0)) + Math.min(Math.max(qx, qy, qz), 0) - r;
}

function normal(f: (p: Vec3) => number, p: Vec3): Vec3 {
  const e = 1e-3;
  return normalize([
    f([p[0] + e, p[1], p[2]]) - f([p[0] - e, p[1], p[2]]),
    f([p[0], p[1] + e, p[2]]) - f([p[0], p[1] - e, p[2]]),
    f([p[0], p[1], p[2] + e]) - f([p[0], p[1], p[2] - e]),
  ]);
}

function normalize(v: Vec3): Vec3 {
  const l = Math.hypot(v[0], v[1], v[2]) || 1;
  return [v[0] / l, v[1] / l, v[2] / l];
}

function hsvToRgb(h: number, s: number, v: number): [number, number, number] {
  const f = (n: number) => {
    const k = (n + h * 6) % 6;
    return v - v * s * Math.max(0, Math.min(k, 4 - k, 1));
  };
  return [f(5), f(3), f(1)];
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Small seeded PRNG (Mulberry32): deterministic pictures for a given seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
