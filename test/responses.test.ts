import { describe, expect, it } from 'vitest';
import { compactReport } from '../src/contract/responses.js';
import type { Report } from '../src/pipelines/job.js';

describe('report header', () => {
  it("stays far below the 8190-byte header limit of the miner's HTTP client", () => {
    const checks = Array.from({ length: 200 }, (_, i) => ({ name: `check_${i}`, value: i / 3, threshold: 0.5, passed: false, by: 'x' }));
    const report: Report = {
      attempts: [
        { seed: 1, checks, gaussians: 1, accepted: false },
        { seed: 2, checks, gaussians: 1, accepted: false },
      ],
      timings: {},
      preview: false,
    };
    const header = compactReport(report);
    expect(header.length).toBeLessThanOrEqual(2000);
    expect(header).toMatch(/^1:1:reject:check_0=0\/0\.5000\/fail:check_1=0\.3333\/0\.5000\/fail/);
    expect(header.endsWith('...')).toBe(true);
    expect(header).toMatch(/^[\x20-\x7e]+$/);
  });
});
