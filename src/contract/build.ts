/**
 * The one request builder: every entry point (the legacy and newer generate routes, the job API, MCP) parses
 * its own transport into `RequestFields` and hands them here, and gets back the answer request the answer path
 * takes. So every surface has the same rules: the preset checked before any work (a 400 listing the known
 * ones), each artefact's size decided once (a video's side is the request's, else its preset's
 * `render.video_res`; views are DEFAULT_VIEW_SIZE), the prompt's and the image's limits, the title, and the seed
 * derived from the content when none is given. An image is checked and decoded here, within the memory budget,
 * and put in the input store: the request carries only its key.
 */
import type { ArtefactSpec, FormatName, MeshRequest } from '../formats/registry.js';
import { DEFAULT_VIEW_SIZE, lodFormat, lodLevelOf, specViolation } from '../formats/registry.js';
import { seedFromContent } from '../pipelines/seed.js';
import type { Presets } from '../pipelines/presets.js';
import type { Priority } from '../runtime/admission.js';
import type { InputStore } from '../runtime/inputs.js';
import type { WebhookDispatch } from '../runtime/webhook-dispatch.js';
import type { AnswerRequest, DraftRequest, TaskRef } from '../runtime/request.js';
import type { JobSettings } from '../pipelines/context.js';
import { HttpError } from './errors.js';
import { FORM_NAMES, givenOptions, type GameOptionName, type GameOptions } from './game-options.js';
import { imageTask, promptTask, type RequestLimits } from './request.js';

/** The preset a progressive request's draft is made with. */
export const DRAFT_PRESET = 'realtime';

/**
 * A request's fields. The game options (GameOptions: faces, texture size, pivot, size, LODs, compression, texture
 * format, SPZ version, progressive) become each artefact's spec here, or a 400 that says why they cannot be met.
 */
export interface RequestFields extends GameOptions {
  /** Id for the job (the request id). */
  id?: string;
  priority: Priority;
  /** A prompt: text, or (as the legacy miner sends image tasks) a base64 or `data:` URL image. */
  prompt?: string;
  /** An image given as bytes (a file part, or a base64 field the surface decoded): always an image task. */
  image?: { bytes: Uint8Array; name?: string };
  /** The newer contract's `prompt_image_file`: its delivery and its default preset. */
  imageFile?: boolean;
  /** The client's seed; absent: derived from the content, so a repeated task gives the same asset. */
  seed?: number;
  preset?: string;
  /** What to deliver, each at most once; a video or views without a size get the default one. */
  outputs: { format: FormatName; size?: number }[];
  /** A mesh job even when no mesh artefact is asked for (a video of the mesh). */
  mesh?: boolean;
  /** What lists call the job; default: the prompt's first words, the image's file name, or its size. */
  title?: string;
  group?: string;
  /** A URL to call at the job's end. */
  webhook?: string;
}

export interface BuildContext {
  limits: RequestLimits;
  presets: Pick<Presets, 'resolve'>;
  inputs: InputStore;
  /** Checks webhook URLs; absent: a request with a webhook is refused. */
  webhooks?: Pick<WebhookDispatch, 'check'>;
}

/**
 * The answer request of a request's fields, or a 400 (HttpError) saying what was wrong: cheap checks first, the
 * image last. The image's hold on the input store passes to the request: the answer path lets it go.
 */
export async function buildAnswerRequest(fields: RequestFields, context: BuildContext): Promise<AnswerRequest> {
  const { limits } = context;
  if (fields.prompt !== undefined && fields.image !== undefined) throw new HttpError(400, 'send either a prompt or an image, not both');
  const presetName = fields.preset ?? (fields.imageFile ? limits.imageFilePreset : undefined);
  // An unknown name is refused here, before any image is decoded (UnknownPresetError: a 400 naming the known ones).
  const preset = context.presets.resolve(presetName);
  const asked = wantsOf(fields.outputs, preset.settings.render.video_res);
  if (!asked.length) throw new HttpError(400, 'ask for at least one artefact');
  // Impossible options are refused here, before the image is decoded and before any job.
  const wants = withGameOptions(asked, fields, preset.settings.pipeline);
  const draft = fields.progressive && preset.name !== DRAFT_PRESET ? draftOf(wants, context.presets.resolve(DRAFT_PRESET).name) : undefined;
  let webhook: string | undefined;
  if (fields.webhook !== undefined) {
    if (!context.webhooks) throw new HttpError(400, 'this route takes no webhook');
    webhook = await context.webhooks.check(fields.webhook);
  }

  const made = fields.image
    ? await imageTask(fields.image.bytes, limits)
    : fields.prompt !== undefined
      ? await promptTask(fields.prompt, limits)
      : null;
  if (!made) throw new HttpError(400, 'a prompt or an image is required');
  let task: TaskRef;
  let title: string;
  if (made.task.kind === 'text') {
    task = made.task;
    title = fields.title ?? made.task.prompt.slice(0, 80);
  } else {
    const { image, digest } = made.task;
    const input = await context.inputs.put(made.content as Uint8Array, image, made.release);
    // The draft's job holds the image too, and lets it go at its own end (the budget is taken once).
    if (draft) await context.inputs.put(made.content as Uint8Array, image, () => {});
    task = { kind: 'image', input, digest, width: image.width, height: image.height };
    title = fields.title ?? titleOfFile(fields.image?.name) ?? `image ${image.width}×${image.height}`;
  }
  const content = made.content;
  return {
    ...(fields.id !== undefined && { id: fields.id }),
    task,
    seed: fields.seed ?? seedFromContent(content),
    ...(fields.imageFile && { delivery: limits.imageFileDelivery }),
    priority: fields.priority,
    wants,
    ...(fields.mesh && { mesh: true }),
    ...(presetName !== undefined && { preset: preset.name }),
    title,
    ...(fields.group !== undefined && { group: fields.group }),
    ...(webhook !== undefined && { webhook }),
    ...(draft && { draft }),
  };
}

/** Artefact specs with their sizes: each format once, in the order asked. */
export function wantsOf(outputs: readonly { format: FormatName; size?: number }[], videoRes: number): ArtefactSpec[] {
  const seen = new Set<FormatName>();
  const wants: ArtefactSpec[] = [];
  for (const { format, size } of outputs) {
    if (seen.has(format)) continue;
    seen.add(format);
    if (format === 'mp4') {
      const side = size ?? videoRes;
      // H.264 in yuv420p needs even sides.
      wants.push({ format, size: side - (side % 2) });
    } else if (format === 'views') wants.push({ format, size: size ?? DEFAULT_VIEW_SIZE });
    else wants.push({ format });
  }
  return wants;
}

const isGlb = (format: FormatName) => format === 'glb' || lodLevelOf(format) !== null;
const isMesh = (format: FormatName) => isGlb(format) || format === 'obj';

/** What each option applies to: a request that gives one for none of its artefacts is told so. */
const APPLIES: Record<Exclude<GameOptionName, 'progressive'>, { to: (format: FormatName) => boolean; kinds: string }> = {
  faces: { to: isMesh, kinds: 'mesh artefacts (glb, its LODs, obj)' },
  textureSize: { to: isMesh, kinds: 'mesh artefacts (glb, its LODs, obj)' },
  pivot: { to: isMesh, kinds: 'mesh artefacts (glb, its LODs, obj)' },
  sizeM: { to: isMesh, kinds: 'mesh artefacts (glb, its LODs, obj)' },
  lods: { to: isGlb, kinds: 'GLB artefacts (glb and its LODs)' },
  compression: { to: isGlb, kinds: 'GLB artefacts (glb and its LODs)' },
  textureFormat: { to: isGlb, kinds: 'GLB artefacts (glb and its LODs)' },
  spzVersion: { to: (format) => format === 'spz', kinds: 'spz artefacts' },
};

/** An option as both transports name it: texture_size (textureSize). */
const optionLabel = (name: GameOptionName) => (FORM_NAMES[name] === name ? name : `${FORM_NAMES[name]} (${name})`);

/**
 * The artefacts with what the request asked of them: every mesh artefact gets one `mesh` request (the preset's
 * glb_faces and glb_texture_size unless the request gives its own), every level `lods` lists is delivered (glb,
 * glb_lod1, ...), spz gets its version. Values equal to the defaults are left out, so a request that asks for
 * the default file gets the default file's bytes and key. Throws a 400 naming what cannot be met: an option for
 * none of the artefacts asked for, a value out of range (faces above the preset's max_faces), an impossible
 * combination (a texture too small for the faces, a LOD level the chain does not have), and on the competitions'
 * contract (prompt_image_file) any option at all: its answers are what the judge reads, as they are.
 */
function withGameOptions(asked: ArtefactSpec[], fields: RequestFields, pipeline: JobSettings['pipeline']): ArtefactSpec[] {
  const given = givenOptions(fields).filter((name) => name !== 'progressive') as Exclude<GameOptionName, 'progressive'>[];
  if (fields.imageFile && given.length) {
    throw new HttpError(
      400,
      `prompt_image_file requests are the competitions' contract, answered as the judge reads them (one uncompressed mesh in the unit cube, centred): ${given.map((n) => FORM_NAMES[n]).join(', ')} ${given.length > 1 ? 'are' : 'is'} not taken there; send a prompt to /generate/ or the job to /api/v1/jobs`,
    );
  }
  for (const name of given) {
    const { to, kinds } = APPLIES[name];
    if (!asked.some((spec) => to(spec.format)))
      throw new HttpError(
        400,
        `${optionLabel(name)} applies to ${kinds}, and this request asks for ${asked.map((spec) => spec.format).join(', ')}`,
      );
  }

  let wants = asked;
  const lods = fields.lods;
  if (lods && lods.length > 1) {
    // Every level, in order, where the first GLB was asked for.
    const levels: FormatName[] = ['glb', ...Array.from({ length: lods.length - 1 }, (_, i) => lodFormat(i + 1))];
    const ordered: ArtefactSpec[] = [];
    let placed = false;
    for (const spec of asked) {
      if (!levels.includes(spec.format)) ordered.push(spec);
      else if (!placed) {
        ordered.push(...levels.map((format) => ({ format })));
        placed = true;
      }
    }
    wants = placed ? ordered : [...ordered, ...levels.map((format) => ({ format }))];
  }

  const faces = fields.faces ?? (pipeline.glb_faces || undefined);
  const textureSize = fields.textureSize ?? (pipeline.glb_texture_size || undefined);
  const mesh: MeshRequest = {
    ...(faces !== undefined && { faces }),
    ...(textureSize !== undefined && { textureSize }),
    ...(fields.pivot !== undefined && fields.pivot !== 'center' && { pivot: fields.pivot }),
    ...(fields.sizeM !== undefined && fields.sizeM !== 1 && { sizeM: fields.sizeM }),
    ...(lods !== undefined && (lods.length !== 1 || lods[0] !== 1) && { lods }),
  };
  const glbMesh: MeshRequest = {
    ...mesh,
    ...(fields.compression !== undefined && fields.compression !== 'none' && { compression: fields.compression }),
    ...(fields.textureFormat !== undefined && fields.textureFormat !== 'png' && { textureFormat: fields.textureFormat }),
  };
  const specs = wants.map((spec): ArtefactSpec => {
    const own = isGlb(spec.format) ? glbMesh : isMesh(spec.format) ? mesh : null;
    if (own && Object.keys(own).length) return { ...spec, mesh: own };
    if (spec.format === 'spz' && fields.spzVersion !== undefined && fields.spzVersion !== 3)
      return { ...spec, spzVersion: fields.spzVersion };
    return spec;
  });
  for (const spec of specs) {
    const violation = specViolation(spec, { maxFaces: pipeline.max_faces });
    if (violation) throw new HttpError(400, violation);
  }
  return specs;
}

/**
 * A progressive request's draft: the request's splats and plain GLB (spz keeps its version, the GLB its size and
 * pivot, so the draft stands where the final will), made quickly; an spz when it asked for neither.
 */
function draftOf(wants: ArtefactSpec[], preset: string): DraftRequest {
  const drafts: ArtefactSpec[] = [];
  for (const spec of wants) {
    if (spec.format === 'ply' || spec.format === 'spz') drafts.push(spec);
    else if (spec.format === 'glb') {
      const { sizeM, pivot } = spec.mesh ?? {};
      const placed = { ...(sizeM !== undefined && { sizeM }), ...(pivot !== undefined && { pivot }) };
      drafts.push(Object.keys(placed).length ? { format: 'glb', mesh: placed } : { format: 'glb' });
    }
  }
  return { preset, wants: drafts.length ? drafts : [{ format: 'spz' }] };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

/** A file name as a title: printable, at most 80 characters; none for the name a nameless part gets. */
function titleOfFile(name: string | undefined): string | undefined {
  const clean = name?.replace(CONTROL_CHARACTERS, '').trim().slice(0, 80);
  return clean && clean !== 'blob' && clean !== 'image' ? clean : undefined;
}
