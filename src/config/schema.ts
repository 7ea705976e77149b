/**
 * The configuration schema: every tunable, its default and a one-line description. Objects are strict, so a
 * misspelt key is an error rather than a silently ignored setting.
 */
import { z } from 'zod';
import { checkPresets, MIN_REQUEST_FACES, PRESET_NAME, presetsSchema } from './presets.js';
import { rotationProblem, VALIDATOR_ELEVATION, VALIDATOR_EXTENT, VALIDATOR_FOV, VALIDATOR_RADIUS } from '../splat/frame.js';

const port = z.number().int().min(0).max(65535);

const presetName = z.string().regex(PRESET_NAME, 'lower-case letters, digits, "-" and "_", at most 40 characters');

/** The validator's gate: no budget may go below it. */
export const MIN_BUDGET = 7000;
const gaussianBudget = z
  .number()
  .int()
  .min(0)
  .max(10_000_000)
  .refine((n) => n === 0 || n >= MIN_BUDGET, `a Gaussian budget is 0 (none) or at least the validator's ${MIN_BUDGET}`);

/** Sides of turntable videos a request may ask for (video_res), in pixels; upstream's default is 1088. */
export const VIDEO_RES = { min: 64, max: 2048 } as const;
const rotation = z.union([
  z.enum(['identity', 'z-up', 'y-down']),
  z
    .array(z.number())
    .length(9)
    .superRefine((matrix, ctx) => {
      const problem = rotationProblem(matrix);
      if (problem) ctx.addIssue({ code: 'custom', message: `[${matrix.join(', ')}] ${problem}` });
    }),
]);

export const serverSchema = z.strictObject({
  host: z.string().min(1).default('0.0.0.0').describe('Address to listen on (env HOST overrides).'),
  port: port.default(8093).describe('TCP port to listen on (env PORT overrides); the miner defaults to 8093.'),
  body_limit_mb: z.number().positive().max(1024).default(32).describe('Largest accepted request body in MiB; larger bodies get 413.'),
  health_ok_status: z
    .string()
    .min(1)
    .default('ok')
    .describe('Word /health reports in "status" when ready; set "healthy" for the newer contract\'s checker.'),
  shutdown_grace_s: z.number().min(0).default(30).describe('Seconds in-flight jobs may run after SIGTERM before the process exits.'),
  write_timeout_s: z
    .number()
    .min(0)
    .max(3600)
    .default(60)
    .describe('Seconds an answer may wait for a client that reads none of it before its connection is closed (0 = no limit).'),
  metrics_auth: z
    .enum(['open', 'token'])
    .default('open')
    .describe('GET /metrics open to scrapers, or "token": it needs the bearer token of auth too (for public pods).'),
});

export const contractSchema = z.strictObject({
  max_prompt_chars: z.number().int().min(1).default(1024).describe('Longest text prompt after trimming (validators cap prompts at 1024).'),
  max_image_pixels: z
    .number()
    .int()
    .min(1)
    .default(40_000_000)
    .describe('Largest decoded image (width x height) accepted for image tasks.'),
  min_image_side: z.number().int().min(1).default(16).describe('Smallest accepted width or height of an input image, in pixels.'),
  image_file_rotation: rotation
    .default('identity')
    .describe(
      'Frame of answers to prompt_image_file requests: "identity" is +Y up, front +Z, as the subnet\'s competitions require since their orientation update; "y-down" is the earlier Y-down frame.',
    ),
  image_file_output: z
    .enum(['ply', 'glb'])
    .default('ply')
    .describe(
      'What POST /generate answers to prompt_image_file requests without a "format" field: a Gaussian-splat PLY (competition 0) or a GLB mesh (competition 1).',
    ),
  image_file_on_reject: z
    .enum(['best-effort', 'decline'])
    .default('best-effort')
    .describe(
      'When self-validation rejects a prompt_image_file request: return the last asset anyway (that contract counts a 204 as a lost prompt) or decline.',
    ),
  preset: presetName
    .default('balanced')
    .describe('Preset of the legacy contract\'s requests (and of any request naming none) when the request has no "preset" field.'),
  image_file_preset: presetName
    .default('fast')
    .describe(
      'Preset of prompt_image_file requests without a "preset" field: no retry and fewer sampler steps keep that contract\'s 30 s per asset.',
    ),
});

export const pipelineSchema = z.strictObject({
  retries: z
    .number()
    .int()
    .min(0)
    .max(5)
    .default(1)
    .describe('Extra attempts with a new seed after self-validation fails; then the job is declined (204).'),
  image_size: z.number().int().min(64).max(2048).default(512).describe('Side of the square image text-to-image generates, in pixels.'),
  extent: z
    .number()
    .min(0)
    .default(VALIDATOR_EXTENT)
    .describe(
      "Largest bounding-box extent of the returned asset; the validator's own (the default) makes its rescale a no-op (0 keeps the scale).",
    ),
  mesh_extent: z
    .number()
    .positive()
    .default(1)
    .describe(
      'Side of the cube every mesh (GLB) is centred in and scaled to fit: 1 is [-0.5, 0.5] on every axis, as the mesh competition asks.',
    ),
  max_glb_mb: z
    .number()
    .positive()
    .max(2048)
    .default(200)
    .describe('Largest GLB served, in MB (the mesh competition accepts about 200); a larger one is refused, never sent.'),
  max_gaussians: gaussianBudget
    .default(0)
    .describe(
      "Gaussian budget: a larger cloud keeps its most important Gaussians (opacity x area) in every region of its body, widened to cover the dropped ones; never fewer than the gates' minimum (0 = no budget).",
    ),
  max_faces: z
    .number()
    .int()
    .min(MIN_REQUEST_FACES)
    .max(2_000_000)
    .default(100_000)
    .describe(
      "Most triangles a request's `faces` may ask for (from 500); a mesh made with fewer keeps its own count. Delivery only: the asset's cache key leaves it out.",
    ),
  glb_faces: z
    .number()
    .int()
    .min(0)
    .max(2_000_000)
    .default(0)
    .describe(
      'Triangles of a delivered mesh (GLB, its LODs, OBJ) when the request names no `faces`: simplified to at most this many (0 = the mesh as made; else 500 to max_faces).',
    ),
  glb_texture_size: z
    .number()
    .int()
    .min(0)
    .max(4096)
    .default(0)
    .describe(
      'Texture side of a delivered mesh when the request names no `texture_size`: vertex colours baked into one, a texture scaled to it (0 = as made; else 256 to 4096).',
    ),
});

export const previewTextToImageSchema = z.strictObject({
  light_jitter: z
    .number()
    .min(0)
    .max(1)
    .default(0.25)
    .describe("How far the seed moves the light and the object's pose in preview pictures (0 = fixed)."),
});

/** How the service reaches the GPU worker (workers/gpu); shared by the stages it serves. */
function gpuWorkerConnection(requestTimeoutS: number) {
  return {
    url: z
      .url({ protocol: /^https?$/ })
      .default('http://127.0.0.1:9100')
      .describe('Base URL of the GPU worker (workers/gpu/worker.py); keep it on loopback.'),
    request_timeout_s: z
      .number()
      .positive()
      .max(3600)
      .default(requestTimeoutS)
      .describe('Longest wait for one worker request, answer included; a timeout is not retried.'),
    connect_retries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(2)
      .describe('Extra attempts when the connection to the worker fails (refused or reset); HTTP errors are never retried.'),
    retry_delay_ms: z.number().int().min(0).max(60_000).default(500).describe('Pause before each connection retry, in milliseconds.'),
    poll_interval_s: z.number().positive().max(600).default(2).describe("Seconds between readiness polls of the worker's GET /health."),
    ready_timeout_s: z
      .number()
      .min(0)
      .default(1800)
      .describe('How long start-up waits for the worker to load its models before /health reports it not ready (polling goes on).'),
  };
}

export const gpuWorkerTextToImageSchema = z.strictObject({
  ...gpuWorkerConnection(120),
  prompt_suffix: z
    .string()
    .max(1000)
    .default(', a single object centred on a plain white background, full object in frame, soft studio lighting, no ground shadow')
    .describe('Appended to every text prompt so FLUX draws one whole, centred object that matting and TRELLIS handle well.'),
  steps: z.number().int().min(1).max(50).default(4).describe('FLUX.1-schnell denoising steps (it is distilled for 1-4).'),
  size: z
    .number()
    .int()
    .min(256)
    .max(2048)
    .multipleOf(16)
    .default(1024)
    .describe('Side of the square FLUX image in pixels (a multiple of 16); replaces pipeline.image_size for this backend.'),
});

export const textToImageSchema = z.strictObject({
  backend: z
    .enum(['preview', 'gpu-worker'])
    .default('preview')
    .describe(
      'Text-to-image backend: "preview" draws a shaded primitive chosen from the prompt (CPU, no model); "gpu-worker" asks the GPU worker\'s FLUX.1-schnell.',
    ),
  preview: previewTextToImageSchema.prefault({}),
  gpu_worker: gpuWorkerTextToImageSchema.prefault({}),
});

export const keyingSchema = z.strictObject({
  tolerance: z
    .number()
    .min(0)
    .max(1)
    .default(0.12)
    .describe('Colour distance (0..1) from the background under which a pixel is fully background.'),
  softness: z.number().min(0).max(1).default(0.08).describe('Width of the soft edge above the tolerance, in the same colour distance.'),
});

export const executionProvider = z.enum(['cpu', 'cuda']);

export const isnetSchema = z.strictObject({
  model: z
    .string()
    .min(1)
    .default('isnet-general-use.onnx')
    .describe('ISNet ONNX file, relative to weights.dir unless absolute (fetched by `npm run weights`).'),
  execution_provider: executionProvider
    .default('cpu')
    .describe('ONNX Runtime execution provider: "cuda" on a GPU box (needs onnxruntime-node\'s CUDA libraries), "cpu" otherwise.'),
  input_size: z
    .number()
    .int()
    .min(64)
    .max(2048)
    .default(1024)
    .describe('Side of the square image the model takes (1024 for isnet-general-use).'),
  threads: z
    .number()
    .int()
    .min(0)
    .max(256)
    .default(0)
    .describe('CPU threads per inference (onnxruntime intra-op threads; 0 lets onnxruntime choose).'),
});

export const mattingSchema = z.strictObject({
  backend: z
    .enum(['keying', 'isnet'])
    .default('keying')
    .describe(
      'Matting backend: "keying" removes a plain background by colour distance (CPU, no model); "isnet" runs the ISNet model (onnxruntime).',
    ),
  output_size: z
    .number()
    .int()
    .min(64)
    .max(2048)
    .default(518)
    .describe("Side of the square, centred RGBA image handed to image-to-3d (518 is TRELLIS's input)."),
  margin: z.number().min(0).max(0.45).default(0.1).describe('Empty border around the object in the framed image, as a share of its side.'),
  alpha_threshold: z
    .number()
    .min(0)
    .max(1)
    .default(0.5)
    .describe('Alpha above which a pixel counts as object when framing and checking coverage.'),
  min_coverage: z
    .number()
    .min(0)
    .max(1)
    .default(0.005)
    .describe('Smallest share of object pixels; below it the matte is considered empty and the job declined.'),
  keep_input_alpha: z
    .boolean()
    .default(true)
    .describe('Image tasks whose image has a real alpha channel keep it instead of being matted again.'),
  keying: keyingSchema.prefault({}),
  isnet: isnetSchema.prefault({}),
});

export const inflateSchema = z.strictObject({
  max_gaussians: z
    .number()
    .int()
    .min(7000)
    .max(2_000_000)
    .default(240_000)
    .describe(
      "Upper bound on Gaussians the preview inflation emits (one per triangle of its closed surface); the surface's grid spacing grows to stay under it.",
    ),
  depth_ratio: z
    .number()
    .min(0)
    .max(2)
    .default(0.6)
    .describe("Thickness of the inflated body relative to its silhouette's inscribed radius."),
  opacity: z.number().min(0.01).max(0.999).default(0.95).describe('Opacity (after sigmoid) of each preview Gaussian.'),
  mesh_faces: z
    .number()
    .int()
    .min(1000)
    .max(2_000_000)
    .default(100_000)
    .describe('About how many triangles a preview mesh (GLB) has; the grid of the closed surface is spaced to come near it.'),
});

export const gpuWorkerImageTo3dSchema = z.strictObject({
  ...gpuWorkerConnection(180),
  sparse_structure_steps: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(12)
    .describe('TRELLIS sparse-structure sampler steps (stage 1: which voxels are occupied).'),
  sparse_structure_cfg: z.number().min(0).max(50).default(7.5).describe('TRELLIS sparse-structure classifier-free guidance strength.'),
  slat_steps: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(12)
    .describe('TRELLIS structured-latent sampler steps (stage 2: appearance and detail).'),
  slat_cfg: z.number().min(0).max(50).default(3).describe('TRELLIS structured-latent classifier-free guidance strength.'),
  mesh_simplify: z
    .number()
    .min(0)
    .max(0.99)
    .default(0.95)
    .describe("Share of TRELLIS's mesh triangles removed before baking the GLB (to_glb's simplify)."),
  mesh_texture_size: z
    .number()
    .int()
    .min(256)
    .max(4096)
    .default(1024)
    .describe("Side in pixels of the GLB's baked base-colour texture (to_glb's texture_size)."),
  orientation: rotation
    .default('z-up')
    .describe(
      "Rotation from TRELLIS's internal frame (Z-up) to the validator's (+Y up, front +Z): a name or nine numbers, row-major; confirm on a GPU box with scripts/orientation-check.ts.",
    ),
});

export const imageTo3dSchema = z.strictObject({
  backend: z
    .enum(['inflate', 'gpu-worker'])
    .default('inflate')
    .describe(
      'Image-to-3D backend: "inflate" lifts the silhouette into a 3D Gaussian body (CPU, no model); "gpu-worker" asks the GPU worker\'s TRELLIS.',
    ),
  inflate: inflateSchema.prefault({}),
  gpu_worker: gpuWorkerImageTo3dSchema.prefault({}),
});

export const gatesSchema = z.strictObject({
  min_gaussians: z.number().int().min(1).default(7000).describe("Fewest Gaussians an asset may have (the validator's gate is 7000)."),
  transparent_below: z
    .number()
    .min(0)
    .max(1)
    .default(0.00196)
    .describe("Opacity under which a Gaussian counts as transparent: the validator's 1e-3 after SPZ's 8-bit rounding is 0.5/255."),
  max_transparent_share: z.number().min(0).max(1).default(0.8).describe('Largest share of transparent Gaussians (validator: 0.8).'),
});

export const clipSchema = z.strictObject({
  model: z
    .string()
    .min(1)
    .default('clip-vit-large-patch14')
    .describe('CLIP ViT-L/14 folder in transformers.js layout (config, tokenizer, onnx/), relative to weights.dir unless absolute.'),
  dtype: z
    .enum(['fp32', 'fp16', 'q8'])
    .default('fp32')
    .describe('Which ONNX export of the CLIP towers to load (fp32: onnx/*_model.onnx, fp16: *_fp16, q8: *_quantized).'),
  device: executionProvider.default('cpu').describe('Where the CLIP towers run: "cuda" on a GPU box, "cpu" otherwise.'),
  views: z.number().int().min(1).max(64).default(8).describe("Views of the asset rendered from the validator's camera orbit and scored."),
  view_size: z.number().int().min(32).max(1024).default(256).describe('Side of each rendered view in pixels (CLIP resizes to 224 anyway).'),
  min_similarity: z
    .number()
    .min(-1)
    .max(1)
    .default(0.24)
    .describe('Text tasks: lowest mean raw cosine between the prompt and the views on CLIP ViT-L/14 (seed design: 0.24, set on ViT-B/32).'),
  min_geomean_cosine: z
    .number()
    .min(0)
    .max(1)
    .default(0.2)
    .describe(
      "Text tasks: lowest geometric mean of the raw ViT-L/14 prompt-view cosines clipped to [0,1] (one poor view drags it down); not the validator's score (use validator-service for that). Was min_alignment.",
    ),
  min_image_similarity: z
    .number()
    .min(-1)
    .max(1)
    .default(0.75)
    .describe(
      'Image tasks: lowest mean cosine similarity between the input image and the views (a starting point; calibrate on your assets).',
    ),
  aesthetic_weights: z
    .string()
    .min(1)
    .default('aesthetic/laion-aesthetic-l14.safetensors')
    .describe(
      'LAION aesthetic predictor converted to safetensors (workers/gpu/tools/convert_aesthetic.py), relative to weights.dir unless absolute.',
    ),
  min_aesthetic: z
    .number()
    .min(0)
    .max(10)
    .default(4.5)
    .describe('Lowest mean aesthetic score over the views (LAION predictor, 1-10; seed design: 4.5); 0 skips the aesthetic check.'),
  text_cache: z
    .number()
    .int()
    .min(0)
    .default(64)
    .describe('Prompts whose text embedding is kept in memory (retries and repeated prompts skip the text tower).'),
});

export const validatorServiceSchema = z.strictObject({
  url: z
    .string()
    .url()
    .default('http://127.0.0.1:8094')
    .describe("Base URL of the subnet's validation service the operator runs (validation/ in the subnet repository)."),
  timeout_s: z
    .number()
    .positive()
    .max(600)
    .default(60)
    .describe('Seconds to wait for one validation answer before the attempt fails with an error.'),
  min_score: z.number().min(0).max(1).default(0.6).describe('Lowest score accepted (the validator accepts results scoring 0.6 or more).'),
});

export const validateSchema = z.strictObject({
  checks: z
    .array(z.enum(['gates', 'clip', 'validator-service']))
    .min(1)
    .default(['gates'])
    .describe(
      'Self-validation checks in the order they run ("gates", "clip", "validator-service"); the first failure declines the attempt.',
    ),
  gates: gatesSchema.prefault({}),
  clip: clipSchema.prefault({}),
  validator_service: validatorServiceSchema.prefault({}),
});

export const weightsSchema = z.strictObject({
  dir: z
    .string()
    .min(1)
    .default('models')
    .describe('Folder holding the model files the Node process loads (ISNet, CLIP, aesthetic); `npm run weights` fills it.'),
  verify: z
    .enum(['checksum', 'size'])
    .default('checksum')
    .describe('What start-up and `weights --check` verify: "checksum" hashes every file (seconds for 2 GB), "size" only compares sizes.'),
  retries: z
    .number()
    .int()
    .min(0)
    .max(20)
    .default(5)
    .describe('Times a download resumes (HTTP Range) after a dropped connection before giving up.'),
  clip_revision: z
    .string()
    .regex(/^[\w.-]+$/, 'a commit hash or branch name')
    .default('main')
    .describe(
      "Hub revision of the CLIP files (Xenova/clip-vit-large-patch14) `npm run weights` downloads; set a confirmed commit hash to pin them (their first download's digests are recorded and checked either way).",
    ),
});

export const runtimeSchema = z.strictObject({
  queue_length: z
    .number()
    .int()
    .min(0)
    .default(8)
    .describe(
      "Contract jobs (the miner's requests) that may wait for the pipeline; more are refused with 503 and Retry-After (or forwarded to a burst peer).",
    ),
  interactive_queue_length: z
    .number()
    .int()
    .min(0)
    .default(16)
    .describe('Interactive jobs (people and agents) that may wait; they get a free place only when no contract job waits.'),
  background_queue_length: z
    .number()
    .int()
    .min(0)
    .default(256)
    .describe('Background jobs (pregeneration) that may wait; they get a free place only when no other job waits.'),
  retry_after_s: z
    .number()
    .int()
    .min(1)
    .default(10)
    .describe('Seconds suggested in Retry-After when the service is busy or starting (the least suggested when estimated).'),
  pipeline_concurrency: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(2)
    .describe("Jobs inside the pipeline at once; GPU calls still take turns, so 2 lets one job's CPU stages overlap another's GPU stage."),
  video_concurrency: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(1)
    .describe('Turntable videos rendered and encoded at once (each uses every render worker and an ffmpeg process).'),
  video_queue_length: z
    .number()
    .int()
    .min(0)
    .default(4)
    .describe('Videos that may wait to be rendered; more are refused with 503 and Retry-After.'),
  deadline_s: z
    .number()
    .positive()
    .default(240)
    .describe(
      "Seconds a contract job may take from arrival; a job estimated to miss it is refused up front, one that runs past it is abandoned (503). Keep it under the miner's 300 s timeout.",
    ),
  image_memory_mb: z
    .number()
    .positive()
    .default(1024)
    .describe(
      'MiB of decoded input images that requests in flight may hold (a 40 Mpx image is 160 MiB); a request whose image does not fit gets 503 with Retry-After before it is decoded.',
    ),
  cpu_workers: z
    .number()
    .int()
    .min(0)
    .max(64)
    .default(1)
    .describe(
      'Worker threads that run the CPU preview stages (text-to-image, keying, inflation) off the event loop; 0 runs them on it. Keep one core for the event loop: on 2 cores, 1.',
    ),
  estimate_jobs: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(20)
    .describe('Recent jobs whose GPU time is averaged to estimate waits for the deadline check and Retry-After.'),
});

export const assetsSchema = z.strictObject({
  workers: z
    .number()
    .int()
    .min(1)
    .max(16)
    .default(1)
    .describe(
      "Worker threads that read the assets users send (MCP's check_asset and render_views), apart from the pipeline's CPU workers; each reads one asset at a time, so a hostile file fails only its own call.",
    ),
  timeout_s: z
    .number()
    .positive()
    .max(600)
    .default(20)
    .describe('Seconds one user asset may take to be checked and read; past it its worker is stopped and the call refused.'),
  memory_mb: z
    .number()
    .int()
    .min(64)
    .max(65_536)
    .default(1024)
    .describe('JavaScript heap limit of each asset worker in MiB; a file that needs more fails its own call.'),
  queue_length: z.number().int().min(0).default(8).describe('User assets that may wait for a free asset worker; more are refused as busy.'),
  max_json_mb: z
    .number()
    .positive()
    .max(256)
    .default(16)
    .describe("Largest JSON chunk of a GLB in MiB (every GLB read: users', the GPU worker's, the cache's)."),
  max_json_depth: z
    .number()
    .int()
    .min(8)
    .max(10_000)
    .default(64)
    .describe("Deepest nesting of a GLB's JSON (glTF needs about 8); deeper files are refused before any parser recurses."),
  max_nodes: z.number().int().min(1).max(10_000_000).default(20_000).describe('Most nodes a GLB may have.'),
  max_node_depth: z.number().int().min(1).max(100_000).default(128).describe("Deepest node below a root in a GLB's node tree."),
  max_primitives: z
    .number()
    .int()
    .min(1)
    .max(10_000_000)
    .default(4096)
    .describe('Most primitives a GLB may have, and most its scene may place.'),
  max_vertices: z
    .number()
    .int()
    .min(3)
    .max(100_000_000)
    .default(5_000_000)
    .describe("Most vertices a GLB's scene may place (a mesh placed twice counts twice)."),
  max_triangles: z.number().int().min(1).max(100_000_000).default(5_000_000).describe("Most triangles a GLB's scene may place."),
  max_images: z.number().int().min(0).max(100_000).default(64).describe('Most images a GLB may have.'),
  max_texture_side: z
    .number()
    .int()
    .min(16)
    .max(16_384)
    .default(4096)
    .describe("Longest side a GLB's texture is decoded at; a larger one is scaled down as it is decoded."),
  max_texture_mpx: z
    .number()
    .positive()
    .max(1024)
    .default(64)
    .describe("Most megapixels (2^20 pixels) all of one GLB's distinct textures may decode to, together, after scaling down."),
});

export const queueSchema = z.strictObject({
  backend: z
    .enum(['local', 'bullmq'])
    .default('local')
    .describe(
      'Where jobs wait: "local", in this process (one node, nothing else to run); "bullmq", on a BullMQ queue in Redis that every node of a cluster shares (serve --role api|worker|all), with jobs, events and artefacts any node reads.',
    ),
  redis_url: z
    .string()
    .regex(/^rediss?:\/\/\S+$/, 'a redis:// or rediss:// URL')
    .default('redis://127.0.0.1:6379')
    .describe("Redis of the bullmq queue (6.2 or newer): the queue, the jobs' records and events, and their notifications."),
  name: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,40}$/, 'letters, digits, "_" and "-", at most 40')
    .default('fast3d')
    .describe('Name of the queue and prefix of its Redis keys: clusters that share one Redis use different names.'),
  attempts: z
    .number()
    .int()
    .min(1)
    .max(10)
    .default(3)
    .describe('Runs of a job at most, counting those a dead worker lost: a job whose worker died is taken up by another until then.'),
  lock_s: z
    .number()
    .min(1)
    .max(600)
    .default(30)
    .describe("Seconds a worker's hold on its job lasts without renewal: a job whose worker died is taken up again after at most this."),
  stuck_s: z
    .number()
    .min(1)
    .max(600)
    .default(15)
    .describe('Seconds an idle worker may leave jobs waiting before it is taken for stuck (lost its Redis connection) and replaced.'),
  node: z.string().max(100).default('').describe("This node's name in job views and logs (empty: the host name and the process id)."),
});

export const jobsSchema = z.strictObject({
  keep: z
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(32)
    .describe(
      'Finished jobs whose state, report and artefacts stay readable by id (the oldest are forgotten first); without a cache their artefacts are held in memory.',
    ),
  retention_s: z.number().positive().default(900).describe('Seconds a finished job stays readable by id.'),
  memory_mb: z
    .number()
    .min(0)
    .default(256)
    .describe(
      'MiB of artefacts the registry holds for finished jobs when the cache is off; older jobs then keep their record but not their bytes.',
    ),
});

export const cacheSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(true)
    .describe('Serve repeated requests (same prompt or image, seed and output-changing config) from the on-disk result cache.'),
  directory: z
    .string()
    .min(1)
    .default('.fast3d-cache')
    .describe('Directory of the result cache (created if missing); relative paths are from the working directory.'),
  max_size_mb: z
    .number()
    .positive()
    .default(2048)
    .describe('Largest total size of cached artefacts in MiB; the least recently used are evicted beyond it.'),
  memory_mb: z
    .number()
    .min(0)
    .default(256)
    .describe('MiB of the most recently used artefacts also held in memory, so hot hits read no file (0 = disk only).'),
  decline_ttl_s: z
    .number()
    .min(0)
    .default(600)
    .describe('Seconds a declined request is remembered and answered 204 again without GPU work (0 = never remembered).'),
});

const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'the name of an environment variable: letters, digits and "_", not starting with a digit');

export const storeS3Schema = z.strictObject({
  endpoint: z
    .union([z.literal(''), z.url({ protocol: /^https?$/ })])
    .default('')
    .describe(
      'Base URL of the S3-compatible service (R2: https://<account>.r2.cloudflarestorage.com; MinIO: http://host:9000); empty = AWS S3 in store.s3.region.',
    ),
  bucket: z
    .string()
    .regex(/^([A-Za-z0-9][A-Za-z0-9._-]{1,254})?$/, 'a bucket name: letters, digits, ".", "_" and "-", at least 2 characters')
    .default('')
    .describe('Bucket holding the artefacts (it must exist; required when store.backend is s3).'),
  region: z
    .string()
    .regex(/^[a-z0-9-]{1,40}$/, 'a region name such as us-east-1 or auto')
    .default('us-east-1')
    .describe('Region the requests are signed for ("auto" for R2; any for MinIO).'),
  prefix: z
    .string()
    .max(200)
    .regex(/^([A-Za-z0-9._=-]+\/)*$/, 'empty, or "/"-separated parts of letters, digits, ".", "_", "=" and "-" ending in "/"')
    .default('')
    .describe('Prepended to every object key (e.g. "fast3d/"), so one bucket can hold several services.'),
  force_path_style: z
    .boolean()
    .default(false)
    .describe(
      'Address the bucket in the path (endpoint/bucket/key) instead of the host name (bucket.endpoint/key): MinIO and most self-hosted services need true.',
    ),
  access_key_env: envName
    .default('AWS_ACCESS_KEY_ID')
    .describe('Name of the environment variable holding the access key id (it must be set when store.backend is s3).'),
  secret_key_env: envName
    .default('AWS_SECRET_ACCESS_KEY')
    .describe('Name of the environment variable holding the secret access key (it must be set when store.backend is s3).'),
  session_token_env: envName
    .default('AWS_SESSION_TOKEN')
    .describe('Name of the environment variable holding a session token, used only when it is set (temporary credentials).'),
  timeout_s: z
    .number()
    .positive()
    .max(3600)
    .default(60)
    .describe('Longest wait for one request to the service, a body being read included.'),
});

export const storeSchema = z
  .strictObject({
    backend: z
      .enum(['disk', 's3'])
      .default('disk')
      .describe(
        'Where artefacts shared by every node live: "disk", a directory (a volume several pods mount is fine), or "s3", an S3-compatible bucket.',
      ),
    directory: z
      .string()
      .min(1)
      .default('.fast3d-cache')
      .describe(
        "Directory of the disk store (created if missing; the result cache's default directory); relative paths are from the working directory.",
      ),
    max_object_mb: z
      .number()
      .positive()
      .max(16_384)
      .default(512)
      .describe(
        'Largest object stored or read, in MiB: a larger write is refused, a larger object reads as missing, and no read allocates more.',
      ),
    temp_max_age_s: z
      .number()
      .positive()
      .default(3600)
      .describe(
        'Disk store: a temp file older than this was left by a writer that died, and is deleted by the sweep (at start-up, then at this interval).',
      ),
    s3: storeS3Schema.prefault({}),
  })
  .superRefine((store, ctx) => {
    if (store.backend === 's3' && !store.s3.bucket)
      ctx.addIssue({ code: 'custom', path: ['s3', 'bucket'], message: 'required when store.backend is s3' });
  });

export const webhooksSchema = z.strictObject({
  secret_env: envName
    .default('FAST3D_WEBHOOK_SECRET')
    .describe(
      'Name of the environment variable holding the secret that signs webhook bodies (X-Fast3d-Signature); unset, jobs with a webhook are refused.',
    ),
  allow_private: z
    .boolean()
    .default(false)
    .describe(
      'Allow webhook URLs whose host is or resolves to a private, loopback, link-local or otherwise non-public address (and redirects to one).',
    ),
  max_url_length: z.number().int().min(16).max(8192).default(2048).describe('Longest webhook URL accepted, in characters.'),
  timeout_s: z
    .number()
    .positive()
    .max(300)
    .default(10)
    .describe("Longest wait for one delivery attempt, from connecting to the receiver's status line."),
  attempts: z
    .number()
    .int()
    .min(1)
    .max(30)
    .default(6)
    .describe('Delivery attempts per webhook; a 5xx, 408, 429 or a network error is retried, other 4xx and refused addresses are not.'),
  backoff_s: z
    .number()
    .min(0)
    .max(3600)
    .default(5)
    .describe('Wait before the second attempt; each further wait doubles (exponential backoff), up to webhooks.max_backoff_s.'),
  max_backoff_s: z.number().min(0).max(86_400).default(300).describe('Longest wait between two attempts, Retry-After included.'),
  max_redirects: z
    .number()
    .int()
    .min(0)
    .max(10)
    .default(3)
    .describe('Redirects followed per attempt (each target is checked like the URL itself); 0 = none.'),
});

export const burstPeerSchema = z.strictObject({
  url: z.url().describe('Base URL of a peer running this service, e.g. a RunPod load-balancing endpoint; the request path is appended.'),
  token_env: z.string().default('').describe('Name of the environment variable holding the bearer token sent to this peer (empty = none).'),
});

export const burstSchema = z.strictObject({
  peers: z
    .array(burstPeerSchema)
    .default([])
    .describe('Peers that take whole requests when the local queue is full, tried in turn; empty = no bursting.'),
  timeout_s: z.number().positive().default(240).describe("Seconds to wait for a peer's answer before falling back to 503."),
});

export const authSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe('Require "Authorization: Bearer <token>" on the generate routes (off by default: the miner sends none).'),
  token_env: z.string().default('FAST3D_API_TOKEN').describe('Name of the environment variable holding the accepted bearer token.'),
  token: z
    .string()
    .default('')
    .describe('The accepted bearer token itself, if not taken from token_env (the environment variable wins when set).'),
});

export const metricsSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('Serve Prometheus metrics at GET /metrics.'),
});

export const renderSchema = z.strictObject({
  fps: z.number().int().min(1).max(120).default(24).describe('Frames per second of turntable videos (upstream: 24).'),
  seconds: z.number().positive().max(600).default(4).describe('Length of a turntable video in seconds, used when render.frames is 0.'),
  frames: z.number().int().min(0).max(10_000).default(0).describe('Frames of a turntable video; 0 derives it from fps x seconds.'),
  elevations: z
    .array(z.number().min(-89).max(89))
    .min(1)
    .default([VALIDATOR_ELEVATION])
    .describe('Camera elevation path in degrees, visited linearly over the video (negative looks down; one value keeps it level).'),
  turns: z.number().positive().max(20).default(1).describe('Full revolutions of the camera over a turntable video.'),
  radius: z
    .number()
    .positive()
    .default(VALIDATOR_RADIUS)
    .describe("Camera distance from the centre, in normalised units (default: the validator's)."),
  fov: z.number().min(1).max(170).default(VALIDATOR_FOV).describe("Vertical field of view in degrees (default: the validator's)."),
  extent: z
    .number()
    .positive()
    .default(VALIDATOR_EXTENT)
    .describe("Largest bounding-box extent the asset is scaled to before rendering (default: the validator's)."),
  background: z
    .string()
    .regex(/^(white|black|#[0-9a-fA-F]{6})$/, 'white, black or #rrggbb')
    .default('white')
    .describe('Background colour of videos: white (as upstream), black or #rrggbb.'),
  video_res: z
    .number()
    .int()
    .min(VIDEO_RES.min)
    .max(VIDEO_RES.max)
    .default(1088)
    .describe('Default side of /generate_video/ videos in pixels when the request has no video_res (upstream: 1088).'),
  crf: z.number().int().min(0).max(51).default(20).describe('The x264 constant rate factor of videos (lower is better and larger).'),
  preset: z
    .enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow'])
    .default('veryfast')
    .describe('The x264 speed preset of videos.'),
  threads: z.number().int().min(0).max(256).default(0).describe('Render worker threads; 0 uses one per available core.'),
});

export const logSchema = z.strictObject({
  level: z
    .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
    .default('info')
    .describe('Lowest log level written (to stdout).'),
  format: z
    .enum(['auto', 'json', 'pretty'])
    .default('auto')
    .describe(
      'Log lines as JSON (for collectors) or human-readable (pino-pretty); "auto": readable when stdout is a terminal, JSON otherwise.',
    ),
});

export const configSchema = z
  .strictObject({
    server: serverSchema.prefault({}),
    contract: contractSchema.prefault({}),
    pipeline: pipelineSchema.prefault({}),
    text_to_image: textToImageSchema.prefault({}),
    matting: mattingSchema.prefault({}),
    image_to_3d: imageTo3dSchema.prefault({}),
    validate: validateSchema.prefault({}),
    weights: weightsSchema.prefault({}),
    runtime: runtimeSchema.prefault({}),
    queue: queueSchema.prefault({}),
    assets: assetsSchema.prefault({}),
    jobs: jobsSchema.prefault({}),
    cache: cacheSchema.prefault({}),
    store: storeSchema.prefault({}),
    webhooks: webhooksSchema.prefault({}),
    burst: burstSchema.prefault({}),
    auth: authSchema.prefault({}),
    metrics: metricsSchema.prefault({}),
    render: renderSchema.prefault({}),
    log: logSchema.prefault({}),
    presets: presetsSchema.prefault({}),
  })
  .superRefine((config, ctx) => checkPresets(config, ctx, JOB_SECTION_SCHEMAS));

export type Config = z.infer<typeof configSchema>;

/** The schema of each section a preset may change, to validate a preset's sections as the config's are. */
const JOB_SECTION_SCHEMAS = {
  pipeline: pipelineSchema,
  text_to_image: textToImageSchema,
  matting: mattingSchema,
  image_to_3d: imageTo3dSchema,
  validate: validateSchema,
  render: renderSchema,
};
export { rotation as rotationSchema };
