import { mkdtempSync, rmSync } from 'node:fs';
import { Metrics } from '../src/runtime/metrics.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { compose } from '../src/compose.js';
import { HOPELESS, fakeStages, postPrompt, serveApp, testConfig, until, type Served } from './helpers/fake-stages.js';

const servers: Served[] = [];
let dir: string | undefined;
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The value of one sample line, e.g. sample(text, 'fast3d_http_requests_total{route="/generate",status="200"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  it('reports requests, stage durations, declines, cache lookups, queue depth, GPU busy ratio in Prometheus text', async () => {
    dir = mkdtempSync(join(tmpdir(), 'fast3d-metrics-test-'));
    // The first job holds the only place for 1 s: the scrape and the refused request come meanwhile.
    const fake = fakeStages({ textToImageMs: 30, imageTo3dMs: 1000 });
    const composed = compose(
      testConfig({
        cache: { enabled: true, directory: dir },
        runtime: { queue_length: 0, pipeline_concurrency: 1 },
        pipeline: { retries: 0 },
      }),
      { stages: fake.stages },
    );
    const served = await serveApp(composed.app);
    servers.push(served);
    const url = served.url;

    const slow = postPrompt(url, 'a metered chair');
    await until(() => composed.service.admission.active === 1);
    const during = await (await fetch(`${url}/metrics`)).text();
    expect(sample(during, 'fast3d_jobs_running')).toBe(1);
    expect(sample(during, 'fast3d_queue_depth')).toBe(0);
    expect((await postPrompt(url, 'a refused chair')).status).toBe(503);
    expect((await slow).status).toBe(200);
    expect((await postPrompt(url, 'a metered chair')).status).toBe(200);
    expect((await postPrompt(url, `a ${HOPELESS} chair`)).status).toBe(204);
    expect((await postPrompt(url, `a ${HOPELESS} chair`)).status).toBe(204);
    expect((await fetch(`${url}/nowhere`)).status).toBe(404);

    const response = await fetch(`${url}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    expect(text).toMatch(/^# TYPE fast3d_http_requests_total counter$/m);
    expect(sample(text, 'fast3d_http_requests_total{route="/generate",status="200"}')).toBe(2);
    expect(sample(text, 'fast3d_http_requests_total{route="/generate",status="204"}')).toBe(2);
    expect(sample(text, 'fast3d_http_requests_total{route="/generate",status="503"}')).toBe(1);
    expect(sample(text, 'fast3d_http_requests_total{route="other",status="404"}')).toBe(1);
    expect(sample(text, 'fast3d_admission_refusals_total{reason="queue_full"}')).toBe(1);
    // Stage durations come from the job reports: the asset job ran every stage, the declined one stopped at matting.
    expect(sample(text, 'fast3d_stage_duration_seconds_count{stage="image_to_3d"}')).toBe(1);
    expect(sample(text, 'fast3d_stage_duration_seconds_count{stage="text_to_image"}')).toBe(2);
    expect(sample(text, 'fast3d_stage_duration_seconds_sum{stage="image_to_3d"}')).toBeGreaterThanOrEqual(0.99);
    expect(sample(text, 'fast3d_declines_total{reason="no_object"}')).toBe(1);
    expect(sample(text, 'fast3d_jobs_total{outcome="asset"}')).toBe(1);
    expect(sample(text, 'fast3d_cache_lookups_total{artefact="ply",result="hit"}')).toBe(1);
    // The refused request was refused before any job or cache read: the misses are the two that ran.
    expect(sample(text, 'fast3d_cache_lookups_total{artefact="ply",result="miss"}')).toBe(2);
    expect(sample(text, 'fast3d_cache_lookups_total{artefact="ply",result="decline_hit"}')).toBe(1);
    // One asset: its PLY, and beside it the picture and matte it was made from and its report.
    expect(sample(text, 'fast3d_cache_entries')).toBe(4);
    expect(sample(text, 'fast3d_queue_depth')).toBe(0);
    expect(sample(text, 'fast3d_jobs_running')).toBe(0);
    const ratio = sample(text, 'fast3d_gpu_busy_ratio')!;
    expect(ratio).toBeGreaterThan(0);
    expect(ratio).toBeLessThanOrEqual(1);
    expect(sample(text, 'fast3d_gpu_busy_seconds')).toBeGreaterThanOrEqual(0.99);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
  });

  it("reports the event loop's longest stall since the last scrape", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    try {
      await metrics.text(); // a fresh window
      const end = performance.now() + 120;
      while (performance.now() < end) {
        /* the event loop is held, as a long synchronous stage would */
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
      const after = await metrics.text();
      expect(sample(after, 'fast3d_event_loop_stall_max_seconds')).toBeGreaterThanOrEqual(0.08);
      const again = await metrics.text();
      expect(sample(again, 'fast3d_event_loop_stall_max_seconds')).toBeLessThan(0.08); // the window was reset
    } finally {
      metrics.stopDelay();
    }
  });

  it('is absent when metrics are disabled', async () => {
    const composed = compose(testConfig({ metrics: { enabled: false } }), { stages: fakeStages().stages });
    const served = await serveApp(composed.app);
    servers.push(served);
    expect((await fetch(`${served.url}/metrics`)).status).toBe(404);
  });
});
