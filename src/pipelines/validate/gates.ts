/** Validation backend "gates": the validator's structural gates, the cheapest check, always first. */
import { checkGates, type GateLimits } from '../../splat/gates.js';
import type { JobContext, JobSettings } from '../context.js';
import type { Check } from '../job.js';
import type { Readiness, ValidationInput, Validator } from '../stages.js';

export class GatesValidator implements Validator {
  readonly name = 'gates';
  readonly preview = false;

  readiness(): Readiness {
    return { ready: true };
  }

  /** The job's thresholds (a preset may change them). */
  async validate({ cloud }: ValidationInput, ctx: JobContext): Promise<Check[]> {
    return checkGates(cloud, gateLimits(ctx.settings.validate.gates)).map((gate) => ({ ...gate, by: this.name }));
  }
}

export function gateLimits(section: JobSettings['validate']['gates']): GateLimits {
  return {
    minGaussians: section.min_gaussians,
    transparentBelow: section.transparent_below,
    maxTransparentShare: section.max_transparent_share,
  };
}
