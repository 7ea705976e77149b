/** Validation backend "gates": the validator's structural gates, the cheapest check, always first. */
import { checkGates, type GateLimits } from '../../splat/gates.js';
import type { Check } from '../job.js';
import type { Readiness, ValidationInput, Validator } from '../stages.js';

export class GatesValidator implements Validator {
  readonly name = 'gates';
  readonly preview = false;

  constructor(private readonly limits: GateLimits) {}

  readiness(): Readiness {
    return { ready: true };
  }

  async validate({ cloud }: ValidationInput): Promise<Check[]> {
    return checkGates(cloud, this.limits).map((gate) => ({ ...gate, by: this.name }));
  }
}
