import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import type { RgbaImage } from '../src/image/rgba.js';
import { createStages } from '../src/pipelines/backends.js';
import { Pipeline } from '../src/pipelines/generate.js';
import type { Job } from '../src/pipelines/job.js';
import { ValidatorServiceValidator } from '../src/pipelines/validate/validator-service.js';
import { allocateCloud, logit } from '../src/splat/cloud.js';
import { decodePly } from '../src/splat/ply.js';
import { servablePlyViolation } from '../src/splat/servable.js';
import { jobContext } from './helpers/fake-stages.js';

interface Received {
  path: string;
  contentType: string | undefined;
  body: Record<string, unknown>;
}

/** A stand-in for the subnet's validation service: records requests and answers with `reply`. */
async function validationService(
  reply: (req: Received) => { status?: number; body: string } | null,
): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const entry = {
      path: req.url ?? '',
      contentType: req.headers['content-type'],
      body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
    };
    received.push(entry);
    const answer = reply(entry);
    if (!answer) return; // never answer: the client's timeout must fire
    res.writeHead(answer.status ?? 200, { 'Content-Type': 'application/json' }).end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  servers.push(server);
  return { url: `http://127.0.0.1:${port}`, received, server };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

function cloud(count = 7500) {
  const c = allocateCloud(count);
  for (let i = 0; i < count; i++) {
    c.columns.x[i] = (i % 50) / 50 - 0.5;
    c.columns.y[i] = Math.floor(i / 50) / 150 - 0.5;
    c.columns.opacity[i] = logit(0.8);
    c.columns.rot_0[i] = 1;
    c.columns.rot_1[i] = 0.2;
  }
  return c;
}

const image: RgbaImage = {
  width: 2,
  height: 2,
  data: Uint8ClampedArray.from([255, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255, 9, 9, 9, 0]),
};
const textJob: Job = { id: 'a', task: { kind: 'text', prompt: 'a wooden chair' }, seed: 3 };
const imageJob: Job = { id: 'b', task: { kind: 'image', image, digest: 'd' }, seed: 3 };

describe('validator-service backend against a local validation service', () => {
  it('posts text tasks to /validate_txt_to_3d_ply/ with the prompt and the raw PLY, and accepts at 0.6', async () => {
    const service = await validationService(() => ({
      body: JSON.stringify({ score: 0.71, iqa: 0.8, alignment_score: 0.9, ssim: 0.9, lpips: 0.1 }),
    }));
    const validator = new ValidatorServiceValidator({ url: service.url, timeoutMs: 5000 });
    const asset = cloud();
    const checks = await validator.validate({ job: textJob, cloud: asset, image }, jobContext());
    expect(checks).toEqual([{ name: 'validator_score', value: 0.71, threshold: 0.6, passed: true, by: 'validator-service' }]);

    const [req] = service.received;
    expect(req.path).toBe('/validate_txt_to_3d_ply/');
    expect(req.contentType).toBe('application/json');
    expect(Object.keys(req.body).sort()).toEqual(['compression', 'data', 'prompt']);
    expect(req.body.prompt).toBe('a wooden chair');
    expect(req.body.compression).toBe(0);
    const ply = new Uint8Array(Buffer.from(req.body.data as string, 'base64'));
    expect(servablePlyViolation(ply)).toBeNull();
    expect(decodePly(ply).count).toBe(asset.count);
  });

  it('posts image tasks to /validate_img_to_3d_ply/ with the image as base64', async () => {
    const service = await validationService(() => ({ body: '{"score": 0.59}' }));
    const validator = new ValidatorServiceValidator({ url: service.url, timeoutMs: 5000 });
    const checks = await validator.validate({ job: imageJob, cloud: cloud(), image }, jobContext());
    expect(checks[0]).toMatchObject({ value: 0.59, passed: false });
    const [req] = service.received;
    expect(req.path).toBe('/validate_img_to_3d_ply/');
    expect(Object.keys(req.body).sort()).toEqual(['compression', 'data', 'prompt_image']);
    const { data, info } = await sharp(Buffer.from(req.body.prompt_image as string, 'base64'))
      .raw()
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([2, 2, 4]);
    expect(Array.from(data)).toEqual(Array.from(image.data));
  });

  it('says clearly when the service is down, answers badly or too late', async () => {
    const down = new ValidatorServiceValidator({ url: 'http://127.0.0.1:9', timeoutMs: 2000 });
    await expect(down.validate({ job: textJob, cloud: cloud(), image }, jobContext())).rejects.toThrow(
      /validation service at http:\/\/127\.0\.0\.1:9\/validate_txt_to_3d_ply\/ not reachable/,
    );

    const failing = await validationService(() => ({ status: 500, body: '{"detail":"boom"}' }));
    await expect(
      new ValidatorServiceValidator({ url: failing.url, timeoutMs: 2000 }).validate({ job: textJob, cloud: cloud(), image }, jobContext()),
    ).rejects.toThrow(/answered HTTP 500: \{"detail":"boom"\}/);

    const scoreless = await validationService(() => ({ body: '{"iqa": 0.5}' }));
    await expect(
      new ValidatorServiceValidator({ url: scoreless.url, timeoutMs: 2000 }).validate(
        {
          job: textJob,
          cloud: cloud(),
          image,
        },
        jobContext(),
      ),
    ).rejects.toThrow(/without a numeric "score"/);

    const silent = await validationService(() => null);
    await expect(
      new ValidatorServiceValidator({ url: silent.url, timeoutMs: 300 }).validate({ job: textJob, cloud: cloud(), image }, jobContext()),
    ).rejects.toThrow(/no answer within 0.3 s/);
  });

  it("declines through the pipeline with the service's score, after the gates passed", async () => {
    const scores = [0.42, 0.55];
    const service = await validationService(() => ({ body: JSON.stringify({ score: scores.shift() }) }));
    const config = parseConfig({
      image_to_3d: { inflate: { max_gaussians: 9000 } },
      validate: { checks: ['gates', 'validator-service'], validator_service: { url: service.url } },
    });
    const stages = createStages(config);
    expect(stages.validators.map((v) => v.name)).toEqual(['gates', 'validator-service']);
    const outcome = await new Pipeline(stages).run(
      { ...textJob, task: { kind: 'text', prompt: 'red apple' } },
      jobContext({ retries: 1, extent: 1.5 }),
    );
    expect(outcome.kind).toBe('declined');
    if (outcome.kind !== 'declined') return;
    expect(outcome.reason).toBe('validator_score 0.55 failed threshold 0.6 (validator-service)');
    expect(outcome.report.attempts.map((a) => a.checks.at(-1)!.value)).toEqual([0.42, 0.55]);
    expect(outcome.report.attempts[0].checks.slice(0, 3).every((c) => c.by === 'gates' && c.passed)).toBe(true);
    expect(service.received).toHaveLength(2);
  });
});
