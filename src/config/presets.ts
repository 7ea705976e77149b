/**
 * Presets: named sets of overrides on the config's job sections (pipeline, text_to_image, image_to_3d, validate,
 * render), for the knobs that trade speed for quality. A key left null keeps the config's value, so `balanced`,
 * which overrides nothing, is exactly the config. Each preset is merged onto the sections and validated by the
 * sections' own schemas when the config is parsed: a bad preset stops start-up naming its key.
 */
import { z } from 'zod';
import type { Config } from './schema.js';

/** The config sections a job carries (and a preset may change). */
export const JOB_SECTIONS = ['pipeline', 'text_to_image', 'matting', 'image_to_3d', 'validate', 'render'] as const;
export type JobSection = (typeof JOB_SECTIONS)[number];
export type JobSections = Pick<Config, JobSection>;

/** The fewest faces a request may ask of a mesh (mesh/game.ts's MIN_FACES; a test holds the two equal). */
export const MIN_REQUEST_FACES = 500;
/** The sides a delivered mesh's texture may have (mesh/bake.ts's; a test holds them equal). */
export const TEXTURE_SIDES = { min: 256, max: 4096 } as const;

/** Names of presets: what a request's "preset" field may say. */
export const PRESET_NAME = /^[a-z0-9][a-z0-9_-]{0,39}$/;

interface Knob {
  integer: boolean;
  description: string;
}

const int = (description: string): Knob => ({ integer: true, description });
const num = (description: string): Knob => ({ integer: false, description });
type KnobTree = { [key: string]: Knob | KnobTree };

/** What a preset may set, laid out as the config's sections are; ranges are the sections' own. */
const KNOBS = {
  pipeline: {
    retries: int('Extra attempts after self-validation fails (pipeline.retries).'),
    image_size: int('Side of the preview text-to-image picture in pixels (pipeline.image_size).'),
    max_gaussians: int('Gaussian budget: larger clouds keep their most important Gaussians (pipeline.max_gaussians; 0 = none).'),
    max_faces: int("Most triangles a request's faces may ask for (pipeline.max_faces)."),
    glb_faces: int('Triangles of a delivered mesh when the request names no faces (pipeline.glb_faces; 0 = as made).'),
    glb_texture_size: int(
      'Texture side of a delivered mesh when the request names no texture_size (pipeline.glb_texture_size; 0 = as made).',
    ),
  },
  text_to_image: {
    gpu_worker: {
      steps: int('FLUX.1-schnell denoising steps (text_to_image.gpu_worker.steps).'),
      size: int('Side of the FLUX picture in pixels, a multiple of 16 (text_to_image.gpu_worker.size).'),
    },
  },
  image_to_3d: {
    inflate: {
      max_gaussians: int('Most Gaussians the preview inflation emits (image_to_3d.inflate.max_gaussians).'),
      mesh_faces: int('About how many triangles a preview mesh has (image_to_3d.inflate.mesh_faces).'),
    },
    gpu_worker: {
      sparse_structure_steps: int('TRELLIS sparse-structure sampler steps (image_to_3d.gpu_worker.sparse_structure_steps).'),
      sparse_structure_cfg: num('TRELLIS sparse-structure guidance strength (image_to_3d.gpu_worker.sparse_structure_cfg).'),
      slat_steps: int('TRELLIS structured-latent sampler steps (image_to_3d.gpu_worker.slat_steps).'),
      slat_cfg: num('TRELLIS structured-latent guidance strength (image_to_3d.gpu_worker.slat_cfg).'),
      mesh_simplify: num('Share of TRELLIS mesh triangles removed before baking the GLB (image_to_3d.gpu_worker.mesh_simplify).'),
      mesh_texture_size: int("Side of the GLB's baked texture in pixels (image_to_3d.gpu_worker.mesh_texture_size)."),
    },
  },
  validate: {
    gates: {
      max_transparent_share: num('Largest share of transparent Gaussians (validate.gates.max_transparent_share).'),
    },
    clip: {
      min_similarity: num('Lowest mean prompt-view cosine (validate.clip.min_similarity).'),
      min_geomean_cosine: num('Lowest geometric mean of the prompt-view cosines (validate.clip.min_geomean_cosine).'),
      min_image_similarity: num('Lowest mean image-view cosine for image tasks (validate.clip.min_image_similarity).'),
      min_aesthetic: num('Lowest mean aesthetic score (validate.clip.min_aesthetic).'),
    },
    validator_service: {
      min_score: num('Lowest validation-service score accepted (validate.validator_service.min_score).'),
    },
  },
  render: {
    video_res: int('Side of turntable videos when the request has no video_res (render.video_res).'),
    fps: int('Frames per second of turntable videos (render.fps).'),
    seconds: num('Length of turntable videos in seconds (render.seconds).'),
    frames: int('Frames of turntable videos; 0 derives them from fps x seconds (render.frames).'),
  },
} satisfies KnobTree;

type Values<T> = { [K in keyof T]?: T[K] extends Knob ? number : Values<T[K]> };
/** A preset's overrides: any subset of the knobs. */
export type PresetValues = Values<typeof KNOBS>;

interface BuiltIn {
  description: string;
  values: PresetValues;
}

/**
 * The built-in presets. `balanced` is the config itself; the others move the knobs from there. Why each value:
 * docs/presets.md.
 */
export const BUILT_IN_PRESETS: Record<'realtime' | 'fast' | 'balanced' | 'quality', BuiltIn> = {
  realtime: {
    description: 'A quick look: one attempt, few sampler steps, a 60,000-Gaussian budget and a short small video.',
    values: {
      pipeline: { retries: 0, image_size: 256, max_gaussians: 60_000, max_faces: 30_000 },
      text_to_image: { gpu_worker: { steps: 2, size: 512 } },
      image_to_3d: {
        inflate: { max_gaussians: 120_000, mesh_faces: 30_000 },
        gpu_worker: { sparse_structure_steps: 6, slat_steps: 6, mesh_simplify: 0.98, mesh_texture_size: 512 },
      },
      render: { video_res: 512, fps: 12, seconds: 2, frames: 0 },
    },
  },
  fast: {
    description: "One attempt and two-thirds of the sampler steps: the newer contract's 30 s per asset.",
    values: {
      pipeline: { retries: 0, image_size: 384, max_gaussians: 300_000, max_faces: 60_000 },
      text_to_image: { gpu_worker: { steps: 3, size: 768 } },
      image_to_3d: { inflate: { mesh_faces: 60_000 }, gpu_worker: { sparse_structure_steps: 8, slat_steps: 8 } },
    },
  },
  balanced: {
    description: "The config as it stands: the legacy miner's default.",
    values: {},
  },
  quality: {
    description: 'A careful asset: two retries, twice the sampler steps, denser preview, stricter checks, a longer video.',
    values: {
      pipeline: { retries: 2, image_size: 768, max_faces: 250_000 },
      image_to_3d: {
        inflate: { max_gaussians: 480_000, mesh_faces: 250_000 },
        gpu_worker: { sparse_structure_steps: 25, slat_steps: 25, mesh_simplify: 0.9, mesh_texture_size: 2048 },
      },
      validate: { clip: { min_geomean_cosine: 0.22, min_aesthetic: 5 }, validator_service: { min_score: 0.65 } },
      render: { fps: 30, seconds: 6, frames: 0 },
    },
  },
};

function presetSchema(description: string, values: PresetValues) {
  const tree = (knobs: KnobTree, given: Record<string, unknown> | undefined): z.ZodType => {
    const shape: Record<string, z.ZodType> = {};
    for (const [key, knob] of Object.entries(knobs)) {
      if (isKnob(knob)) {
        const leaf = knob;
        const number = leaf.integer ? z.number().int() : z.number();
        shape[key] = number
          .nullable()
          .default((given?.[key] as number | undefined) ?? null)
          .describe(`${leaf.description.replace(/\.$/, '')}; null keeps the config's.`);
      } else {
        shape[key] = tree(knob as KnobTree, given?.[key] as Record<string, unknown> | undefined);
      }
    }
    return z.strictObject(shape).prefault({});
  };
  const sections = tree(KNOBS, values as Record<string, unknown>) as z.ZodPrefault<z.ZodObject>;
  return z.strictObject({
    description: z
      .string()
      .max(200)
      .default(description)
      .describe('One line saying what the preset is for (shown by `fast3d config --presets`).'),
    ...(sections.def.innerType as z.ZodObject).shape,
  });
}

/** A preset as parsed: its description and every knob, null where it keeps the config's value. */
export interface Preset {
  description: string;
  [section: string]: unknown;
}

export type BuiltInPreset = keyof typeof BUILT_IN_PRESETS;

const builtIns = Object.fromEntries(
  Object.entries(BUILT_IN_PRESETS).map(([name, p]) => [name, presetSchema(p.description, p.values).prefault({})]),
);

/** The built-in presets (each key defaults to its value), and any other name as a preset of your own. */
export const presetsSchema = z
  .object(builtIns)
  .catchall(presetSchema('Your own preset.', {}))
  .describe(
    'Named presets a request may choose with its "preset" field; any other name adds your own, with the same keys.',
  ) as unknown as z.ZodType<Record<BuiltInPreset, Preset> & Record<string, Preset>, Record<string, unknown>>;

/** Row of the reference for user presets, which the walker of the schema cannot list by name. */
export const USER_PRESET_ROW = {
  key: 'presets.<name>',
  default: {},
  description:
    'Your own preset under any other name (lower-case letters, digits, "-", "_"): the same keys as the built-in ones, null or absent keeps the config\'s value.',
};

/** The preset names of a config, built-in ones first. */
export function presetNames(config: Pick<Config, 'presets'>): string[] {
  return Object.keys(config.presets);
}

/** The config's job sections with a preset's overrides applied (not validated: the config's parse did that). */
export function applyPreset(config: JobSections, preset: Preset): JobSections {
  const merged = structuredClone(Object.fromEntries(JOB_SECTIONS.map((s) => [s, config[s]]))) as Record<string, unknown>;
  overlay(merged, preset, KNOBS);
  return merged as unknown as JobSections;
}

function overlay(into: Record<string, unknown>, from: Record<string, unknown>, knobs: KnobTree): void {
  for (const [key, knob] of Object.entries(knobs)) {
    const value = from?.[key];
    if (value === null || value === undefined) continue;
    if (isKnob(knob)) into[key] = value;
    else if (into[key] && typeof into[key] === 'object')
      overlay(into[key] as Record<string, unknown>, value as Record<string, unknown>, knob);
  }
}

function isKnob(node: Knob | KnobTree): node is Knob {
  return typeof (node as Knob).integer === 'boolean' && typeof (node as Knob).description === 'string';
}

/** The values of every knob in these sections, laid out as a preset's: what a job's settings are, in short. */
export function knobValues(sections: JobSections): PresetValues {
  const read = (from: Record<string, unknown>, knobs: KnobTree): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(knobs).map(([key, knob]) => [key, isKnob(knob) ? from[key] : read(from[key] as Record<string, unknown>, knob)]),
    );
  return read(sections as unknown as Record<string, unknown>, KNOBS) as PresetValues;
}

/** What `knobValues` gives, as a schema (job views and reports in the OpenAPI document): every knob, a number. */
export const presetValuesSchema: z.ZodObject = (() => {
  const tree = (knobs: KnobTree): z.ZodObject =>
    z.object(
      Object.fromEntries(
        Object.entries(knobs).map(([key, knob]) => [
          key,
          isKnob(knob) ? (knob.integer ? z.number().int() : z.number()).describe(knob.description) : tree(knob),
        ]),
      ),
    );
  return tree(KNOBS);
})();

/** A preset's own overrides (its non-null knobs). */
export function presetOverrides(preset: Preset): PresetValues {
  const pick = (from: Record<string, unknown> | undefined, knobs: KnobTree): Record<string, unknown> | undefined => {
    const out: Record<string, unknown> = {};
    for (const [key, knob] of Object.entries(knobs)) {
      const value = isKnob(knob) ? from?.[key] : pick(from?.[key] as Record<string, unknown> | undefined, knob);
      if (value !== null && value !== undefined) out[key] = value;
    }
    return Object.keys(out).length ? out : undefined;
  };
  return (pick(preset, KNOBS) ?? {}) as PresetValues;
}

/** Knob paths and values, flattened: `pipeline.retries=0`, for listings. */
export function flattenValues(values: PresetValues, prefix = ''): [string, number][] {
  return Object.entries(values).flatMap(([key, value]) =>
    typeof value === 'object' && value !== null
      ? flattenValues(value as PresetValues, `${prefix}${key}.`)
      : [[`${prefix}${key}`, value as number] as [string, number]],
  );
}

/**
 * Why a preset's mesh defaults (`glb_faces`, `glb_texture_size`) are no request its own `max_faces` lets through,
 * or null: faces 0 or 500 to max_faces, a texture side 0 or 256 to 4096 that holds their colours (one 2 x 2
 * cell per triangle, as mesh/bake.ts bakes them).
 */
export function meshDefaultsIssue(pipeline: JobSections['pipeline']): { key: string; message: string } | null {
  const { glb_faces: faces, max_faces: max, glb_texture_size: side } = pipeline;
  if (faces !== 0 && (faces < MIN_REQUEST_FACES || faces > max))
    return { key: 'glb_faces', message: `0 (the mesh as made), or from ${MIN_REQUEST_FACES} to max_faces (${max})` };
  if (side === 0) return null;
  if (side < TEXTURE_SIDES.min)
    return { key: 'glb_texture_size', message: `0 (as made), or from ${TEXTURE_SIDES.min} to ${TEXTURE_SIDES.max}` };
  const holds = Math.floor(side / 2) ** 2;
  if (holds < (faces || max))
    return {
      key: 'glb_texture_size',
      message: `a ${side} px texture holds the colours of at most ${holds} triangles, fewer than ${faces ? 'glb_faces' : 'max_faces'} (${faces || max})`,
    };
  return null;
}

/**
 * Validates every preset as the config's sections are (its merged sections through their schemas) and the
 * contract's default presets; issues name the key (`presets.fast.pipeline.retries: ...`).
 */
export function checkPresets(config: Config, ctx: z.RefinementCtx, schemas: Record<JobSection, z.ZodType>): void {
  const names = presetNames(config);
  for (const name of names) {
    if (!PRESET_NAME.test(name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['presets', name],
        message: 'a preset name is lower-case letters, digits, "-" and "_", at most 40 characters',
      });
      continue;
    }
    const merged = applyPreset(config, config.presets[name]);
    let valid = true;
    for (const section of JOB_SECTIONS) {
      const result = schemas[section].safeParse(merged[section]);
      if (result.success) continue;
      valid = false;
      for (const issue of result.error.issues) {
        ctx.addIssue({ code: 'custom', path: ['presets', name, section, ...issue.path.map(String)], message: issue.message });
      }
    }
    // A preset's mesh defaults must be a request that can be met: refused at start-up, not on every request.
    const delivery = valid ? meshDefaultsIssue(merged.pipeline) : null;
    if (delivery) ctx.addIssue({ code: 'custom', path: ['presets', name, 'pipeline', delivery.key], message: delivery.message });
  }
  for (const key of ['preset', 'image_file_preset'] as const) {
    const name = config.contract[key];
    if (!names.includes(name))
      ctx.addIssue({ code: 'custom', path: ['contract', key], message: `unknown preset "${name}"; known presets: ${names.join(', ')}` });
  }
}
