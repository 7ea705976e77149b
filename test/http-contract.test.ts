/**
 * The subnet contract over real HTTP, with the CPU preview backends: the miner's exact request, the newer
 * contract's multipart image upload, every error status, declines, readiness and determinism.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Check } from '../src/pipelines/job.js';
import type { Backend, ImageTo3d, Readiness, Validator } from '../src/pipelines/stages.js';
import { gateFigures, readPlyIndependently } from './helpers/independent-ply.js';
import { discImage, twoToneDisc } from './helpers/images.js';
import { until } from './helpers/fake-stages.js';
import { postForm, startTestServer, type TestServer } from './helpers/server.js';

async function expectValidPly(response: Response) {
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('application/octet-stream');
  const bytes = new Uint8Array(await response.arrayBuffer());
  const ply = readPlyIndependently(bytes);
  const figures = gateFigures(ply);
  expect(figures.count).toBeGreaterThanOrEqual(7000);
  expect(figures.transparentShare).toBeLessThanOrEqual(0.8);
  expect(figures.allIdentity).toBe(false);
  // Centred at the origin, largest extent 1.5 (the validator's own normalisation is then a no-op).
  for (const c of figures.centroid) expect(Math.abs(c)).toBeLessThan(1e-3);
  expect(Math.max(...figures.extent)).toBeCloseTo(1.5, 3);
  return { bytes, ply, figures };
}

/** Mean (red - blue) SH coefficient over the Gaussians above y = 0. */
function redMinusBlueAtPositiveY(ply: ReturnType<typeof readPlyIndependently>): number {
  let sum = 0,
    n = 0;
  for (let i = 0; i < ply.count; i++) {
    if (ply.get('y', i) <= 0) continue;
    sum += ply.get('f_dc_0', i) - ply.get('f_dc_2', i);
    n++;
  }
  return sum / n;
}

async function expectError(response: Response, status: number, pattern: RegExp) {
  expect(response.status).toBe(status);
  expect(response.headers.get('content-type')).toMatch(/application\/json/);
  const body = (await response.json()) as { error: string };
  expect(body.error).toMatch(pattern);
}

describe('generate over HTTP (preview backends)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ server: { body_limit_mb: 8 } });
  });
  afterAll(() => server.close());

  it("answers the miner's exact request: urlencoded prompt on /generate/", async () => {
    const response = await postForm(`${server.url}/generate/`, { prompt: 'pink bicycle' });
    await expectValidPly(response);
    expect(response.headers.get('x-fast3d-mode')).toBe('preview');
    expect(response.headers.get('x-request-id')).toMatch(/^[\w-]+$/);
    expect(response.headers.get('x-fast3d-report')).toMatch(/^1:\d+:accept:gaussian_count=\d+\/7000\/pass/);
  });

  it('serves /generate without the trailing slash', async () => {
    await expectValidPly(await postForm(`${server.url}/generate`, { prompt: 'a wooden barrel' }));
  });

  it('accepts multipart forms', async () => {
    const form = new FormData();
    form.set('prompt', 'a red apple');
    await expectValidPly(await fetch(`${server.url}/generate/`, { method: 'POST', body: form }));
  });

  it('makes upright assets: a cone-shaped prompt is wide at the bottom and narrow at the top (+Y up)', async () => {
    const { ply } = await expectValidPly(await postForm(`${server.url}/generate/`, { prompt: 'a green cone', seed: '1' }));
    const width = (predicate: (y: number) => boolean) => {
      let lo = Infinity,
        hi = -Infinity;
      for (let i = 0; i < ply.count; i++) {
        if (!predicate(ply.get('y', i))) continue;
        lo = Math.min(lo, ply.get('x', i));
        hi = Math.max(hi, ply.get('x', i));
      }
      return hi - lo;
    };
    expect(width((y) => y > 0.35)).toBeLessThan(0.6 * width((y) => y < -0.2));
  });

  it('treats a 3 MB base64 PNG inside an urlencoded prompt as an image task', async () => {
    const png = await discImage({ size: 1200, radius: 560, noise: true });
    expect(png.length).toBeGreaterThan(3_000_000);
    const response = await postForm(`${server.url}/generate/`, { prompt: png.toString('base64') });
    const { ply } = await expectValidPly(response);
    // The asset's colours come from the picture: a red disc, so red dominates on the front (+Z) side.
    let red = 0,
      green = 0;
    for (let i = 0; i < ply.count; i++) {
      if (ply.get('z', i) <= 0) continue;
      red += ply.get('f_dc_0', i);
      green += ply.get('f_dc_1', i);
    }
    expect(red).toBeGreaterThan(green);
  });

  it('accepts a data: prefix and line-wrapped base64', async () => {
    const jpeg = await discImage({ size: 256, radius: 90, format: 'jpeg' });
    const wrapped = jpeg.toString('base64').replace(/(.{76})/g, '$1\n');
    await expectValidPly(await postForm(`${server.url}/generate/`, { prompt: `data:image/jpeg;base64,${wrapped}` }));
  });

  it('takes the newer contract: multipart prompt_image_file with a seed', async () => {
    const webp = await discImage({ size: 300, radius: 100, format: 'webp' });
    const send = async (seed: string) => {
      const form = new FormData();
      form.set('prompt_image_file', new Blob([webp], { type: 'image/webp' }), 'input.webp');
      form.set('seed', seed);
      return fetch(`${server.url}/generate`, { method: 'POST', body: form });
    };
    const response = await send('42');
    await expectValidPly(response);
    expect(response.headers.get('x-fast3d-seed')).toBe('42');
  });

  it("keeps a user image's own alpha channel", async () => {
    // A transparent background the colour of the object: keying alone could not separate them.
    const png = await discImage({ size: 256, radius: 80, transparent: true, background: [200, 40, 60] });
    const { ply } = await expectValidPly(await postForm(`${server.url}/generate/`, { prompt: png.toString('base64') }));
    // Keyed as a whole square, the cloud would be as wide as it is tall at every height; a disc is round.
    let cornerPoints = 0;
    for (let i = 0; i < ply.count; i++) {
      if (Math.abs(ply.get('x', i)) > 0.6 && Math.abs(ply.get('y', i)) > 0.6) cornerPoints++;
    }
    expect(cornerPoints).toBe(0);
  });

  it('is deterministic: the same prompt and seed give the same bytes; another seed does not', async () => {
    const a = await postForm(`${server.url}/generate/`, { prompt: 'a blue mug', seed: '7' });
    const b = await postForm(`${server.url}/generate/`, { prompt: 'a blue mug', seed: '7' });
    const c = await postForm(`${server.url}/generate/`, { prompt: 'a blue mug', seed: '8' });
    const [ba, bb, bc] = await Promise.all([a, b, c].map(async (r) => Buffer.from(await r.arrayBuffer())));
    expect(ba.equals(bb)).toBe(true);
    expect(ba.equals(bc)).toBe(false);
    // Without a seed, the seed is derived from the prompt: stable too.
    const d = await postForm(`${server.url}/generate/`, { prompt: 'a blue mug' });
    const e = await postForm(`${server.url}/generate/`, { prompt: '  a blue mug ' });
    expect(d.headers.get('x-fast3d-seed')).toBe(e.headers.get('x-fast3d-seed'));
  });

  it('takes a negative seed as "derive one", as the newer contract\'s reference server does', async () => {
    const derived = await postForm(`${server.url}/generate/`, { prompt: 'a brass lamp' });
    const negative = await postForm(`${server.url}/generate/`, { prompt: 'a brass lamp', seed: '-1' });
    expect(negative.status).toBe(200);
    expect(negative.headers.get('x-fast3d-seed')).toBe(derived.headers.get('x-fast3d-seed'));
  });

  it("answers prompt_image_file upright (+Y up), as the subnet's competitions require, like the legacy contract", async () => {
    // Red on top, blue below: which end of the asset's Y axis is red says which way is up.
    const png = await twoToneDisc();
    const form = new FormData();
    form.set('prompt_image_file', new Blob([png], { type: 'image/png' }), 'p.png');
    const newer = readPlyIndependently(
      new Uint8Array(await (await fetch(`${server.url}/generate`, { method: 'POST', body: form })).arrayBuffer()),
    );
    const legacy = readPlyIndependently(
      new Uint8Array(await (await postForm(`${server.url}/generate/`, { prompt: png.toString('base64') })).arrayBuffer()),
    );
    expect(redMinusBlueAtPositiveY(legacy)).toBeGreaterThan(0);
    expect(redMinusBlueAtPositiveY(newer)).toBeGreaterThan(0);
  });

  it('keeps the earlier Y-down frame for prompt_image_file as an option', async () => {
    const yDown = await startTestServer({ contract: { image_file_rotation: 'y-down' } });
    try {
      const form = new FormData();
      form.set('prompt_image_file', new Blob([await twoToneDisc()], { type: 'image/png' }), 'p.png');
      const answer = readPlyIndependently(
        new Uint8Array(await (await fetch(`${yDown.url}/generate`, { method: 'POST', body: form })).arrayBuffer()),
      );
      expect(redMinusBlueAtPositiveY(answer)).toBeLessThan(0);
    } finally {
      await yDown.close();
    }
  });

  describe('bad input', () => {
    it('400: empty or whitespace prompt', async () => {
      await expectError(await postForm(`${server.url}/generate/`, { prompt: '' }), 400, /prompt is empty/);
      await expectError(await postForm(`${server.url}/generate/`, { prompt: '  \n ' }), 400, /prompt is empty/);
    });

    it('400: no prompt field', async () => {
      await expectError(await postForm(`${server.url}/generate/`, { text: 'cat' }), 400, /"prompt".*required/);
    });

    it('400: prompt over the length limit', async () => {
      await expectError(
        await postForm(`${server.url}/generate/`, { prompt: 'a '.repeat(600) }),
        400,
        /prompt is 1199 characters long; the limit is 1024/,
      );
    });

    it('400: long base64 that is not an image is an over-long prompt', async () => {
      const noise = Buffer.alloc(3000, 7).toString('base64');
      await expectError(
        await postForm(`${server.url}/generate/`, { prompt: noise }),
        400,
        /prompt is 4000 characters long; the limit is 1024/,
      );
    });

    it('400 naming the format: a short base64 GIF, rather than a text prompt answered 200', async () => {
      const sharp = (await import('sharp')).default;
      const gif = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#208040' } })
        .gif()
        .toBuffer();
      await expectError(
        await postForm(`${server.url}/generate/`, { prompt: gif.toString('base64') }),
        400,
        /^prompt is a GIF image; only PNG, JPEG or WebP images are accepted$/,
      );
      await expectError(
        await postForm(`${server.url}/generate/`, { prompt: 'data:image/png,not really a png' }),
        400,
        /data: URL \(image\/png\) without ";base64"/,
      );
    });

    it('400 naming the format the same way on every route that takes an image', async () => {
      const sharp = (await import('sharp')).default;
      const gif = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#208040' } })
        .gif()
        .toBuffer();
      const file = (field: string) => {
        const form = new FormData();
        form.set(field, new Blob([gif as Uint8Array<ArrayBuffer>], { type: 'image/gif' }), 'chair.gif');
        return form;
      };
      const json = (body: unknown) => ({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      const cases: [Promise<Response>, string][] = [
        [postForm(`${server.url}/generate/`, { prompt: `data:image/gif;base64,${gif.toString('base64')}` }), 'prompt'],
        [fetch(`${server.url}/generate`, { method: 'POST', body: file('prompt_image_file') }), 'prompt_image_file'],
        // A prompt sent as a file part is read as text unless it is an image: a GIF is neither.
        [fetch(`${server.url}/generate`, { method: 'POST', body: file('prompt') }), 'prompt'],
        [fetch(`${server.url}/api/v1/jobs`, json({ image: gif.toString('base64') })), 'image'],
        [fetch(`${server.url}/api/v1/jobs`, json({ image: `data:image/gif;base64,${gif.toString('base64')}` })), 'image'],
        [fetch(`${server.url}/api/v1/jobs`, { method: 'POST', body: file('image') }), 'image'],
      ];
      for (const [response, field] of cases)
        await expectError(await response, 400, new RegExp(`^${field} is a GIF image; only PNG, JPEG or WebP images are accepted$`));
    });

    it('400: an image field that is no image says so, however long, and never calls it a text prompt', async () => {
      const noise = Buffer.alloc(3 * 1024 * 1024, 7).toString('base64');
      const res = await fetch(`${server.url}/api/v1/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ image: noise }),
      });
      await expectError(res, 400, /^image is not a PNG, JPEG or WebP image$/);
      const words = await fetch(`${server.url}/api/v1/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ image: 'a photo of a chair!' }),
      });
      await expectError(words, 400, /^image is not base64 \(or a base64 data: URL\); send a PNG, JPEG or WebP image base64-encoded$/);
    });

    it('400: image magic but undecodable bytes', async () => {
      const broken = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(2000, 3)]);
      await expectError(await postForm(`${server.url}/generate/`, { prompt: broken.toString('base64') }), 400, /could not be decoded/);
    });

    it('400: bad seeds', async () => {
      for (const seed of ['abc', '1.5', '4294967296', '-']) {
        await expectError(
          await postForm(`${server.url}/generate/`, { prompt: 'cat', seed }),
          400,
          /seed must be an integer from 0 to 4294967295/,
        );
      }
    });

    it('400: prompt_image_file that is not an image', async () => {
      const form = new FormData();
      form.set('prompt_image_file', new Blob([Buffer.from('hello')]), 'x.txt');
      await expectError(await fetch(`${server.url}/generate`, { method: 'POST', body: form }), 400, /not a PNG, JPEG or WebP/);
    });

    it('413: body over the limit', async () => {
      const response = await postForm(`${server.url}/generate/`, { prompt: 'x'.repeat(9 * 1024 * 1024) });
      await expectError(response, 413, /larger than 8388608 bytes/);
    });

    it('415: other content types', async () => {
      const response = await fetch(`${server.url}/generate/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'cat' }),
      });
      await expectError(response, 415, /must be application\/x-www-form-urlencoded or multipart\/form-data, got "application\/json"/);
    });

    it('404 as JSON for unknown routes', async () => {
      await expectError(await fetch(`${server.url}/nope`), 404, /no route for GET \/nope/);
    });

    it("the README's decline example (a blank image) really is a 204 in preview, with its reason", async () => {
      const { readFileSync } = await import('node:fs');
      const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
      const blank = /^BLANK=(\S+)/m.exec(readme)![1];
      const response = await postForm(`${server.url}/generate/`, { prompt: blank });
      expect(response.status).toBe(204);
      expect(response.headers.get('x-fast3d-decline-reason')).toBe('no object found in the image');
      expect(response.headers.get('x-fast3d-report')).toMatch(/reject/);
    });

    it('405 with Allow: POST for a GET of a generate route', async () => {
      for (const path of ['/generate/', '/generate', '/generate_video/']) {
        const response = await fetch(`${server.url}${path}`);
        expect(response.headers.get('allow'), path).toBe('POST');
        await expectError(response, 405, /GET is not allowed on \/generate.*; use POST/);
      }
      expect((await fetch(`${server.url}/generate/`, { method: 'PUT', body: 'x' })).status).toBe(405);
    });
  });

  it('GET /health reports status, mode, stages and version', async () => {
    const response = await fetch(`${server.url}/health`);
    expect(response.status).toBe(200);
    const health = (await response.json()) as Record<string, any>;
    expect(health.status).toBe('ok');
    expect(health.mode).toBe('preview');
    expect(health.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(Object.keys(health.stages)).toEqual(['text_to_image', 'matting', 'image_to_3d', 'validate.gates']);
    expect(health.stages.image_to_3d).toMatchObject({ backend: 'inflate', ready: true, preview: true });
    expect((await fetch(`${server.url}/ping`)).status).toBe(200);
  });
});

/** A validator that rejects its first `rejections` calls: drives the retry-then-decline rule. */
class ScriptedValidator implements Validator {
  readonly name = 'scripted';
  readonly preview = false;
  calls = 0;
  constructor(private readonly rejections: number) {}
  readiness(): Readiness {
    return { ready: true };
  }
  async validate(): Promise<Check[]> {
    const passed = this.calls++ >= this.rejections;
    return [{ name: 'scripted_score', value: passed ? 1 : 0, threshold: 0.5, passed, by: this.name }];
  }
}

describe('self-validation over HTTP', () => {
  it('retries once with a new seed, then answers 204 with an empty body', async () => {
    const validator = new ScriptedValidator(2);
    const server = await startTestServer({}, { validators: [validator] });
    try {
      const response = await postForm(`${server.url}/generate/`, { prompt: 'a teapot', seed: '5' });
      expect(response.status).toBe(204);
      expect((await response.arrayBuffer()).byteLength).toBe(0);
      expect(validator.calls).toBe(2);
      const report = response.headers.get('x-fast3d-report')!;
      const [first, second] = report.split(';');
      expect(first).toMatch(/^1:5:reject:scripted_score=0\/0\.5000\/fail$/);
      expect(second).toMatch(/^2:\d+:reject:/);
      expect(second.split(':')[1]).not.toBe('5');
      expect(response.headers.get('x-fast3d-decline-reason')).toMatch(/scripted_score/);
    } finally {
      await server.close();
    }
  });

  it("serves the retry's asset when the second attempt passes", async () => {
    const validator = new ScriptedValidator(1);
    const server = await startTestServer({}, { validators: [validator] });
    try {
      const response = await postForm(`${server.url}/generate/`, { prompt: 'a teapot', seed: '5' });
      await expectValidPly(response);
      expect(response.headers.get('x-fast3d-seed')).not.toBe('5');
      expect(validator.calls).toBe(2);
    } finally {
      await server.close();
    }
  });

  it('returns the last asset instead of a 204 to the newer contract, which counts a 204 as a lost prompt', async () => {
    // Three rejections: one attempt under the contract's default preset, then two under balanced.
    const server = await startTestServer({}, { validators: [new ScriptedValidator(3)] });
    try {
      const form = new FormData();
      form.set('prompt_image_file', new Blob([await discImage({ size: 128, radius: 40 })], { type: 'image/png' }), 'p.png');
      form.set('seed', '3');
      const response = await fetch(`${server.url}/generate`, { method: 'POST', body: form });
      await expectValidPly(response);
      expect(response.headers.get('x-fast3d-best-effort')).toBe('true');
      // That contract's default preset (fast) makes one attempt, to keep within its 30 s.
      expect(response.headers.get('x-fast3d-preset')).toBe('fast');
      expect(response.headers.get('x-fast3d-report')).toMatch(/^1:3:reject:[^;]*$/);
      // A request naming balanced gets its retry, and still the last asset.
      form.set('preset', 'balanced');
      const balanced = await fetch(`${server.url}/generate`, { method: 'POST', body: form });
      await expectValidPly(balanced);
      expect(balanced.headers.get('x-fast3d-best-effort')).toBe('true');
      expect(balanced.headers.get('x-fast3d-report')).toMatch(/^1:3:reject:.*;2:\d+:reject:/);
    } finally {
      await server.close();
    }
  });

  it('declines with the gates when an asset would be too small for the validator', async () => {
    const server = await startTestServer({ validate: { gates: { min_gaussians: 5_000_000 } } });
    try {
      const response = await postForm(`${server.url}/generate/`, { prompt: 'a teapot' });
      expect(response.status).toBe(204);
      expect(response.headers.get('x-fast3d-decline-reason')).toMatch(/gaussian_count/);
    } finally {
      await server.close();
    }
  });
});

/** A stage that becomes ready only when the test says so. */
function gatedStage<T extends Backend>(stage: T): T & { release(): void; fail(): void } {
  let loaded = false;
  let release!: () => void;
  let fail!: (err: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    release = resolve;
    fail = reject;
  });
  return Object.assign(Object.create(stage) as T, {
    readiness: (): Readiness => (loaded ? { ready: true } : { ready: false, detail: 'loading' }),
    init: async () => {
      await ready;
      loaded = true;
    },
    release: () => release(),
    fail: () => fail(new Error('model file /models/x.onnx not found')),
  });
}

describe('readiness', () => {
  it('answers 503 with Retry-After while a stage is not ready, /ping 204, then serves', async () => {
    const base = await startTestServer();
    const stage = gatedStage(base.service.pipeline.stages.imageTo3d);
    await base.close();
    const server = await startTestServer({ runtime: { retry_after_s: 7 } }, { imageTo3d: stage });
    try {
      const refused = await postForm(`${server.url}/generate/`, { prompt: 'a chair' });
      await expectError(refused, 503, /service is starting: image_to_3d \(inflate\): loading/);
      expect(refused.headers.get('retry-after')).toBe('7');
      expect((await fetch(`${server.url}/ping`)).status).toBe(204);
      const health = await fetch(`${server.url}/health`);
      expect(health.status).toBe(503);
      expect(((await health.json()) as { status: string }).status).toBe('starting');

      stage.release();
      await until(() => server.service.health().status === 'ok');
      expect((await fetch(`${server.url}/ping`)).status).toBe(200);
      await expectValidPly(await postForm(`${server.url}/generate/`, { prompt: 'a chair' }));
    } finally {
      await server.close();
    }
  });

  it('reports degraded (and /ping unhealthy) when a stage cannot become ready', async () => {
    const base = await startTestServer();
    const stage = gatedStage(base.service.pipeline.stages.matting);
    await base.close();
    const server = await startTestServer({}, { matting: stage });
    try {
      stage.fail();
      await until(() => server.service.health().status === 'degraded');
      const health = (await (await fetch(`${server.url}/health`)).json()) as Record<string, any>;
      expect(health.status).toBe('degraded');
      expect(health.stages.matting).toMatchObject({ ready: false, detail: 'model file /models/x.onnx not found' });
      expect((await fetch(`${server.url}/ping`)).status).toBe(503);
      await expectError(await postForm(`${server.url}/generate/`, { prompt: 'x' }), 503, /degraded: matting \(keying\): model file/);
    } finally {
      await server.close();
    }
  });

  it('answers "healthy" when configured for the newer contract\'s health checker', async () => {
    const server = await startTestServer({ server: { health_ok_status: 'healthy' } });
    try {
      expect(((await (await fetch(`${server.url}/health`)).json()) as { status: string }).status).toBe('healthy');
    } finally {
      await server.close();
    }
  });
});

describe('overload', () => {
  it('refuses with 503 and Retry-After when the queue is full', async () => {
    const base = await startTestServer();
    const slow = Object.assign(Object.create(base.service.pipeline.stages.imageTo3d), {
      generate: async (...args: Parameters<ImageTo3d['generate']>) => {
        await new Promise((r) => setTimeout(r, 400));
        return base.service.pipeline.stages.imageTo3d.generate(...args);
      },
    });
    await base.close();
    const server = await startTestServer({ runtime: { queue_length: 1, pipeline_concurrency: 1 } }, { imageTo3d: slow });
    try {
      const first = postForm(`${server.url}/generate/`, { prompt: 'one' });
      await until(() => server.service.admission.active === 1);
      const second = postForm(`${server.url}/generate/`, { prompt: 'two' });
      await until(() => server.service.admission.depth === 1);
      const third = await postForm(`${server.url}/generate/`, { prompt: 'three' });
      await expectError(third, 503, /busy/);
      expect(third.headers.get('retry-after')).toBe('10');
      expect((await first).status).toBe(200);
      expect((await second).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
