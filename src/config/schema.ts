/**
 * The configuration schema: every tunable, its default and a one-line description. Objects are strict, so a
 * misspelt key is an error rather than a silently ignored setting.
 */
import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const rotation = z.union([
  z.enum(['identity', 'z-up', 'y-down']),
  z.array(z.number()).length(9),
]);

export const serverSchema = z.strictObject({
  host: z.string().min(1).default('0.0.0.0').describe('Address to listen on (env HOST overrides).'),
  port: port.default(8093).describe('TCP port to listen on (env PORT overrides); the miner defaults to 8093.'),
  body_limit_mb: z.number().positive().max(1024).default(32).describe('Largest accepted request body in MiB; larger bodies get 413.'),
  health_ok_status: z.string().min(1).default('ok').describe('Word /health reports in "status" when ready; set "healthy" for the newer contract\'s checker.'),
  shutdown_grace_s: z.number().min(0).default(30).describe('Seconds in-flight jobs may run after SIGTERM before the process exits.'),
});

export const contractSchema = z.strictObject({
  max_prompt_chars: z.number().int().min(1).default(1024).describe('Longest text prompt after trimming (validators cap prompts at 1024).'),
  max_image_pixels: z.number().int().min(1).default(40_000_000).describe('Largest decoded image (width x height) accepted for image tasks.'),
  min_image_side: z.number().int().min(1).default(16).describe('Smallest accepted width or height of an input image, in pixels.'),
});

export const pipelineSchema = z.strictObject({
  retries: z.number().int().min(0).max(5).default(1).describe('Extra attempts with a new seed after self-validation fails; then the job is declined (204).'),
  image_size: z.number().int().min(64).max(2048).default(512).describe('Side of the square image text-to-image generates, in pixels.'),
  extent: z.number().min(0).default(1.5).describe('Largest bounding-box extent of the returned asset; 1.5 makes the validator\'s rescale a no-op (0 keeps the scale).'),
});

export const previewTextToImageSchema = z.strictObject({
  light_jitter: z.number().min(0).max(1).default(0.25).describe('How far the seed moves the light and the object\'s pose in preview pictures (0 = fixed).'),
});

export const textToImageSchema = z.strictObject({
  backend: z.enum(['preview']).default('preview').describe('Text-to-image backend: "preview" draws a shaded primitive chosen from the prompt (CPU, no model).'),
  preview: previewTextToImageSchema.prefault({}),
});

export const keyingSchema = z.strictObject({
  tolerance: z.number().min(0).max(1).default(0.12).describe('Colour distance (0..1) from the background under which a pixel is fully background.'),
  softness: z.number().min(0).max(1).default(0.08).describe('Width of the soft edge above the tolerance, in the same colour distance.'),
});

export const mattingSchema = z.strictObject({
  backend: z.enum(['keying']).default('keying').describe('Matting backend: "keying" removes a plain background by colour distance (CPU, no model).'),
  output_size: z.number().int().min(64).max(2048).default(518).describe('Side of the square, centred RGBA image handed to image-to-3d (518 is TRELLIS\'s input).'),
  margin: z.number().min(0).max(0.45).default(0.1).describe('Empty border around the object in the framed image, as a share of its side.'),
  alpha_threshold: z.number().min(0).max(1).default(0.5).describe('Alpha above which a pixel counts as object when framing and checking coverage.'),
  min_coverage: z.number().min(0).max(1).default(0.005).describe('Smallest share of object pixels; below it the matte is considered empty and the job declined.'),
  keep_input_alpha: z.boolean().default(true).describe('Image tasks whose image has a real alpha channel keep it instead of being matted again.'),
  keying: keyingSchema.prefault({}),
});

export const inflateSchema = z.strictObject({
  max_gaussians: z.number().int().min(7000).max(2_000_000).default(240_000).describe('Upper bound on Gaussians the preview inflation emits; the pixel stride grows to stay under it.'),
  depth_ratio: z.number().min(0).max(2).default(0.6).describe('Thickness of the inflated body relative to its silhouette\'s inscribed radius.'),
  opacity: z.number().min(0.01).max(0.999).default(0.95).describe('Opacity (after sigmoid) of each preview Gaussian.'),
});

export const imageTo3dSchema = z.strictObject({
  backend: z.enum(['inflate']).default('inflate').describe('Image-to-3D backend: "inflate" lifts the silhouette into a 3D Gaussian body (CPU, no model).'),
  inflate: inflateSchema.prefault({}),
});

export const gatesSchema = z.strictObject({
  min_gaussians: z.number().int().min(1).default(7000).describe('Fewest Gaussians an asset may have (the validator\'s gate is 7000).'),
  transparent_below: z.number().min(0).max(1).default(1e-3).describe('Opacity under which a Gaussian counts as transparent (validator: 1e-3).'),
  max_transparent_share: z.number().min(0).max(1).default(0.8).describe('Largest share of transparent Gaussians (validator: 0.8).'),
});

export const validateSchema = z.strictObject({
  checks: z.array(z.enum(['gates'])).min(1).default(['gates']).describe('Self-validation checks in the order they run; the first failure declines the attempt.'),
  gates: gatesSchema.prefault({}),
});

export const runtimeSchema = z.strictObject({
  queue_length: z.number().int().min(0).default(8).describe('Jobs that may wait for the pipeline; more are refused with 503 and Retry-After.'),
  retry_after_s: z.number().int().min(1).default(10).describe('Seconds suggested in Retry-After when the service is busy or starting.'),
});

export const renderSchema = z.strictObject({
  fps: z.number().int().min(1).max(120).default(24).describe('Frames per second of turntable videos (upstream: 24).'),
  seconds: z.number().positive().max(600).default(4).describe('Length of a turntable video in seconds, used when render.frames is 0.'),
  frames: z.number().int().min(0).max(10_000).default(0).describe('Frames of a turntable video; 0 derives it from fps x seconds.'),
  elevations: z.array(z.number().min(-89).max(89)).min(1).default([-15]).describe('Camera elevation path in degrees, visited linearly over the video (negative looks down; one value keeps it level).'),
  turns: z.number().positive().max(20).default(1).describe('Full revolutions of the camera over a turntable video.'),
  radius: z.number().positive().default(2.5).describe('Camera distance from the centre, in normalised units (validator: 2.5).'),
  fov: z.number().min(1).max(170).default(49.1).describe('Vertical field of view in degrees (validator: 49.1).'),
  extent: z.number().positive().default(1.5).describe('Largest bounding-box extent the asset is scaled to before rendering (validator: 1.5).'),
  background: z.string().regex(/^(white|black|#[0-9a-fA-F]{6})$/, 'white, black or #rrggbb').default('white').describe('Background colour of videos: white (as upstream), black or #rrggbb.'),
  video_res: z.number().int().min(64).max(2048).default(1088).describe('Default side of /generate_video/ videos in pixels when the request has no video_res (upstream: 1088).'),
  crf: z.number().int().min(0).max(51).default(20).describe('x264 constant rate factor of videos (lower is better and larger).'),
  preset: z.enum(['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium', 'slow']).default('veryfast').describe('x264 speed preset of videos.'),
  threads: z.number().int().min(0).max(256).default(0).describe('Render worker threads; 0 uses one per available core.'),
});

export const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info').describe('Lowest log level written (JSON lines on stdout).'),
});

export const configSchema = z.strictObject({
  server: serverSchema.prefault({}),
  contract: contractSchema.prefault({}),
  pipeline: pipelineSchema.prefault({}),
  text_to_image: textToImageSchema.prefault({}),
  matting: mattingSchema.prefault({}),
  image_to_3d: imageTo3dSchema.prefault({}),
  validate: validateSchema.prefault({}),
  runtime: runtimeSchema.prefault({}),
  render: renderSchema.prefault({}),
  log: logSchema.prefault({}),
});

export type Config = z.infer<typeof configSchema>;
export { rotation as rotationSchema };
