/**
 * Validation backend "validator-service": asks the subnet's own validation service (run by the operator,
 * `validation/` in the subnet repository) to score the asset, and accepts at its threshold (0.6 by default,
 * the validator's). Text tasks POST /validate_txt_to_3d_ply/ with the prompt, image tasks
 * /validate_img_to_3d_ply/ with the image as base64; the PLY goes uncompressed (`compression: 0`).
 */
import { encodePng } from '../../image/codec.js';
import { encodePly } from '../../splat/ply.js';
import type { Check } from '../job.js';
import type { JobContext } from '../context.js';
import type { Readiness, ValidationInput, Validator } from '../stages.js';

export interface ValidatorServiceOptions {
  /** Base URL, e.g. http://127.0.0.1:8094. */
  url: string;
  timeoutMs: number;
}

export class ValidatorServiceError extends Error {
  override name = 'ValidatorServiceError';
}

export class ValidatorServiceValidator implements Validator {
  readonly name = 'validator-service';
  readonly preview = false;

  constructor(private readonly options: ValidatorServiceOptions) {}

  /** The service runs elsewhere; an unreachable one surfaces as a clear error on the job. */
  readiness(): Readiness {
    return { ready: true, detail: `scores with ${this.options.url}` };
  }

  async validate({ job, cloud }: ValidationInput, ctx: JobContext): Promise<Check[]> {
    const signal = ctx.signal;
    const data = Buffer.from(encodePly(cloud)).toString('base64');
    const [path, body] =
      job.task.kind === 'text'
        ? ['/validate_txt_to_3d_ply/', { prompt: job.task.prompt, data, compression: 0 }]
        : [
            '/validate_img_to_3d_ply/',
            { prompt_image: Buffer.from(await encodePng(job.task.image)).toString('base64'), data, compression: 0 },
          ];
    const url = new URL(path, this.options.url).href;
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.any([signal, timeout]),
      });
    } catch (err) {
      signal.throwIfAborted();
      const why = timeout.aborted ? `no answer within ${this.options.timeoutMs / 1000} s` : (err as Error).message;
      throw new ValidatorServiceError(
        `validation service at ${url} not reachable: ${why}; start it or remove "validator-service" from validate.checks`,
      );
    }
    const text = await response.text();
    if (!response.ok)
      throw new ValidatorServiceError(`validation service at ${url} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
    let score: unknown;
    try {
      score = (JSON.parse(text) as { score?: unknown }).score;
    } catch {
      throw new ValidatorServiceError(`validation service at ${url} answered something that is not JSON: ${text.slice(0, 200)}`);
    }
    if (typeof score !== 'number' || !Number.isFinite(score)) {
      throw new ValidatorServiceError(`validation service at ${url} answered without a numeric "score": ${text.slice(0, 200)}`);
    }
    // The job's threshold (a preset may change it).
    const minScore = ctx.settings.validate.validator_service.min_score;
    return [{ name: 'validator_score', value: score, threshold: minScore, passed: score >= minScore, by: this.name }];
  }
}
