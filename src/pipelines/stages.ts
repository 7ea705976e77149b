/**
 * Stage interfaces. Each stage has interchangeable backends chosen at start-up; the pipeline sees only these.
 * Every backend reports readiness so the service can answer 503 instead of failing a job halfway. Each call
 * receives the job's context (signal, GPU runner, settings, progress; outside a job, `standaloneContext()` makes one);
 * a backend reads whatever a preset may change from its settings alone.
 */
import type { RgbaImage } from '../image/rgba.js';
import type { TriangleMesh } from '../mesh/mesh.js';
import type { GaussianCloud } from '../splat/cloud.js';
import type { JobContext } from './context.js';
import type { Check, Job } from './job.js';

export interface Readiness {
  ready: boolean;
  /** What is missing or happening, e.g. "model file /models/isnet.onnx not found". */
  detail?: string;
}

export interface Backend {
  /** Backend name as in the config, e.g. "preview" or "isnet". */
  readonly name: string;
  /** A preview backend is a CPU stand-in: its outputs are labelled and not for mining. */
  readonly preview: boolean;
  /** The backend runs on the GPU: the runtime serialises such calls under its GPU lock. */
  readonly gpu?: boolean;
  readiness(): Readiness;
  /** Loads models or connects; called once at start-up, in the background. */
  init?(): Promise<void>;
  close?(): Promise<void>;
}

export interface TextToImage extends Backend {
  generate(prompt: string, seed: number, ctx: JobContext): Promise<RgbaImage>;
}

export interface MattingInput {
  image: RgbaImage;
  /** The image came from the user (image task) rather than from text-to-image. */
  fromUser: boolean;
}

/** Returns the object cut out and framed (square, centred, transparent background), or null when none is found. */
export interface Matting extends Backend {
  matte(input: MattingInput, ctx: JobContext): Promise<RgbaImage | null>;
}

export interface ImageTo3d extends Backend {
  /** The cloud in the validator's frame: +Y up, front toward +Z. */
  generate(image: RgbaImage, seed: number, ctx: JobContext): Promise<GaussianCloud>;
  /**
   * The cloud and a mesh of the same object from one run, both in the validator's frame; only backends that
   * make meshes have it. The job's settings say how fine the mesh is.
   */
  generateWithMesh?(image: RgbaImage, seed: number, ctx: JobContext): Promise<CloudAndMesh>;
  /** Whether generateWithMesh can run here now (a GPU worker started without meshes cannot); absent: it can. */
  meshReadiness?(): Readiness;
}

export interface CloudAndMesh {
  cloud: GaussianCloud;
  mesh: TriangleMesh;
}

export interface ValidationInput {
  job: Job;
  cloud: GaussianCloud;
  /** A mesh job's mesh, normalised: views are rendered from it rather than from the cloud. */
  mesh?: TriangleMesh;
  /** The framed RGBA image the cloud was made from. */
  image: RgbaImage;
}

export interface Validator extends Backend {
  validate(input: ValidationInput, ctx: JobContext): Promise<Check[]>;
}

export interface Stages {
  textToImage: TextToImage;
  matting: Matting;
  imageTo3d: ImageTo3d;
  /** Run in order; the first failing check ends the attempt. */
  validators: Validator[];
}

export function allBackends(stages: Stages): { stage: string; backend: Backend }[] {
  return [
    { stage: 'text_to_image', backend: stages.textToImage },
    { stage: 'matting', backend: stages.matting },
    { stage: 'image_to_3d', backend: stages.imageTo3d },
    ...stages.validators.map((v) => ({ stage: `validate.${v.name}`, backend: v as Backend })),
  ];
}

/** What views are rendered of: the splats, or a mesh job's mesh. */
export type ViewSubject = { cloud: GaussianCloud } | { mesh: TriangleMesh };

/**
 * Renders a cloud or a mesh from the validator's camera preset (`count` views on its orbit, `size` pixels
 * square, white background), for validators that score views. src/render provides the implementation.
 */
export type ViewRenderer = (subject: ViewSubject, views: { count: number; size: number }, signal?: AbortSignal) => Promise<RgbaImage[]>;

/** Runs work under the runtime's GPU lock (one GPU call at a time); the pipeline and GPU-using backends share it. */
export type GpuRunner = <T>(work: () => Promise<T>, signal?: AbortSignal) => Promise<T>;
