/**
 * The one request builder: every entry point (the legacy and newer generate routes, the job API, MCP) parses
 * its own transport into `RequestFields` and hands them here, and gets back the answer request the answer path
 * takes. So every surface has the same rules: the preset checked before any work (a 400 listing the known
 * ones), each artefact's size decided once (a video's side is the request's, else its preset's
 * `render.video_res`; views are DEFAULT_VIEW_SIZE), the prompt's and the image's limits, the title, and the seed
 * derived from the content when none is given. An image is checked and decoded here, within the memory budget,
 * and put in the input store: the request carries only its key.
 */
import type { ArtefactSpec, FormatName } from '../formats/registry.js';
import { DEFAULT_VIEW_SIZE } from '../formats/registry.js';
import { seedFromContent } from '../pipelines/seed.js';
import type { Presets } from '../pipelines/presets.js';
import type { Priority } from '../runtime/admission.js';
import type { InputStore } from '../runtime/inputs.js';
import type { WebhookDispatch } from '../runtime/webhook-dispatch.js';
import type { AnswerRequest, TaskRef } from '../runtime/request.js';
import { HttpError } from './errors.js';
import { imageTask, promptTask, type RequestLimits } from './request.js';

export interface RequestFields {
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
  const wants = wantsOf(fields.outputs, preset.settings.render.video_res);
  if (!wants.length) throw new HttpError(400, 'ask for at least one artefact');
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

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

/** A file name as a title: printable, at most 80 characters; none for the name a nameless part gets. */
function titleOfFile(name: string | undefined): string | undefined {
  const clean = name?.replace(CONTROL_CHARACTERS, '').trim().slice(0, 80);
  return clean && clean !== 'blob' && clean !== 'image' ? clean : undefined;
}
